"""The app's tables as external assets: the pipeline reads them, never writes them."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from kidsfin_assets.defs.catalog import POSTGRES, SQLITE
from kidsfin_assets.defs.keys import (
    APP_EVENTS,
    APP_KIDS,
    APP_SAVINGS_GOALS,
    APP_TRANSACTIONS,
    OWNERS,
)
from kidsfin_assets.defs.resources import SourcesResource
from kidsfin_assets.warehouse.tables import source_tables

# Each column's type on PostgreSQL (docs/metrics.md, the source contract, which
# kidsfin_demo's create_source_tables follows); the columns themselves are the ones
# warehouse.source_tables says the pipeline reads.
_TYPES = {
    "kid_id": "BIGINT",
    "nickname": "TEXT",
    "birth_date": "DATE",
    "created_at": "TIMESTAMPTZ",
    "txn_id": "BIGINT",
    "occurred_at": "TIMESTAMPTZ",
    "kind": "TEXT",
    "category": "TEXT",
    "amount": "NUMERIC(14,2)",
    "note": "TEXT",
    "event_id": "BIGINT",
    "event_type": "TEXT",
    "goal_id": "BIGINT",
    "title": "TEXT",
    "target_amount": "NUMERIC(14,2)",
    "completed_at": "TIMESTAMPTZ",
}
# On SQLite (the demo's tables, kidsfin_demo's create_source_tables): each table's own id
# an INTEGER PRIMARY KEY, times and dates ISO-8601 TEXT, money REAL.
_SQLITE_TYPES = {"TIMESTAMPTZ": "TEXT", "DATE": "TEXT", "NUMERIC(14,2)": "REAL"}
_OWN_ID = {
    APP_KIDS: "kid_id",
    APP_TRANSACTIONS: "txn_id",
    APP_EVENTS: "event_id",
    APP_SAVINGS_GOALS: "goal_id",
}


def column_type(table_key: dg.AssetKey, column: sa.ColumnClause, kind: str) -> str:
    """The column's type as the app's database of `kind` declares it."""
    declared = _TYPES[column.name]
    if kind != SQLITE:
        return declared
    if column.name == _OWN_ID[table_key]:
        return "INTEGER"
    return _SQLITE_TYPES.get(declared, declared)


def column_schema(key: dg.AssetKey, kind: str) -> dg.TableSchema:
    columns = [dg.TableColumn(c.name, column_type(key, c, kind)) for c in _COLUMNS[key].columns]
    return dg.TableSchema(columns=columns)


_TABLES = source_tables(SourcesResource())  # the default names; only the columns are used
_COLUMNS: dict[dg.AssetKey, sa.TableClause] = {
    APP_KIDS: _TABLES.kids,
    APP_TRANSACTIONS: _TABLES.transactions,
    APP_EVENTS: _TABLES.app_events,
    APP_SAVINGS_GOALS: _TABLES.savings_goals,
}
_DESCRIPTIONS = {
    APP_KIDS: "The app's children: nickname (never sent to the API) and creation time.",
    APP_TRANSACTIONS: "Every income, spending, saving and withdrawal, with its time.",
    APP_EVENTS: "App activity (logins, goals set or completed), with its time.",
    APP_SAVINGS_GOALS: "Savings goals: target, created and completed times.",
}


def _spec(key: dg.AssetKey) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        group_name="app",
        description=(
            f"{_DESCRIPTIONS[key]} Read only; named by `sources.{key.path[-1]}` in "
            "config/pipeline.yaml."
        ),
        kinds={"sql"},
        owners=OWNERS,
        tags={"kidsfin/layer": "source"},
        metadata={"dagster/column_schema": column_schema(key, POSTGRES)},
    )


app_tables = [_spec(key) for key in _COLUMNS]


def with_table_names(
    specs: list[dg.AssetSpec], names: dict[str, str], kind: str
) -> list[dg.AssetSpec]:
    """The specs with the configured table names, the database they live in (its kind)
    and their columns' types in that database."""
    return [
        spec.merge_attributes(
            metadata={
                "dagster/table_name": names[spec.key.path[-1]],
                "dagster/column_schema": column_schema(spec.key, kind),
            },
            kinds={kind},
        )
        for spec in specs
    ]
