"""The dagster and dg CLIs a user types at the project's root, against a fresh source."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from kidsfin_assets.defs.keys import APP_TABLES, PIPELINE, RAW_KEY
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import raw_transactions
from kidsfin_assets_tests.helpers import fetch, load_raw_before, use_database, warehouse_engine
from kidsfin_demo import DemoSpec, generate

PROJECT = Path(__file__).resolve().parent.parent
DG = str(Path(sys.executable).parent / "dg")  # dagster-dg-cli, in the project's .venv


def demo_week(monkeypatch: pytest.MonkeyPatch, url: str) -> tuple[Settings, str]:
    """The demo's rows (3 kids, 3 weeks) in the database at `url`, raw's copy of the weeks
    before the last (silver reads raw's W-2 and W-1), and the last week."""
    settings = use_database(monkeypatch, url)
    generate(db.create_engine(url), settings.sources, DemoSpec(kids=3, weeks=3))
    week = DemoSpec(weeks=1).week_starts()[-1].isoformat()
    load_raw_before(settings, week)
    return settings, week


def cli(
    command: list[str], dagster_home: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`command` run at the project's root with the test's settings (database, export_dir,
    log_file), not the shell's OpenAI key, and an instance of its own in `dagster_home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        command,
        cwd=PROJECT,
        env={**env, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sensor_preview_requests_every_complete_demo_week(monkeypatch, pg_url, tmp_path) -> None:
    settings = use_database(monkeypatch, pg_url)
    summary = generate(
        db.create_engine(settings.warehouse.database_url), settings.sources, DemoSpec(kids=5)
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))},
        "KIDSFIN_DATABASE_URL": pg_url,
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "sensor",
            "preview",
            "new_week_sensor",
            "-m",
            "kidsfin_assets.definitions",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # One run per demo week, all six complete; the preview prints no partition keys
    # (test_sensor.py checks those, request by request).
    assert len(summary.weeks) == 6
    assert "Sensor returning run requests for 6 run(s)" in done.stdout


def test_json_logs_on_request(monkeypatch, sqlite_url, capfd) -> None:
    from kidsfin_assets.definitions import build_definitions

    settings, week = demo_week(monkeypatch, sqlite_url)
    job = build_definitions(settings).resolve_job_def("weekly_reports_job")
    result = job.execute_in_process(
        partition_key=week, run_config={"loggers": {"json": {"config": {"log_level": "INFO"}}}}
    )
    assert result.success
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    messages = [json.loads(line)["dagster_meta"]["orig_message"] for line in lines]
    assert any("NO AI IS USED" in m for m in messages)


def test_file_log_from_the_cli(monkeypatch, sqlite_url, tmp_path) -> None:
    """`dagster asset materialize` with the `file` logger: every step process appends JSON
    lines to one file (by default the `log_file` setting), and the console keeps its log."""
    settings, week = demo_week(monkeypatch, sqlite_url)
    run_config = tmp_path / "run_config.yaml"
    run_config.write_text(
        "loggers:\n  console: {}\n  file:\n    config: {json: true, log_level: DEBUG}\n"
    )
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "--config", str(run_config)]
    command += ["-m", "kidsfin_assets.definitions", "--select", "*", "--partition", week]
    done = cli(command, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in settings.file_logger.resolved.read_text().splitlines()]
    steps = {r["step"] for r in records if r["step"]}
    assert {"raw__kid_activity", "silver__kid_weekly_analysis", "gold__kid_weekly_reports"} <= steps
    events = {r["event"] for r in records}
    assert {"STEP_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION"} <= events
    assert {r["run_id"] for r in records} == {records[0]["run_id"]}
    assert any("NO AI IS USED" in r["message"] and r["level"] == "WARNING" for r in records)
    # Caller info: where in the project a line was logged; Dagster's own events say so.
    assert any(r["caller"].startswith("kidsfin_assets.defs.assets.gold:") for r in records)
    assert {r["caller"] for r in records if r["event"] == "STEP_START"} == {"dagster"}
    assert "NO AI IS USED" in done.stderr  # the console logger still runs beside it


def test_file_log_rejects_an_unknown_level(monkeypatch, sqlite_url) -> None:
    import dagster as dg
    import pytest

    from kidsfin_assets.definitions import build_definitions

    settings = use_database(monkeypatch, sqlite_url)
    job = build_definitions(settings).resolve_job_def("weekly_reports_job")
    config = {"loggers": {"file": {"config": {"log_level": "LOUD"}}}}
    week = DemoSpec(weeks=1).week_starts()[-1].isoformat()
    with pytest.raises(dg.DagsterInvalidConfigError, match="log_level"):
        job.execute_in_process(partition_key=week, run_config=config)
    assert not settings.file_logger.resolved.exists()


def test_file_log_as_text_at_a_given_path(monkeypatch, sqlite_url, tmp_path) -> None:
    from kidsfin_assets.definitions import build_definitions

    settings, week = demo_week(monkeypatch, sqlite_url)
    path = tmp_path / "elsewhere" / "run.log"
    job = build_definitions(settings).resolve_job_def("weekly_reports_job")
    config = {"loggers": {"file": {"config": {"path": str(path), "log_level": "WARNING"}}}}
    assert job.execute_in_process(partition_key=week, run_config=config).success
    lines = path.read_text().splitlines()
    assert lines and all(" WARNING " in line or " ERROR " in line for line in lines)
    assert any(
        "kidsfin_assets.defs.assets.gold:" in line and "NO AI IS USED" in line for line in lines
    )
    assert not settings.file_logger.resolved.exists()  # the path given replaced the setting


# --- dg (dagster-dg-cli): the project of pyproject.toml's [tool.dg] ----------------------


def test_dg_checks_and_lists_the_code_location(tmp_path) -> None:
    """`dg check defs` and `dg list defs` find the project from [tool.dg] and load the code
    location `dagster ... -m kidsfin_assets.definitions` loads: this one, whole."""
    checked = cli([DG, "check", "defs"], tmp_path)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert "All definitions loaded successfully." in checked.stdout
    listed = cli([DG, "list", "defs", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == {
        key.to_user_string() for key in (*APP_TABLES, *PIPELINE)
    }
    assert {"weekly_reports_job", "collect_batches_job"} <= {j["name"] for j in found["jobs"]}
    assert {s["name"] for s in found["sensors"]} == {"new_week_sensor", "openai_batch_sensor"}
    assert len(found["asset_checks"]) == 6
    # The resources are this package's classes (loaded from the project's folder).
    types = {r["name"]: r["type"] for r in found["resources"]}
    assert types["warehouse"] == "kidsfin_assets.defs.resources.WarehouseResource"


def test_dg_launch_materialises_a_demo_week(monkeypatch, sqlite_url, tmp_path) -> None:
    """`dg launch --assets ... --partition ...`, as `dagster asset materialize` would, in the
    instance of DAGSTER_HOME (SQLite), against the demo's rows."""
    settings, week = demo_week(monkeypatch, sqlite_url)
    key = RAW_KEY.to_user_string()
    done = cli([DG, "launch", "--assets", key, "--partition", week], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(RAW_KEY)
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.partition == week
    rows = sa.select(raw_transactions.c.week_start).distinct()
    held = {r["week_start"] for r in fetch(warehouse_engine(settings), rows)}
    assert dt.date.fromisoformat(week) in held
