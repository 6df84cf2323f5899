"""Which run is loading a raw week right now, if any.

Raw loads past a week it skipped only while another run is loading that week, and silver
waits for the runs loading the raw weeks it reads: both ask here, of Dagster's own runs
and backfills (the sensor's runs of several new weeks start together).
"""

import dagster as dg

# Not exported by `dagster` 1.13 (pinned <1.14): what a backfill in progress targets.
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.defs.jobs import JOB_NAME
from kidsfin_assets.defs.keys import RAW_KEY

# The statuses of a run that may still load a raw week.
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def raw_in_flight(context: dg.AssetExecutionContext, week: Week) -> str | None:
    """The id of another unfinished run that will materialise raw `week` and has not yet,
    if any: the sensor's runs of W, W+1 and W+2 start together, and silver W+1 must read
    raw W as W's run loads it, not as it was."""
    key = week.key
    instance = context.instance
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if run.run_id == context.run_id:
            continue
        if run.asset_selection is not None:
            if RAW_KEY not in run.asset_selection:
                continue
        elif run.job_name != JOB_NAME:
            continue
        tags = run.tags
        first = tags.get("dagster/asset_partition_range_start", tags.get("dagster/partition"))
        last = tags.get("dagster/asset_partition_range_end", tags.get("dagster/partition"))
        if first is None or last is None or not first <= key <= last:
            continue
        where = dg.AssetRecordsFilter(asset_key=RAW_KEY, asset_partitions=[key])
        latest = instance.fetch_materializations(where, limit=1).records
        if latest and latest[0].run_id == run.run_id:
            continue  # that run's raw step is done
        return run.run_id
    return backfill_in_flight(context, key)


def backfill_in_flight(context: dg.AssetExecutionContext, key: str) -> str | None:
    """`backfill <id>` when a backfill still in progress (not this run's own) targets raw
    `key` and has neither materialised nor failed it yet: its raw run may not be launched
    yet (the backfill daemon launches it), and silver should wait for it, not fail."""
    try:
        repository = context.repository_def
    except Exception:  # a run outside any code location (dg.materialize): no backfills
        return None
    own = (getattr(context, "run", None) and context.run.tags.get("dagster/backfill")) or None
    requested = BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])
    wanted = AssetKeyPartitionKey(RAW_KEY, key)
    for backfill in context.instance.get_backfills(filters=requested):
        if backfill.backfill_id == own or not backfill.is_asset_backfill:
            continue
        if RAW_KEY not in (backfill.asset_selection or ()):
            continue
        try:
            data = backfill.get_asset_backfill_data(repository.asset_graph)
        except Exception:  # a backfill of other definitions: not this code's to read
            continue
        if wanted in data.get_targeted_partitions_without_materialization_status():
            return f"backfill {backfill.backfill_id}"
    return None
