"""The dagster CLI a user types, against a fresh PostgreSQL source."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from kidsfin_assets import db
from kidsfin_assets.demo_data import DemoSpec, generate
from kidsfin_assets_tests.helpers import use_database

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
    weeks = [w.isoformat() for w in summary.weeks]
    assert f"Sensor returning run requests for {len(weeks)} run(s)" in done.stdout
    assert len(weeks) == 6 and all(dt.date.fromisoformat(w).weekday() == 0 for w in weeks)


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
