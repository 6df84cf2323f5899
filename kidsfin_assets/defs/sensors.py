"""new_week_sensor: runs every complete week once, and again when its source rows change.

What a tick decides is sensor_plan.py; what it asks the database, source_activity.py.
Here: the Dagster sensor, which reads its settings from resources, and what each week's
materialisations recorded (the source versions raw and silver read), from the instance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg

from kidsfin_assets.config.weeks import weekly_partitions
from kidsfin_assets.defs.jobs import JOB_NAME, weekly_reports_job
from kidsfin_assets.defs.keys import (
    ANALYSIS_EXPORT_KEY,
    GOLD_KEY,
    PIPELINE,
    RAW_KEY,
    REPORTS_EXPORT_KEY,
    SILVER_KEY,
)
from kidsfin_assets.defs.resources import (
    AnalysisResource,
    SensorResource,
    SourcesResource,
    WarehouseResource,
)
from kidsfin_assets.defs.sensor_plan import (
    DATA_VERSION_TAG,
    REASON_TAG,
    SENSOR_NAME,
    InvalidCursorError,
    Materialised,
    Watch,
    evaluate,
)

# What reads silver's table: materialised after it, or the week is not done.
SILVER_DOWNSTREAM = (GOLD_KEY, ANALYSIS_EXPORT_KEY, REPORTS_EXPORT_KEY)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, week: str) -> dg.EventLogRecord | None:
    where = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[week])
    records = instance.fetch_materializations(where, limit=1).records
    return records[0] if records else None


def _source_versions(record: dg.EventLogRecord) -> dict[str, str] | None:
    """The `source_versions` a raw or silver materialisation recorded (none before they
    recorded it)."""
    materialization = record.asset_materialization
    value = materialization.metadata.get("source_versions") if materialization else None
    data = getattr(value, "value", None)
    return dict(data) if isinstance(data, dict) else None


def materialised(instance: dg.DagsterInstance, week: str) -> Materialised | None:
    """What the week's latest materialisations read, when the week went end to end: every
    asset of the job materialised, gold and both exports after silver's latest, the
    reports export after gold's. Whoever ran them (this sensor, the UI, the CLI)."""
    found = {key: _latest(instance, key, week) for key in PIPELINE}
    latest = {key: record for key, record in found.items() if record is not None}
    if len(latest) < len(PIPELINE):
        return None
    order = {key: record.storage_id for key, record in latest.items()}
    after_silver = all(order[key] > order[SILVER_KEY] for key in SILVER_DOWNSTREAM)
    if not after_silver or order[REPORTS_EXPORT_KEY] < order[GOLD_KEY]:
        return None
    raw, silver = _source_versions(latest[RAW_KEY]), _source_versions(latest[SILVER_KEY])
    if raw is None or silver is None:
        return None
    return Materialised(raw=raw, silver=silver)


def watch_from(
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    limits: SensorResource,
) -> Watch:
    """What a tick looks at; its first week is the first partition."""
    return Watch(
        database_url=warehouse.database_url,
        schema_name=warehouse.schema_name,
        sources=sources.names(),
        first_week=weekly_partitions.start.date(),
        timezone=analysis.timezone,
        late_data_weeks=limits.late_data_weeks,
        max_weeks_per_tick=limits.max_weeks_per_tick,
    )


def new_week_tick(
    context: dg.SensorEvaluationContext,
    watch: Watch,
    now: dt.datetime,
) -> dg.SensorResult:

    def recorded(week: str) -> Materialised | None:
        return materialised(context.instance, week)

    try:
        result = evaluate(watch, context.cursor, now, recorded)
    except InvalidCursorError as exc:
        # Safe to start over: run keys stop a week's same data from running again.
        context.log.warning(f"{exc}; starting from an empty cursor")
        result = evaluate(watch, None, now, recorded)
    if result.done:
        context.log.info(
            f"weeks {', '.join(result.done)}: already materialised from their current source "
            "rows (by any run: this sensor's, the UI's, the CLI's), not run again"
        )
    for request in result.run_requests:
        tags = request.tags
        context.log.info(
            f"week {request.partition_key}: {tags[REASON_TAG]} "
            f"(data version {tags[DATA_VERSION_TAG]}, run key {request.run_key})"
        )
    if not result.run_requests:
        return dg.SensorResult(skip_reason=result.summary, cursor=result.cursor)
    return dg.SensorResult(run_requests=result.run_requests, cursor=result.cursor)


def new_week_sensor_every(
    seconds: int, clock: Callable[[], dt.datetime] = utc_now
) -> dg.SensorDefinition:
    """The sensor at an interval: Dagster fixes it when the code location loads, so the
    definitions give it `sensor.interval_seconds` (the module's own uses the default).
    `clock` is its "now" (a test's sensor gets a fixed one)."""

    def tick(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        sources: SourcesResource,
        analysis: AnalysisResource,
        sensor: SensorResource,
    ) -> dg.SensorResult:
        return new_week_tick(context, watch_from(warehouse, sources, analysis, sensor), clock())

    return dg.sensor(
        name=SENSOR_NAME,
        job=weekly_reports_job,
        minimum_interval_seconds=seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Every {seconds} s, looks at the app's transactions and app_events and runs "
            f"`{JOB_NAME}` for each complete week (Monday to Monday, in the partitions' zone) "
            "that has rows, or follows one with rows by at most two weeks (its silver rows "
            "carry those kids' trends), and was not processed yet: at most "
            "`sensor.max_weeks_per_tick` (config/pipeline.yaml) weeks with rows per tick; "
            "a longer backlog continues on the next tick. Late data: the last "
            "`sensor.late_data_weeks` processed weeks are re-checked (row count, first and "
            "last occurred_at, read from the occurred_at index alone); a week that changed "
            "runs again, and so do the two weeks after it, whose trends compare against "
            "it. A week materialised end to end from its current rows, by any run (this "
            "sensor's, the UI's, `dagster asset materialize`), is not run again: raw and "
            "silver record the source versions they read in each week's metadata. Run tags "
            "`kidsfin/reason` (new_week, late_data, trend_dependency) and "
            "`kidsfin/data_version` say why. New weeks' run keys carry the data version, so "
            "the same data never runs twice, even after a cursor reset; late-data keys also "
            "carry the tick. If the source database cannot be read the tick fails with the "
            "reason and the next tick retries."
        ),
    )(tick)


# The module's own, at the setting's default (the definitions build theirs with its value).
new_week_sensor = new_week_sensor_every(SensorResource().interval_seconds)
