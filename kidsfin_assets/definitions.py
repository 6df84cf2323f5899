"""The code location: every asset, check, job, sensor and resource, wired in one place.

The definitions are module-level in their modules; the settings (config/pipeline.yaml and
KIDSFIN_* variables, read by defs/resources.py's `load_settings`) become the resources'
launchpad defaults here, when Dagster loads the location (`defs` is lazy: importing this
module reads no setting and opens no database).
"""

from __future__ import annotations

import os

import dagster as dg

from kidsfin_assets.config.weeks import check_weeks
from kidsfin_assets.defs.assets.app import app_tables, with_table_names
from kidsfin_assets.defs.assets.exports import kids_analysis_json, kids_reports_json
from kidsfin_assets.defs.assets.gold import kid_weekly_reports
from kidsfin_assets.defs.assets.raw import kid_activity
from kidsfin_assets.defs.assets.silver import kid_weekly_analysis
from kidsfin_assets.defs.batch_sensor import cancel_openai_batches, openai_batch_sensor_every
from kidsfin_assets.defs.catalog import POSTGRES, SQLITE, in_warehouse
from kidsfin_assets.defs.checks import asset_checks
from kidsfin_assets.defs.executor import step_executor
from kidsfin_assets.defs.jobs import collect_batches_job, weekly_reports_job
from kidsfin_assets.defs.loggers import build_run_loggers
from kidsfin_assets.defs.resources import Settings, load_settings, run_resources
from kidsfin_assets.defs.sensors import new_week_sensor_every

pipeline_assets = [
    kid_activity,
    kid_weekly_analysis,
    kid_weekly_reports,
    kids_analysis_json,
    kids_reports_json,
]

# The steps of a run in the run's own process unless run config asks for a process each
# (defs/executor.py says why; retries and the `openai` pool hold either way).
STEP_EXECUTOR = step_executor


def storage_kind(settings: Settings) -> str:
    """The kind naming the database the tables live in."""
    return SQLITE if settings.warehouse.database_url.startswith("sqlite") else POSTGRES


def _in_storage(asset: dg.AssetsDefinition, kind: str, schema: str) -> dg.AssetsDefinition:
    """A warehouse asset (kind `sql`) also names the database its table is in, and its
    tables' names and column types are that database's (catalog.in_warehouse)."""
    if not any("sql" in spec.kinds for spec in asset.specs):
        return asset
    return asset.map_asset_specs(
        lambda spec: spec.merge_attributes(kinds={kind}).replace_attributes(
            metadata=in_warehouse(spec.metadata, kind, schema)
        )
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    kind, schema = storage_kind(settings), settings.warehouse.schema_name
    return dg.Definitions(
        assets=[
            *with_table_names(app_tables, settings.sources.model_dump(), kind),
            *(_in_storage(asset, kind, schema) for asset in pipeline_assets),
        ],
        asset_checks=asset_checks,
        jobs=[weekly_reports_job, collect_batches_job, cancel_openai_batches],
        # Sensors take no run config: their intervals are fixed here, when Dagster loads.
        sensors=[
            new_week_sensor_every(settings.sensor.interval_seconds),
            openai_batch_sensor_every(settings.sensor.batch_interval_seconds),
        ],
        resources=run_resources(settings),
        loggers=build_run_loggers(settings.file_logger.resolved),
        executor=STEP_EXECUTOR,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by Dagster (`-m kidsfin_assets.definitions`): settings are read, and a bad
    one stops the code location with a line naming it, only then."""
    check_weeks(os.environ)
    return build_definitions(load_settings())
