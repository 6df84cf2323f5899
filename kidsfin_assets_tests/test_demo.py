"""`make demo` end to end (its module, as the Makefile runs it): a fresh demo shows its
weeks and only those, and the sensor's first tick does not run them again."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from kidsfin_assets.config.weeks import Week, WeeklyPartitions
from kidsfin_assets.definitions import pipeline_assets, run_resources
from kidsfin_assets.defs.jobs import weekly_reports_job
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets.defs.sensor_plan import CHANGED_WEEK_TAG, REASON_TAG
from kidsfin_assets.defs.sensors import new_week_sensor
from kidsfin_assets.warehouse.tables import source_tables
from kidsfin_assets_tests.helpers import SourceDB
from kidsfin_demo import run_demo


@pytest.fixture(scope="module")
def after_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One `make demo` into a temporary SQLite database and DAGSTER_HOME."""
    tmp = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        # Registered first, so that what the demo sets in this process is undone after.
        mp.setenv(run_demo.START_DATE_ENV, "2026-01-05")
        mp.delenv(run_demo.START_DATE_ENV)
        mp.setenv("KIDSFIN_DATABASE_URL", f"sqlite:///{tmp / 'kidsfin.db'}")
        mp.setenv("KIDSFIN_EXPORTS__EXPORT_DIR", str(tmp / "exports"))
        mp.setenv("KIDSFIN_FILE_LOGGER__PATH", str(tmp / "kidsfin.log"))
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        include = tmp / "demo.mk"
        assert run_demo.main(["--make-include", str(include)]) == 0
        settings = load_settings()
        with dg.DagsterInstance.get() as instance:
            # The weekly partitions of a process started with the demo's environment.
            weeks = WeeklyPartitions.from_environment(os.environ).definition()
            yield {
                "settings": settings,
                "include": include,
                "instance": instance,
                "weeks": weeks.get_partition_keys(),
            }


def test_a_fresh_demo_shows_its_weeks_and_no_missing_ones(after_demo: dict[str, Any]) -> None:
    settings, instance = after_demo["settings"], after_demo["instance"]
    expected = [
        w.key for w in run_demo.demo_weeks(settings.analysis.timezone, dt.datetime.now(dt.UTC))
    ]
    # The partitions of a process started with the demo's KIDSFIN_WEEKS__START_DATE (`make
    # dev`): this one had imported the definitions before the demo set it.
    keys = after_demo["weeks"]
    assert keys == expected  # partitions start at the demo's first week
    for asset in pipeline_assets:
        assert instance.get_materialized_partitions(asset.key) == set(keys), asset.key
    # `make dev` reads the same start from the file the demo wrote.
    include = Path(after_demo["include"]).read_text()
    assert f"DEMO_START_DATE := {keys[0]}" in include


def _first_tick(settings: Any, instance: dg.DagsterInstance) -> dg.SensorResult:
    defs = dg.Definitions(
        assets=pipeline_assets,
        jobs=[weekly_reports_job],
        sensors=[new_week_sensor],
        resources=run_resources(settings),
    )
    sensor = defs.resolve_sensor_def("new_week_sensor")
    resources = run_resources(settings)
    with dg.build_sensor_context(
        instance=instance, cursor=None, definitions=defs, resources=resources
    ) as context:
        return sensor.evaluate_tick(context)


def test_the_sensor_does_not_run_the_demo_weeks_again(after_demo: dict[str, Any]) -> None:
    settings, instance = after_demo["settings"], after_demo["instance"]
    tick = _first_tick(settings, instance)
    assert tick.run_requests == []
    assert tick.cursor  # the weeks count as processed: late data in them is still seen
    # ...but a week whose rows changed since the demo ran it is requested.
    source = SourceDB(settings)
    key = after_demo["weeks"][2]
    week = Week.from_key(key, settings.analysis.timezone)
    with source.engine.begin() as conn:
        top = conn.execute(sa.select(sa.func.max(source.src.transactions.c.txn_id))).scalar()
    when = (week.starts_at + dt.timedelta(days=2)).astimezone(dt.UTC)
    source.insert(
        source_tables(settings.sources).transactions,
        [
            {
                "txn_id": top + 1,
                "kid_id": 1,
                "occurred_at": when,
                "kind": "income",
                "category": None,
                "amount": 5000,
                "note": None,
            }
        ],
    )
    again = _first_tick(settings, instance)
    # The changed week is late data; the two after it read it for their trends.
    weeks = after_demo["weeks"]
    assert [(r.partition_key, r.tags[REASON_TAG]) for r in again.run_requests] == [
        (week.key, "late_data"),
        (weeks[3], "trend_dependency"),
        (weeks[4], "trend_dependency"),
    ]
    assert {r.tags[CHANGED_WEEK_TAG] for r in again.run_requests[1:]} == {week.key}
