"""The silver metric contract of DESIGN.md: per kid-week metrics and trends vs W-1, W-2.

The heavy lifting (filtering, grouping, summing) runs in the database; only per-kid
aggregates (a few rows per kid) come back to Python, where the contract's rules for
top category, savings rate and trends are applied exactly (Decimal, byte order).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets import db
from kidsfin_assets.validation import valid_events, valid_transactions, week_index
from kidsfin_assets.warehouse import TREND_METRICS, Sources
from kidsfin_assets.weeks import Week

ZERO = Decimal(0)
KIND_TOTALS = {
    "income": "income_total",
    "spending": "spending_total",
    "saving": "saving_total",
    "withdrawal": "withdrawal_total",
}


def trend(value: Decimal, prev1: Decimal, prev2: Decimal, threshold: Decimal) -> str:
    """up / down / flat against mean(prev1, prev2); `new` when there was nothing before."""
    baseline = (prev1 + prev2) / 2
    if baseline == 0:
        return "new" if value > 0 else "flat"
    change = (value - baseline) / baseline
    if change > threshold:
        return "up"
    if change < -threshold:
        return "down"
    return "flat"


def top_category(by_category: dict[str, Decimal]) -> str | None:
    """Largest spending; ties go to the alphabetically first name in byte order."""
    spent = [(amount, name) for name, amount in by_category.items() if amount > 0]
    if not spent:
        return None
    return min(spent, key=lambda item: (-item[0], item[1].encode()))[1]


def _dec(value: Any) -> Decimal:
    if value is None:
        return ZERO
    # str() keeps SQLite's float sums (already whole cents) exact to the cent.
    return value if isinstance(value, Decimal) else Decimal(str(round(float(value), 2)))


class _WeekQueries:
    """The four aggregate queries of one silver week, over W-2 .. W."""

    def __init__(self, engine: Engine, src: Sources, week: Week) -> None:
        self.engine, self.src, self.week = engine, src, week
        weeks = [week, week.shifted(-1), week.shifted(-2)]
        self.starts = [w.starts_at for w in weeks]
        self.window = (weeks[2].starts_at, week.ends_at)

    def _txns(self) -> sa.Subquery:
        wk = week_index(self.engine, self.src.transactions.c.occurred_at, self.starts)
        return valid_transactions(
            self.engine, self.src, self.week.timezone, *self.window, extra=[wk.label("wk")]
        ).subquery("txn")

    def _events(self) -> sa.Subquery:
        wk = week_index(self.engine, self.src.app_events.c.occurred_at, self.starts)
        return valid_events(
            self.engine, self.src, self.week.timezone, *self.window, extra=[wk.label("wk")]
        ).subquery("evt")

    def totals(self) -> sa.Select[Any]:
        t = self._txns()
        total = db.money_sum(self.engine, t.c.amount).label("total")
        return sa.select(t.c.kid_id, t.c.wk, t.c.kind, total, sa.func.count().label("n")).group_by(
            t.c.kid_id, t.c.wk, t.c.kind
        )

    def events(self) -> sa.Select[Any]:
        e = self._events()
        return sa.select(e.c.kid_id, e.c.wk, sa.func.count().label("n")).group_by(
            e.c.kid_id, e.c.wk
        )

    def active_days(self) -> sa.Select[Any]:
        t, e = self._txns(), self._events()
        days = sa.union(
            sa.select(t.c.kid_id, t.c.wk, t.c.local_date),
            sa.select(e.c.kid_id, e.c.wk, e.c.local_date),
        ).subquery("days")
        return sa.select(days.c.kid_id, days.c.wk, sa.func.count().label("n")).group_by(
            days.c.kid_id, days.c.wk
        )

    def spending_by_category(self) -> sa.Select[Any]:
        t = self._txns()
        total = db.money_sum(self.engine, t.c.amount).label("total")
        return (
            sa.select(t.c.kid_id, t.c.category, total)
            .where(t.c.wk == 0, t.c.kind == "spending")
            .group_by(t.c.kid_id, t.c.category)
        )

    def savings_balance(self) -> sa.Select[Any]:
        t = valid_transactions(self.engine, self.src, self.week.timezone, None, self.window[1])
        sub = t.where(self.src.transactions.c.kind.in_(("saving", "withdrawal"))).subquery()
        signed = sa.case((sub.c.kind == "withdrawal", -sub.c.amount), else_=sub.c.amount)
        return sa.select(sub.c.kid_id, db.money_sum(self.engine, signed).label("total")).group_by(
            sub.c.kid_id
        )


def _empty_kid() -> dict[str, Any]:
    row: dict[str, Any] = {}
    for wk in range(3):
        for column in (*KIND_TOTALS.values(), "txn_count", "event_count", "active_days"):
            row[(column, wk)] = 0 if column.endswith(("count", "days")) else ZERO
    return row


def compute_week(
    conn: Connection, src: Sources, week: Week, threshold: float
) -> list[dict[str, Any]]:
    """One row per kid with a valid transaction or event in W, W-1 or W-2."""
    queries = _WeekQueries(conn.engine, src, week)
    acc: dict[int, dict[Any, Any]] = defaultdict(_empty_kid)
    for kid_id, wk, kind, total, n in conn.execute(queries.totals()):
        acc[kid_id][(KIND_TOTALS[kind], wk)] = _dec(total)
        acc[kid_id][("txn_count", wk)] += n
    for kid_id, wk, n in conn.execute(queries.events()):
        acc[kid_id][("event_count", wk)] = n
    for kid_id, wk, n in conn.execute(queries.active_days()):
        acc[kid_id][("active_days", wk)] = n
    categories: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for kid_id, category, total in conn.execute(queries.spending_by_category()):
        categories[kid_id][category] = _dec(total)
    balances = {kid_id: _dec(total) for kid_id, total in conn.execute(queries.savings_balance())}
    limit = Decimal(str(threshold))
    computed_at = dt.datetime.now(dt.UTC)
    return [
        _row(
            week, kid_id, acc[kid_id], categories.get(kid_id, {}), balances.get(kid_id, ZERO), limit
        )
        | {"computed_at": computed_at}
        for kid_id in sorted(acc)
    ]


def _row(
    week: Week,
    kid_id: int,
    acc: dict[Any, Any],
    by_category: dict[str, Decimal],
    balance: Decimal,
    threshold: Decimal,
) -> dict[str, Any]:
    income, spending = acc[("income_total", 0)], acc[("spending_total", 0)]
    row: dict[str, Any] = {
        "week_start": week.start,
        "kid_id": kid_id,
        **{column: float(acc[(column, 0)]) for column in KIND_TOTALS.values()},
        "net_flow": float(income - spending),
        "savings_rate": None if income == 0 else float(acc[("saving_total", 0)] / income),
        "txn_count": acc[("txn_count", 0)],
        "event_count": acc[("event_count", 0)],
        "active_days": acc[("active_days", 0)],
        "spending_by_category": {k: float(v) for k, v in sorted(by_category.items())},
        "top_spending_category": top_category(by_category),
        "savings_balance": float(balance),
    }
    for metric in TREND_METRICS:
        value, prev1, prev2 = (acc[(metric, wk)] for wk in range(3))
        cast = int if metric in ("txn_count", "active_days") else float
        row[f"{metric}_prev1"] = cast(prev1)
        row[f"{metric}_prev2"] = cast(prev2)
        row[f"{metric}_trend"] = trend(Decimal(value), Decimal(prev1), Decimal(prev2), threshold)
    return row
