"""The silver metric contract of DESIGN.md, as one INSERT ... SELECT in the database.

Nothing per transaction or per kid comes back to Python: the database filters, groups,
ranks categories and computes trends, and writes the week's rows itself. That keeps a
week of millions of transactions fast and the process small. Money is summed exactly:
NUMERIC on PostgreSQL, integer cents on SQLite (whose numbers are floats).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets import db
from kidsfin_assets.validation import valid_events, valid_transactions, week_index
from kidsfin_assets.warehouse import TREND_METRICS, Sources, kid_weekly_analysis
from kidsfin_assets.weeks import Week

KINDS = {
    "income": "income_total",
    "spending": "spending_total",
    "saving": "saving_total",
    "withdrawal": "withdrawal_total",
}
WEEKS_BACK = 3  # W, W-1, W-2


class _Ctes:
    """The week's valid rows (W-2 .. W), each read from the source once."""

    def __init__(self, engine: Engine, src: Sources, week: Week) -> None:
        self.engine, self.src, self.week = engine, src, week
        starts = [week.shifted(-i).starts_at for i in range(WEEKS_BACK)]
        window = (starts[-1], week.ends_at)
        t, e = src.transactions, src.app_events
        self.txn = valid_transactions(
            engine,
            src,
            week.timezone,
            *window,
            extra=[
                week_index(engine, t.c.occurred_at, starts).label("wk"),
                db.exact_money(engine, t.c.amount).label("money"),
            ],
        ).cte("txn")
        self.evt = valid_events(
            engine,
            src,
            week.timezone,
            *window,
            extra=[week_index(engine, e.c.occurred_at, starts).label("wk")],
        ).cte("evt")

    def totals(self) -> sa.CTE:
        """Per kid: sums per kind and week, transaction counts per week."""
        t = self.txn
        columns = [
            sa.func.sum(t.c.money).filter(t.c.wk == wk, t.c.kind == kind).label(f"{name}_{wk}")
            for wk in range(WEEKS_BACK)
            for kind, name in KINDS.items()
        ]
        columns += [
            sa.func.count().filter(t.c.wk == wk).label(f"txn_count_{wk}")
            for wk in range(WEEKS_BACK)
        ]
        return sa.select(t.c.kid_id, *columns).group_by(t.c.kid_id).cte("totals")

    def activity(self) -> sa.CTE:
        """Per kid: distinct local dates with any valid row, per week."""
        days = sa.union(
            sa.select(self.txn.c.kid_id, self.txn.c.wk, self.txn.c.local_date),
            sa.select(self.evt.c.kid_id, self.evt.c.wk, self.evt.c.local_date),
        ).subquery("days")
        columns = [
            sa.func.count().filter(days.c.wk == wk).label(f"active_days_{wk}")
            for wk in range(WEEKS_BACK)
        ]
        return sa.select(days.c.kid_id, *columns).group_by(days.c.kid_id).cte("activity")

    def events(self) -> sa.CTE:
        e = self.evt
        return (
            sa.select(e.c.kid_id, sa.func.count().label("event_count"))
            .where(e.c.wk == 0)
            .group_by(e.c.kid_id)
            .cte("events")
        )

    def categories(self) -> sa.CTE:
        """Per kid: spending by category as JSON, and the top one (ties: byte order)."""
        t = self.txn
        spent = (
            sa.select(t.c.kid_id, t.c.category, sa.func.sum(t.c.money).label("total"))
            .where(t.c.wk == 0, t.c.kind == "spending")
            .group_by(t.c.kid_id, t.c.category)
            .subquery("spent")
        )
        rank = sa.func.row_number().over(
            partition_by=spent.c.kid_id,
            order_by=[spent.c.total.desc(), db.byte_order(self.engine, spent.c.category)],
        )
        ranked = sa.select(spent, rank.label("rank")).subquery("ranked")
        amount = db.money_value(self.engine, ranked.c.total)
        return (
            sa.select(
                ranked.c.kid_id,
                db.json_object_agg(self.engine, ranked.c.category, amount).label("by_category"),
                sa.func.max(ranked.c.category).filter(ranked.c.rank == 1).label("top_category"),
            )
            .group_by(ranked.c.kid_id)
            .cte("categories")
        )

    def balance(self) -> sa.CTE:
        """Per kid: all valid saving minus withdrawal before the end of W."""
        t = self.src.transactions
        history = valid_transactions(
            self.engine,
            self.src,
            self.week.timezone,
            None,
            self.week.ends_at,
            extra=[db.exact_money(self.engine, t.c.amount).label("money")],
        ).where(t.c.kind.in_(("saving", "withdrawal")))
        h = history.subquery("history")
        signed = sa.case((h.c.kind == "withdrawal", -h.c.money), else_=h.c.money)
        return (
            sa.select(h.c.kid_id, sa.func.sum(signed).label("balance"))
            .group_by(h.c.kid_id)
            .cte("balance")
        )


def _trend(value: Any, prev1: Any, prev2: Any, threshold: Fraction) -> sa.Case[Any]:
    """new/flat when mean(prev1, prev2) is 0, else up/down beyond the threshold.

    (v - b) / b > n/d with b = s/2 and s > 0 is (2v - s) * d > n * s: integers and
    NUMERIC only, so a change of exactly the threshold is flat in both dialects."""
    s = prev1 + prev2
    change = (2 * value - s) * threshold.denominator
    limit = threshold.numerator * s
    return sa.case(
        (sa.and_(s == 0, value > 0), "new"),
        (s == 0, "flat"),
        (change > limit, "up"),
        (change < -limit, "down"),
        else_="flat",
    )


def silver_select(engine: Engine, src: Sources, week: Week, threshold: float) -> sa.Select[Any]:
    """One row per kid with valid activity in W, W-1 or W-2, in the table's column order."""
    ctes = _Ctes(engine, src, week)
    totals, activity = ctes.totals(), ctes.activity()
    events, categories, balance = ctes.events(), ctes.categories(), ctes.balance()
    # Every valid row has a date, so `activity` lists exactly the kids of the week.
    kids = activity
    joined = kids
    for cte in (totals, events, categories, balance):
        joined = joined.outerjoin(cte, cte.c.kid_id == kids.c.kid_id)

    def zero(column: Any) -> Any:
        return sa.func.coalesce(column, 0)

    def money(column: Any) -> Any:
        return db.money_value(engine, zero(column))

    raw = {
        f"{name}_{wk}": zero(totals.c[f"{name}_{wk}"]) for name in KINDS.values() for wk in range(3)
    }
    raw |= {f"txn_count_{wk}": zero(totals.c[f"txn_count_{wk}"]) for wk in range(3)}
    raw |= {f"active_days_{wk}": zero(activity.c[f"active_days_{wk}"]) for wk in range(3)}
    income, spending, saving = raw["income_total_0"], raw["spending_total_0"], raw["saving_total_0"]
    limit = Fraction(Decimal(str(threshold)))
    values: dict[str, Any] = {
        "week_start": sa.literal(week.start, sa.Date),
        "kid_id": kids.c.kid_id,
        **{name: db.money_value(engine, raw[f"{name}_0"]) for name in KINDS.values()},
        "net_flow": db.money_value(engine, income - spending),
        "savings_rate": sa.case(
            (income == 0, sa.null()),
            else_=sa.cast(saving, sa.Float) / sa.cast(income, sa.Float),
        ),
        "txn_count": raw["txn_count_0"],
        "event_count": zero(events.c.event_count),
        "active_days": raw["active_days_0"],
        "spending_by_category": sa.func.coalesce(
            categories.c.by_category, db.empty_json_object(engine)
        ),
        "top_spending_category": categories.c.top_category,
        "savings_balance": money(balance.c.balance),
    }
    for metric in TREND_METRICS:
        value, prev1, prev2 = (raw[f"{metric}_{wk}"] for wk in range(3))
        is_money = metric.endswith("_total")
        values[f"{metric}_prev1"] = db.money_value(engine, prev1) if is_money else prev1
        values[f"{metric}_prev2"] = db.money_value(engine, prev2) if is_money else prev2
        values[f"{metric}_trend"] = _trend(value, prev1, prev2, limit)
    values["computed_at"] = sa.literal(dt.datetime.now(dt.UTC), sa.DateTime(timezone=True))
    order = [c.name for c in kid_weekly_analysis.columns]
    return sa.select(*(values[name].label(name) for name in order)).select_from(joined)


def write_week(conn: Connection, src: Sources, week: Week, threshold: float) -> int:
    """Replace the week's rows in the caller's transaction; returns the row count."""
    table = kid_weekly_analysis
    db.tune_for_aggregation(conn)
    conn.execute(sa.delete(table).where(table.c.week_start == week.start))
    select = silver_select(conn.engine, src, week, threshold)
    result = conn.execute(sa.insert(table).from_select([c.name for c in table.columns], select))
    return int(result.rowcount)
