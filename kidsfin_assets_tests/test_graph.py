"""The asset graph says what the code reads: each asset's upstream keys are exactly the
tables of other assets its real run reads (statements recorded on the engine)."""

from __future__ import annotations

import re
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from kidsfin_assets.definitions import build_definitions
from kidsfin_assets.defs import keys
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import (
    kid_weekly_analysis,
    kid_weekly_reports,
    quarantine,
    raw_app_events,
    raw_opening_balances,
    raw_savings_goals,
    raw_transactions,
    raw_weeks,
)
from kidsfin_assets_tests.helpers import SourceDB, materialize_week, use_database

W = "2026-03-16"
DML = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


def tables_by_asset(settings: Settings) -> dict[str, dg.AssetKey]:
    """Every table some asset is, by name: the app's (as configured) and the warehouse's."""
    app = settings.sources
    return {
        app.kids: keys.APP_KIDS,
        app.transactions: keys.APP_TRANSACTIONS,
        app.app_events: keys.APP_EVENTS,
        app.savings_goals: keys.APP_SAVINGS_GOALS,
        **{
            t.name: keys.RAW_KEY
            for t in (
                raw_transactions,
                raw_app_events,
                raw_savings_goals,
                raw_weeks,
                raw_opening_balances,
                quarantine,
            )
        },
        kid_weekly_analysis.name: keys.SILVER_KEY,
        kid_weekly_reports.name: keys.GOLD_KEY,
    }


def read_by(statements: list[str], owners: dict[str, dg.AssetKey]) -> set[dg.AssetKey]:
    found = set()
    for statement in statements:
        for name, key in owners.items():
            # A table, not a column of the same name (silver has a `savings_goals` column).
            table = rf'\b(FROM|JOIN|INTO|UPDATE)\s+("?\w+"?\.)?"?{re.escape(name)}"?(?![\w"])'
            if re.search(table, statement, re.IGNORECASE):
                found.add(key)
    return found


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Settings:
    # Renamed app tables: the graph must follow the configured names, and a name that is
    # also a word in SQL (`kids`) is not mistaken for the configured one.
    settings = use_database(
        monkeypatch,
        pg_url,
        KIDSFIN_SOURCES__KIDS="app_children",
        KIDSFIN_SOURCES__TRANSACTIONS="app_money",
    )
    source = SourceDB(settings)
    source.kids((1, "An"), (2, "Bình"))
    source.txns(
        (1, 1, "2026-03-17 10:00", "income", None, 100000),
        (2, 2, "2026-03-18 10:00", "spending", "toys", 20000),
        (3, 99, "2026-03-18 11:00", "spending", "toys", 20000),  # no such kid: quarantined
    )
    source.events((1, 1, "2026-03-17 11:00", "login"))
    return settings


def test_each_asset_reads_exactly_what_it_declares(settings: Settings) -> None:
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    owners = tables_by_asset(settings)
    graph = build_definitions(settings).resolve_asset_graph()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Reads and writes of rows; the DDL that creates every warehouse table is no read.
        if statement.lstrip().upper().startswith(DML):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for key in keys.PIPELINE:
            statements.clear()
            result = materialize_week(settings, W, selection=key.to_user_string())
            assert result.success
            reads = read_by(statements, owners) - {key}
            assert reads == graph.get(key).parent_keys, key.to_user_string()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_the_app_tables_are_external_assets_in_group_app(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    for key in keys.APP_TABLES:
        node = graph.get(key)
        assert not node.is_materializable and node.group_name == "app"
        assert "postgres" in node.kinds
    names = {k: graph.get(k).metadata["dagster/table_name"] for k in keys.APP_TABLES}
    assert names[keys.APP_KIDS] == "app_children"
    assert names[keys.APP_TRANSACTIONS] == "app_money"


def test_warehouse_assets_carry_their_table_and_row_count(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    silver = graph.get(keys.SILVER_KEY).metadata
    assert silver["dagster/table_name"] == "kidsfin.kid_weekly_analysis"
    columns = {c.name for c in silver["dagster/column_schema"].columns}
    assert columns == {c.name for c in kid_weekly_analysis.columns}
    result = materialize_week(settings, W)
    counts = {
        event.asset_key: event.step_materialization_data.materialization.metadata.get(
            "dagster/row_count"
        )
        for event in result.get_asset_materialization_events()
    }
    assert counts[keys.SILVER_KEY].value == 2  # two kids with activity
    assert counts[keys.GOLD_KEY].value == 2
    assert counts[keys.RAW_KEY].value == 3  # two transactions and an event are valid


def test_the_app_tables_column_schemas_are_the_databases(settings: Settings) -> None:
    """The catalog's columns of each app table are those the source contract creates
    (kidsfin_demo's create_source_tables, the DDL of docs/metrics.md), with their types."""
    graph = build_definitions(settings).resolve_asset_graph()
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    spelled = {"TIMESTAMPTZ": "timestamp with time zone"}
    for key in keys.APP_TABLES:
        node = graph.get(key)
        table = node.metadata["dagster/table_name"]
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
                ),
                {"t": table},
            ).all()
        declared = [
            (c.name, spelled.get(c.type, c.type.lower()))
            for c in node.metadata["dagster/column_schema"].columns
        ]
        assert sorted(declared) == sorted(tuple(row) for row in found), table


# The spelling of a type in the catalog (SQLAlchemy's compiler, the source contract's DDL)
# against PostgreSQL's format_type().
PG_SPELLING = {
    "timestamptz": "timestamp with time zone",
    "varchar": "character varying",
    "float": "double precision",
}


def _spelled(kind: str, type_name: str) -> str:
    text = type_name.lower().replace(", ", ",")
    if kind == "postgres":
        head, paren, rest = text.partition("(")
        text = PG_SPELLING.get(head, head) + paren + rest
    return text


def declared_columns(engine: sa.Engine, table: str) -> list[tuple[str, str]]:
    """(column, type) as the database declares them."""
    with engine.connect() as conn:
        if db.is_sqlite(engine):
            rows = conn.exec_driver_sql(f'PRAGMA table_info("{table}")')
            return [(row[1], row[2]) for row in rows]
        query = sa.text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
        )
        return [tuple(row) for row in conn.execute(query, {"t": table})]


def catalog_tables(node: Any) -> dict[str, dg.TableSchema]:
    """Each table an asset's catalog entry describes, by the name to query it by."""
    found = {}
    for key, value in node.metadata.items():
        if key == "dagster/column_schema":
            found[node.metadata["dagster/table_name"]] = value
        elif key.startswith("schema/"):
            found[key.removeprefix("schema/")] = value
    return found


def test_the_catalog_says_what_the_configured_warehouse_holds(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """Kinds, table names and column types are those of the database configured: SQLite's
    for the demo, PostgreSQL's (JSONB, timestamp with time zone) there, never the other's."""
    settings = use_database(monkeypatch, database_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    source.txns((1, 1, "2026-03-17 10:00", "income", None, 100000))
    assert materialize_week(settings, W).success
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    kind = "sqlite" if db.is_sqlite(engine) else "postgres"
    schema = "" if kind == "sqlite" else f"{settings.warehouse.schema_name}."
    graph = build_definitions(settings).resolve_asset_graph()
    for key in (*keys.APP_TABLES, keys.RAW_KEY, keys.SILVER_KEY, keys.GOLD_KEY):
        node = graph.get(key)
        assert kind in node.kinds and not ({"sqlite", "postgres"} - {kind}) & node.kinds, key
        tables = catalog_tables(node)
        assert tables, key
        for name, columns in tables.items():
            if key.path[0] == "raw":
                name = schema + name
            declared = [(c.name, _spelled(kind, c.type)) for c in columns.columns]
            found = [(column, _spelled(kind, t)) for column, t in declared_columns(engine, name)]
            assert sorted(declared) == sorted(found), (key, name)
    gold = graph.get(keys.GOLD_KEY).metadata
    assert gold["dagster/table_name"] == f"{schema}kid_weekly_reports"
    types = {c.name: c.type for c in gold["dagster/column_schema"].columns}
    if kind == "sqlite":
        assert (types["report"], types["generated_at"]) == ("JSON", "DATETIME")
    else:
        assert (types["report"], types["generated_at"]) == ("JSONB", "TIMESTAMP WITH TIME ZONE")
