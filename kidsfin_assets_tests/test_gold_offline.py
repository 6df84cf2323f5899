"""Gold without an API (the offline writer) a page at a time: each page claimed, its reports
written by the rules and grounded (in worker processes once the week has more than one page),
stored in one transaction, one log line a page; two runs of a week at once still write each
kid once. Real PostgreSQL and real Dagster runs."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import dagster as dg
import pytest

from kidsfin_assets.reports import offline_asking, report_writer
from kidsfin_assets.reports.grounded import offline_chunk
from kidsfin_assets.warehouse.tables import report_claims
from kidsfin_assets_tests.helpers import (
    SourceDB,
    fetch,
    gold_twice_at_once,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.test_gold_reports import W, gold_meta, load_kids, reports

KIDS = 10


def offline_week(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    settings = use_database(monkeypatch, url)  # no OPENAI_API_KEY: the offline writer
    load_kids(SourceDB(settings), KIDS)
    assert materialize_week(settings, W, selection="group:raw or group:silver").success
    return settings


def log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.dagster_event is None]


def written(settings: Any) -> dict[int, tuple[Any, ...]]:
    """Each kid's stored report, without the time it was written."""
    keep = ("report", "model", "writer", "input_hash", "grounded", "findings", "cost_usd")
    return {r["kid_id"]: tuple(r[k] for k in keep) for r in reports(settings)}


def test_a_week_of_pages_is_written_by_worker_processes_as_by_this_one(monkeypatch, pg_url) -> None:
    """Pages of 4 kids: three pages, so the rules and the checker run in worker processes;
    every report is the one the same rules write in the step's own process, one line a page."""
    settings = offline_week(monkeypatch, pg_url)
    one_page = materialize_week(settings, W, selection="group:gold")
    assert one_page.success
    by_this_process = written(settings)

    with warehouse_engine(settings).begin() as conn:
        conn.exec_driver_sql("DELETE FROM kidsfin.kid_weekly_reports")
    monkeypatch.setattr(report_writer, "PAGE_KIDS", 4)
    pools: list[int] = []
    start_pool = offline_asking.OfflineAsking._workers

    def counted(self: offline_asking.OfflineAsking) -> Any:
        pools.append(self.workers)
        return start_pool(self)

    monkeypatch.setattr(offline_asking.OfflineAsking, "_workers", counted)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_week(settings, W, selection="group:gold", instance=instance)
        assert result.success
        lines = log_lines(instance, result.run_id)
    workers = min(len(os.sched_getaffinity(0)), report_writer.OFFLINE_WORKERS)
    assert set(pools) == ({workers} if workers > 1 else set())  # a process a CPU, every page
    assert written(settings) == by_this_process
    meta = gold_meta(result)
    assert (meta["reports_written"], meta["reports_ungrounded"], meta["requests"]) == (KIDS, 0, 0)
    pages = [line for line in lines if line.startswith("Processing kids")]
    assert pages == [
        "Processing kids 1-4 of 10 (group 1/3)",
        "Processing kids 5-8 of 10 (group 2/3)",
        "Processing kids 9-10 of 10 (group 3/3)",
    ]
    assert not any(re.match(r"\[\d+/\d+", line) for line in lines)  # no line a report
    assert fetch(warehouse_engine(settings), report_claims.select()) == []  # all released


@pytest.mark.timeout(240)
def test_two_offline_runs_of_a_week_at_once_write_each_kid_once(monkeypatch, pg_url) -> None:
    """The offline writer claims its pages too: a second run waits for the kids the first
    holds and counts them as written by another run, never writing them again."""
    settings = offline_week(monkeypatch, pg_url)
    monkeypatch.setattr(report_writer, "PAGE_KIDS", 2)
    # In this process: the slowed rules below are this module's, not the workers'.
    monkeypatch.setattr(report_writer.WeekReportWriter, "_offline_workers", lambda self: 1)

    def slow_chunk(kids: list[Any]) -> Any:
        time.sleep(0.3)  # each page takes a while: the runs overlap
        return offline_chunk(kids)

    monkeypatch.setattr(offline_asking, "offline_chunk", slow_chunk)
    results = gold_twice_at_once(settings, W)
    metas = [gold_meta(r) for r in results]
    assert sum(m["reports_written"] for m in metas) == KIDS
    assert sum(m["reports_by_other_runs"] for m in metas) >= 1  # they did overlap
    assert sorted(written(settings)) == sorted(r["kid_id"] for r in reports(settings))
    assert len(reports(settings)) == KIDS
    assert fetch(warehouse_engine(settings), report_claims.select()) == []
