"""Silver reads raw's W-2, W-1 and W, and holds them to what raw last saw of the app
(raw_weeks.py): raw behind the app is waited for, or refused by name, never read."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import types

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.dagster_run import DagsterRun

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.defs.assets.raw import load_raw_week
from kidsfin_assets.defs.assets.silver import wait_for_raw
from kidsfin_assets.defs.jobs import JOB_NAME
from kidsfin_assets.defs.keys import RAW_KEY, SILVER_KEY
from kidsfin_assets.defs.raw_runs import raw_in_flight
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.warehouse.raw_weeks import (
    ABSENT,
    BEHIND,
    CURRENT,
    EMPTY,
    EMPTY_VERSION,
    Load,
    window_state,
)
from kidsfin_assets.warehouse.tables import kid_weekly_analysis, raw_weeks, source_tables
from kidsfin_assets_tests.helpers import (
    SourceDB,
    fetch,
    materialize_range,
    materialize_week,
    use_database,
    warehouse_engine,
)

TZ = "Asia/Ho_Chi_Minh"
W = Week(dt.date(2026, 3, 16), TZ)
W1, W2 = W.shifted(-1), W.shifted(-2)


def load(week: Week, seq: int, version: str, **seen: str) -> Load:
    return Load(week.start, seq, TZ, version, {week.key: version, **seen})


def state(*loads: Load) -> dict[str, str]:
    found = window_state(W, {x.week_start: x for x in loads})
    return {week.key: kind for week, kind in found.items()}


def test_the_newest_look_at_each_week_decides() -> None:
    # Raw W saw W-1 as "b"; raw W-1 holds "a" from before: behind. W-2 never loaded,
    # seen empty: empty.
    found = state(
        load(W1, 1, "a"),
        load(W, 2, "w", **{W1.key: "b", W2.key: EMPTY_VERSION}),
    )
    assert found == {W2.key: EMPTY, W1.key: BEHIND, W.key: CURRENT}
    # Raw W-1 loaded again after raw W looked: what it holds is the newest look.
    found = state(load(W1, 3, "c"), load(W, 2, "w", **{W1.key: "b", W2.key: EMPTY_VERSION}))
    assert found[W1.key] == CURRENT
    # Never loaded with rows, or never looked at: absent.
    assert state(load(W, 2, "w", **{W1.key: "b"}))[W1.key] == ABSENT
    assert state(load(W, 2, "w"))[W2.key] == ABSENT
    # W itself never loaded, seen empty by raw W-1's look ahead: an empty week to compute.
    assert state(load(W1, 1, "a", **{W.key: EMPTY_VERSION}))[W.key] == EMPTY
    assert state(load(W1, 1, "a", **{W.key: "rows"}))[W.key] == ABSENT


@pytest.fixture
def three_weeks(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Settings:
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    source.txns(
        (1, 1, "2026-03-03 10:00", "income", None, 100000),  # W-2
        (2, 1, "2026-03-10 10:00", "income", None, 100000),  # W-1
        (3, 1, "2026-03-17 10:00", "income", None, 150000),  # W
    )
    return settings


def silver_failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message


def test_a_raw_week_never_loaded_with_rows_is_refused_by_name(three_weeks: Settings) -> None:
    # Raw W past weeks it never loaded that have rows: raw refuses (silver's savings balance
    # sums raw's weeks, and would be wrong without a word).
    result = materialize_week(three_weeks, W.key, raise_on_error=False, raw_history=False)
    assert not result.success
    message = silver_failure(result)
    assert f"raw/kid_activity {W.key} would leave a gap" in message
    assert f"({W2.key}, {W1.key})" in message
    assert f"Materialise raw/kid_activity from {W2.key} to {W.key} first" in message
    assert not fetch(warehouse_engine(three_weeks), sa.select(raw_weeks))
    assert not fetch(warehouse_engine(three_weeks), sa.select(kid_weekly_analysis))
    # Loaded: the week runs, and its trend is against raw's W-1 and W-2.
    assert materialize_range(three_weeks, W2.key, W1.key).success
    assert materialize_week(three_weeks, W.key).success
    (row,) = fetch(warehouse_engine(three_weeks), sa.select(kid_weekly_analysis))
    assert (row["income_total_prev1"], row["income_total_trend"]) == (100000, "up")


def test_late_rows_in_w_minus_1_are_not_read_from_an_older_raw(three_weeks: Settings) -> None:
    assert materialize_range(three_weeks, W2.key, W.key, "group:raw or group:silver").success
    SourceDB(three_weeks).txns((4, 1, "2026-03-11 10:00", "income", None, 50000))  # late, W-1
    # W again (raw W sees W-1 changed; raw W-1 holds the older rows): refused.
    result = materialize_week(three_weeks, W.key, raise_on_error=False)
    assert not result.success
    assert f"raw/kid_activity {W1.key} was materialised before the app's rows" in (
        silver_failure(result)
    )
    # The sensor's late-data runs: W-1, then W. Silver W reads the late row.
    assert materialize_week(three_weeks, W1.key).success
    assert materialize_week(three_weeks, W.key).success
    t = kid_weekly_analysis
    rows = fetch(warehouse_engine(three_weeks), sa.select(t).where(t.c.week_start == W.start))
    assert rows[0]["income_total_prev1"] == 150000


def silver_waits_until_raw_loads(settings: Settings, loading: Week) -> None:
    """Silver W's wait returns once raw `loading`, loaded 1 s later by a run said to be in
    flight until then, is there (and not before)."""
    context = types.SimpleNamespace(log=logging.getLogger("test"))
    loaded = threading.Event()

    def load_later() -> None:
        time.sleep(1.0)
        assert materialize_week(settings, loading.key, selection="group:raw").success
        loaded.set()

    def in_flight(week: Week) -> str | None:
        return None if loaded.is_set() or week != loading else f"the run of {loading.key}"

    loader = threading.Thread(target=load_later)
    loader.start()
    began = time.monotonic()
    engine = warehouse_engine(settings)
    wait_for_raw(context, engine, W, dt.date(2026, 1, 5), in_flight)  # type: ignore[arg-type]
    loader.join()
    assert loaded.is_set() and time.monotonic() - began >= 1.0


def test_silver_waits_for_the_run_loading_a_raw_week(three_weeks: Settings) -> None:
    """The sensor starts W-1's and W's runs together: W's silver waits for W-1's raw."""
    assert materialize_range(three_weeks, W2.key, W2.key).success
    engine = warehouse_engine(three_weeks)
    # Raw W loaded while W-1's run is still to come (as the sensor's runs race; the asset
    # would refuse the gap with no such run in this test's instance).
    with engine.begin() as conn:
        load_raw_week(conn, three_weeks.sources, source_tables(three_weeks.sources), W)
    silver_waits_until_raw_loads(three_weeks, W1)
    # Nothing in flight: no waiting, the failure at once.
    SourceDB(three_weeks).txns((5, 1, "2026-03-12 10:00", "income", None, 1000))
    assert materialize_week(three_weeks, W.key, selection="group:raw").success
    with pytest.raises(dg.Failure, match="was materialised before the app's rows"):
        context = types.SimpleNamespace(log=logging.getLogger("test"))
        wait_for_raw(context, engine, W, dt.date(2026, 1, 5), lambda week: None)  # type: ignore[arg-type]


def test_a_run_loading_a_raw_week_is_in_flight_until_raw_is_done() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        context = types.SimpleNamespace(instance=instance, run_id="this run")
        assert raw_in_flight(context, W1) is None  # type: ignore[arg-type]
        for run_id, status, tags, selection, job in (
            ("done", dg.DagsterRunStatus.SUCCESS, {"dagster/partition": W1.key}, None, JOB_NAME),
            ("gold", dg.DagsterRunStatus.STARTED, {"dagster/partition": W1.key}, {SILVER_KEY}, "x"),
            (
                "other week",
                dg.DagsterRunStatus.STARTED,
                {"dagster/partition": W.key},
                None,
                JOB_NAME,
            ),
        ):
            instance.add_run(
                DagsterRun(
                    job_name=job,
                    run_id=run_id,
                    status=status,
                    tags=tags,
                    asset_selection=frozenset(selection) if selection else None,
                )
            )
        assert raw_in_flight(context, W1) is None  # type: ignore[arg-type]
        ranged = {
            "dagster/asset_partition_range_start": W2.key,
            "dagster/asset_partition_range_end": W.key,
        }
        instance.add_run(
            DagsterRun(
                job_name="__ASSET_JOB",
                run_id="backfill",
                status=dg.DagsterRunStatus.STARTING,
                tags=ranged,
                asset_selection=frozenset({RAW_KEY}),
            )
        )
        assert raw_in_flight(context, W1) == "backfill"  # type: ignore[arg-type]


def test_a_backfill_that_has_not_loaded_a_raw_week_yet_is_in_flight() -> None:
    """A backfill in progress targeting raw W-1 (its raw run perhaps not launched yet) is
    waited for, until it has materialised or failed that week; the run's own backfill and
    finished backfills are not."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    from kidsfin_assets.definitions import build_definitions
    from kidsfin_assets.defs.resources import load_settings

    graph = build_definitions(load_settings()).resolve_asset_graph()
    repository = types.SimpleNamespace(asset_graph=graph)
    with dg.DagsterInstance.ephemeral() as instance:

        def context(backfill: str | None = None) -> types.SimpleNamespace:
            tags = {"dagster/backfill": backfill} if backfill else {}
            run = types.SimpleNamespace(tags=tags)
            return types.SimpleNamespace(
                instance=instance, run_id="this run", run=run, repository_def=repository
            )

        assert raw_in_flight(context(), W1) is None  # type: ignore[arg-type]
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="quarter",
            asset_graph=graph,
            partition_names=[W2.key, W1.key],
            asset_selection=[RAW_KEY, SILVER_KEY],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        assert raw_in_flight(context(), W1) == "backfill quarter"  # type: ignore[arg-type]
        assert raw_in_flight(context(), W) is None  # type: ignore[arg-type]
        assert raw_in_flight(context("quarter"), W1) is None  # type: ignore[arg-type]
        instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
        assert raw_in_flight(context(), W1) is None  # type: ignore[arg-type]


G = W.shifted(-4)  # a week the sensor's run of it had yet to load when raw went past it


@pytest.fixture
def saved_in_g(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Settings:
    """Rows from W-6 on; kid 1 saves 50.000 đ in G (W-4) and 10.000 đ in W."""
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    source.txns(
        (1, 1, "2026-02-03 10:00", "income", None, 100000),  # W-6
        (2, 1, "2026-02-10 10:00", "income", None, 100000),  # W-5
        (3, 1, "2026-02-17 10:00", "saving", None, 50000),  # G = W-4
        (4, 1, "2026-02-24 10:00", "income", None, 100000),  # W-3
        (5, 1, "2026-03-03 10:00", "income", None, 100000),  # W-2
        (6, 1, "2026-03-10 10:00", "income", None, 100000),  # W-1
        (7, 1, "2026-03-18 10:00", "saving", None, 10000),  # W
    )
    return settings


def savings_balance(settings: Settings, week: Week) -> float:
    t = kid_weekly_analysis
    (row,) = fetch(warehouse_engine(settings), sa.select(t).where(t.c.week_start == week.start))
    return float(row["savings_balance"])


def test_silver_never_sums_past_a_raw_week_whose_run_failed(saved_in_g: Settings) -> None:
    """The sensor's runs of G and of W-3..W start together; raw W-3 may load past G while
    G's run is in flight. If G's run then fails before its raw step, silver W must not
    carry a savings balance without G's 50.000 đ (it did: 10.000 đ, and a success)."""
    settings = saved_in_g
    assert materialize_range(settings, W.shifted(-6).key, W.shifted(-5).key).success
    with dg.DagsterInstance.ephemeral() as instance:
        run_of_g = DagsterRun(
            job_name=JOB_NAME,
            run_id="run-of-g",
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": G.key},
        )
        instance.add_run(run_of_g)
        # In flight: raw loads W-3..W past G, and records that it did.
        assert materialize_range(settings, W.shifted(-3).key, W.key, instance=instance).success
        instance.report_run_failed(run_of_g)  # G's run dies before its raw step
        result = materialize_week(
            settings, W.key, "group:silver", raise_on_error=False, instance=instance
        )
    assert not result.success
    message = silver_failure(result)
    assert f"raw/kid_activity {G.key} has app rows and is not loaded" in message
    assert "run-of-g" in message and f"Materialise raw/kid_activity for {G.key}" in message
    assert not fetch(warehouse_engine(settings), sa.select(kid_weekly_analysis))
    # G loaded (the sensor's next run of it): silver W sums it.
    assert materialize_week(settings, G.key, "group:raw").success
    assert materialize_week(settings, W.key, "group:silver").success
    assert savings_balance(settings, W) == 60000


def test_silver_waits_for_the_run_loading_a_week_raw_went_past(saved_in_g: Settings) -> None:
    settings = saved_in_g
    assert materialize_range(settings, W.shifted(-6).key, W.shifted(-5).key).success
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_run(
            DagsterRun(
                job_name=JOB_NAME,
                run_id="run-of-g",
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": G.key},
            )
        )
        assert materialize_range(settings, W.shifted(-3).key, W.key, instance=instance).success
    silver_waits_until_raw_loads(settings, G)
    assert materialize_week(settings, W.key, "group:silver").success
    assert savings_balance(settings, W) == 60000
