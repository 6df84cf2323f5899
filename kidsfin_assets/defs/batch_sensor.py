"""Batch API mode in Dagster: the sensor that collects finished batches, the job it runs,
and the job that cancels a week's open batches."""

import datetime as dt
from collections import defaultdict
from typing import Any

import dagster as dg
import openai as openai_sdk

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.defs.jobs import COLLECT_JOB_NAME, collect_batches_job
from kidsfin_assets.defs.resources import SensorResource, WarehouseResource
from kidsfin_assets.reports.batches import TERMINAL, open_batches
from kidsfin_assets.reports.openai_client import OpenAIReportsResource
from kidsfin_assets.warehouse.tables import openai_batches

SENSOR_NAME = "openai_batch_sensor"


def _week_is_ready(rows: list[dict[str, Any]], client: openai_sdk.OpenAI) -> bool:
    """Every batch of the week has finished (or was never created: its run died)."""
    now = dt.datetime.now(dt.UTC).timestamp()
    for row in rows:
        if row["batch_id"] is None:
            if now < (row["preparing_until"] or 0.0):
                return False  # its run is still uploading or creating it
            continue
        if client.batches.retrieve(row["batch_id"]).status not in TERMINAL:
            return False
    return True


def openai_batch_tick(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    openai: OpenAIReportsResource,
) -> dg.SensorResult | dg.SkipReason:
    with warehouse.get_engine().connect() as conn:
        rows = open_batches(conn)
    if not rows:
        return dg.SkipReason("no open batches")
    if openai.offline:
        return dg.SkipReason("open batches, but OPENAI_API_KEY is not set")
    client = openai.new_client()
    by_week: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_week[row["week_start"]].append(row)
    requests = []
    for week_start, week_rows in sorted(by_week.items()):
        if _week_is_ready(week_rows, client):
            ids = "-".join(sorted(r["batch_id"] or r["id"] for r in week_rows))
            requests.append(dg.RunRequest(partition_key=week_start.isoformat(), run_key=f"{ids}"))
    if not requests:
        return dg.SkipReason(f"{len(rows)} batches still open")
    return dg.SensorResult(run_requests=requests)


def openai_batch_sensor_every(seconds: int) -> dg.SensorDefinition:
    """The sensor at an interval (`sensor.batch_interval_seconds` in the definitions)."""
    return dg.sensor(
        name=SENSOR_NAME,
        job=collect_batches_job,
        minimum_interval_seconds=seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Every {seconds} s, asks OpenAI about the open Batch API batches recorded in "
            f"`openai_batches`, and runs `{COLLECT_JOB_NAME}` for each week whose batches "
            "have all finished (completed, expired, cancelled or failed): the run collects "
            "their answers and submits again what must be."
        ),
    )(openai_batch_tick)


# The module's own, at the setting's default (the definitions build theirs with its value).
openai_batch_sensor = openai_batch_sensor_every(SensorResource().batch_interval_seconds)


@dg.op(
    description="Cancels a week's open Batch API batches; what they answered is kept.",
    config_schema={
        "week": dg.Field(str, description="The week (its Monday, YYYY-MM-DD) to cancel.")
    },
)
def cancel_week_batches(
    context: dg.OpExecutionContext,
    warehouse: WarehouseResource,
    openai: OpenAIReportsResource,
) -> None:
    week_key = context.op_config["week"]
    week_start = Week.from_key(week_key, "UTC").start
    with warehouse.get_engine().connect() as conn:
        rows = [r for r in open_batches(conn, week_start) if r["batch_id"]]
    client = openai.new_client()
    for row in rows:
        batch = client.batches.cancel(row["batch_id"])
        context.log.info(f"batch {row['batch_id']}: {batch.status}")
        with warehouse.get_engine().begin() as conn:
            t = openai_batches
            conn.execute(t.update().where(t.c.id == row["id"]).values(status=batch.status))
    context.log.info(
        f"{len(rows)} batches of week {week_key} cancelled; the next gold run of the week "
        "collects their partial answers"
    )


@dg.job(
    name="cancel_openai_batches",
    description="Cancels one week's open Batch API batches (run config: ops: "
    "{cancel_week_batches: {config: {week: YYYY-MM-DD}}}). Partial results are kept.",
)
def cancel_openai_batches() -> None:
    cancel_week_batches()
