"""Backfills: raw and silver over a range of weeks in one run equal week-by-week runs."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG as BACKFILL_TAG
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.backfill import execute_backfill_iteration

from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.definitions import build_definitions
from kidsfin_assets.defs.checks import RAW_KEY
from kidsfin_assets.defs.keys import ANALYSIS_EXPORT_KEY, GOLD_KEY, REPORTS_EXPORT_KEY, SILVER_KEY
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import kid_weekly_analysis, kid_weekly_reports
from kidsfin_assets_tests.helpers import (
    fetch,
    load_raw_before,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_demo import DemoSpec, generate

END = dt.date(2026, 3, 16)
WEEKS = [(END - dt.timedelta(weeks=i)).isoformat() for i in (3, 2, 1, 0)]


def silver_by_week(settings) -> dict[str, list[dict]]:
    table = kid_weekly_analysis
    rows = fetch(warehouse_engine(settings), sa.select(table).order_by(table.c.kid_id))
    found: dict[str, list[dict]] = {}
    for row in rows:
        row.pop("computed_at")
        found.setdefault(str(row["week_start"]), []).append(row)
    return found


def run_range(
    settings, first: str, last: str, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """One run over a partition range, as the UI's backfill launches for silver."""
    job = dg.define_asset_job("range_run", selection="group:raw or group:silver")
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("range_run").execute_in_process(
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        instance=instance,
    )


def metadata_by_week(result: dg.ExecuteInProcessResult, node: str) -> dict[str, dict[str, Any]]:
    """Each materialised week's metadata, as plain values."""
    return {
        str(m.partition): {key: value.value for key, value in m.metadata.items()}
        for m in result.asset_materializations_for_node(node)
    }


def run_messages(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(result.run_id)]


def test_each_week_of_a_range_run_carries_its_own_figures(monkeypatch, database_url) -> None:
    """A range run records on each week what that week's own run records (figures,
    preview, source versions), never the range's totals or its last week's preview; the
    totals are in the run's log only, and the undated rows are the app tables', not a
    week's."""
    settings = use_database(monkeypatch, database_url)
    engine = db.create_engine(settings.warehouse.database_url)
    generate(engine, settings.sources, DemoSpec(kids=12, weeks=5, end_week=END, seed=11))
    weeks = WEEKS[1:]
    load_raw_before(settings, weeks[0])  # silver reads raw's W-2 and W-1
    with dg.DagsterInstance.ephemeral() as instance:
        ranged = run_range(settings, weeks[0], weeks[-1], instance)
        assert ranged.success
        log = run_messages(instance, ranged)
    alone: dict[str, dict[str, dict[str, Any]]] = {"raw__kid_activity": {}}
    alone["silver__kid_weekly_analysis"] = {}
    for week in weeks:
        result = materialize_week(settings, week, selection="group:raw or group:silver")
        for node, found in alone.items():
            found |= metadata_by_week(result, node)

    for node, found in alone.items():
        assert metadata_by_week(ranged, node) == found, node
    raw = metadata_by_week(ranged, "raw__kid_activity")
    silver = metadata_by_week(ranged, "silver__kid_weekly_analysis")
    assert sorted(raw) == sorted(silver) == weeks
    assert len({m["rows_read"] for m in raw.values()}) == len(weeks)  # weeks differ
    for week in weeks:
        assert raw[week]["source_versions"].keys() == {week}
        assert list(silver[week]["source_versions"]) == [
            (dt.date.fromisoformat(week) - dt.timedelta(weeks=n)).isoformat() for n in (2, 1, 0)
        ]
        assert "weeks" not in silver[week]
        assert silver[week]["dagster/row_count"] == silver[week]["row_count"]
    previews = [m["preview"] for m in silver.values()]
    assert len(set(previews)) == len(weeks)  # each week's own preview
    # Totals of the range: the log's line, never a week's figure.
    rows_read = sum(m["rows_read"] for m in raw.values())
    first, last = weeks[0], weeks[-1]
    assert any(f"3 weeks {first} to {last}: {rows_read} rows read" in line for line in log)
    kid_rows = sum(m["row_count"] for m in silver.values())
    assert f"3 weeks {first} to {last}: {kid_rows} kid rows written" in log
    # Rows without a time belong to no week: no week plots them; the app tables say them.
    assert all("rows_without_time" not in m for m in raw.values())
    observed = {
        o.asset_key.to_user_string(): o.metadata["rows_without_time"].value
        for o in ranged.asset_observations_for_node("raw__kid_activity")
    }
    assert set(observed) == {"app/transactions", "app/app_events", "app/savings_goals"}
    assert any(n > 0 for n in observed.values())  # the demo's dirty rows include some


def test_one_run_over_a_range_equals_week_by_week(monkeypatch, pg_url) -> None:
    settings = use_database(monkeypatch, pg_url)
    engine = db.create_engine(settings.warehouse.database_url)
    generate(engine, settings.sources, DemoSpec(kids=15, weeks=6, end_week=END, seed=5))
    load_raw_before(settings, WEEKS[0])  # silver reads raw's W-2 and W-1
    result = run_range(settings, WEEKS[0], WEEKS[-1])
    assert result.success
    meta = result.asset_materializations_for_node("silver__kid_weekly_analysis")
    assert {m.partition for m in meta} == set(WEEKS)
    # One evaluation per week of the range, each on its week's partition.
    silver_checks = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "one_row_per_active_kid"
    ]
    assert sorted(e.partition for e in silver_checks) == WEEKS
    assert all(e.passed for e in silver_checks)
    ranged = silver_by_week(settings)
    assert sorted(ranged) == WEEKS
    with warehouse_engine(settings).begin() as conn:
        conn.execute(sa.delete(kid_weekly_analysis))
    for week in reversed(WEEKS):  # any order, once raw holds every week it reads
        assert materialize_week(settings, week, selection="group:raw or group:silver").success
    assert silver_by_week(settings) == ranged


# --- a real asset backfill, planned and launched by Dagster's backfill logic ---------------


def _backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})))


def _run_weeks(run: dg.DagsterRun) -> tuple[str, str]:
    """(first, last) week of a run: a single partition, or a range."""
    if "dagster/partition" in run.tags:
        return run.tags["dagster/partition"], run.tags["dagster/partition"]
    tags = run.tags
    return tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]


def _progress(instance: dg.DagsterInstance, backfill_id: str) -> tuple[int, int]:
    runs = _backfill_runs(instance, backfill_id)
    return len(runs), sum(run.is_finished for run in runs)


def _run_backfill_to_the_end(
    context: WorkspaceProcessContext, backfill_id: str, stall_timeout: float = 300.0
) -> BulkActionStatus:
    """What the daemon's backfill loop does, without its 30 s sleeps: an iteration, then
    wait for the runs it launched, until the backfill is no longer in progress.

    It gives up only when nothing moved (no run launched or finished) for `stall_timeout`:
    a fixed limit on the whole backfill failed on a loaded machine."""
    instance = context.instance
    seen, moved_at = (-1, -1), time.monotonic()

    def stalled() -> bool:
        nonlocal seen, moved_at
        now = _progress(instance, backfill_id)
        if now != seen:
            seen, moved_at = now, time.monotonic()
        return time.monotonic() - moved_at > stall_timeout

    while not stalled():
        list(execute_backfill_iteration(context, logging.getLogger("backfill")))
        status = instance.get_backfill(backfill_id).status
        if status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
            return status
        while any(not run.is_finished for run in _backfill_runs(instance, backfill_id)):
            if stalled():
                break
            time.sleep(0.5)
    raise AssertionError(
        f"backfill {backfill_id} made no progress for {stall_timeout} s (runs, finished: {seen})"
    )


def _check_statuses(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey, weeks: list[str]
) -> dict[str | None, str]:
    """The latest evaluation's status of `check` for each week, and for no partition."""
    storage = instance.event_log_storage
    found: dict[str | None, str] = {}
    for week in [*weeks, None]:
        where = PartitionKeyFilter(key=week)
        records = storage.get_asset_check_execution_history(check, 1, partition_filter=where)
        if records:
            found[week] = records[0].status.value
    return found


def test_asset_backfill_runs_silver_once_and_gold_per_week(monkeypatch, pg_url, tmp_path) -> None:
    """A backfill of every asset over three weeks, as the UI launches it: raw in one run
    over the range, then silver and the analysis export in one run over the range and the
    two weeks after it (their trends read raw's last weeks), gold and the reports export one
    run per week; every check shows each week's own result (a range run too)."""
    settings = use_database(monkeypatch, pg_url)
    engine = db.create_engine(settings.warehouse.database_url)
    generate(engine, settings.sources, DemoSpec(kids=4, weeks=5, end_week=END, seed=3))
    weeks = WEEKS[1:]
    load_raw_before(settings, weeks[0])  # silver reads raw's W-2 and W-1
    # Silver W reads raw W-2..W (its partition mapping), so Dagster re-runs silver and
    # what follows it for the two weeks after the range too, which read raw's last weeks.
    later = [(END + dt.timedelta(weeks=n)).isoformat() for n in (1, 2)]
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Runs start as soon as the backfill submits them (no run-queue daemon in this test).
    coordinator = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    instance = dg.DagsterInstance.local_temp(str(home), overrides={"run_coordinator": coordinator})
    target = ModuleTarget(
        module_name="kidsfin_assets.definitions",
        attribute=None,
        working_directory=str(PROJECT_ROOT),
        location_name="kidsfin",
    )
    with instance, WorkspaceProcessContext(instance, target) as context:
        asset_graph = context.create_request_context().asset_graph
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(),
            asset_graph=asset_graph,
            partition_names=weeks,
            asset_selection=list(asset_graph.materializable_asset_keys),
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title="a quarter, in small",
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        status = _run_backfill_to_the_end(context, backfill.backfill_id)
        runs = _backfill_runs(instance, backfill.backfill_id)

        checks = {
            key: _check_statuses(instance, key, weeks + later)
            for key in asset_graph.asset_check_keys
        }

    assert status == BulkActionStatus.COMPLETED_SUCCESS
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    raw = [r for r in runs if RAW_KEY in (r.asset_selection or set())]
    silver = [r for r in runs if SILVER_KEY in (r.asset_selection or set())]
    gold = [r for r in runs if GOLD_KEY in (r.asset_selection or set())]
    # BackfillPolicy.single_run: raw's range in one run, then silver's in one run.
    assert len(raw) == len(silver) == 1
    assert _run_weeks(raw[0]) == (weeks[0], weeks[-1]) and raw[0].asset_selection == {RAW_KEY}
    assert _run_weeks(silver[0]) == (weeks[0], later[-1])
    assert silver[0].asset_selection == {SILVER_KEY, ANALYSIS_EXPORT_KEY}
    # BackfillPolicy.multi_run(1): one week per gold run, so each run's cost is one week's.
    assert sorted(_run_weeks(r) for r in gold) == [(w, w) for w in weeks + later]
    assert all(r.asset_selection == {GOLD_KEY, REPORTS_EXPORT_KEY} for r in gold)
    assert len(runs) == 2 + len(weeks + later)  # nothing else: no run of an export alone
    # Each check has each week's own result, the range runs' raw and silver checks too,
    # and none without a week (which the UI would show beside "Skipped" weeks).
    raw_check = dg.AssetCheckKey(RAW_KEY, "quarantine_share_below_threshold")
    assert checks[raw_check] == dict.fromkeys(weeks, "SUCCEEDED"), checks
    assert all(
        found == dict.fromkeys(weeks + later, "SUCCEEDED")
        for key, found in checks.items()
        if key != raw_check
    ), checks
    # The app has no rows after the range, as raw's last load saw: the later weeks' silver
    # rows are the trends of kids active in the range's last weeks.
    assert sorted(silver_by_week(settings)) == weeks + later
    reports = fetch(warehouse_engine(settings), sa.select(kid_weekly_reports.c.week_start))
    assert sorted({str(r["week_start"]) for r in reports}) == weeks + later
