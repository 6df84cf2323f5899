"""Backfills: raw and silver over a range of weeks in one run equal week-by-week runs."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import sqlalchemy as sa

from kidsfin_assets import db
from kidsfin_assets.definitions import build_definitions
from kidsfin_assets.demo_data import DemoSpec, generate
from kidsfin_assets.warehouse import kid_weekly_analysis
from kidsfin_assets_tests.helpers import fetch, materialize_week, use_database, warehouse_engine

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


def run_range(settings, first: str, last: str) -> dg.ExecuteInProcessResult:
    """One run over a partition range, as the UI's backfill launches for silver."""
    job = dg.define_asset_job("range_run", selection="group:raw or group:silver")
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("range_run").execute_in_process(
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
    )


def test_one_run_over_a_range_equals_week_by_week(monkeypatch, pg_url) -> None:
    settings = use_database(monkeypatch, pg_url)
    engine = db.create_engine(settings.resolved_database_url)
    generate(engine, settings.sources, DemoSpec(kids=15, weeks=6, end_week=END, seed=5))
    result = run_range(settings, WEEKS[0], WEEKS[-1])
    assert result.success
    meta = result.asset_materializations_for_node("silver__kid_weekly_analysis")
    assert {m.partition for m in meta} == set(WEEKS)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["one_row_per_active_kid"].passed
    assert checks["one_row_per_active_kid"].metadata["weeks_checked"].value == len(WEEKS)
    ranged = silver_by_week(settings)
    assert sorted(ranged) == WEEKS
    with warehouse_engine(settings).begin() as conn:
        conn.execute(sa.delete(kid_weekly_analysis))
    for week in reversed(WEEKS):  # any order: each week reads its own W-1, W-2
        assert materialize_week(settings, week, selection="group:raw or group:silver").success
    assert silver_by_week(settings) == ranged
