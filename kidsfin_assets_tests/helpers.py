"""Test helpers: settings for a test database, source rows, real materialisation."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import threading
import zoneinfo
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.definitions import build_definitions, pipeline_assets
from kidsfin_assets.defs.checks import asset_checks
from kidsfin_assets.defs.resources import Settings, load_settings, run_resources
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import source_tables
from kidsfin_demo import create_source_tables

TZ = "Asia/Ho_Chi_Minh"


def use_database(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> Settings:
    """Point the pipeline at `url` (plus KIDSFIN_* overrides) and return fresh settings."""
    monkeypatch.setenv("KIDSFIN_DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def export_dir(settings: Settings) -> Path:
    """The local folder the exports go to."""
    return resolve_path(settings.exports.export_dir)


def local(text: str, tz: str = TZ) -> dt.datetime:
    """'2026-03-15 23:59' in the test time zone, as an aware datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(tz))


class SourceDB:
    """Writes hand-made rows into the app's source tables, in either dialect."""

    def __init__(self, settings: Settings) -> None:
        self.engine: Engine = db.create_engine(settings.warehouse.database_url)
        self.names = settings.sources
        self.src = source_tables(settings.sources)
        create_source_tables(self.engine, self.names)

    def _value(self, value: Any) -> Any:
        if db.is_sqlite(self.engine):
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, float) and math.isnan(value):
                return None  # SQLite has no NaN: it stores NULL
        return value

    def insert(self, table: sa.TableClause, rows: list[dict[str, Any]]) -> None:
        rows = [{k: self._value(v) for k, v in row.items()} for row in rows]
        with self.engine.begin() as conn:
            conn.execute(sa.insert(table), rows)

    def kids(self, *rows: tuple[int, str]) -> None:
        created = local("2026-01-01 08:00")
        self.insert(
            self.src.kids,
            [
                {"kid_id": k, "nickname": n, "birth_date": None, "created_at": created}
                for k, n in rows
            ],
        )

    def txns(self, *rows: tuple[int, int | None, str | None, str | None, str | None, Any]) -> None:
        """(txn_id, kid_id, local time, kind, category, amount)"""
        self.insert(
            self.src.transactions,
            [
                {
                    "txn_id": i,
                    "kid_id": kid,
                    "occurred_at": None if when is None else local(when),
                    "kind": kind,
                    "category": category,
                    "amount": amount,
                    "note": None,
                }
                for i, kid, when, kind, category, amount in rows
            ],
        )

    def events(self, *rows: tuple[int, int | None, str | None, str]) -> None:
        """(event_id, kid_id, local time, event_type)"""
        self.insert(
            self.src.app_events,
            [
                {
                    "event_id": i,
                    "kid_id": kid,
                    "occurred_at": None if when is None else local(when),
                    "event_type": kind,
                }
                for i, kid, when, kind in rows
            ],
        )


def gold_twice_at_once(settings: Settings, week: str) -> list[dg.ExecuteInProcessResult]:
    """Two runs of gold for the same week at the same time (threads, each its own run):
    what a user double-clicking, or the sensor racing a backfill, does."""
    results: list[dg.ExecuteInProcessResult] = []
    runs = [
        threading.Thread(
            target=lambda: results.append(materialize_week(settings, week, selection="group:gold"))
        )
        for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=200)
    assert len(results) == 2 and all(r.success for r in results)
    return results


def materialize_week(
    settings: Settings,
    week: str,
    selection: str | None = None,
    resources: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    run_config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
    raw_history: bool = True,
) -> dg.ExecuteInProcessResult:
    """Really run the project's assets for one week (in process; an ephemeral instance
    unless one is given). When silver runs and raw holds no week before this one, raw is
    first loaded for the weeks before it that the app has rows in (`load_raw_before`, in
    an instance of its own), as the sensor or a backfill would have: silver reads raw's
    W-2 and W-1 and raw's history (`raw_history=False`: not)."""
    if raw_history and (selection is None or "silver" in selection):
        load_raw_before(settings, week, only_if_none=True)
    return dg.materialize(
        [*pipeline_assets, *asset_checks],
        resources={**run_resources(settings), **(resources or {})},
        partition_key=week,
        selection=selection,
        raise_on_error=raise_on_error,
        run_config=run_config,
        instance=instance,
    )


# Materialises weeks in a process of its own: `python -c` with its arguments.
_MATERIALIZE_IN_A_PROCESS = """
import sys
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets_tests.helpers import materialize_week
selection, weeks = sys.argv[1], sys.argv[2:]
settings = load_settings()
sys.exit(0 if all(materialize_week(settings, w, selection).success for w in weeks) else 1)
"""


def materialize_in_a_process(
    weeks: list[str], selection: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Really run the project's assets for `weeks` in a new process whose environment is
    this one's and `env`: how a test runs weeks under other partitions (their time zone and
    first week are fixed when a process imports them, config/weeks.py)."""
    return subprocess.run(
        [sys.executable, "-c", _MATERIALIZE_IN_A_PROCESS, selection, *weeks],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def materialize_range(
    settings: Settings,
    first: str,
    last: str,
    selection: str = "group:raw",
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of `selection` over the weeks first..last, as a backfill launches raw and
    silver (their checks included)."""
    job = dg.define_asset_job("range_run", selection=selection)
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    return defs.resolve_job_def("range_run").execute_in_process(tags=tags, instance=instance)


def load_raw_before(
    settings: Settings,
    week: str,
    instance: dg.DagsterInstance | None = None,
    only_if_none: bool = False,
) -> None:
    """raw for every week before `week` from the first with app rows (the first partition
    when rows are older): what the sensor or a backfill has done before a week runs, since
    silver reads raw's W-2 and W-1 and raw's history for the savings balance.
    `only_if_none`: not when raw already holds a week before `week`."""
    engine = db.create_engine(settings.warehouse.database_url)
    src = source_tables(settings.sources)
    try:
        with engine.connect() as conn:
            found = [
                conn.execute(
                    sa.select(sa.func.min(db.timestamp_value(engine, t.c.occurred_at)))
                ).scalar()
                for t in (src.transactions, src.app_events)
            ]
        if only_if_none and _raw_holds_a_week_before(engine, settings, week):
            return
    finally:
        engine.dispose()
    earliest = min((_instant(v) for v in found if v is not None), default=None)
    if earliest is None:
        return
    tz = settings.analysis.timezone
    first = max(Week.containing(earliest, tz), Week(weekly_partitions.start.date(), tz))
    last = Week.from_key(week, tz).shifted(-1)
    if first <= last:
        assert materialize_range(settings, first.key, last.key, instance=instance).success


def _raw_holds_a_week_before(engine: Engine, settings: Settings, week: str) -> bool:
    schema = "" if db.is_sqlite(engine) else f'"{settings.warehouse.schema_name}".'
    query = sa.text(f"SELECT count(*) FROM {schema}raw_weeks WHERE week_start < :w")
    try:
        with engine.connect() as conn:
            return bool(conn.execute(query, {"w": dt.date.fromisoformat(week)}).scalar())
    except sa.exc.DBAPIError:
        return False  # no warehouse yet


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def fetch(engine: Engine, query: sa.Select[Any] | str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(query) if isinstance(query, str) else query)
        return [dict(r._mapping) for r in result]


def warehouse_engine(settings: Settings) -> Engine:
    return db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
