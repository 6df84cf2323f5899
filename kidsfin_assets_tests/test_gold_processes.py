"""Gold across processes, through the real `dagster` CLI: parallel runs share one rate
limit, and a run killed with SIGKILL is resumed paying only for the missing reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from kidsfin_assets.warehouse.tables import kid_weekly_reports
from kidsfin_assets_tests.helpers import (
    SourceDB,
    fetch,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.test_gold_reports import API_KEY, FAST_RETRY
from openai_test_server import running_server

WEEKS = ("2026-03-02", "2026-03-09", "2026-03-16")
PROJECT = Path(__file__).resolve().parent.parent


def load_weeks(source: SourceDB, kids: int) -> None:
    source.kids(*((k, f"Bé {k}") for k in range(1, kids + 1)))
    rows = []
    for w, week in enumerate(WEEKS):
        day = week[:8] + f"{int(week[8:]) + 1:02d}"
        for k in range(1, kids + 1):
            rows.append((1000 * w + k, k, f"{day} 10:00", "income", None, 50000 + k * 1000))
    source.txns(*rows)


def cli_env(tmp_path: Path, url: str, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    home = tmp_path / f"dagster_home_{len(list(tmp_path.glob('dagster_home_*')))}"
    home.mkdir()
    return {
        **env,
        "DAGSTER_HOME": str(home),
        "KIDSFIN_DATABASE_URL": url,
        "KIDSFIN_EXPORTS__EXPORT_DIR": str(tmp_path / "exports"),
        "KIDSFIN_WAREHOUSE__SPOOL_DIR": str(tmp_path / "spool"),
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": base_url,
        **FAST_RETRY,
        **extra,
    }


def materialize_gold_cli(week: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "kidsfin_assets.definitions",
            "--select",
            "gold/kid_weekly_reports",
            "--partition",
            week,
        ],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so that SIGKILL reaches the whole run
    )


def wait_for_group_exit(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process group {pgid} still running after {timeout} s")


def gold_count(settings, week: str | None = None) -> int:
    table = kid_weekly_reports
    query = sa.select(sa.func.count()).select_from(table)
    if week:
        query = query.where(table.c.week_start == sa.func.date(week))
    return fetch(warehouse_engine(settings), query)[0]["count_1"]


@pytest.mark.timeout(240)
def test_parallel_runs_share_one_rate_limit(monkeypatch, pg_url, tmp_path) -> None:
    kids = 12
    settings = use_database(monkeypatch, pg_url)
    load_weeks(SourceDB(settings), kids)
    for week in WEEKS:
        assert materialize_week(settings, week, selection="group:raw or group:silver").success
    limits = {
        "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE": "12",
        "KIDSFIN_OPENAI__RATE_LIMIT_PERIOD_SECONDS": "2",
    }
    with running_server(api_key=API_KEY, rpm=12, window_seconds=2, latency=0.05) as server:
        runs = [
            materialize_gold_cli(week, cli_env(tmp_path, pg_url, server.base_url, **limits))
            for week in WEEKS
        ]
        errors = [run.communicate(timeout=200)[1].decode()[-2000:] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], errors
        stats = server.stats
    assert stats.over_limit == 0
    assert stats.max_requests_in_window <= 12
    assert stats.ok == 3 * kids
    assert gold_count(settings) == 3 * kids


def prepare_week(monkeypatch, pg_url: str, kids: int):
    settings = use_database(monkeypatch, pg_url)
    load_weeks(SourceDB(settings), kids)
    week = WEEKS[-1]
    assert materialize_week(settings, week, selection="group:raw or group:silver").success
    return settings, week


def start_and_wait_for(settings, week, env, reports: int) -> subprocess.Popen[bytes]:
    run = materialize_gold_cli(week, env)
    deadline = time.monotonic() + 120
    while gold_count(settings) < reports and time.monotonic() < deadline:
        assert run.poll() is None, run.stderr.read().decode()[-2000:] if run.stderr else ""
        time.sleep(0.1)
    return run


def requests_of_a_rerun(monkeypatch, pg_url: str, server, week: str) -> int:
    """Re-materialise gold in this process; how many requests did it send?"""
    server.reset()
    settings = use_database(
        monkeypatch, pg_url, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=server.base_url
    )
    assert materialize_week(settings, week, selection="group:gold").success
    return server.stats.requests_total


@pytest.mark.timeout(240)
def test_killed_run_resumes_paying_only_for_missing(monkeypatch, pg_url, tmp_path) -> None:
    kids = 30
    settings, week = prepare_week(monkeypatch, pg_url, kids)
    with running_server(api_key=API_KEY, latency=0.25) as server:
        env = cli_env(tmp_path, pg_url, server.base_url, KIDSFIN_OPENAI__MAX_CONCURRENT="2")
        run = start_and_wait_for(settings, week, env, kids // 3)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        kept = gold_count(settings)
        assert kids // 3 <= kept < kids  # killed half-way
        assert requests_of_a_rerun(monkeypatch, pg_url, server, week) == kids - kept
    assert gold_count(settings) == kids


@pytest.mark.timeout(240)
def test_ctrl_c_stops_the_run_and_a_rerun_pays_only_the_rest(monkeypatch, pg_url, tmp_path) -> None:
    kids = 40
    settings, week = prepare_week(monkeypatch, pg_url, kids)
    with running_server(api_key=API_KEY, latency=0.3) as server:
        env = cli_env(tmp_path, pg_url, server.base_url, KIDSFIN_OPENAI__MAX_CONCURRENT="2")
        run = start_and_wait_for(settings, week, env, 4)
        os.killpg(run.pid, signal.SIGINT)
        started = time.monotonic()
        run.wait(timeout=60)
        wait_for_group_exit(run.pid, timeout=60)  # no step process left behind
        stopped_after = time.monotonic() - started
        answered = server.stats.ok
        assert stopped_after < 15
        assert run.returncode != 0
        # Nothing new is asked once stopped; of what was paid, at most the requests in
        # flight when the CLI ended its step process (max_concurrent = 2) went unstored.
        kept = gold_count(settings)
        assert answered - 2 <= kept <= answered < kids
        assert requests_of_a_rerun(monkeypatch, pg_url, server, week) == kids - kept
