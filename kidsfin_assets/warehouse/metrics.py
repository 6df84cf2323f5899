"""The silver metric contract of docs/metrics.md, as one INSERT ... SELECT over raw's copy.

Silver reads raw, never the app's tables: `raw_transactions` and `raw_app_events` of W
(and of W-2 and W-1 when their figures cannot be taken from silver's W-1 rows, below) and
`raw_savings_goals` of W, every row already valid, of a kid that exists, with its local
date (raw is the one place the validity rules are applied: validation.py). Nothing per
row or per kid comes back to Python: the database groups, ranks categories, computes
trends and writes the week's rows itself. W's transactions are read once, grouped per
(kid, category) and then per kid (sums, count, day mask, categories' JSON, top category);
the per-kid parts (W's transactions, W's events, W-1 and W-2) are joined FULL by hash.

W-1's and W-2's figures (the trends' inputs) come from silver's rows of W-1, which hold
W-1's own figures and, as `_prev1`, W-2's, while those rows are current for what raw holds
(previous_from_silver); otherwise from raw again. Money is summed exactly, as integer
cents in both dialects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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


def _cents(total: Any) -> Any:
    """A sum of integers as BIGINT (PostgreSQL's sum of BIGINT is NUMERIC, slower in every
    expression after it)."""
    return sa.cast(total, sa.BigInteger)


def _day_bit(engine: Engine, day: Any, monday: dt.date) -> Any:
    """A day of the week as one bit of a 7-bit mask (Monday: bit 0)."""
    return sa.literal(1).op("<<")(db.days_since(engine, day, monday))


def _days_set(mask: Any) -> Any:
    """How many of a week's 7 days are set in a day mask."""
    return sum((mask.op(">>")(bit)).op("&")(1) for bit in range(DAYS))


def _either_day(one: Any, other: Any) -> Any:
    """Two day masks OR-ed, either of them missing (a kid without rows of that kind)."""
    return sa.func.coalesce(one, 0).op("|")(sa.func.coalesce(other, 0))


def _transaction_sums(engine: Engine, week: Week, *by: Any) -> sa.Select[Any]:
    """Raw's transactions of `week` per kid (and `by`): each kind's sum in cents (named by
    the kind), the count `n` and the day mask `days`."""
    t = raw_transactions
    money = db.exact_money(t.c.amount)
    return (
        sa.select(
            t.c.kid_id,
            *by,
            *(_cents(sa.func.sum(money).filter(t.c.kind == kind)).label(kind) for kind in KINDS),
            sa.func.count().label("n"),
            db.bit_or_agg(engine, _day_bit(engine, t.c.local_date, week.start)).label("days"),
        )
        .where(t.c.week_start == week.start)
        .group_by(t.c.kid_id, *by)
    )


def _week_transactions(engine: Engine, week: Week) -> sa.Select[Any]:
    """Per kid, W's transactions read once: grouped per (kid, category), then rolled up
    per kid: the four kinds' sums in cents, the count, the day mask, the spending by
    category as JSON and the top category (the most spent; ties: byte order)."""
    per_category = _transaction_sums(engine, week, raw_transactions.c.category)
    c = per_category.subquery("per_category").c
    rank = sa.func.row_number().over(
        partition_by=c.kid_id,
        order_by=[sa.func.coalesce(c.spending, -1).desc(), db.byte_order(engine, c.category)],
    )
    ranked = sa.select(*c, rank.label("rank")).subquery("ranked")
    r, spent = ranked.c, ranked.c.spending.is_not(None)
    return sa.select(
        r.kid_id,
        *(_cents(sa.func.sum(r[kind])).label(f"{name}_0") for kind, name in KINDS.items()),
        _cents(sa.func.sum(r.n)).label("txn_count_0"),
        db.bit_or_agg(engine, r.days).label("days"),
        db.json_object_agg(engine, r.category, db.money_value(engine, r.spending))
        .filter(spent)
        .label("by_category"),
        sa.func.max(r.category).filter(sa.and_(r.rank == 1, spent)).label("top_category"),
    ).group_by(r.kid_id)


def _week_events(engine: Engine, week: Week) -> sa.Select[Any]:
    """Per kid, raw's app events of `week`: the count and the day mask."""
    e = raw_app_events
    return (
        sa.select(
            e.c.kid_id,
            sa.func.count().label("event_count"),
            db.bit_or_agg(engine, _day_bit(engine, e.c.local_date, week.start)).label("days"),
        )
        .where(e.c.week_start == week.start)
        .group_by(e.c.kid_id)
    )


def _previous_from_silver(week: Week) -> sa.Select[Any]:
    """W-1's and W-2's trend figures per kid with a row in raw's W-1 or W-2 (cents), from
    silver's rows of W-1: each holds W-1's own figures and, as its `_prev1` columns,
    W-2's. (Active days are at least 1 in a week a kid has any row in.)"""
    s = kid_weekly_analysis

    def figure(name: str, back: int) -> Any:
        column = s.c[name if back == 1 else f"{name}_prev1"]
        return (db.exact_money(column) if name.endswith("_total") else column).label(
            f"{name}_{back}"
        )

    return sa.select(
        s.c.kid_id, *(figure(name, back) for back in (1, 2) for name in TREND_METRICS)
    ).where(
        s.c.week_start == week.shifted(-1).start,
        (s.c.active_days > 0) | (s.c.active_days_prev1 > 0),
    )


def _own_week_from_raw(engine: Engine, week: Week, back: int) -> sa.Subquery:
    """Per kid with a row in raw's W-back: its trend figures, from raw (cents)."""
    day = week.shifted(-back)
    txn = _transaction_sums(engine, day).subquery(f"transactions_{back}")
    evt = _week_events(engine, day).subquery(f"events_{back}")
    return (
        sa.select(
            sa.func.coalesce(txn.c.kid_id, evt.c.kid_id).label("kid_id"),
            *(
                txn.c[kind].label(f"{name}_{back}")
                for kind, name in KINDS.items()
                if kind != "withdrawal"
            ),
            txn.c.n.label(f"txn_count_{back}"),
            _days_set(_either_day(txn.c.days, evt.c.days)).label(f"active_days_{back}"),
        )
        .select_from(txn.join(evt, evt.c.kid_id == txn.c.kid_id, full=True))
        .subquery(f"week_minus_{back}")
    )


def _full_join(parts: list[Any]) -> tuple[Any, Any]:
    """`parts` (each with kid_id) FULL joined on the kid, and the kid's id in the result."""
    joined, kids = parts[0], [parts[0].c.kid_id]
    for part in parts[1:]:
        kid = kids[0] if len(kids) == 1 else sa.func.coalesce(*kids)
        joined = joined.join(part, part.c.kid_id == kid, full=True)
        kids.append(part.c.kid_id)
    return joined, sa.func.coalesce(*kids)


def _figures(engine: Engine, week: Week, from_silver: bool) -> sa.Select[Any]:
    """Per kid with a row in raw's W, W-1 or W-2: W's sums, counts, day mask and
    categories (_week_transactions and W's events), and W-1's and W-2's trend figures
    (cents): from silver's rows of W-1 (`from_silver`), else from raw. The per-kid parts
    are joined by hash, FULL (a kid may be in any of them), the narrow ones first."""
    txn = _week_transactions(engine, week).subquery("week_transactions")
    evt = _week_events(engine, week).subquery("week_events")
    if from_silver:
        before = [_previous_from_silver(week).subquery("previous_weeks")]
    else:
        before = [_own_week_from_raw(engine, week, back) for back in (2, 1)]
    joined, kid = _full_join([*before, evt, txn])
    previous = {c.name: c for part in before for c in part.c if c.name != "kid_id"}
    return sa.select(
        kid.label("kid_id"),
        *(txn.c[f"{name}_0"] for name in KINDS.values()),
        txn.c.txn_count_0,
        evt.c.event_count,
        _either_day(txn.c.days, evt.c.days).label("days"),
        *(previous[f"{name}_{back}"] for back in (1, 2) for name in TREND_METRICS),
        txn.c.by_category,
        txn.c.top_category,
    ).select_from(joined)


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
# for a base week B <= W-1, or from the opening balance when none qualifies. W's flows come
# free with W's pass; weeks between B and W (none when B = W-1, the steady state of weekly
# runs) are read from raw by one range scan. When the sensor re-runs W, W+1 and W+2 after
# late data in W, in any order, a W balance stored before the change does not qualify
# (below), so each reads W from raw until W is computed again.
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


def balance_base(conn: Connection, week: Week) -> tuple[dt.date | None, int]:
    """The latest week <= W-1 whose stored balances qualify (see above), or None; and the
    seq of this materialisation. Reads one small row per week of each table."""
    newest, running = [], 0  # (week, the latest load of any raw week up to it)
    for start, load in sorted(read_loads(conn).items()):
        running = max(running, load.seq)
        newest.append((start, running))

    def newest_load_upto(day: dt.date) -> int:
        return max((seq for start, seq in newest if start <= day), default=0)

    t = savings_balance_weeks
    limit = week.shifted(-1).start
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
    week: Week, base: dt.date | None, opening: dt.date, figures: Any
) -> sa.Select[Any]:
    """Per kid_id: the base's stored balance (without one, the opening balance) + raw's
    flows from then to W's start + W's flows, from `figures` (_figures' rows)."""
    t, stored = raw_transactions, savings_balances
    money = db.exact_money(t.c.amount)
    after = t.c.week_start > base if base is not None else t.c.week_start >= opening
    gap = sa.select(
        t.c.kid_id, sa.case((t.c.kind == "withdrawal", -money), else_=money).label("cents")
    ).where(after, t.c.week_start < week.start, t.c.kind.in_(("saving", "withdrawal")))
    saved, withdrawn = figures.c.saving_total_0, figures.c.withdrawal_total_0
    week_flows = sa.select(
        figures.c.kid_id,
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
    flows = sa.union_all(start, gap, week_flows).subquery("flows")
    total = sa.cast(sa.func.sum(flows.c.cents), sa.BigInteger)
    return sa.select(flows.c.kid_id, total.label("balance_cents")).group_by(flows.c.kid_id)


def _snapshot_insert(week: Week, rows: sa.Select[Any]) -> sa.Insert:
    r = rows.subquery("balance_rows")
    select = sa.select(sa.literal(week.start, sa.Date), r.c.kid_id, r.c.balance_cents).order_by(
        r.c.kid_id
    )
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


def _per_kid(engine: Engine, week: Week, figures: Any, balances: Any) -> sa.Subquery:
    """Each kid with a row in raw's W, W-1 or W-2: its figures per week. `figures` is
    _figures' result, `balances` has kid_id and balance_cents. (Raw's rows are of kids
    that exist.)"""
    goals = _goals(engine, week, balances)
    joined = figures.outerjoin(balances, balances.c.kid_id == figures.c.kid_id).outerjoin(
        goals, goals.c.kid_id == figures.c.kid_id
    )
    skip = (
        "kid_id",
        "days",
        "by_category",
        "top_category",
    )
    return (
        sa.select(
            figures.c.kid_id,
            *(
                sa.func.coalesce(c, 0).label(name)
                for name, c in figures.c.items()
                if name not in skip
            ),
            _days_set(sa.func.coalesce(figures.c.days, 0)).label("active_days_0"),
            figures.c.by_category,
            figures.c.top_category,
            sa.func.coalesce(balances.c.balance_cents, 0).label("balance"),
            goals.c.goals,
        )
        .select_from(joined)
        .subquery("per_kid")
    )


def silver_select(engine: Engine, week: Week, threshold: float, k: Any) -> sa.Select[Any]:
    """One row per kid with a row in raw's W, W-1 or W-2, in column order; `k` is
    _per_kid's result."""

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
    return sa.select(*(values[name].label(name) for name in order)).order_by(k.c.kid_id)


def previous_from_silver(conn: Connection, week: Week) -> bool:
    """Whether silver W may take W-1's and W-2's figures from silver's rows of W-1: if
    they were written after raw's latest loads of W-1 and W-2, under the same time zone,
    and are all still there, they read what raw holds now. Otherwise (late data, a
    re-load, another time zone, W-1 never computed, rows deleted by hand) silver reads
    both weeks from raw again."""
    weeks = [week.shifted(-1), week.shifted(-2)]
    t, s = savings_balance_weeks, kid_weekly_analysis
    stored = conn.execute(
        sa.select(t.c.seq, t.c.timezone, t.c.silver_rows).where(t.c.week_start == weeks[0].start)
    ).first()
    if stored is None or stored.timezone != week.timezone or stored.silver_rows is None:
        return False
    loads = read_loads(conn, weeks)
    if any(stored.seq <= load.seq for load in loads.values()):
        return False
    there = sa.select(sa.func.count()).select_from(s).where(s.c.week_start == weeks[0].start)
    return conn.execute(there).scalar_one() == stored.silver_rows


@dataclass(frozen=True)
class WrittenWeek:
    """What write_week did: the rows written, the week the savings balance was carried
    from (None: raw's opening balance and every raw week since), and whether W-1's and
    W-2's figures came from silver's rows of W-1 rather than raw."""

    rows: int
    balance_base: dt.date | None
    previous_from_silver: bool


def write_week(conn: Connection, week: Week, threshold: float, opening: dt.date) -> WrittenWeek:
    """Replace the week's rows and stored balances in the caller's transaction, from raw
    (and W-1's silver rows when they are current; `opening` is raw's
    opening balance's week, the first raw week). Holds lock_writes until the caller
    commits."""
    engine, table = conn.engine, kid_weekly_analysis
    db.tune_for_aggregation(conn)
    lock_writes(conn)
    base, seq = balance_base(conn, week)
    from_silver = previous_from_silver(conn, week)
    conn.execute(sa.delete(table).where(table.c.week_start == week.start))
    conn.execute(sa.delete(savings_balances).where(savings_balances.c.week_start == week.start))
    columns = [c.name for c in table.columns]
    if db.is_sqlite(engine):
        # No data-modifying CTE: the balances first, then silver reads them back (the
        # figures are computed twice; SQLite holds small data).
        figures = _figures(engine, week, from_silver).subquery("figures")
        conn.execute(_snapshot_insert(week, _balance_rows(week, base, opening, figures)))
        stored = savings_balances
        balances = (
            sa.select(stored.c.kid_id, stored.c.balance_cents)
            .where(stored.c.week_start == week.start)
            .subquery("balances")
        )
        per_kid = _per_kid(engine, week, figures, balances)
        select = silver_select(engine, week, threshold, per_kid)
        written = conn.execute(sa.insert(table).from_select(columns, select)).rowcount
    else:
        # One statement: the figures once (a CTE), the balances written by a
        # data-modifying CTE whose RETURNING rows silver joins.
        figures = _figures(engine, week, from_silver).cte("figures")
        stored_cte = (
            _snapshot_insert(week, _balance_rows(week, base, opening, figures))
            .returning(savings_balances.c.kid_id, savings_balances.c.balance_cents)
            .cte("balances")
        )
        per_kid = _per_kid(engine, week, figures, stored_cte)
        select = silver_select(engine, week, threshold, per_kid)
        statement = sa.insert(table).from_select(columns, select).add_cte(stored_cte)
        written = conn.execute(statement).rowcount
    _record_balances(conn, week, seq, base, int(written))
    return WrittenWeek(int(written), base, from_silver)


def _record_balances(
    conn: Connection, week: Week, seq: int, base: dt.date | None, rows: int
) -> None:
    row = {
        "silver_rows": rows,
        "week_start": week.start,
        "seq": seq,
        "timezone": week.timezone,
        "base_week": base,
        "computed_at": dt.datetime.now(dt.UTC),
    }
    db.upsert(conn, savings_balance_weeks, row, ["week_start"])
