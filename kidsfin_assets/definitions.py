"""The code location: every asset, resource, sensor and check, wired in one place."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from kidsfin_assets.assets.app import app_tables, with_table_names
from kidsfin_assets.assets.exports import build_analysis_export, build_reports_export
from kidsfin_assets.assets.gold import build_kid_weekly_reports
from kidsfin_assets.assets.raw import build_kid_activity
from kidsfin_assets.assets.silver import build_kid_weekly_analysis
from kidsfin_assets.batch_sensor import (
    build_collect_job,
    build_openai_batch_sensor,
    cancel_openai_batches,
)
from kidsfin_assets.checks import build_checks
from kidsfin_assets.loggers import build_run_loggers
from kidsfin_assets.openai_client import OpenAIReportsResource
from kidsfin_assets.resources import WarehouseResource
from kidsfin_assets.sensors import build_new_week_sensor, build_weekly_job
from kidsfin_assets.settings import Settings, get_settings

DATABASE_URL_ENV = "KIDSFIN_DATABASE_URL"

# Known and accepted at every load: backfill policies and partitioned checks are beta /
# preview APIs we use on purpose, and the weekly job mixing backfill policies is by design
# (silver may run a range, gold one week per run).
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", message=".*materializes assets with varying BackfillPolicies")


def build_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    kind = storage_kind(settings)
    return [
        # The warehouse's tables are in the database the URL names: the kind says which.
        asset.map_asset_specs(lambda spec: spec.merge_attributes(kinds={kind}))
        if "sql" in asset.specs_by_key[next(iter(asset.keys))].kinds
        else asset
        for asset in (
            build_kid_activity(settings),
            build_kid_weekly_analysis(settings),
            build_kid_weekly_reports(settings),
            build_analysis_export(settings),
            build_reports_export(settings),
        )
    ]


def storage_kind(settings: Settings) -> str:
    """The kind naming the database the tables live in."""
    return "sqlite" if settings.resolved_database_url.startswith("sqlite") else "postgres"


def build_app_tables(settings: Settings) -> list[dg.AssetSpec]:
    return with_table_names(app_tables, settings.sources.model_dump(), storage_kind(settings))


def _database_url(settings: Settings) -> str:
    # From the environment, pass an EnvVar: the UI then shows the variable's name,
    # never the URL and its password.
    if os.environ.get(DATABASE_URL_ENV):
        return dg.EnvVar(DATABASE_URL_ENV)  # type: ignore[return-value]
    return settings.resolved_database_url


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(
            database_url=_database_url(settings),
            schema_name=settings.warehouse.schema_name,
        ),
        "openai": build_openai_resource(settings),
    }


def _from_env(name: str) -> str | None:
    # EnvVar, not the value: the key never shows in the UI, run config or event log.
    return dg.EnvVar(name) if os.environ.get(name) else None  # type: ignore[return-value]


def build_openai_resource(settings: Settings) -> OpenAIReportsResource:
    api, retry = settings.openai, settings.retry
    return OpenAIReportsResource(
        api_key=_from_env("OPENAI_API_KEY"),
        base_url=_from_env("OPENAI_BASE_URL"),
        organization=_from_env("OPENAI_ORG_ID"),
        project=_from_env("OPENAI_PROJECT"),
        model=api.model,
        max_tokens=api.max_tokens,
        temperature=api.temperature,
        timeout_seconds=api.timeout_seconds,
        requests_per_minute=api.requests_per_minute,
        tokens_per_minute=api.tokens_per_minute,
        max_concurrent=api.max_concurrent,
        batch_size=api.batch_size,
        retry_max_attempts=retry.max_attempts,
        fail_fast_after=api.fail_fast_after,
        mode=api.mode,
        batch_min_reports=api.batch_min_reports,
        batch_max_requests=api.batch_max_requests,
        batch_max_bytes=api.batch_max_bytes,
        batch_queue_tokens=api.batch_queue_tokens,
        service_tier=api.service_tier,
        flex_fallback=api.flex_fallback,
        retry_initial_wait_seconds=retry.initial_wait_seconds,
        retry_max_wait_seconds=retry.max_wait_seconds,
        retry_jitter_seconds=retry.jitter_seconds,
        pricing_file=str(settings.pricing_path),
        rate_limit_period_seconds=api.rate_limit_period_seconds,
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    weekly_job = build_weekly_job(settings)
    collect_job = build_collect_job(settings)
    return dg.Definitions(
        assets=[*build_app_tables(settings), *build_assets(settings)],
        asset_checks=build_checks(settings),
        jobs=[weekly_job, collect_job, cancel_openai_batches],
        sensors=[
            build_new_week_sensor(settings, weekly_job),
            build_openai_batch_sensor(settings, collect_job),
        ],
        resources=build_resources(settings),
        loggers=build_run_loggers(settings.log_file_path),
    )


defs = build_definitions(get_settings())
