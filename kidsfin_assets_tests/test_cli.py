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
