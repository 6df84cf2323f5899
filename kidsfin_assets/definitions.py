"""The code location: every asset, check, job, sensor and resource, wired in one place.

The definitions are module-level in their modules; what comes from config/pipeline.yaml
and KIDSFIN_* variables becomes resource defaults here, when Dagster loads the location
(`defs` is lazy: importing this module reads no setting and opens no database).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from kidsfin_assets.config.errors import SettingsError
from kidsfin_assets.config.settings import Settings, config_path, get_settings
from kidsfin_assets.config.weeks import check_partitions_match
from kidsfin_assets.defs.assets.app import app_tables, with_table_names
from kidsfin_assets.defs.assets.exports import kids_analysis_json, kids_reports_json
from kidsfin_assets.defs.assets.gold import kid_weekly_reports
from kidsfin_assets.defs.assets.raw import kid_activity
from kidsfin_assets.defs.assets.silver import kid_weekly_analysis
from kidsfin_assets.defs.batch_sensor import cancel_openai_batches, openai_batch_sensor_every
from kidsfin_assets.defs.catalog import POSTGRES, SQLITE, in_warehouse
from kidsfin_assets.defs.checks import asset_checks
from kidsfin_assets.defs.jobs import collect_batches_job, weekly_reports_job
from kidsfin_assets.defs.loggers import build_run_loggers
from kidsfin_assets.defs.resources import (
    AnalysisResource,
    CheckLimitsResource,
    ExportResource,
    PrivacyResource,
    SensorLimitsResource,
    SourcesResource,
    StepRetryResource,
    WarehouseResource,
)
from kidsfin_assets.defs.sensors import new_week_sensor_every
from kidsfin_assets.reports.openai_client import (
    OPENAI_FIELDS,
    RETRY_FIELDS,
    OpenAIReportsResource,
    largest_request_tokens,
)
from kidsfin_assets.reports.prompt import load_prompt

DATABASE_URL_ENV = "KIDSFIN_DATABASE_URL"

pipeline_assets = [
    kid_activity,
    kid_weekly_analysis,
    kid_weekly_reports,
    kids_analysis_json,
    kids_reports_json,
]


def _from_env(name: str) -> Any:
    # EnvVar, not the value: a secret never shows in the UI, run config or event log.
    return dg.EnvVar(name) if os.environ.get(name) else None


def check_token_budget(settings: Settings) -> None:
    """The shared token bucket must hold two of the largest requests (see llm/bucket.py):
    refused when the resource is made (the code location loads), not by the first gold run.
    Not in settings.py: the prompt it sizes sits above the settings (prompt -> warehouse ->
    settings), so settings would have to import it inside a function."""
    largest = largest_request_tokens(load_prompt(), settings.openai.max_tokens)
    if settings.openai.tokens_per_minute < 2 * largest:
        raise SettingsError(
            f"invalid kidsfin settings in {config_path()}:\n  openai.tokens_per_minute: "
            f"must be at least {2 * largest} (two of the largest requests: prompt plus "
            f"max_tokens={settings.openai.max_tokens}), got {settings.openai.tokens_per_minute}"
        )


def openai_resource(settings: Settings) -> OpenAIReportsResource:
    """Every `openai:` setting by its own name, and `retry:`'s as `retry_<key>`."""
    check_token_budget(settings)
    retry = settings.retry.model_dump(include=set(RETRY_FIELDS))
    api = settings.openai.model_dump(exclude={"pricing_file"})
    return OpenAIReportsResource(
        **{OPENAI_FIELDS.get(key, key): value for key, value in api.items()},
        **{RETRY_FIELDS[key]: value for key, value in retry.items()},
        pricing_file=str(settings.pricing_path),
        api_key=_from_env("OPENAI_API_KEY"),
        base_url=_from_env("OPENAI_BASE_URL"),
        organization=_from_env("OPENAI_ORG_ID"),
        project=_from_env("OPENAI_PROJECT"),
    )


def resources_from(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources, their defaults from the settings (the launchpad can override any)."""
    return {
        "warehouse": WarehouseResource(
            # From the environment as an EnvVar: the UI shows its name, never the password.
            database_url=_from_env(DATABASE_URL_ENV) or settings.resolved_database_url,
            schema_name=settings.warehouse.schema_name,
            outage_wait_seconds=settings.warehouse.outage_wait_seconds,
            claim_lease_seconds=settings.warehouse.claim_lease_seconds,
            spool_dir=str(settings.warehouse.spool_dir),
        ),
        "openai": openai_resource(settings),
        "sources": SourcesResource(**settings.sources.model_dump()),
        "analysis": AnalysisResource(
            timezone=settings.weeks.timezone,
            trend_threshold=settings.trends.threshold,
            max_shrink_share=settings.silver.max_shrink_share,
        ),
        "privacy": PrivacyResource(
            pseudonymize=settings.privacy.pseudonymize,
            known_categories=list(settings.privacy.known_categories),
        ),
        "exports": ExportResource(
            export_dir=settings.export_location, format=settings.export_format
        ),
        "step_retry": StepRetryResource(
            max_retries=settings.retry.step_max_retries,
            delay_seconds=settings.retry.step_delay_seconds,
        ),
        "check_limits": CheckLimitsResource(**settings.checks.model_dump()),
        "sensor_limits": SensorLimitsResource(
            late_data_weeks=settings.sensor.late_data_weeks,
            max_weeks_per_tick=settings.sensor.max_weeks_per_tick,
        ),
    }


# A process per step, as before (each step's retries and the `openai` pool hold), but
# forked from a server that imported Dagster and the project once per run, instead of a
# new interpreter importing them for each of a week's steps (5-8 s each on 2 cores).
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["kidsfin_assets.definitions"]}}}
)


def storage_kind(settings: Settings) -> str:
    """The kind naming the database the tables live in."""
    return SQLITE if settings.resolved_database_url.startswith("sqlite") else POSTGRES


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
    check_partitions_match(settings)
    kind, schema = storage_kind(settings), settings.warehouse.schema_name
    return dg.Definitions(
        assets=[
            *with_table_names(app_tables, settings.sources.model_dump(), kind),
            *(_in_storage(asset, kind, schema) for asset in pipeline_assets),
        ],
        asset_checks=asset_checks,
        jobs=[weekly_reports_job, collect_batches_job, cancel_openai_batches],
        sensors=[
            new_week_sensor_every(settings.sensor.interval_seconds),
            openai_batch_sensor_every(settings.sensor.batch_interval_seconds),
        ],
        resources=resources_from(settings),
        loggers=build_run_loggers(settings.log_file_path),
        executor=STEP_EXECUTOR,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by Dagster (`-m kidsfin_assets.definitions`): settings are read, and a bad
    one stops the code location with a message naming it, only then."""
    return build_definitions(get_settings())
