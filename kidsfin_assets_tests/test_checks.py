"""Asset checks pass on good data and fail on data made to fail them (real PostgreSQL)."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.definitions import build_definitions
from kidsfin_assets.defs.checks import silver_rows_per_active_kid
from kidsfin_assets.defs.keys import GOLD_KEY
from kidsfin_assets.warehouse.tables import kid_weekly_analysis, kid_weekly_reports
from kidsfin_assets_tests.helpers import (
    SourceDB,
    export_dir,
    materialize_week,
    use_database,
    warehouse_engine,
)

W = "2026-03-16"


def load_clean_week(source: SourceDB, kids: int = 4) -> None:
    source.kids(*((k, f"Bé {k}") for k in range(1, kids + 1)))
    source.txns(
        *((k, k, "2026-03-17 10:00", "income", None, 100000) for k in range(1, kids + 1)),
        *((100 + k, k, "2026-03-18 10:00", "spending", "toys", 20000) for k in range(1, kids + 1)),
    )


def run_checks_only(settings, selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    """A real run of only these checks (and assets), against the tables as they are now."""
    job = dg.define_asset_job("checks_only", selection=selection, partitions_def=weekly_partitions)
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("checks_only").execute_in_process(
        tags={"dagster/partition": W}, raise_on_error=False
    )


def run_checks(settings) -> dict[str, dg.AssetCheckEvaluation]:
    """Gold's checks (a step of their own); raw's and silver's run in their asset's step,
    right after its rows are written."""
    selection = dg.AssetSelection.checks_for_assets(GOLD_KEY)
    result = run_checks_only(settings, selection)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    return {k: v.value for k, v in evaluation.metadata.items()}


@pytest.fixture
def week(monkeypatch, pg_url):
    settings = use_database(monkeypatch, pg_url)
    load_clean_week(SourceDB(settings))
    result = materialize_week(settings, W)
    assert result.success
    return settings, result


def test_all_checks_pass_on_a_clean_week(week) -> None:
    _, result = week
    found = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert found == {
        "one_row_per_active_kid": True,
        "one_report_per_silver_row": True,
        "scores_within_0_10": True,
        "quarantine_share_below_threshold": True,
        "cost_per_report_below_threshold": True,
        "reports_grounded": True,
    }


def test_missing_and_orphan_reports_fail_the_blocking_check(week) -> None:
    settings, _ = week
    engine = warehouse_engine(settings)
    gold = kid_weekly_reports
    with engine.begin() as conn:
        conn.execute(sa.delete(gold).where(gold.c.kid_id == 1))
        row = conn.execute(sa.select(gold).where(gold.c.kid_id == 2)).one()._asdict()
        conn.execute(sa.insert(gold).values({**row, "kid_id": 999}))
    check = run_checks(settings)["one_report_per_silver_row"]
    assert not check.passed
    assert meta(check)["missing_reports"] == 1 and meta(check)["orphan_reports"] == 1


def test_blocking_check_stops_the_reports_export(week, tmp_path) -> None:
    settings, _ = week
    exported = export_dir(settings) / f"kids_reports_{W}.json"
    exported.unlink()
    engine = warehouse_engine(settings)
    with engine.begin() as conn:  # a silver row appears that gold does not know about
        row = conn.execute(sa.select(kid_weekly_analysis).limit(1)).one()._asdict()
        conn.execute(sa.insert(kid_weekly_analysis).values({**row, "kid_id": 4242}))
    result = materialize_week(
        settings, W, selection="group:exports or group:gold", raise_on_error=False
    )
    # gold re-runs and writes the missing report, so the check passes and export runs
    assert result.success and exported.exists()
    exported.unlink()
    with engine.begin() as conn:
        conn.execute(sa.delete(kid_weekly_reports).where(kid_weekly_reports.c.kid_id == 4242))
        conn.execute(sa.insert(kid_weekly_analysis).values({**row, "kid_id": 4343}))
    checks_and_export = dg.AssetSelection.checks_for_assets(GOLD_KEY) | dg.AssetSelection.groups(
        "exports"
    )
    result = run_checks_only(settings, checks_and_export)
    assert not result.success
    assert not exported.exists()


def test_out_of_range_score_fails(week) -> None:
    settings, _ = week
    gold = kid_weekly_reports
    with warehouse_engine(settings).begin() as conn:
        row = conn.execute(sa.select(gold).where(gold.c.kid_id == 3)).one()
        conn.execute(
            sa.update(gold)
            .where(gold.c.kid_id == 3)
            .values(report={**row.report, "overall_score": 11})
        )
    check = run_checks(settings)["scores_within_0_10"]
    assert not check.passed and meta(check)["out_of_range"] == 1


def test_a_score_that_is_no_number_fails_and_the_others_are_summed(week) -> None:
    """The scores are read one by one as the week streams (not the reports whole): a
    string is out of range, and min, max and mean are of the others."""
    settings, _ = week
    gold = kid_weekly_reports
    with warehouse_engine(settings).begin() as conn:
        rows = conn.execute(sa.select(gold).order_by(gold.c.kid_id)).all()
        for row, score in zip(rows, ["7", 2, 9.5], strict=False):
            conn.execute(
                sa.update(gold)
                .where(gold.c.kid_id == row.kid_id)
                .values(report={**row.report, "overall_score": score})
            )
        others = [r.report["overall_score"] for r in rows[3:]]
    check = run_checks(settings)["scores_within_0_10"]
    said = meta(check)
    assert not check.passed and said["out_of_range"] == 1 and said["reports"] == len(rows)
    numbers = [2, 9.5, *others]
    assert (said["min_score"], said["max_score"]) == (min(numbers), max(numbers))
    assert said["mean_score"] == round(sum(numbers) / len(numbers), 3)


def test_silver_row_count_check_fails_on_a_missing_kid(week) -> None:
    settings, _ = week
    silver = kid_weekly_analysis
    with warehouse_engine(settings).begin() as conn:
        conn.execute(sa.delete(silver).where(silver.c.kid_id == 2))
    with warehouse_engine(settings).connect() as conn:
        check = silver_rows_per_active_kid(conn, Week.from_key(W, settings.analysis.timezone))
    assert not check.passed
    assert (meta(check)["silver_rows"], meta(check)["active_kids"]) == (3, 4)


def test_quarantine_share_warns_on_dirty_source(monkeypatch, pg_url) -> None:
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    load_clean_week(source)
    source.txns(*((500 + i, 77, "2026-03-19 10:00", "income", None, 5) for i in range(3)))
    result = materialize_week(settings, W)
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}[
        "quarantine_share_below_threshold"
    ]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert meta(check)["quarantined_share"] == pytest.approx(3 / 11)
    assert result.success  # a warning does not fail the run


def test_cost_per_report_warns_when_expensive(week) -> None:
    settings, _ = week
    with warehouse_engine(settings).begin() as conn:
        conn.execute(sa.update(kid_weekly_reports).values(cost_usd=0.5))
    check = run_checks(settings)["cost_per_report_below_threshold"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert meta(check)["cost_per_report_usd"] == pytest.approx(0.5)
