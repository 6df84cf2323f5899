"""The validity rules of docs/metrics.md, as SQL over the source tables.

Raw applies them, and only raw: it copies each week's valid rows (and the goals listed for
the week, and the first partition's opening balance) and quarantines the rest. Silver
(metrics.py) and the checks read raw's copy, never the app's tables.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import Sources

TRANSACTION_KINDS = ("income", "spending", "saving", "withdrawal")
OTHER_CATEGORY = "other"


class Reason:
    """Why a source row was quarantined."""

    ORPHAN_KID = "orphan_kid"
    MISSING_TIME = "missing_time"
    UNKNOWN_KIND = "unknown_kind"
    BAD_AMOUNT = "bad_amount"
    DUPLICATE_ID = "duplicate_id"
    COMPLETED_BEFORE_CREATED = "completed_before_created"


def in_window(
    engine: Engine, column: Any, start: dt.datetime | None, end: dt.datetime
) -> sa.ColumnElement[bool]:
    ts = db.timestamp_value(engine, column)
    upper = ts < db.timestamp_param(engine, end)
    if start is None:
        return sa.and_(ts.is_not(None), upper)
    return sa.and_(ts >= db.timestamp_param(engine, start), upper)


def valid_kind_and_amount(
    engine: Engine, t: sa.TableClause, kinds: tuple[str, ...] = TRANSACTION_KINDS
) -> sa.ColumnElement[bool]:
    """A transaction's own rules: a known kind (here, one of `kinds`), a finite amount > 0
    and an id no other row has. The time window and the kid's existence are the caller's
    to apply."""
    return sa.and_(
        t.c.kind.in_(kinds), db.valid_amount(engine, t.c.amount), unique_txn_id(engine, t)
    )


def unique_txn_id(engine: Engine, t: sa.TableClause) -> sa.ColumnElement[bool]:
    """True when no other row of the table has this txn_id. Free when the app's table keys
    txn_id (the contract's PRIMARY KEY); a table without that key is searched for ids that
    occur twice, a scan of the whole table, and each copy is quarantined as duplicate_id."""
    if _txn_id_is_keyed(engine, t.schema, t.name):
        return sa.true()
    copies = t.alias("txn_copies")
    duplicated = (
        sa.select(copies.c.txn_id)
        .where(copies.c.txn_id.is_not(None))
        .group_by(copies.c.txn_id)
        .having(sa.func.count() > 1)
    )
    return t.c.txn_id.not_in(duplicated)


@functools.lru_cache(maxsize=64)
def _keyed(url: str, schema: str | None, table: str, engine: Engine) -> bool:
    if db.is_sqlite(engine):
        return _sqlite_keyed(engine, table)
    inspector = sa.inspect(engine)
    try:
        if inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") == [
            "txn_id"
        ]:
            return True
        uniques = inspector.get_unique_constraints(table, schema=schema)
        indexes = [i for i in inspector.get_indexes(table, schema=schema) if i.get("unique")]
    except sa.exc.NoSuchTableError:
        return True  # the query itself will say the table is missing
    return any(c.get("column_names") == ["txn_id"] for c in [*uniques, *indexes])


def _sqlite_keyed(engine: Engine, table: str) -> bool:
    """From the driver's own connection: an SQLAlchemy one would BEGIN IMMEDIATE and wait
    for the caller's open write transaction."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        columns = cursor.execute(f'PRAGMA table_info("{table}")').fetchall()
        if [c[1] for c in columns if c[5]] == ["txn_id"]:
            return True
        for index in cursor.execute(f'PRAGMA index_list("{table}")').fetchall():
            names = [c[2] for c in cursor.execute(f'PRAGMA index_info("{index[1]}")')]
            if index[2] and names == ["txn_id"]:
                return True
        return not columns  # no such table: the query itself will say so
    finally:
        raw.close()


def _txn_id_is_keyed(engine: Engine, schema: str | None, table: str) -> bool:
    return _keyed(str(engine.url), schema, table, engine)


def valid_transactions(
    engine: Engine,
    src: Sources,
    timezone: str,
    start: dt.datetime,
    end: dt.datetime,
    extra: list[sa.ColumnElement[Any]] | None = None,
    monday: dt.date | None = None,
) -> sa.Select[Any]:
    """Valid transactions with start <= occurred_at < end (`monday`: the window is that
    local week, whose dates are then found without a time zone conversion per row)."""
    t = src.transactions
    columns = [
        t.c.txn_id,
        t.c.kid_id,
        t.c.kind,
        sa.func.coalesce(t.c.category, OTHER_CATEGORY).label("category"),
        t.c.amount,
    ]
    valid = valid_kind_and_amount(engine, t)
    window = (timezone, start, end, monday)
    return _of_known_kids(engine, src, window, t, columns, extra, valid)


def valid_events(
    engine: Engine,
    src: Sources,
    timezone: str,
    start: dt.datetime,
    end: dt.datetime,
    extra: list[sa.ColumnElement[Any]] | None = None,
    monday: dt.date | None = None,
) -> sa.Select[Any]:
    """Valid app events with start <= occurred_at < end."""
    e = src.app_events
    columns = [e.c.event_id, e.c.kid_id, e.c.event_type]
    return _of_known_kids(engine, src, (timezone, start, end, monday), e, columns, extra)


def _of_known_kids(
    engine: Engine,
    src: Sources,
    window: tuple[str, dt.datetime, dt.datetime, dt.date | None],
    table: sa.Table,
    columns: list[sa.ColumnElement[Any]],
    extra: list[sa.ColumnElement[Any]] | None,
    *conditions: sa.ColumnElement[bool],
) -> sa.Select[Any]:
    """`columns`, the local date and `extra` of the rows of `table` in the window
    (time zone, start, end, and its Monday when it is one local week) whose kid exists
    (the join drops orphans), meeting `conditions`."""
    k = src.kids
    timezone, start, end, monday = window
    if monday is None:
        day = db.local_date(engine, table.c.occurred_at, timezone)
    else:
        day = db.local_date_in_week(engine, table.c.occurred_at, timezone, monday)
    return (
        sa.select(
            *columns,
            day.label("local_date"),
            *(extra or []),
        )
        .select_from(table.join(k, k.c.kid_id == table.c.kid_id))
        .where(in_window(engine, table.c.occurred_at, start, end), *conditions)
    )


def listed_goals(
    engine: Engine, src: Sources, start: dt.datetime, end: dt.datetime
) -> sa.Select[Any]:
    """The valid goals listed for the week [start, end) (docs/metrics.md): of an existing
    kid, created_at set, a valid target, completed_at NULL or not before created_at;
    created before the week's end and not completed before its start. With their state
    in the week and created_at as epoch seconds (their order)."""
    g, k = src.savings_goals, src.kids
    created = db.timestamp_value(engine, g.c.created_at)
    completed = db.timestamp_value(engine, g.c.completed_at)
    lower, upper = db.timestamp_param(engine, start), db.timestamp_param(engine, end)
    valid = sa.and_(
        created.is_not(None),
        db.valid_amount(engine, g.c.target_amount),
        sa.or_(g.c.completed_at.is_(None), completed >= created),
    )
    # A goal completed before its creation is invalid, so one created in W cannot be.
    listed = sa.and_(created < upper, sa.or_(g.c.completed_at.is_(None), completed >= lower))
    is_open = sa.and_(created < upper, sa.or_(g.c.completed_at.is_(None), completed >= upper))
    return (
        sa.select(
            g.c.goal_id,
            g.c.kid_id,
            g.c.title,
            g.c.target_amount,
            db.epoch_seconds(engine, g.c.created_at).label("created_order"),
            is_open.label("open_at_week_end"),
            (created >= lower).label("created_in_week"),
            sa.and_(g.c.completed_at.is_not(None), completed < upper).label("completed_in_week"),
        )
        .select_from(g.join(k, k.c.kid_id == g.c.kid_id))
        .where(valid, listed)
    )


def savings_before(engine: Engine, src: Sources, end: dt.datetime) -> sa.Select[Any]:
    """Per existing kid: valid saving minus withdrawal before `end`, in cents (the history
    before raw's first week: its opening balance)."""
    t, k = src.transactions, src.kids
    money = db.exact_money(t.c.amount)
    cents = sa.func.sum(sa.case((t.c.kind == "withdrawal", -money), else_=money))
    return (
        sa.select(t.c.kid_id, sa.cast(cents, sa.BigInteger).label("balance_cents"))
        .select_from(t.join(k, k.c.kid_id == t.c.kid_id))
        .where(
            in_window(engine, t.c.occurred_at, None, end),
            valid_kind_and_amount(engine, t, ("saving", "withdrawal")),
        )
        .group_by(t.c.kid_id)
    )


def invalid_transactions(
    engine: Engine, src: Sources, start: dt.datetime, end: dt.datetime
) -> sa.Select[Any]:
    """The week's transactions that break a rule, each with its first broken rule."""
    t, k = src.transactions, src.kids
    reason = sa.case(
        (sa.not_(unique_txn_id(engine, t)), Reason.DUPLICATE_ID),
        (k.c.kid_id.is_(None), Reason.ORPHAN_KID),
        (sa.or_(t.c.kind.is_(None), t.c.kind.not_in(TRANSACTION_KINDS)), Reason.UNKNOWN_KIND),
        (sa.not_(sa.func.coalesce(db.valid_amount(engine, t.c.amount), False)), Reason.BAD_AMOUNT),
        else_=sa.null(),
    )
    return _broken(engine, t, k, t.c.txn_id, t.c.occurred_at, reason, (start, end))


def invalid_events(
    engine: Engine, src: Sources, start: dt.datetime, end: dt.datetime
) -> sa.Select[Any]:
    e, k = src.app_events, src.kids
    return (
        sa.select(e.c.event_id.label("source_id"), sa.literal(Reason.ORPHAN_KID).label("reason"))
        .select_from(e.outerjoin(k, k.c.kid_id == e.c.kid_id))
        .where(in_window(engine, e.c.occurred_at, start, end), k.c.kid_id.is_(None))
    )


def invalid_goals(
    engine: Engine, src: Sources, start: dt.datetime, end: dt.datetime
) -> sa.Select[Any]:
    """Savings goals created in the week that silver leaves out (metrics._goal_entries),
    each with its first broken rule. A goal's time is its created_at."""
    g, k = src.savings_goals, src.kids
    created = db.timestamp_value(engine, g.c.created_at)
    completed = db.timestamp_value(engine, g.c.completed_at)
    done_before = sa.not_(sa.func.coalesce(completed >= created, False))
    reason = sa.case(
        (k.c.kid_id.is_(None), Reason.ORPHAN_KID),
        (
            sa.not_(sa.func.coalesce(db.valid_amount(engine, g.c.target_amount), False)),
            Reason.BAD_AMOUNT,
        ),
        (sa.and_(g.c.completed_at.is_not(None), done_before), Reason.COMPLETED_BEFORE_CREATED),
        else_=sa.null(),
    )
    return _broken(engine, g, k, g.c.goal_id, g.c.created_at, reason, (start, end))


def _broken(
    engine: Engine,
    table: sa.TableClause,
    kids: sa.TableClause,
    source_id: Any,
    at: Any,
    reason: Any,
    window: tuple[dt.datetime, dt.datetime],
) -> sa.Select[Any]:
    """The window's rows of `table` (joined to their kid, if any) whose `reason` is not
    NULL: source_id and reason."""
    inner = (
        sa.select(source_id.label("source_id"), reason.label("reason"))
        .select_from(table.outerjoin(kids, kids.c.kid_id == table.c.kid_id))
        .where(in_window(engine, at, *window))
        .subquery()
    )
    return sa.select(inner.c.source_id, inner.c.reason).where(inner.c.reason.is_not(None))


def undated_rows(
    engine: Engine, table: sa.TableClause, id_column: str, time_column: str = "occurred_at"
) -> sa.Select[Any]:
    """Rows whose time is NULL (or, on SQLite, unreadable): they belong to no week."""
    return sa.select(
        table.c[id_column].label("source_id"),
        sa.literal(Reason.MISSING_TIME).label("reason"),
    ).where(db.timestamp_value(engine, table.c[time_column]).is_(None))


def rows_in_window(
    engine: Engine, table: sa.TableClause, start: dt.datetime, end: dt.datetime
) -> sa.Select[Any]:
    return sa.select(sa.func.count()).where(in_window(engine, table.c.occurred_at, start, end))
