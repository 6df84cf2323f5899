"""Loading the demo into the app's four source tables: the DDL, then SQLite executemany or
PostgreSQL COPY, in one transaction (the old rows or the new, never half)."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.config.settings import SourceTables
from kidsfin_assets.warehouse.db import is_sqlite, split_table_name
from kidsfin_demo.generator import DemoGenerator
from kidsfin_demo.spec import DemoSpec, DemoSummary, Rows
from kidsfin_demo.times import iso_local
from kidsfin_demo.vocabulary import EVENT_TYPES, KINDS

SQLITE_BATCH = 20_000


def create_source_tables(engine: Engine, names: SourceTables) -> None:
    """CREATE TABLE / INDEX IF NOT EXISTS for the four app tables (the DDL of docs/metrics.md)."""
    sqlite = is_sqlite(engine)
    # SQLite has no TIMESTAMPTZ: ISO-8601 text with an offset keeps the instant exact.
    ts, money, key, date = (
        ("TEXT", "REAL", "INTEGER", "TEXT")
        if sqlite
        else ("TIMESTAMPTZ", "NUMERIC(14,2)", "BIGINT", "DATE")
    )
    columns = {
        names.kids: (
            f"kid_id {key} PRIMARY KEY, nickname TEXT NOT NULL, birth_date {date}, "
            f"created_at {ts} NOT NULL"
        ),
        names.transactions: (
            f"txn_id {key} PRIMARY KEY, kid_id BIGINT, occurred_at {ts}, kind TEXT, "
            f"category TEXT, amount {money}, note TEXT"
        ),
        names.app_events: (
            f"event_id {key} PRIMARY KEY, kid_id BIGINT, occurred_at {ts}, event_type TEXT"
        ),
        names.savings_goals: (
            f"goal_id {key} PRIMARY KEY, kid_id BIGINT, title TEXT, target_amount {money}, "
            f"created_at {ts}, completed_at {ts}"
        ),
    }
    indexes = [
        (names.transactions, "occurred_at"),
        (names.transactions, "kid_id"),
        (names.app_events, "occurred_at"),
        # Silver lists a week's goals: completed_at IS NULL OR completed_at >= the week's
        # start, two scans of this index (NULLs included), not every goal ever set; raw
        # checks the goals created in its week (and those without a creation time).
        (names.savings_goals, "completed_at"),
        (names.savings_goals, "created_at"),
    ]
    with engine.begin() as conn:
        schemas = {split_table_name(n)[0] for n in columns}
        for schema in sorted(s for s in schemas if s):
            if sqlite:
                _check_sqlite_schema(conn, schema)
            else:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        for name, body in columns.items():
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {_quoted(engine, name)} ({body})")
        for name, column in indexes:
            schema, table = split_table_name(name)
            index = f"ix_{table}_{column}"
            # PostgreSQL puts an index in its table's schema; SQLite wants it qualified.
            if sqlite and schema:
                index = f"{schema}.{index}"
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {_quoted(engine, index)} "
                f"ON {_quoted(engine, name if not sqlite else table)} ({column})"
            )


def generate(engine: Engine, names: SourceTables, spec: DemoSpec) -> DemoSummary:
    """Replace the four tables' rows with a fresh demo load; deterministic per seed."""
    started = time.perf_counter()
    create_source_tables(engine, names)
    gen = DemoGenerator(spec, sqlite=is_sqlite(engine))
    with engine.begin() as conn:  # one transaction: the old data or the new, never half
        tables = [names.kids, names.transactions, names.app_events, names.savings_goals]
        loader = (_SqliteLoader if is_sqlite(engine) else _PgLoader)(conn, spec.timezone)
        loader.clear(tables)
        for table, rows in gen.tables():
            loader.rows(getattr(names, table), rows)
        loader.finish(tables)
    return gen.summary(time.perf_counter() - started)


def _quoted(engine: Engine, name: str) -> str:
    prep = engine.dialect.identifier_preparer
    return ".".join(prep.quote(part) for part in name.split("."))


def _check_sqlite_schema(conn: Connection, schema: str) -> None:
    attached = {row[1] for row in conn.exec_driver_sql("PRAGMA database_list")}
    if schema not in attached:
        raise ValueError(
            f"source table schema {schema!r} does not exist on SQLite "
            "(schema-qualified source tables need PostgreSQL or an attached database)"
        )


_KIND_VALUES = np.array(KINDS, dtype=object)
_EVENT_VALUES = np.array(EVENT_TYPES, dtype=object)


def _table_columns(rows: Rows, tz: str, sqlite: bool) -> dict[str, np.ndarray]:
    """Database-ready columns: text timestamps, kind/type names, dialect's amounts."""
    out: dict[str, np.ndarray] = {}
    for name, values in rows.columns.items():
        if values.dtype.kind == "M":
            out[name] = iso_local(values, tz)
        elif name == "kind":
            out[name] = _KIND_VALUES[values]
        elif name == "event_type":
            out[name] = _EVENT_VALUES[values]
        elif name in ("amount", "target_amount"):
            missing = np.isnan(values)
            whole = np.nan_to_num(values).astype(np.int64)
            if sqlite:
                out[name] = np.where(missing, None, whole.astype(np.float64)).astype(object)
            else:
                out[name] = np.where(missing, "NaN", whole.astype(str)).astype(object)
        else:
            out[name] = values
    return out


class _Loader:
    sqlite = False

    def __init__(self, conn: Connection, tz: str) -> None:
        self.conn, self.tz = conn, tz
        self.engine = conn.engine

    def clear(self, tables: list[str]) -> None:
        for table in tables:
            self.conn.exec_driver_sql(f"DELETE FROM {_quoted(self.engine, table)}")

    def finish(self, tables: list[str]) -> None:
        pass

    def rows(self, table: str, rows: Rows) -> None:
        if len(rows):
            self.load(table, _table_columns(rows, self.tz, self.sqlite))

    def load(self, table: str, columns: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


class _SqliteLoader(_Loader):
    sqlite = True

    def load(self, table: str, columns: dict[str, np.ndarray]) -> None:
        names = list(columns)
        sql = (
            f"INSERT INTO {_quoted(self.engine, table)} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})"
        )
        n = len(columns[names[0]])
        for lo in range(0, n, SQLITE_BATCH):
            # .tolist() turns numpy scalars into the Python ints/floats sqlite3 binds.
            chunk = [columns[c][lo : lo + SQLITE_BATCH].tolist() for c in names]
            batch = list(zip(*chunk, strict=True))
            self.conn.exec_driver_sql(sql, batch)


class _PgLoader(_Loader):
    def clear(self, tables: list[str]) -> None:
        # TRUNCATE: transactional on PostgreSQL and far faster than DELETE at scale.
        self.conn.exec_driver_sql("TRUNCATE " + ", ".join(_quoted(self.engine, t) for t in tables))

    def load(self, table: str, columns: dict[str, np.ndarray]) -> None:
        buf = io.StringIO()
        # \N marks NULL, so an empty note stays an empty string rather than NULL.
        pd.DataFrame(columns).to_csv(
            buf, index=False, header=False, na_rep="\\N", lineterminator="\n"
        )
        buf.seek(0)
        sql = (
            f"COPY {_quoted(self.engine, table)} ({', '.join(columns)}) "
            "FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        )
        # The raw DBAPI connection of this SQLAlchemy transaction: COPY joins it.
        dbapi = self.engine.dialect.loaded_dbapi
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.copy_expert(sql, buf)
        except dbapi.Error as exc:
            # Raw-cursor errors bypass SQLAlchemy; wrap them like any other statement's.
            raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
        finally:
            cursor.close()

    def finish(self, tables: list[str]) -> None:
        # Fresh statistics, so the pipeline's first weekly reads use the indexes.
        for table in tables:
            self.conn.exec_driver_sql(f"ANALYZE {_quoted(self.engine, table)}")
