"""new_week_sensor against a real PostgreSQL source database, with a fixed "now".

NOW is Wednesday 2026-03-18 12:00 local: week 2026-03-16 is in progress, 2026-03-09 is
the last complete week, and the partitions start at 2026-01-05 (the default). The sensors
under test are built with that "now" (`new_week_sensor_every(..., clock=...)`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.definitions import build_definitions, pipeline_assets, run_resources
from kidsfin_assets.defs import sensor_plan
from kidsfin_assets.defs.jobs import JOB_NAME, weekly_reports_job
from kidsfin_assets.defs.resources import SensorResource, Settings
from kidsfin_assets.defs.sensor_plan import (
    CHANGED_WEEK_TAG,
    DATA_VERSION_TAG,
    REASON_TAG,
    Evaluation,
    Materialised,
    SourceDatabaseError,
    Watch,
)
from kidsfin_assets.defs.sensors import new_week_sensor, new_week_sensor_every, watch_from
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.source_activity import (
    Fingerprint,
    TableFingerprint,
    source_versions,
    week_fingerprint,
)
from kidsfin_assets.warehouse.tables import source_tables
from kidsfin_assets_tests.helpers import TZ, SourceDB, local, materialize_week, use_database

NOW = local("2026-03-18 12:00")
FIVE_WEEKS = ["2026-02-09", "2026-02-16", "2026-02-23", "2026-03-02", "2026-03-09"]
DOWN_URL = "postgresql://postgres:s3cret@127.0.0.1:1/x"  # nothing listens on port 1


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Settings:
    return use_database(monkeypatch, pg_url)


@pytest.fixture
def source(settings: Settings) -> SourceDB:
    source = SourceDB(settings)
    source.kids((1, "An"))
    return source


def add_week(source: SourceDB, week: str, row_id: int) -> None:
    """One transaction and one app event on the Tuesday of `week`."""
    tuesday = dt.date.fromisoformat(week) + dt.timedelta(days=1)
    source.txns((row_id, 1, f"{tuesday} 10:00", "income", None, 50000))
    source.events((row_id, 1, f"{tuesday} 11:00", "login"))


def seed_five_weeks(source: SourceDB) -> None:
    for n, week in enumerate(FIVE_WEEKS, start=1):
        add_week(source, week, n)


def watch(settings: Settings, first_week: dt.date | None = None) -> Watch:
    """What a tick looks at with `settings` (and partitions from `first_week`)."""
    watched = watch_from(settings.warehouse, settings.sources, settings.analysis, settings.sensor)
    return dataclasses.replace(watched, first_week=first_week or watched.first_week)


def evaluate(
    settings: Settings, cursor: str | None, now: dt.datetime, first_week: dt.date | None = None
) -> Evaluation:
    """One tick's plan, watching what `settings` say."""
    return sensor_plan.evaluate(watch(settings, first_week), cursor, now)


# The sensor as Dagster runs it, with the tests' "now".
sensor_at_now = new_week_sensor_every(300, clock=lambda: NOW)


def requested(result: Evaluation) -> list[tuple[str, str]]:
    return [(r.partition_key, r.tags[REASON_TAG]) for r in result.run_requests]


def run_keys(result: Evaluation) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result.run_requests}


def fingerprint(settings: Settings, week: str) -> Fingerprint:
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    with engine.connect() as conn:
        return week_fingerprint(conn, source_tables(settings.sources), Week.from_key(week, TZ))


def test_empty_database_requests_nothing(settings: Settings, source: SourceDB) -> None:
    result = evaluate(settings, None, NOW)
    assert result.run_requests == []
    assert json.loads(result.cursor) == {"v": 2, "through": None, "fp": {}}

    with dg.build_sensor_context(resources=run_resources(settings)) as context:
        outcome = new_week_sensor(context)
    assert isinstance(outcome, dg.SensorResult)
    assert not outcome.run_requests
    assert outcome.skip_reason is not None
    assert "nothing new or changed" in outcome.skip_reason.skip_message


def test_five_complete_weeks_are_requested_once_each(settings: Settings, source: SourceDB) -> None:
    seed_five_weeks(source)
    source.txns((99, 1, "2026-01-01 09:00", "income", None, 1000))  # before the first partition

    result = evaluate(settings, None, NOW)

    # The row before the first partition is W-1 of 2026-01-05 and W-2 of 2026-01-12: both
    # have a silver row for the kid (trends), though no rows of their own.
    trailing = ["2026-01-05", "2026-01-12"]
    assert requested(result) == [(w, "new_week") for w in trailing + FIVE_WEEKS]
    for r in result.run_requests:
        version = r.tags[DATA_VERSION_TAG]
        assert r.run_key == f"{r.partition_key}:{version}"
        assert version == fingerprint(settings, r.partition_key).version
    assert len({r.tags[DATA_VERSION_TAG] for r in result.run_requests}) == 6  # 2 empty
    cursor = json.loads(result.cursor)
    assert cursor["through"] == "2026-03-09"
    assert sorted(cursor["fp"]) == FIVE_WEEKS
    # The fingerprint: rows, first and last occurred_at (UTC) of each table in the week.
    assert fingerprint(settings, "2026-02-16") == Fingerprint(
        TableFingerprint(1, "2026-02-17T03:00:00+00:00", "2026-02-17T03:00:00+00:00"),
        TableFingerprint(1, "2026-02-17T04:00:00+00:00", "2026-02-17T04:00:00+00:00"),
    )


def test_a_sixth_week_completing_is_requested_alone(settings: Settings, source: SourceDB) -> None:
    seed_five_weeks(source)
    first = evaluate(settings, None, NOW)
    add_week(source, "2026-03-16", 6)  # the week in progress at NOW

    assert requested(evaluate(settings, first.cursor, NOW)) == []
    later = evaluate(settings, first.cursor, NOW + dt.timedelta(weeks=1))

    assert requested(later) == [("2026-03-16", "new_week")]
    assert json.loads(later.cursor)["through"] == "2026-03-16"


def test_a_late_row_in_week_2_reruns_it_and_the_two_weeks_after(
    settings: Settings, source: SourceDB
) -> None:
    seed_five_weeks(source)
    first = evaluate(settings, None, NOW)
    source.txns((100, 1, "2026-02-19 20:00", "spending", "snacks", 20000))

    second = evaluate(settings, first.cursor, NOW)

    assert requested(second) == [
        ("2026-02-16", "late_data"),
        ("2026-02-23", "trend_dependency"),
        ("2026-03-02", "trend_dependency"),
    ]
    version = fingerprint(settings, "2026-02-16").version
    assert version != next(
        r.tags[DATA_VERSION_TAG] for r in first.run_requests if r.partition_key == "2026-02-16"
    )
    tick = int(NOW.timestamp())
    assert run_keys(second) == {
        "2026-02-16": f"2026-02-16:{version}:{tick}",
        "2026-02-23": f"2026-02-23:after:2026-02-16:{version}:{tick}",
        "2026-03-02": f"2026-03-02:after:2026-02-16:{version}:{tick}",
    }
    assert {r.tags.get(CHANGED_WEEK_TAG) for r in second.run_requests[1:]} == {"2026-02-16"}
    assert set(run_keys(second).values()).isdisjoint(run_keys(first).values())
    assert requested(evaluate(settings, second.cursor, NOW)) == []


def test_data_that_changes_back_runs_again_under_a_new_run_key(
    settings: Settings, source: SourceDB
) -> None:
    seed_five_weeks(source)
    first = evaluate(settings, None, NOW)
    source.txns((100, 1, "2026-02-19 20:00", "spending", "snacks", 20000))
    added = evaluate(settings, first.cursor, NOW + dt.timedelta(minutes=5))
    with db.create_engine(settings.warehouse.database_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM transactions WHERE txn_id = 100"))
    removed = evaluate(settings, added.cursor, NOW + dt.timedelta(minutes=10))

    # Back to the first tick's data version, but silver still holds the deleted row.
    week = "2026-02-16"
    assert requested(removed)[0] == (week, "late_data")
    assert (
        removed.run_requests[0].tags[DATA_VERSION_TAG]
        == (next(r for r in first.run_requests if r.partition_key == week).tags[DATA_VERSION_TAG])
    )
    used = {*run_keys(first).values(), *run_keys(added).values()}
    assert used.isdisjoint(run_keys(removed).values())


def test_empty_weeks_after_activity_are_run_for_the_trends(
    settings: Settings, source: SourceDB
) -> None:
    """A kid active in W-1 or W-2 has a silver row (and a report) in W, rows or not."""
    add_week(source, "2026-02-09", 1)
    add_week(source, "2026-02-16", 2)
    thursday = local("2026-02-26 12:00")  # 2026-02-16 is the last complete week

    first = evaluate(settings, None, thursday)
    assert requested(first) == [("2026-02-09", "new_week"), ("2026-02-16", "new_week")]
    # Two weeks on, the two empty weeks after the last activity complete, one by one.
    second = evaluate(settings, first.cursor, thursday + dt.timedelta(weeks=1))
    assert requested(second) == [("2026-02-23", "new_week")]
    third = evaluate(settings, second.cursor, NOW)
    assert requested(third) == [("2026-03-02", "new_week")]  # 2026-03-09: nobody active
    assert requested(evaluate(settings, third.cursor, NOW)) == []
    # From scratch, the same four weeks at once.
    assert [w for w, _ in requested(evaluate(settings, None, NOW))] == [
        "2026-02-09",
        "2026-02-16",
        "2026-02-23",
        "2026-03-02",
    ]
    # A late row in 2026-02-16 re-runs the empty weeks that read it, too.
    source.txns((100, 1, "2026-02-19 20:00", "spending", "snacks", 20000))
    late = evaluate(settings, third.cursor, NOW + dt.timedelta(minutes=5))
    assert requested(late) == [
        ("2026-02-16", "late_data"),
        ("2026-02-23", "trend_dependency"),
        ("2026-03-02", "trend_dependency"),
    ]
    # A row arriving in a processed empty week is late data for it.
    source.events((300, 1, "2026-02-24 09:00", "login"))
    again = evaluate(settings, late.cursor, NOW + dt.timedelta(minutes=10))
    assert requested(again) == [
        ("2026-02-23", "late_data"),
        ("2026-03-02", "trend_dependency"),
        ("2026-03-09", "new_week"),  # its W-2 has a kid active now
    ]


def test_late_rows_in_an_empty_week_count_inside_the_window_only(
    settings: Settings, source: SourceDB
) -> None:
    seed_five_weeks(source)
    first = evaluate(settings, None, NOW)
    # The window is the 8 weeks through 2026-03-09: 2026-01-19 .. 2026-03-09.
    source.txns((200, 1, "2026-01-13 09:00", "income", None, 1000))  # week 2026-01-12: outside
    source.events((201, 1, "2026-02-03 09:00", "login"))  # week 2026-02-02: was empty

    second = evaluate(settings, first.cursor, NOW)

    assert requested(second) == [
        ("2026-02-02", "late_data"),
        ("2026-02-09", "trend_dependency"),
        ("2026-02-16", "trend_dependency"),
    ]
    assert "2026-02-02" in json.loads(second.cursor)["fp"]


def test_the_week_in_progress_is_not_requested(settings: Settings, source: SourceDB) -> None:
    source.txns(
        (1, 1, "2026-03-15 23:59", "income", None, 1000),  # last minute of week 2026-03-09
        (2, 1, "2026-03-16 00:00", "income", None, 1000),  # first minute of week 2026-03-16
        (3, 1, "2026-03-18 09:00", "spending", "toys", 500),
    )
    source.events((1, 1, "2026-03-17 08:00", "login"))

    result = evaluate(settings, None, NOW)
    assert requested(result) == [("2026-03-09", "new_week")]
    assert requested(evaluate(settings, result.cursor, NOW)) == []

    # Complete at the very instant of the next Monday 00:00.
    monday = evaluate(settings, result.cursor, local("2026-03-23 00:00"))
    assert requested(monday) == [("2026-03-16", "new_week")]


def test_a_second_tick_with_nothing_new_requests_nothing(
    settings: Settings, source: SourceDB
) -> None:
    seed_five_weeks(source)
    first = evaluate(settings, None, NOW)
    second = evaluate(settings, first.cursor, NOW)

    assert second.run_requests == []
    assert second.cursor == first.cursor
    assert second.summary.startswith("nothing new or changed")
    # Had the cursor been lost, the same run keys come back: Dagster drops them as done.
    assert run_keys(evaluate(settings, None, NOW)) == run_keys(first)


def test_a_database_that_is_down_fails_the_tick_clearly_and_the_next_tick_recovers(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    up = use_database(monkeypatch, pg_url)
    seed_five_weeks(SourceDB(up))
    down = use_database(monkeypatch, DOWN_URL)

    with pytest.raises(SourceDatabaseError) as failure:
        evaluate(down, None, NOW)
    message = str(failure.value)
    assert "new_week_sensor: could not read the source database" in message
    assert "postgresql+psycopg2://postgres:***@127.0.0.1:1/x" in message
    assert "Connection refused" in message
    assert "s3cret" not in message
    assert "\n" not in message

    # Through Dagster: the tick raises, so the stored cursor is left as it was.
    context = dg.build_sensor_context(cursor=None, resources=run_resources(down))
    with context, pytest.raises(SourceDatabaseError):
        sensor_at_now(context)

    recovered = evaluate(use_database(monkeypatch, pg_url), None, NOW)
    assert requested(recovered) == [(w, "new_week") for w in FIVE_WEEKS]


def tick_context(
    settings: Settings, instance: DagsterInstance, cursor: str | None, defs: dg.Definitions
) -> dg.SensorEvaluationContext:
    """A tick's context as the daemon gives it: the instance, cursor and resources."""
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=run_resources(settings)
    )


def test_the_sensor_definition_runs_in_dagster(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    settings = use_database(monkeypatch, pg_url, KIDSFIN_SENSOR__INTERVAL_SECONDS="60")
    seed_five_weeks(SourceDB(settings))
    loaded = build_definitions(settings)  # what Dagster loads: the interval from settings
    sensor = loaded.resolve_sensor_def("new_week_sensor")

    assert sensor.name == "new_week_sensor"
    assert sensor.minimum_interval_seconds == 60
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == JOB_NAME
    assert "late data" in (sensor.description or "").lower()
    resolved = loaded.resolve_job_def(JOB_NAME)
    assert {k.to_user_string() for k in resolved.asset_layer.executable_asset_keys} == {
        "raw/kid_activity",
        "silver/kid_weekly_analysis",
        "gold/kid_weekly_reports",
        "exports/kids_analysis_json",
        "exports/kids_reports_json",
    }

    # The same sensor at the tests' "now", with the job it launches.
    sensor = new_week_sensor_every(60, clock=lambda: NOW)
    defs = dg.Definitions(
        assets=pipeline_assets,
        jobs=[weekly_reports_job],
        sensors=[sensor],
        resources=run_resources(settings),
    )
    with DagsterInstance.ephemeral() as instance:
        with tick_context(settings, instance, None, defs) as context:
            tick = sensor.evaluate_tick(context)
        assert [r.partition_key for r in tick.run_requests] == FIVE_WEEKS
        for r in tick.run_requests:
            assert r.tags["dagster/partition"] == r.partition_key
            assert r.tags[REASON_TAG] == "new_week"
            assert r.run_key == f"{r.partition_key}:{r.tags[DATA_VERSION_TAG]}"
        assert json.loads(tick.cursor or "")["through"] == "2026-03-09"

        with tick_context(settings, instance, tick.cursor, defs) as context:
            again = sensor.evaluate_tick(context)
        assert again.run_requests == []
        assert again.skip_message and "nothing new or changed" in again.skip_message
        assert again.cursor == tick.cursor

        # A cursor this sensor did not write: a warning, then a fresh start.
        with tick_context(settings, instance, "garbage", defs) as context:
            reset = sensor.evaluate_tick(context)
        assert [r.run_key for r in reset.run_requests] == [r.run_key for r in tick.run_requests]


def record_source_queries(settings: Settings) -> list[str]:
    """A list that collects every statement of the sensor against the source tables."""
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    queries: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "occurred_at" in statement:
            queries.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    return queries


def test_a_long_history_is_worked_through_in_bounded_ticks_with_a_small_cursor(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    weeks = [dt.date(2024, 1, 1) + dt.timedelta(weeks=n) for n in range(100)]
    source.txns(*[(n, 1, f"{w} 10:00", "income", None, 1000) for n, w in enumerate(weeks)])
    now = local(f"{weeks[-1] + dt.timedelta(days=9)} 12:00")  # the Wednesday after week 100
    queries = record_source_queries(settings)
    limit = settings.sensor.max_weeks_per_tick
    lookback = settings.sensor.late_data_weeks

    cursor: str | None = None
    seen: list[str] = []
    for _ in range(12):
        queries.clear()
        result = evaluate(settings, cursor, now, first_week=weeks[0])
        assert len(result.run_requests) <= limit
        # Re-check the window (2 per week), then per new week: next activity + fingerprint.
        assert len(queries) <= 2 * lookback + 4 * limit + 2
        assert len(result.cursor) < 2048
        assert len(json.loads(result.cursor)["fp"]) <= lookback
        seen += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
        if not result.run_requests:
            break

    assert seen == [w.isoformat() for w in weeks]
    # Caught up (through = the last complete week): only the window's range queries.
    assert len(queries) == 2 * lookback


def test_sqlite_source_gives_the_same_requests(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    settings = use_database(monkeypatch, sqlite_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    seed_five_weeks(source)
    source.txns((7, 1, "2026-03-17 08:00", "income", None, 1000))  # week in progress
    first = evaluate(settings, None, NOW)
    assert requested(first) == [(w, "new_week") for w in FIVE_WEEKS]

    source.txns((100, 1, "2026-02-19 20:00", "spending", "snacks", 20000))
    assert requested(evaluate(settings, first.cursor, NOW)) == [
        ("2026-02-16", "late_data"),
        ("2026-02-23", "trend_dependency"),
        ("2026-03-02", "trend_dependency"),
    ]


def test_the_fingerprint_reads_the_occurred_at_index_alone(
    settings: Settings, source: SourceDB
) -> None:
    """Each fingerprint query is answered by an index-only scan of occurred_at: no
    column outside that index (a max id needed every row's heap page)."""
    seed_five_weeks(source)
    engine = db.create_engine(settings.warehouse.database_url)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        week_fingerprint(conn, source_tables(settings.sources), Week.from_key("2026-02-16", TZ))
    sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(statements) == 2
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # A five-row table would be read whole: make the planner show its index choice.
        cursor.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        for statement, params in statements:
            cursor.execute("EXPLAIN " + statement, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index Only Scan using ix_" in plan and "_occurred_at" in plan, plan
    engine.dispose()


def test_a_cursor_of_the_earlier_version_carries_on_without_reruns(
    settings: Settings, source: SourceDB
) -> None:
    """Version 1 cursors held other fingerprints: after an upgrade the next tick adopts
    today's prints for the watched weeks instead of re-running every one of them."""
    seed_five_weeks(source)
    current = json.loads(evaluate(settings, None, NOW).cursor)
    old = json.dumps(
        {"v": 1, "through": current["through"], "fp": dict.fromkeys(current["fp"], "x")}
    )

    upgraded = evaluate(settings, old, NOW)

    assert requested(upgraded) == []
    assert json.loads(upgraded.cursor) == current
    source.txns((100, 1, "2026-02-19 20:00", "spending", "snacks", 20000))
    assert requested(evaluate(settings, upgraded.cursor, NOW))[0] == ("2026-02-16", "late_data")


# --- done is done, whoever ran it --------------------------------------------------------

PROJECT = Path(__file__).resolve().parent.parent


def materialise_with_the_cli(week: str, home: Path) -> None:
    """`dagster asset materialize` as a user types it, on the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "kidsfin_assets.definitions", "--select", "*", "--partition", week]
    done = subprocess.run(
        command,
        cwd=PROJECT,
        env={**env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def materialise_range_as_a_backfill(
    settings: Settings, instance: DagsterInstance, first: str, last: str
) -> None:
    """Raw and silver over the range in one run (as a backfill runs them), then gold and
    the exports one week at a time."""
    job = dg.define_asset_job("range_run", selection="group:raw or group:silver")
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    assert defs.resolve_job_def("range_run").execute_in_process(tags=tags, instance=instance)
    for week in FIVE_WEEKS[FIVE_WEEKS.index(first) : FIVE_WEEKS.index(last) + 1]:
        selection = "group:gold or group:exports"
        assert materialize_week(settings, week, selection=selection, instance=instance).success


def tick(
    settings: Settings, instance: DagsterInstance, cursor: str | None
) -> tuple[list[tuple[str, str]], str | None, str]:
    """One tick of the sensor as Dagster runs it, on the real instance: (weeks requested
    with their reason, the new cursor, the skip reason or '')."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=run_resources(settings)
    ) as context:
        outcome = sensor_at_now(context)
    assert isinstance(outcome, dg.SensorResult)
    found = [(r.partition_key or "", r.tags[REASON_TAG]) for r in outcome.run_requests or []]
    skipped = outcome.skip_reason.skip_message if outcome.skip_reason else ""
    return found, outcome.cursor, skipped or ""


def test_weeks_materialised_from_the_ui_or_the_cli_are_done(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path
) -> None:
    """Whoever materialised a week (materialize(), a range run, the CLI: no run of them
    carries a sensor tag), the sensor leaves it alone while its rows are the ones read, and
    runs it again, as late data, once they change. (SQLite: test_demo.py, `make demo`'s
    weeks.)"""
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    seed_five_weeks(source)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        materialise_range_as_a_backfill(settings, instance, FIVE_WEEKS[0], FIVE_WEEKS[-2])
        materialise_with_the_cli(FIVE_WEEKS[-1], home)

        requests, cursor, skipped = tick(settings, instance, None)
        assert requests == []
        assert ", ".join(FIVE_WEEKS) + " already materialised" in skipped

        # A late row in the last week: that week again, as late data, and nothing else.
        source.txns((100, 1, "2026-03-11 20:00", "spending", "snacks", 20000))
        assert tick(settings, instance, cursor)[0] == [("2026-03-09", "late_data")]
        # The same from a fresh cursor: the week is no new week, its rows changed.
        assert tick(settings, instance, None)[0] == [("2026-03-09", "late_data")]
        # Materialised again (from the UI, say): done.
        assert materialize_week(settings, "2026-03-09", instance=instance).success
        requests, cursor, _ = tick(settings, instance, None)
        assert requests == []

        # A late row in a middle week: it, and the two weeks whose trends read it.
        source.txns((101, 1, "2026-02-19 20:00", "spending", "snacks", 20000))
        expected = [
            ("2026-02-16", "late_data"),
            ("2026-02-23", "trend_dependency"),
            ("2026-03-02", "trend_dependency"),
        ]
        assert tick(settings, instance, cursor)[0] == expected
        assert tick(settings, instance, None)[0] == expected


def test_the_plan_leaves_out_weeks_materialised_from_todays_rows(
    settings: Settings, source: SourceDB
) -> None:
    """What was materialised decides (a plain record, no Dagster storage): all versions
    today's, done; W's own rows changed, late data; only W-1's, a trend dependency."""
    seed_five_weeks(source)
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    src = source_tables(settings.sources)
    with engine.connect() as conn:
        read = {w: source_versions(conn, src, Week.from_key(w, TZ), 2) for w in FIVE_WEEKS}
    stale = dict(read["2026-02-23"], **{"2026-02-16": "older"})  # W-1 changed since

    def recorded(week: str) -> Materialised | None:
        if week == "2026-03-09":
            return None  # never materialised end to end
        silver = stale if week == "2026-02-23" else read[week]
        raw = {week: "older" if week == "2026-03-02" else read[week][week]}
        return Materialised(raw=raw, silver=silver)

    result = sensor_plan.evaluate(watch(settings), None, NOW, recorded)

    assert requested(result) == [
        ("2026-02-23", "trend_dependency"),
        ("2026-03-02", "late_data"),
        ("2026-03-09", "new_week"),
    ]
    assert result.run_requests[0].tags[CHANGED_WEEK_TAG] == "2026-02-16"
    assert result.done == ("2026-02-09", "2026-02-16")
    assert "2026-02-09, 2026-02-16 already materialised" in result.summary
    # The weeks left out are processed all the same: late rows in them are seen.
    assert sorted(json.loads(result.cursor)["fp"]) == FIVE_WEEKS


def test_the_sensor_description_names_the_settings_as_the_file_does() -> None:
    """The UI's description of the sensor names its limits as config/pipeline.yaml and the
    README do (`sensor.<key>`): the `sensor` resource's fields."""
    description = new_week_sensor.description or ""
    named = set(re.findall(r"`sensor\.(\w+)`", description))
    assert named == {"max_weeks_per_tick", "late_data_weeks"}
    assert named <= SensorResource.model_fields.keys()
    assert "sensor" in yaml.safe_load((PROJECT / "config" / "pipeline.yaml").read_text())
    readme = (PROJECT / "README.md").read_text()
    assert all(f"sensor.{key}" in readme for key in named)
