"""new_week_sensor: runs every complete week once, and again when its source rows change.

What a tick decides is sensor_plan.py; what it asks the database, source_activity.py.
Here: the Dagster sensor, which reads its settings from resources and leaves out weeks
already materialised at their data version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg

from kidsfin_assets.jobs import JOB_NAME, weekly_reports_job
from kidsfin_assets.keys import REPORTS_EXPORT_KEY
from kidsfin_assets.resources import (
    AnalysisResource,
    SensorLimitsResource,
    SourcesResource,
    WarehouseResource,
)
from kidsfin_assets.sensor_plan import (
    DATA_VERSION_TAG,
    NEW_WEEK,
    REASON_TAG,
    SENSOR_NAME,
    InvalidCursorError,
    Watch,
    evaluate,
)
from kidsfin_assets.weeks import weekly_partitions

DEFAULT_INTERVAL_SECONDS = 300  # sensor.interval_seconds in config/pipeline.yaml


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# The sensor's notion of "now"; tests replace it.
clock: Callable[[], dt.datetime] = _utc_now


def materialised_at_version(instance: dg.DagsterInstance, week: str, version: str) -> bool:
    """The week's reports export, the job's last step, came from a run at `version`: the
    week went end to end on the data it has now (a `make demo` run, say)."""
    where = dg.AssetRecordsFilter(asset_key=REPORTS_EXPORT_KEY, asset_partitions=[week])
    records = instance.fetch_materializations(where, limit=1).records
    if not records:
        return False
    run = instance.get_run_by_id(records[0].run_id)
    return run is not None and run.tags.get(DATA_VERSION_TAG) == version


def _not_done_yet(
    context: dg.SensorEvaluationContext, requests: list[dg.RunRequest]
) -> tuple[list[dg.RunRequest], list[str]]:
    """New weeks already materialised at their data version are processed, not run again.
    Late-data and trend runs always go: their week's data (or W-1's, W-2's) changed."""
    kept, done = [], []
    for request in requests:
        week, tags = request.partition_key or "", request.tags
        if tags[REASON_TAG] == NEW_WEEK and materialised_at_version(
            context.instance, week, tags[DATA_VERSION_TAG]
        ):
            done.append(week)
        else:
            kept.append(request)
    return kept, done


def watch_from(
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    limits: SensorLimitsResource,
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
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    sensor_limits: SensorLimitsResource,
) -> dg.SensorResult:
    watch = watch_from(warehouse, sources, analysis, sensor_limits)
    now = clock()
    try:
        result = evaluate(watch, context.cursor, now)
    except InvalidCursorError as exc:
        # Safe to start over: run keys stop a week's same data from running again.
        context.log.warning(f"{exc}; starting from an empty cursor")
        result = evaluate(watch, None, now)
    requests, done = _not_done_yet(context, result.run_requests)
    if done:
        context.log.info(
            f"weeks {', '.join(done)}: already materialised at their data version, not run again"
        )
    for request in requests:
        tags = request.tags
        context.log.info(
            f"week {request.partition_key}: {tags[REASON_TAG]} "
            f"(data version {tags[DATA_VERSION_TAG]}, run key {request.run_key})"
        )
    if not requests:
        reason = result.summary
        if done:
            reason = f"weeks {', '.join(done)} already materialised at their data version"
        return dg.SensorResult(skip_reason=reason, cursor=result.cursor)
    return dg.SensorResult(run_requests=requests, cursor=result.cursor)


def new_week_sensor_every(seconds: int) -> dg.SensorDefinition:
    """The sensor at an interval: Dagster fixes it when the code location loads, so the
    definitions give it `sensor.interval_seconds` (the module's own uses the default)."""
    return dg.sensor(
        name=SENSOR_NAME,
        job=weekly_reports_job,
        minimum_interval_seconds=seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Every {seconds} s, looks at the app's transactions and app_events and runs "
            f"`{JOB_NAME}` for each complete week (Monday to Monday, `analysis.timezone`) "
            "that has rows, or follows one with rows by at most two weeks (its silver rows "
            "carry those kids' trends), and was not processed yet: at most "
            "`sensor_limits.max_weeks_per_tick` weeks with rows per tick; a longer backlog "
            "continues on the next tick. Late data: the last "
            "`sensor_limits.late_data_weeks` processed weeks are re-checked (row count, "
            "first and last occurred_at, read from the occurred_at index alone); a week "
            "that changed runs again, and so do the two weeks after it, whose trends "
            "compare against it. Run tags `kidsfin/reason` (new_week, late_data, "
            "trend_dependency) and `kidsfin/data_version` say why. New weeks' run keys "
            "carry the data version, so the same data never runs twice, even after a "
            "cursor reset; late-data keys also carry the tick. If the source database "
            "cannot be read the tick fails with the reason and the next tick retries."
        ),
    )(new_week_tick)


new_week_sensor = new_week_sensor_every(DEFAULT_INTERVAL_SECONDS)
