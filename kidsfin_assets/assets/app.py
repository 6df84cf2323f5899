"""The app's tables as external assets: the pipeline reads them, never writes them."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from kidsfin_assets.keys import (
    APP_EVENTS,
    APP_KIDS,
    APP_SAVINGS_GOALS,
    APP_TRANSACTIONS,
    OWNERS,
)
from kidsfin_assets.settings import SourceTables
from kidsfin_assets.warehouse import source_tables

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
_TABLES = source_tables(SourceTables())  # the default names; only the columns are used
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
    columns = _COLUMNS[key].columns
    schema = dg.TableSchema(columns=[dg.TableColumn(c.name, _TYPES[c.name]) for c in columns])
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
        metadata={"dagster/column_schema": schema},
    )


app_tables = [_spec(key) for key in _COLUMNS]


def with_table_names(
    specs: list[dg.AssetSpec], names: dict[str, str], dialect: str
) -> list[dg.AssetSpec]:
    """The specs with the configured table names and the database they live in."""
    return [
        spec.merge_attributes(
            metadata={"dagster/table_name": names[spec.key.path[-1]]}, kinds={dialect}
        )
        for spec in specs
    ]
