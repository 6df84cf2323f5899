"""The app's tables as external assets: the pipeline reads them, never writes them."""

from __future__ import annotations

import dagster as dg

from kidsfin_assets.keys import (
    APP_EVENTS,
    APP_KIDS,
    APP_SAVINGS_GOALS,
    APP_TRANSACTIONS,
    OWNERS,
)

# The columns the pipeline reads and their types on PostgreSQL (docs/metrics.md, the
# source contract; demo_data.create_source_tables makes them so).
_COLUMNS: dict[dg.AssetKey, tuple[tuple[str, str], ...]] = {
    APP_KIDS: (
        ("kid_id", "BIGINT"),
        ("nickname", "TEXT"),
        ("birth_date", "DATE"),
        ("created_at", "TIMESTAMPTZ"),
    ),
    APP_TRANSACTIONS: (
        ("txn_id", "BIGINT"),
        ("kid_id", "BIGINT"),
        ("occurred_at", "TIMESTAMPTZ"),
        ("kind", "TEXT"),
        ("category", "TEXT"),
        ("amount", "NUMERIC(14,2)"),
        ("note", "TEXT"),
    ),
    APP_EVENTS: (
        ("event_id", "BIGINT"),
        ("kid_id", "BIGINT"),
        ("occurred_at", "TIMESTAMPTZ"),
        ("event_type", "TEXT"),
    ),
    APP_SAVINGS_GOALS: (
        ("goal_id", "BIGINT"),
        ("kid_id", "BIGINT"),
        ("title", "TEXT"),
        ("target_amount", "NUMERIC(14,2)"),
        ("created_at", "TIMESTAMPTZ"),
        ("completed_at", "TIMESTAMPTZ"),
    ),
}
_DESCRIPTIONS = {
    APP_KIDS: "The app's children: nickname (never sent to the API) and creation time.",
    APP_TRANSACTIONS: "Every income, spending, saving and withdrawal, with its time.",
    APP_EVENTS: "App activity (logins, goals set or completed), with its time.",
    APP_SAVINGS_GOALS: "Savings goals: target, created and completed times.",
}


def _spec(key: dg.AssetKey) -> dg.AssetSpec:
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in _COLUMNS[key]])
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
