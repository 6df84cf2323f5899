"""The dagster CLI a user types, against a fresh PostgreSQL source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kidsfin_assets.warehouse import db
from kidsfin_assets_tests.helpers import use_database
from kidsfin_demo import DemoSpec, generate

PROJECT = Path(__file__).resolve().parent.parent


def test_sensor_preview_requests_every_complete_demo_week(monkeypatch, pg_url, tmp_path) -> None:
    settings = use_database(monkeypatch, pg_url)
    summary = generate(
        db.create_engine(settings.resolved_database_url), settings.sources, DemoSpec(kids=5)
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
    import json

    from kidsfin_assets.definitions import build_definitions

    settings = use_database(monkeypatch, sqlite_url)
    generate(db.create_engine(sqlite_url), settings.sources, DemoSpec(kids=3, weeks=3))
    week = DemoSpec(weeks=1).week_starts()[-1].isoformat()
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
    import json

    settings = use_database(monkeypatch, sqlite_url)
    generate(db.create_engine(sqlite_url), settings.sources, DemoSpec(kids=3, weeks=3))
    week = DemoSpec(weeks=1).week_starts()[-1].isoformat()
    run_config = tmp_path / "run_config.yaml"
    run_config.write_text(
        "loggers:\n  console: {}\n  file:\n    config: {json: true, log_level: DEBUG}\n"
    )
    # The test's own settings (database, export_dir, log_file), not the shell's OpenAI key.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "--config", str(run_config)]
    command += ["-m", "kidsfin_assets.definitions", "--select", "*", "--partition", week]
    done = subprocess.run(
        command,
        cwd=PROJECT,
        env={**env, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in settings.log_file_path.read_text().splitlines()]
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
    assert not settings.log_file_path.exists()


def test_file_log_as_text_at_a_given_path(monkeypatch, sqlite_url, tmp_path) -> None:
    from kidsfin_assets.definitions import build_definitions

    settings = use_database(monkeypatch, sqlite_url)
    generate(db.create_engine(sqlite_url), settings.sources, DemoSpec(kids=3, weeks=3))
    path = tmp_path / "elsewhere" / "run.log"
    job = build_definitions(settings).resolve_job_def("weekly_reports_job")
    config = {"loggers": {"file": {"config": {"path": str(path), "log_level": "WARNING"}}}}
    week = DemoSpec(weeks=1).week_starts()[-1].isoformat()
    assert job.execute_in_process(partition_key=week, run_config=config).success
    lines = path.read_text().splitlines()
    assert lines and all(" WARNING " in line or " ERROR " in line for line in lines)
    assert any(
        "kidsfin_assets.defs.assets.gold:" in line and "NO AI IS USED" in line for line in lines
    )
    assert not settings.log_file_path.exists()  # the path given replaced the setting
