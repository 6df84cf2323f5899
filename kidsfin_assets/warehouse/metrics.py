"""The silver metric contract of docs/metrics.md, as one INSERT ... SELECT over raw's copy.

Silver reads raw, never the app's tables: `raw_transactions` and `raw_app_events` of W-2,
W-1 and W (its partition mapping) and `raw_savings_goals` of W, every row already valid,
of a kid that exists, with its local date (raw is the one place the validity rules are
applied: validation.py). Nothing per row or per kid comes back to Python: the database
groups, ranks categories, computes trends and writes the week's rows itself, in one grouped
pass per kid over the window's transactions (each row's slot, week * 4 + kind, makes every
FILTER one integer comparison) and one over its app events; active days are a bit mask of
the window's 21 local days, OR-ed per kid.

Money is summed exactly, as integer cents in both dialects.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.raw_weeks import lock_writes, next_seq, read_loads
from kidsfin_assets.warehouse.tables import (
    TREND_METRICS,
    kid_weekly_analysis,
    raw_app_events,
    raw_opening_balances,
    raw_savings_goals,
    raw_transactions,
    savings_balance_weeks,
    savings_balances,
)

KINDS = {
    "income": "income_total",
    "spending": "spending_total",
    "saving": "saving_total",
    "withdrawal": "withdrawal_total",
}
WEEKS_BACK = 3  # W, W-1, W-2
DAYS = 7


class _Window:
    """W-2 .. W: 21 local days. Day 0 is W-2's Monday; week 0 is W-2 and week 2 is W."""

    def __init__(self, engine: Engine, week: Week) -> None:
        self.engine, self.week = engine, week
        self.first = week.shifted(1 - WEEKS_BACK)

    @staticmethod
    def slot(back: int, kind: int) -> int:
        """The slot of W-back's transactions of one kind (KINDS' order)."""
        return (WEEKS_BACK - 1 - back) * len(KINDS) + kind

    @staticmethod
    def active_days(mask: Any, back: int) -> Any:
        """How many days of week W-back are set in a day mask."""
        first = (WEEKS_BACK - 1 - back) * DAYS
        return sum((mask.op(">>")(first + bit)).op("&")(1) for bit in range(DAYS))


def _txn_rows(engine: Engine, window: _Window) -> sa.Subquery:
    """raw's transactions of W-2 .. W, one row each: kid, cents, kind number, day
    (0 .. 20) and slot (week * 4 + kind), each computed once per row."""
    t = raw_transactions
    first, last = window.first.start, window.week.start
    kind = sa.case(*((t.c.kind == k, i) for i, k in enumerate(KINDS)), else_=len(KINDS))
    day = db.days_since(engine, t.c.local_date, first)
    rows = (
        sa.select(
            t.c.kid_id,
            db.exact_money(t.c.amount).label("money"),
            kind.label("kind"),
            day.label("day"),
        )
        .where(t.c.week_start >= first, t.c.week_start <= last)
        .subquery("txn_rows")
    )
    slot = (rows.c.day // DAYS) * len(KINDS) + rows.c.kind
    return db.computed_once(
        engine,
        sa.select(rows.c.kid_id, rows.c.money, rows.c.kind, rows.c.day, slot.label("slot")),
    ).subquery("slotted")


def _totals(engine: Engine, window: _Window) -> sa.Select[Any]:
    """Per kid with a row in the window: sums, counts, the day mask, and the window's
    saving and withdrawal totals (the carried balance adds them). Transactions and app
    events are grouped apart (the events need only a count and a day mask), then their
    per-kid rows together: no FULL JOIN, which SQLite before 3.39 lacks."""
    r = _txn_rows(engine, window)
    kinds = list(KINDS)
    sums = [
        sa.func.sum(r.c.money).filter(r.c.slot == window.slot(back, i)).label(f"{name}_{back}")
        for back in range(WEEKS_BACK)
        for i, (kind, name) in enumerate(KINDS.items())
        if back == 0 or kind != "withdrawal"  # withdrawals have no trend
    ]
    counts = [
        sa.func.count()
        .filter(r.c.slot >= window.slot(back, 0), r.c.slot < window.slot(back, len(KINDS)))
        .label(f"txn_count_{back}")
        for back in range(WEEKS_BACK)
    ]
    flows = [
        sa.func.sum(r.c.money).filter(r.c.kind == kinds.index(kind)).label(name)
        for kind, name in (("saving", "saved_in_window"), ("withdrawal", "withdrawn_in_window"))
    ]
    mask = db.bit_or_agg(engine, sa.literal(1).op("<<")(r.c.day)).label("days")
    none = sa.cast(sa.null(), sa.BigInteger)
    txn = sa.select(r.c.kid_id, *sums, *counts, *flows, none.label("event_count"), mask).group_by(
        r.c.kid_id
    )
    e = raw_app_events
    first, last = window.first.start, window.week.start
    day = db.days_since(engine, e.c.local_date, first)
    figures = [c.name for c in txn.selected_columns if c.name not in ("kid_id", "days")]
    evt = (
        sa.select(
            e.c.kid_id,
            *(none.label(name) for name in figures if name != "event_count"),
            sa.func.count().filter(e.c.local_date >= last).label("event_count"),
            db.bit_or_agg(engine, sa.literal(1).op("<<")(day)).label("days"),
        )
        .where(e.c.week_start >= first, e.c.week_start <= last)
        .group_by(e.c.kid_id)
    )
    both = sa.union_all(txn, evt).subquery("per_kid_rows")
    return sa.select(
        both.c.kid_id,
        *(sa.func.sum(both.c[name]).label(name) for name in figures),
        db.bit_or_agg(engine, both.c.days).label("days"),
    ).group_by(both.c.kid_id)


def _categories(engine: Engine, week: Week) -> sa.Subquery:
    """Per kid: W's spending by category as JSON, and the top one (ties: byte order)."""
    t = raw_transactions
    spent = (
        sa.select(
            t.c.kid_id,
            t.c.category,
            sa.func.sum(db.exact_money(t.c.amount)).label("total"),
        )
        .where(t.c.week_start == week.start, t.c.kind == "spending")
        .group_by(t.c.kid_id, t.c.category)
        .subquery("spent")
    )
    rank = sa.func.row_number().over(
        partition_by=spent.c.kid_id,
        order_by=[spent.c.total.desc(), db.byte_order(engine, spent.c.category)],
    )
    ranked = sa.select(spent, rank.label("rank")).subquery("ranked")
    amount = db.money_value(engine, ranked.c.total)
    return (
        sa.select(
            ranked.c.kid_id,
            db.json_object_agg(engine, ranked.c.category, amount).label("by_category"),
            sa.func.max(ranked.c.category).filter(ranked.c.rank == 1).label("top_category"),
        )
        .group_by(ranked.c.kid_id)
        .subquery("categories")
    )


# --- savings goals --------------------------------------------------------------------------
#
# A kid-week lists each valid goal raw lists for W (raw_savings_goals: open at the end of W,
# or created or completed in W), ordered by created_at, goal_id. Progress is for open goals
# only: the savings balance at the end of W against the target, in whole percent rounded
# down, 0 when the balance is not positive, and capped at 100 (`reached`: the balance
# covers the target). Every goal shares the one balance: two goals of 100.000 đ with
# 100.000 đ saved are both at 100 %.


def _goal_entries(engine: Engine, week: Week, balances: Any) -> sa.Subquery:
    """One row per listed goal, with its JSON object; `balances` as in _per_kid."""
    g = raw_savings_goals
    target = db.exact_money(g.c.target_amount)
    balance = sa.func.coalesce(balances.c.balance_cents, 0)
    is_open = g.c.open_at_week_end
    progress = sa.case(
        (sa.not_(is_open), sa.null()),
        (balance >= target, 100),
        (balance <= 0, 0),
        else_=balance * 100 // target,  # integers, both > 0: rounded down
    )
    reached = (
        sa.case((is_open, balance >= target), else_=sa.null())
        if not db.is_sqlite(engine)
        else sa.case(
            (sa.not_(is_open), sa.null()),
            (balance >= target, sa.func.json("true")),
            else_=sa.func.json("false"),
        )
    )
    entry = db.json_build_object(
        engine,
        {
            "goal_id": g.c.goal_id,
            "title": g.c.title,
            "target_amount": db.money_value(engine, target),
            "open_at_week_end": db.json_bool(engine, is_open),
            "created_in_week": db.json_bool(engine, g.c.created_in_week),
            "completed_in_week": db.json_bool(engine, g.c.completed_in_week),
            "progress_percent": progress,
            "reached": reached,
        },
    )
    rows = (
        sa.select(g.c.kid_id, g.c.created_order, g.c.goal_id, entry.label("entry"))
        .select_from(g.outerjoin(balances, balances.c.kid_id == g.c.kid_id))
        .where(g.c.week_start == week.start)
    )
    if db.is_sqlite(engine):  # json_group_array takes the rows in the order they come
        rows = rows.order_by(g.c.kid_id, g.c.created_order, g.c.goal_id)
    return rows.subquery("goal_entries")


def _goals(engine: Engine, week: Week, balances: Any) -> sa.Subquery:
    """Per kid_id: W's savings goals as a JSON array (see above)."""
    e = _goal_entries(engine, week, balances)
    goals = db.json_array_agg(engine, e.c.entry, e.c.created_order, e.c.goal_id)
    return sa.select(e.c.kid_id, goals.label("goals")).group_by(e.c.kid_id).subquery("goals")


# --- savings_balance, carried forward ------------------------------------------------------
#
# savings_balance(W) is every valid saving minus withdrawal before the end of W: raw's
# opening balance (the history before raw's first week, which raw's first partition
# stores: `raw_opening_balances`) plus every saving and withdrawal raw holds up to W.
# Summing every raw week each time would cost more every week, so each materialisation of
# W also stores every kid's balance at the end of W (`savings_balances`), and computes W's
# as
#
#     balance(W) = stored balance(B) + raw's flows of the weeks after B
#
# for a base week B <= W-3, or from the opening balance when none qualifies. The flows of
# W-2 .. W come free with the trends' pass over the window; weeks between B and W-2 (none
# when B = W-3) are read from raw by one range scan. B is at most W-3, not W-1, so that W,
# W+1 and W+2, which the sensor re-runs together after late data in W and Dagster may run
# in any order, each read W from raw, never a W balance stored before the change.
#
# Why a stored balance of B is still right. Raw's loads and silver's writes are numbered
# in commit order by one sequence (`seq`, raw_weeks.py). B qualifies only if its latest
# materialisation came after the latest load of every raw week <= B (the opening balance
# is part of the first partition's load). Then raw's weeks <= B are what they were when B
# was computed; by induction on seq, B's own base qualified then and so was right, and B
# added raw's flows after it as they were then and still are: B's stored balance equals
# the opening balance plus raw's flows up to B now. So balance(W) is exactly the sum over
# what raw holds, whatever order weeks were loaded and computed in, and each week's
# snapshot costs O(kids), not O(history). (A raw week never loaded counts as empty; silver
# refuses to read W-2 and W-1 that way when the app has rows in them: raw_weeks.py.)

SNAPSHOT_GAP = WEEKS_BACK  # a base is at most W-3


def balance_base(conn: Connection, week: Week) -> tuple[dt.date | None, int]:
    """The latest week <= W-3 whose stored balances qualify (see above), or None; and the
    seq of this materialisation. Reads one small row per week of each table."""
    newest, running = [], 0  # (week, the latest load of any raw week up to it)
    for start, load in sorted(read_loads(conn).items()):
        running = max(running, load.seq)
        newest.append((start, running))

    def newest_load_upto(day: dt.date) -> int:
        return max((seq for start, seq in newest if start <= day), default=0)

    t = savings_balance_weeks
    limit = week.shifted(-SNAPSHOT_GAP).start
    qualified = [
        week_start
        for week_start, seq, timezone in conn.execute(
            sa.select(t.c.week_start, t.c.seq, t.c.timezone)
        )
        # Stored under another time zone, a "week" covered other instants: never a base.
        if timezone == week.timezone and week_start <= limit and seq > newest_load_upto(week_start)
    ]
    return max(qualified, default=None), next_seq(conn)


def _balance_rows(
    engine: Engine, window: _Window, base: dt.date | None, opening: dt.date, totals: Any
) -> sa.Select[Any]:
    """Per kid_id: the base's stored balance (without one, the opening balance) + raw's
    flows from then to W-2's start + the window's flows, from `totals`."""
    t, stored = raw_transactions, savings_balances
    money = db.exact_money(t.c.amount)
    after = t.c.week_start > base if base is not None else t.c.week_start >= opening
    gap = sa.select(
        t.c.kid_id, sa.case((t.c.kind == "withdrawal", -money), else_=money).label("cents")
    ).where(after, t.c.week_start < window.first.start, t.c.kind.in_(("saving", "withdrawal")))
    saved, withdrawn = totals.c.saved_in_window, totals.c.withdrawn_in_window
    in_window_flows = sa.select(
        totals.c.kid_id,
        (sa.func.coalesce(saved, 0) - sa.func.coalesce(withdrawn, 0)).label("cents"),
    ).where(sa.or_(saved.is_not(None), withdrawn.is_not(None)))
    if base is not None:
        start = sa.select(stored.c.kid_id, stored.c.balance_cents.label("cents")).where(
            stored.c.week_start == base
        )
    else:
        o = raw_opening_balances
        start = sa.select(o.c.kid_id, o.c.balance_cents.label("cents")).where(
            o.c.before_week == opening
        )
    flows = sa.union_all(start, gap, in_window_flows).subquery("flows")
    total = sa.cast(sa.func.sum(flows.c.cents), sa.BigInteger)
    return sa.select(flows.c.kid_id, total.label("balance_cents")).group_by(flows.c.kid_id)


def _snapshot_insert(week: Week, rows: sa.Select[Any]) -> sa.Insert:
    r = rows.subquery("balance_rows")
    select = sa.select(sa.literal(week.start, sa.Date), r.c.kid_id, r.c.balance_cents)
    return sa.insert(savings_balances).from_select(
        ["week_start", "kid_id", "balance_cents"], select
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


def _per_kid(engine: Engine, window: _Window, txn: Any, balances: Any) -> sa.Subquery:
    """Each kid with a row in raw's window: its figures per week. `txn` is _totals'
    result, `balances` has kid_id and balance_cents. (Raw's rows are of kids that exist.)"""
    week = window.week
    categories = _categories(engine, week)
    goals = _goals(engine, week, balances)
    # From the window's totals: each aggregate referenced once, so that the database can
    # run it in parallel.
    joined = (
        txn.outerjoin(categories, categories.c.kid_id == txn.c.kid_id)
        .outerjoin(balances, balances.c.kid_id == txn.c.kid_id)
        .outerjoin(goals, goals.c.kid_id == txn.c.kid_id)
    )
    skip = ("kid_id", "days", "saved_in_window", "withdrawn_in_window", "event_count")
    figures = [
        sa.func.coalesce(column, 0).label(name)
        for name, column in txn.c.items()
        if name not in skip
    ]
    return (
        sa.select(
            txn.c.kid_id,
            *figures,
            *(
                window.active_days(txn.c.days, back).label(f"active_days_{back}")
                for back in range(3)
            ),
            sa.func.coalesce(txn.c.event_count, 0).label("event_count"),
            categories.c.by_category,
            categories.c.top_category,
            sa.func.coalesce(balances.c.balance_cents, 0).label("balance"),
            goals.c.goals,
        )
        .select_from(joined)
        .subquery("per_kid")
    )


def silver_select(
    engine: Engine, window: _Window, threshold: float, txn: Any, balances: Any
) -> sa.Select[Any]:
    """One row per kid with a row in raw's W, W-1 or W-2, in column order."""
    week = window.week
    k = _per_kid(engine, window, txn, balances)

    def money(column: Any) -> Any:
        return db.money_value(engine, column)

    income, spending, saving = k.c.income_total_0, k.c.spending_total_0, k.c.saving_total_0
    values: dict[str, Any] = {
        "week_start": sa.literal(week.start, sa.Date),
        "kid_id": k.c.kid_id,
        **{name: money(k.c[f"{name}_0"]) for name in KINDS.values()},
        "net_flow": money(income - spending),
        "savings_rate": sa.case(
            (income == 0, sa.null()),
            else_=sa.cast(saving, sa.Float) / sa.cast(income, sa.Float),
        ),
        "txn_count": k.c.txn_count_0,
        "event_count": k.c.event_count,
        "active_days": k.c.active_days_0,
        "spending_by_category": sa.func.coalesce(k.c.by_category, db.empty_json_object(engine)),
        "top_spending_category": k.c.top_category,
        "savings_balance": money(k.c.balance),
    }
    limit = Fraction(Decimal(str(threshold)))
    for metric in TREND_METRICS:
        value, prev1, prev2 = (k.c[f"{metric}_{wk}"] for wk in range(WEEKS_BACK))
        is_money = metric.endswith("_total")
        values[f"{metric}_prev1"] = money(prev1) if is_money else prev1
        values[f"{metric}_prev2"] = money(prev2) if is_money else prev2
        values[f"{metric}_trend"] = _trend(value, prev1, prev2, limit)
    values["computed_at"] = sa.literal(dt.datetime.now(dt.UTC), sa.DateTime(timezone=True))
    values["savings_goals"] = sa.func.coalesce(k.c.goals, db.empty_json_array(engine))
    order = [c.name for c in kid_weekly_analysis.columns]
    return sa.select(*(values[name].label(name) for name in order))


def write_week(
    conn: Connection, week: Week, threshold: float, opening: dt.date
) -> tuple[int, dt.date | None]:
    """Replace the week's rows and stored balances in the caller's transaction, from raw;
    returns the silver row count and the week the balance was carried from (None: from
    raw's opening balance `opening`, the first raw week, and every raw week since).
    Holds lock_writes until the caller commits."""
    engine, table = conn.engine, kid_weekly_analysis
    db.tune_for_aggregation(conn)
    lock_writes(conn)
    base, seq = balance_base(conn, week)
    conn.execute(sa.delete(table).where(table.c.week_start == week.start))
    conn.execute(sa.delete(savings_balances).where(savings_balances.c.week_start == week.start))
    window = _Window(engine, week)
    totals = _totals(engine, window)
    columns = [c.name for c in table.columns]
    if db.is_sqlite(engine):
        # No data-modifying CTE: the balances first, then silver reads them back (the
        # window is read twice; SQLite holds small data).
        conn.execute(
            _snapshot_insert(week, _balance_rows(engine, window, base, opening, totals.subquery()))
        )
        stored = savings_balances
        balances = (
            sa.select(stored.c.kid_id, stored.c.balance_cents)
            .where(stored.c.week_start == week.start)
            .subquery("balances")
        )
        select = silver_select(engine, window, threshold, totals.subquery("txn_totals"), balances)
        written = conn.execute(sa.insert(table).from_select(columns, select)).rowcount
    else:
        # One statement: the window's totals once (a CTE), the balances written by a
        # data-modifying CTE whose RETURNING rows silver joins.
        txn = totals.cte("txn_totals")
        stored_cte = (
            _snapshot_insert(week, _balance_rows(engine, window, base, opening, txn))
            .returning(savings_balances.c.kid_id, savings_balances.c.balance_cents)
            .cte("balances")
        )
        select = silver_select(engine, window, threshold, txn, stored_cte)
        statement = sa.insert(table).from_select(columns, select).add_cte(stored_cte)
        written = conn.execute(statement).rowcount
    _record_balances(conn, week, seq, base)
    return int(written), base


def _record_balances(conn: Connection, week: Week, seq: int, base: dt.date | None) -> None:
    row = {
        "week_start": week.start,
        "seq": seq,
        "timezone": week.timezone,
        "base_week": base,
        "computed_at": dt.datetime.now(dt.UTC),
    }
    db.upsert(conn, savings_balance_weeks, row, ["week_start"])
