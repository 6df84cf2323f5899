"""Database access: engines, URL handling and every SQL dialect difference, in one place.

PostgreSQL is the production database; SQLite is the embedded default. Where the two
differ (time zones, NaN, schemas, locking, bulk load), this module hides it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import sqlite3
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

# The schema placeholder used in table definitions; mapped per engine to the
# configured schema on PostgreSQL and to nothing on SQLite.
WAREHOUSE_SCHEMA_TOKEN = "kidsfin"


# The source contract's amount is NUMERIC(14,2): anything from 10^12 on is not an amount.
MAX_AMOUNT = 10**12


class DatabaseUrlError(ValueError):
    """KIDSFIN_DATABASE_URL is unusable."""


def normalize_url(url: str) -> str:
    """Map bare postgres URLs to psycopg2 (SQLAlchemy >= 2.1 would pick psycopg 3)."""
    if not url:
        raise DatabaseUrlError("empty database URL (set KIDSFIN_DATABASE_URL)")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix) :]
    if _several_at_signs(url):
        # SQLAlchemy splits at the first "@": the rest of the password would become the
        # host, and every connection error would print it.
        raise DatabaseUrlError(
            "the user or password in the database URL holds an '@': write it as %40 "
            f"(percent-encoded): {_hide_password(url)}"
        )
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        # ValueError: a port that is not a number
        raise DatabaseUrlError(f"not a usable database URL ({exc}): {_hide_password(url)}") from exc
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise DatabaseUrlError(
            f"unsupported database {parsed.get_backend_name()!r}: use postgresql:// or sqlite://"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg2":
        # Only psycopg2 is installed: another driver would fail at the first run, not here.
        raise DatabaseUrlError(
            f"unsupported PostgreSQL driver {parsed.get_driver_name()!r}: "
            "use postgresql:// or postgresql+psycopg2://"
        )
    return url


def _several_at_signs(url: str) -> bool:
    """A server URL whose part before the query has more than one '@'."""
    scheme, sep, rest = url.partition("://")
    return bool(sep) and not scheme.startswith("sqlite") and rest.partition("?")[0].count("@") > 1


def _hide_password(url: str) -> str:
    """Without parsing it as a URL (it may not parse): user:password@ becomes user:***@."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url if not at else f"{scheme}{sep}***@{host}"
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    if _several_at_signs(url):
        return _hide_password(url)  # a parser would take part of the password for the host
    for candidate in (normalize_url, str):  # an unsupported scheme is still shown
        try:
            return make_url(candidate(url)).render_as_string(hide_password=True)
        except Exception:
            continue
    return _hide_password(url)


def one_line_error(exc: BaseException) -> str:
    """An error as one line for a message: the driver's own error under SQLAlchemy's
    wrapper (its `orig`), whitespace collapsed; the type's name when it says nothing."""
    inner = getattr(exc, "orig", None) or exc
    return " ".join(str(inner).split()) or type(inner).__name__


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _epoch(value: Any) -> float | None:
    """SQLite timestamps are ISO text (an offset, or UTC when none); None if unparseable."""
    parsed = _parse_ts(value)
    return None if parsed is None else parsed.timestamp()


def _parse_ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC) if math.isfinite(value) else None
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _local_day(value: Any, tz: str) -> dt.date | None:
    parsed = _parse_ts(value)
    return None if parsed is None else parsed.astimezone(_zone(tz)).date()


def _local_date(value: Any, tz: str) -> str | None:
    day = _local_day(value, tz)
    return None if day is None else day.isoformat()


def _day_index(value: Any, tz: str, first_day: str) -> int | None:
    day = _local_day(value, tz)
    return None if day is None else (day - dt.date.fromisoformat(first_day)).days


def _is_finite_positive(value: Any) -> int:
    return int(isinstance(value, int | float) and math.isfinite(value) and 0 < value < MAX_AMOUNT)


class _BitOr:
    """SQLite aggregate: bitwise OR of integers."""

    def __init__(self) -> None:
        self.value: int | None = None

    def step(self, bits: int | None) -> None:
        if bits is not None:
            self.value = (self.value or 0) | int(bits)

    def finalize(self) -> int | None:
        return self.value


def _register_sqlite_functions(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.create_function("kidsfin_epoch", 1, _epoch, deterministic=True)
    dbapi_conn.create_function("kidsfin_local_date", 2, _local_date, deterministic=True)
    dbapi_conn.create_function("kidsfin_valid_amount", 1, _is_finite_positive, deterministic=True)
    dbapi_conn.create_function("kidsfin_day_index", 3, _day_index, deterministic=True)
    dbapi_conn.create_aggregate("kidsfin_bit_or", 1, _BitOr)
    # Driver-level autocommit so that SQLAlchemy's "begin" below controls transactions.
    dbapi_conn.isolation_level = None
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute("PRAGMA busy_timeout=60000")


def _sqlite_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers queue on
    # busy_timeout instead of failing on a read-to-write upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@functools.cache
def _cached_engine(url: str, schema: str) -> Engine:
    return create_engine(url, schema)


def get_engine(url: str, schema: str = WAREHOUSE_SCHEMA_TOKEN) -> Engine:
    """One pooled engine per (url, schema) in this process."""
    return _cached_engine(normalize_url(url), schema)


def create_engine(url: str, schema: str = WAREHOUSE_SCHEMA_TOKEN) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _register_sqlite_functions)
        sa.event.listen(engine, "begin", _sqlite_begin)
        translate = {WAREHOUSE_SCHEMA_TOKEN: None}
    else:
        # A connect timeout, so that an unreachable host fails a sensor tick or a step
        # with a message instead of hanging it.
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        translate = {WAREHOUSE_SCHEMA_TOKEN: schema}
    return engine.execution_options(schema_translate_map=translate)


def warehouse_schema(engine: Engine) -> str | None:
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    return translate.get(WAREHOUSE_SCHEMA_TOKEN)


def ensure_warehouse_schema(conn: sa.Connection) -> None:
    schema = warehouse_schema(conn.engine)
    if schema:
        conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[sa.Connection]:
    """A read-only transaction whose statements all see one state of the database: several
    queries (a count, then pages) agree. REPEATABLE READ on PostgreSQL; an SQLite
    transaction (BEGIN IMMEDIATE: writers wait) already is one."""
    with engine.connect() as conn:
        if not is_sqlite(engine):
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def split_table_name(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


# --- expressions that differ between dialects -------------------------------------------


def timestamp_value(engine: Engine, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A comparable instant: the column itself on PostgreSQL, epoch seconds on SQLite."""
    if is_sqlite(engine):
        return sa.func.kidsfin_epoch(column)
    return column


def timestamp_param(engine: Engine, value: dt.datetime) -> Any:
    """A bound instant comparable with timestamp_value()."""
    return value.timestamp() if is_sqlite(engine) else value


def local_date(engine: Engine, column: ColumnElement[Any], tz: str) -> ColumnElement[Any]:
    """The calendar date of an instant in time zone tz, as a comparable value."""
    if is_sqlite(engine):
        return sa.func.kidsfin_local_date(column, tz)
    return sa.cast(sa.func.timezone(tz, column), sa.Date)


def local_date_in_week(
    engine: Engine, column: ColumnElement[Any], tz: str, monday: dt.date
) -> ColumnElement[Any]:
    """local_date() of an instant known to lie in the local week starting on `monday`: on
    PostgreSQL the Monday plus the instant's bucket among the week's 8 local midnights (a
    binary search, not a time zone conversion per row)."""
    if is_sqlite(engine):
        return local_date(engine, column, tz)
    zone = _zone(tz)
    midnights = [
        dt.datetime.combine(monday + dt.timedelta(days=d), dt.time(0), tzinfo=zone)
        for d in range(8)
    ]
    bounds = sa.literal(midnights, postgresql.ARRAY(sa.DateTime(timezone=True)))
    days = sa.func.width_bucket(column, bounds) - 1
    return sa.type_coerce(sa.literal(monday, sa.Date) + days, sa.Date)


def days_since(engine: Engine, day: ColumnElement[Any], first: dt.date) -> ColumnElement[Any]:
    """Whole days from `first` to a DATE column (SQLite keeps dates as ISO text)."""
    if is_sqlite(engine):
        diff = sa.func.julianday(day) - sa.func.julianday(first.isoformat())
        return sa.type_coerce(sa.cast(diff, sa.Integer), sa.Integer)
    return sa.type_coerce(day - sa.cast(sa.literal(first.isoformat()), sa.Date), sa.Integer)


def epoch_seconds(engine: Engine, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """An instant as epoch seconds (a float), in both dialects."""
    if is_sqlite(engine):
        return timestamp_value(engine, column)
    return sa.cast(sa.extract("epoch", column), sa.Float)


def day_index(
    engine: Engine,
    column: ColumnElement[Any],
    tz: str,
    first_day: dt.date,
    midnights: list[dt.datetime],
) -> ColumnElement[Any]:
    """Days since first_day, local time: the instant's bucket among the local midnights
    (a binary search on PostgreSQL, not a time zone conversion per row)."""
    if is_sqlite(engine):
        return sa.func.kidsfin_day_index(column, tz, first_day.isoformat())
    bounds = sa.literal(midnights, postgresql.ARRAY(sa.DateTime(timezone=True)))
    return sa.func.width_bucket(column, bounds) - 1


def bit_or_agg(engine: Engine, bits: ColumnElement[Any]) -> ColumnElement[Any]:
    """Bitwise OR of a column over a group (SQLite has none built in: ours, registered)."""
    if is_sqlite(engine):
        return sa.func.kidsfin_bit_or(bits)
    return sa.func.bit_or(bits)


def valid_amount(engine: Engine, column: ColumnElement[Any]) -> ColumnElement[bool]:
    """A finite number > 0 within the source contract's NUMERIC(14,2). PostgreSQL's NUMERIC
    has NaN and ±Infinity, and NaN > 0 there; SQLite's column takes any number, and one
    above the contract's range would overflow the integer cents silver sums."""
    if is_sqlite(engine):
        return sa.func.kidsfin_valid_amount(column) == 1
    return sa.and_(
        column > 0,
        column < MAX_AMOUNT,
        column != sa.literal_column("'NaN'"),
        column != sa.literal_column("'Infinity'"),
    )


def exact_money(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Money as integer cents: sums exactly in both dialects (SQLite's numbers are floats)
    and fast (PostgreSQL adds 64-bit integers far quicker than NUMERIC)."""
    return sa.cast(sa.func.round(column * 100), sa.BigInteger)


def money_value(engine: Engine, cents: ColumnElement[Any]) -> ColumnElement[Any]:
    """Back from exact_money() cents to an amount."""
    if is_sqlite(engine):
        return cents / 100.0
    # Divide at full precision, then round to the column's scale: casting the cents to
    # NUMERIC(18, 2) first would cap totals 100 times below what the columns hold.
    return sa.cast(sa.cast(cents, sa.Numeric) / 100, sa.Numeric(18, 2))


def byte_order(engine: Engine, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Sort text by bytes, not by the database's locale (SQLite's BINARY already does)."""
    return column if is_sqlite(engine) else column.collate("C")


def json_object_agg(engine: Engine, key: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    if is_sqlite(engine):
        return sa.func.json_group_object(key, value)
    return sa.func.jsonb_object_agg(key, value)


def json_array_agg(engine: Engine, value: Any, *order_by: Any) -> ColumnElement[Any]:
    """A JSON array of `value` over a group, in `order_by` order (SQLite: the order the
    rows reach the aggregate, so feed it a subquery sorted that way)."""
    if is_sqlite(engine):  # json(): an object from a subquery is text to SQLite
        return sa.func.json_group_array(sa.func.json(value))
    return sa.func.jsonb_agg(postgresql.aggregate_order_by(value, *order_by))


def json_build_object(engine: Engine, pairs: dict[str, Any]) -> ColumnElement[Any]:
    args = [part for key, value in pairs.items() for part in (sa.literal(key), value)]
    return (sa.func.json_object if is_sqlite(engine) else sa.func.jsonb_build_object)(*args)


def json_bool(engine: Engine, condition: Any) -> ColumnElement[Any]:
    """true / false inside a JSON object (SQLite's json_object would write 1 / 0)."""
    if not is_sqlite(engine):
        return condition
    return sa.case((condition, sa.func.json("true")), else_=sa.func.json("false"))


def empty_json_array(engine: Engine) -> ColumnElement[Any]:
    return sa.func.json("[]") if is_sqlite(engine) else sa.literal_column("'[]'::jsonb")


def empty_json_object(engine: Engine) -> ColumnElement[Any]:
    return sa.func.json("{}") if is_sqlite(engine) else sa.literal_column("'{}'::jsonb")


def computed_once(engine: Engine, select: sa.Select[Any]) -> sa.Select[Any]:
    """Keep PostgreSQL from inlining this subquery into its parent: inlined, each of the
    parent's references to a computed column would compute it again, once per aggregate."""
    return select if is_sqlite(engine) else select.offset(sa.literal_column("0"))


def tune_for_aggregation(conn: sa.Connection) -> None:
    """For this transaction only: hash aggregates in memory instead of sorts on disk, and
    no JIT (its compile time costs more than it saves on these plans)."""
    if not is_sqlite(conn.engine):
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        conn.exec_driver_sql("SET LOCAL jit = off")


def lock_clause(engine: Engine, select: sa.Select[Any]) -> sa.Select[Any]:
    """Row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return select if is_sqlite(engine) else select.with_for_update()


def clock_epoch(conn: sa.Connection) -> float:
    """Epoch seconds by the database's clock, so that processes on several machines agree.

    clock_timestamp() is the real time (now() would be frozen at the transaction's start).
    SQLite is embedded, so its clock is this machine's.
    """
    if is_sqlite(conn.engine):
        return time.time()
    stmt = sa.select(sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float))
    return float(conn.execute(stmt).scalar_one())


def upsert(conn: sa.Connection, table: sa.Table, row: dict[str, Any], keys: list[str]) -> None:
    """Insert, or replace the row with the same keys (ON CONFLICT in both dialects)."""
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(table).values(row)
    updates = {c: statement.excluded[c] for c in row if c not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates))


def upsert_many(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """upsert() of many rows (same columns, distinct keys) in one call: one statement,
    compiled once, with the rows as parameter sets (a statement built with `.values(rows)`
    is compiled again on every call: SQLAlchemy caches no multi-row VALUES)."""
    if not rows:
        return
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    upsert = statement.on_conflict_do_update(index_elements=keys, set_=updates)
    _execute_paged(conn, upsert, table, rows)


def _execute_paged(conn: sa.Connection, insert: Any, table: sa.Table, rows: list[Any]) -> None:
    """An INSERT ... ON CONFLICT of many rows as multi-row VALUES pages (SQLAlchemy's
    "insertmanyvalues", which it applies to such a statement only with RETURNING), not
    one round trip per row as a plain executemany."""
    key = next(iter(table.primary_key.columns), None)
    conn.execute(insert.returning(key if key is not None else next(iter(table.c))), rows).all()


def ddl_lock(conn: sa.Connection) -> None:
    """Serialise creating the warehouse's schema and tables (PostgreSQL's catalog does not
    take two CREATE SCHEMA IF NOT EXISTS at once); held until the transaction ends."""
    if not is_sqlite(conn.engine):
        key = sa.func.hashtextextended(f"kidsfin:ddl:{warehouse_schema(conn.engine)}", 0)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def analyze_keys(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """Refresh PostgreSQL's statistics of the week and kid columns of `tables` (a sample of
    ~30,000 rows each; the wide columns, reports and answers, are left out: cheaper; no-op on
    SQLite). Without them (autovacuum off, or not yet run) the planner takes a week for
    ~0.5% of a table and reads `week_start = w AND kid_id IN (...)` as every row of the
    week, the IN list a filter: a scan growing with the week for each chunk of kids."""
    if is_sqlite(conn.engine):
        return
    schema = warehouse_schema(conn.engine)
    quote = conn.dialect.identifier_preparer.quote
    names = [
        (f"{quote(schema)}.{quote(t.name)}" if schema else quote(t.name)) + " (week_start, kid_id)"
        for t in tables
    ]
    conn.exec_driver_sql(f"ANALYZE {', '.join(names)}")


def week_lock(conn: sa.Connection, layer: str, week_key: str) -> None:
    """Hold, until the caller's transaction ends, the lock of one layer's week: a second
    run of the same week waits here instead of failing on the first one's rows. SQLite's
    BEGIN IMMEDIATE already serialises writers."""
    if is_sqlite(conn.engine):
        return
    key = f"kidsfin:{warehouse_schema(conn.engine)}:{layer}:{week_key}"
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


def insert_ignoring_duplicates(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]
) -> None:
    """Insert; a row whose key (any unique index) is already there is left as it is."""
    if not rows:
        return
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    _execute_paged(conn, insert(table).on_conflict_do_nothing(), table, rows)


def is_lock_conflict(exc: BaseException) -> bool:
    """A deadlock or serialisation failure: the transaction was rolled back, and running it
    again is the remedy (PostgreSQL's advice), not waiting as for an outage."""
    return getattr(getattr(exc, "orig", None), "pgcode", None) in ("40P01", "40001")


def is_disconnect(exc: BaseException) -> bool:
    """The database is unreachable (down, restarting, network cut), not a bad statement."""
    if is_lock_conflict(exc):
        return False
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and "could not connect" in str(exc)
