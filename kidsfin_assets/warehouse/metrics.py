"""The silver metric contract of docs/metrics.md, as one INSERT ... SELECT in the database.

Nothing per transaction or per kid comes back to Python: the database filters, groups,
ranks categories, computes trends and writes the week's rows itself. Each source table
is read once per week, in one grouped pass per kid:

- a row's local day is its bucket among the window's local midnights (no per-row time
  zone conversion), and active days are a bit mask of those days, OR-ed per kid;
- whether the kid exists is checked once per kid after grouping, not once per row
  (an orphan row's kid_id has no kid, so its whole group drops out).

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
from kidsfin_assets.warehouse.tables import (
    TREND_METRICS,
    Sources,
    kid_weekly_analysis,
    savings_balance_weeks,
    savings_balances,
)
from kidsfin_assets.warehouse.validation import OTHER_CATEGORY, in_window, valid_kind_and_amount

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
        first = week.shifted(1 - WEEKS_BACK)
        self.first_day = first.start
        self.midnights = [
            Week(first.start + dt.timedelta(days=d), week.timezone).starts_at
            for d in range(WEEKS_BACK * DAYS + 1)
        ]  # localised one by one, so DST days are 23 or 25 hours long
        self.start, self.end = self.midnights[0], self.midnights[-1]

    def day(self, column: Any) -> Any:
        return db.day_index(self.engine, column, self.week.timezone, self.first_day, self.midnights)

    @staticmethod
    def first_day_of(back: int) -> int:
        """The window's day number of W-back's Monday."""
        return (WEEKS_BACK - 1 - back) * DAYS

    def in_week(self, day: Any, back: int) -> Any:
        first = self.first_day_of(back)
        return sa.and_(day >= first, day < first + DAYS)

    def active_days(self, mask: Any, back: int) -> Any:
        """How many days of week W-back are set in a day mask."""
        first = self.first_day_of(back)
        return sum((mask.op(">>")(first + bit)).op("&")(1) for bit in range(DAYS))


def _rows_with_day(
    window: _Window, table: sa.TableClause, columns: list[Any], where: list[Any]
) -> sa.Subquery:
    """The window's rows of a source table, each with its local day (0 .. 20)."""
    day = sa.type_coerce(window.day(table.c.occurred_at), sa.Integer).label("day")
    rows = sa.select(table.c.kid_id, *columns, day).where(
        in_window(window.engine, table.c.occurred_at, window.start, window.end), *where
    )
    return db.computed_once(window.engine, rows).subquery()


def _day_mask(engine: Engine, day: Any) -> Any:
    return db.bit_or_agg(engine, sa.literal(1).op("<<")(day)).label("days")


def _txn_totals(engine: Engine, src: Sources, window: _Window) -> sa.Select[Any]:
    """Per kid_id (orphans included, dropped later): sums, counts and the day mask, and
    the window's saving and withdrawal totals (the balance carried forward adds them).

    Each row gets one small integer, its slot (week * 4 + kind), so that every FILTER
    below is one integer comparison."""
    t = src.transactions
    kind = sa.case(*((t.c.kind == k, i) for i, k in enumerate(KINDS)), else_=len(KINDS))
    dated = _rows_with_day(
        window,
        t,
        [db.exact_money(t.c.amount).label("money"), kind.label("kind")],
        [valid_kind_and_amount(engine, t)],
    )
    # The slot from the day already computed (a day bucket is a search per row; this is
    # integer arithmetic), itself computed once per row rather than once per FILTER.
    row_slot = (dated.c.day // DAYS) * len(KINDS) + dated.c.kind
    r = db.computed_once(
        engine,
        sa.select(dated.c.kid_id, dated.c.money, dated.c.day, dated.c.kind, row_slot.label("slot")),
    ).subquery()

    def slot(back: int, kind: str) -> int:
        return window.first_day_of(back) // DAYS * len(KINDS) + list(KINDS).index(kind)

    sums = [
        sa.func.sum(r.c.money).filter(r.c.slot == slot(back, kind)).label(f"{name}_{back}")
        for back in range(WEEKS_BACK)
        for kind, name in KINDS.items()
        if back == 0 or kind != "withdrawal"  # withdrawals have no trend
    ]
    counts = [
        sa.func.count()
        .filter(r.c.slot >= slot(back, "income"), r.c.slot <= slot(back, "withdrawal"))
        .label(f"txn_count_{back}")
        for back in range(WEEKS_BACK)
    ]
    flows = [
        sa.func.sum(r.c.money).filter(r.c.kind == list(KINDS).index(kind)).label(name)
        for kind, name in (("saving", "saved_in_window"), ("withdrawal", "withdrawn_in_window"))
    ]
    mask = _day_mask(engine, r.c.day)
    return sa.select(r.c.kid_id, *sums, *counts, *flows, mask).group_by(r.c.kid_id)


def _event_totals(engine: Engine, src: Sources, window: _Window) -> sa.Subquery:
    r = _rows_with_day(window, src.app_events, [], [])
    count = sa.func.count().filter(window.in_week(r.c.day, 0)).label("event_count")
    return (
        sa.select(r.c.kid_id, count, _day_mask(engine, r.c.day))
        .group_by(r.c.kid_id)
        .subquery("event_totals")
    )


def _categories(engine: Engine, src: Sources, week: Week) -> sa.Subquery:
    """Per kid: W's spending by category as JSON, and the top one (ties: byte order)."""
    t = src.transactions
    category = sa.func.coalesce(t.c.category, OTHER_CATEGORY)
    spent = (
        sa.select(
            t.c.kid_id,
            category.label("category"),
            sa.func.sum(db.exact_money(t.c.amount)).label("total"),
        )
        .where(
            in_window(engine, t.c.occurred_at, week.starts_at, week.ends_at),
            valid_kind_and_amount(engine, t, ("spending",)),
        )
        .group_by(t.c.kid_id, category)
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
# A kid-week lists each valid goal of the kid (created_at set, target a valid amount,
# completed_at NULL or not before created_at) that is open at the end of W (created
# before it, not completed before it), or was created or completed in W, ordered by
# created_at, goal_id. Progress is for open goals only: the savings balance at the end of
# W against the target, in whole percent rounded down, 0 when the balance is not
# positive, and capped at 100 (`reached`: the balance covers the target). Every goal
# shares the one balance: two goals of 100.000 đ with 100.000 đ saved are both at 100 %.


def _goal_entries(engine: Engine, src: Sources, week: Week, balances: Any) -> sa.Subquery:
    """One row per listed goal, with its JSON object; `balances` as in _per_kid."""
    g = src.savings_goals
    created = db.timestamp_value(engine, g.c.created_at)
    completed = db.timestamp_value(engine, g.c.completed_at)
    start, end = (db.timestamp_param(engine, t) for t in (week.starts_at, week.ends_at))
    target = db.exact_money(g.c.target_amount)
    balance = sa.func.coalesce(balances.c.balance_cents, 0)
    not_completed_by = sa.or_(g.c.completed_at.is_(None), completed >= end)
    is_open = sa.and_(created < end, not_completed_by)
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
            "created_in_week": db.json_bool(engine, created >= start),
            "completed_in_week": db.json_bool(
                engine, sa.and_(g.c.completed_at.is_not(None), completed < end)
            ),
            "progress_percent": progress,
            "reached": reached,
        },
    )
    valid = sa.and_(
        g.c.kid_id.is_not(None),
        created.is_not(None),
        db.valid_amount(engine, g.c.target_amount),
        sa.or_(g.c.completed_at.is_(None), completed >= created),
    )
    # Listed: created before W's end and not completed before W's start (a goal completed
    # before its creation is invalid, so one created in W cannot be).
    listed = sa.and_(created < end, sa.or_(g.c.completed_at.is_(None), completed >= start))
    rows = (
        sa.select(g.c.kid_id, created.label("created"), g.c.goal_id, entry.label("entry"))
        .select_from(g.outerjoin(balances, balances.c.kid_id == g.c.kid_id))
        .where(valid, listed)
    )
    if db.is_sqlite(engine):  # json_group_array takes the rows in the order they come
        rows = rows.order_by(g.c.kid_id, created, g.c.goal_id)
    return rows.subquery("goal_entries")


def _goals(engine: Engine, src: Sources, week: Week, balances: Any) -> sa.Subquery:
    """Per kid_id: W's savings goals as a JSON array (see above)."""
    e = _goal_entries(engine, src, week, balances)
    goals = db.json_array_agg(engine, e.c.entry, e.c.created, e.c.goal_id)
    return sa.select(e.c.kid_id, goals.label("goals")).group_by(e.c.kid_id).subquery("goals")


# --- savings_balance, carried forward ------------------------------------------------------
#
# savings_balance(W) is every valid saving minus withdrawal before the end of W. Summing
# all history each week would cost more every week, so each materialisation of W also
# stores the balance of every kid_id at the end of W (`savings_balances`, orphans
# included), and computes W's as
#
#     balance(W) = stored balance(B) + flows read now from the source after the end of B
#
# for a base week B <= W-3, or with no base (a full scan) when none qualifies. The flows
# of W-2 .. W come free with the trends' window scan; weeks between B and W-2 (none when
# B = W-3) are read by one range scan. B is at most W-3, not W-1, so that W, W+1 and W+2,
# which the sensor re-runs together after late data in W and Dagster may run in any
# order, each read W's rows from the source, never a W balance stored before the change.
#
# Why the stored balance of B is still right. Materialisations are serialised (a table
# lock) and numbered in commit order (`seq`). B qualifies only if no week before B was
# materialised after B's latest materialisation. Premise: after a change to the source
# rows of week Y, Y is materialised again (the sensor does it for the changes it sees,
# README "Late data"; a backfill from Y for the others). Then, by induction on seq: when
# B was materialised, its own base qualified and so was right, and B's flows after it
# were read from the source, so B's stored balance was right then; any later change to a
# week <= B was followed by a materialisation of that week, after B's, which disqualifies
# B (or replaced B itself). So a qualifying B is still right, and so is balance(W).
# Rows written while a change awaits its week's run can be stale (as rows written before
# the change always are); the run that settles it disqualifies them as bases, so the
# staleness never carries on. Each week's snapshot costs O(kids), not O(history).

SNAPSHOT_GAP = WEEKS_BACK  # a base is at most W-3


def _lock_balances(conn: Connection) -> None:
    """Serialise silver's writes until commit, so that `seq` follows commit order.
    (SQLite's BEGIN IMMEDIATE already serialises every writer.)"""
    if not db.is_sqlite(conn.engine):
        table = db.warehouse_schema(conn.engine) or "public"
        conn.exec_driver_sql(
            f'LOCK TABLE "{table}".savings_balance_weeks IN SHARE ROW EXCLUSIVE MODE'
        )


def balance_base(conn: Connection, week: Week) -> tuple[dt.date | None, int]:
    """The latest week <= W-3 whose stored balances qualify (see above), or None; and
    the seq of this materialisation. Reads one small row per stored week."""
    t = savings_balance_weeks
    rows = conn.execute(sa.select(t.c.week_start, t.c.seq, t.c.timezone).order_by(t.c.week_start))
    latest_seq, qualified = 0, []
    for week_start, seq, timezone in rows:
        # Stored under another time zone, a "week" covered other instants: never a base.
        if seq > latest_seq and timezone == week.timezone:
            qualified.append(week_start)
        latest_seq = max(latest_seq, seq)
    limit = week.shifted(-SNAPSHOT_GAP).start
    base = max((w for w in qualified if w <= limit), default=None)
    next_seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.c.seq), 0) + 1))
    return base, int(next_seq.scalar_one())


def _balance_rows(
    engine: Engine, src: Sources, window: _Window, base: Week | None, totals: Any
) -> sa.Select[Any]:
    """Per kid_id: the base's stored balance + valid flows from its end to W-2's start
    (all of them before W-2 without a base) + the window's flows, from `totals`."""
    t, stored = src.transactions, savings_balances
    money = db.exact_money(t.c.amount)
    gap = sa.select(
        t.c.kid_id, sa.case((t.c.kind == "withdrawal", -money), else_=money).label("cents")
    ).where(
        in_window(engine, t.c.occurred_at, base.ends_at if base else None, window.start),
        valid_kind_and_amount(engine, t, ("saving", "withdrawal")),
        t.c.kid_id.is_not(None),
    )
    saved, withdrawn = totals.c.saved_in_window, totals.c.withdrawn_in_window
    in_window_flows = sa.select(
        totals.c.kid_id,
        (sa.func.coalesce(saved, 0) - sa.func.coalesce(withdrawn, 0)).label("cents"),
    ).where(totals.c.kid_id.is_not(None), sa.or_(saved.is_not(None), withdrawn.is_not(None)))
    parts: list[sa.Select[Any]] = [gap, in_window_flows]
    if base is not None:
        carried = sa.select(stored.c.kid_id, stored.c.balance_cents.label("cents")).where(
            stored.c.week_start == base.start
        )
        parts.insert(0, carried)
    flows = sa.union_all(*parts).subquery("flows")
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


def _per_kid(engine: Engine, src: Sources, window: _Window, txn: Any, balances: Any) -> sa.Subquery:
    """Each existing kid with valid activity in the window: its raw figures per week.
    `txn` is _txn_totals' result, `balances` has kid_id and balance_cents."""
    week = window.week
    evt, categories = _event_totals(engine, src, window), _categories(engine, src, week)
    goals = _goals(engine, src, week, balances)
    kids = src.kids
    # From the kids table: the validity rule (the kid exists) applied once per kid, and
    # each aggregate referenced once, so that the database can run it in parallel.
    joined = (
        kids.outerjoin(txn, txn.c.kid_id == kids.c.kid_id)
        .outerjoin(evt, evt.c.kid_id == kids.c.kid_id)
        .outerjoin(categories, categories.c.kid_id == kids.c.kid_id)
        .outerjoin(balances, balances.c.kid_id == kids.c.kid_id)
        .outerjoin(goals, goals.c.kid_id == kids.c.kid_id)
    )
    days = sa.func.coalesce(txn.c.days, 0).op("|")(sa.func.coalesce(evt.c.days, 0))
    figures = [
        sa.func.coalesce(column, 0).label(name)
        for name, column in txn.c.items()
        if name not in ("kid_id", "days", "saved_in_window", "withdrawn_in_window")
    ]
    return (
        sa.select(
            kids.c.kid_id,
            *figures,
            *(window.active_days(days, back).label(f"active_days_{back}") for back in range(3)),
            sa.func.coalesce(evt.c.event_count, 0).label("event_count"),
            categories.c.by_category,
            categories.c.top_category,
            sa.func.coalesce(balances.c.balance_cents, 0).label("balance"),
            goals.c.goals,
        )
        .select_from(joined)
        .where(sa.or_(txn.c.kid_id.is_not(None), evt.c.kid_id.is_not(None)))
        .subquery("per_kid")
    )


def silver_select(
    engine: Engine, src: Sources, window: _Window, threshold: float, txn: Any, balances: Any
) -> sa.Select[Any]:
    """One row per existing kid with valid activity in W, W-1 or W-2, in column order."""
    week = window.week
    k = _per_kid(engine, src, window, txn, balances)

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


def write_week(conn: Connection, src: Sources, week: Week, threshold: float) -> int:
    """Replace the week's rows and stored balances in the caller's transaction; returns
    the silver row count."""
    engine, table = conn.engine, kid_weekly_analysis
    db.tune_for_aggregation(conn)
    _lock_balances(conn)
    base_week, seq = balance_base(conn, week)
    base = None if base_week is None else Week(base_week, week.timezone)
    conn.execute(sa.delete(table).where(table.c.week_start == week.start))
    conn.execute(sa.delete(savings_balances).where(savings_balances.c.week_start == week.start))
    window = _Window(engine, week)
    totals = _txn_totals(engine, src, window)
    columns = [c.name for c in table.columns]
    if db.is_sqlite(engine):
        # No data-modifying CTE: the balances first, then silver reads them back (the
        # window is scanned twice; SQLite holds small data).
        conn.execute(
            _snapshot_insert(week, _balance_rows(engine, src, window, base, totals.subquery()))
        )
        stored = savings_balances
        balances = (
            sa.select(stored.c.kid_id, stored.c.balance_cents)
            .where(stored.c.week_start == week.start)
            .subquery("balances")
        )
        select = silver_select(
            engine, src, window, threshold, totals.subquery("txn_totals"), balances
        )
        written = conn.execute(sa.insert(table).from_select(columns, select)).rowcount
    else:
        # One statement: the window's totals once (a CTE), the balances written by a
        # data-modifying CTE whose RETURNING rows silver joins.
        txn = totals.cte("txn_totals")
        stored_cte = (
            _snapshot_insert(week, _balance_rows(engine, src, window, base, txn))
            .returning(savings_balances.c.kid_id, savings_balances.c.balance_cents)
            .cte("balances")
        )
        select = silver_select(engine, src, window, threshold, txn, stored_cte)
        statement = sa.insert(table).from_select(columns, select).add_cte(stored_cte)
        written = conn.execute(statement).rowcount
    _record_balances(conn, week, seq, base_week)
    return int(written)


def _record_balances(conn: Connection, week: Week, seq: int, base: dt.date | None) -> None:
    row = {
        "week_start": week.start,
        "seq": seq,
        "timezone": week.timezone,
        "base_week": base,
        "computed_at": dt.datetime.now(dt.UTC),
    }
    db.upsert(conn, savings_balance_weeks, row, ["week_start"])
