"""`make demo`: load demo data, materialise every demo week, print where things are.

Runs on whatever KIDSFIN_DATABASE_URL names (default: SQLite under data/), with real
Dagster runs recorded in DAGSTER_HOME so that `make dev` shows them in the UI.
"""

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from kidsfin_assets.config.errors import SettingsError
from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.config.weeks import START_DATE_ENV, WEEKS, Week
from kidsfin_assets.definitions import pipeline_assets, run_resources
from kidsfin_assets.defs.checks import asset_checks
from kidsfin_assets.defs.resources import Settings, load_settings
from kidsfin_assets.exports.export_formats import EXTENSIONS
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.source_activity import weeks_with_activity
from kidsfin_assets.warehouse.tables import (
    kid_weekly_analysis,
    kid_weekly_reports,
    source_tables,
)
from kidsfin_demo import DemoSpec, generate

DEFAULT_MAKE_INCLUDE = "data/demo.mk"


def _instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_week(settings: Settings, instance: dg.DagsterInstance, week: str) -> bool:
    result = dg.materialize(
        [*pipeline_assets, *asset_checks],
        resources=run_resources(settings),
        partition_key=week,
        instance=instance,
        # new_week_sensor takes these weeks as processed from what raw and silver record
        # (the source versions they read), as it would a run from the UI or the CLI.
        tags={"kidsfin/source": "make-demo"},
        # Run logs stay in the instance (see them in the UI); the console gets warnings only.
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    return result.success


def _week_counts(settings: Settings) -> list[tuple[str, int, int, float, str]]:
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    silver, gold = kid_weekly_analysis, kid_weekly_reports
    kids = sa.select(silver.c.week_start, sa.func.count()).group_by(silver.c.week_start)
    reports = sa.select(
        gold.c.week_start, sa.func.count(), sa.func.sum(gold.c.cost_usd), sa.func.max(gold.c.writer)
    ).group_by(gold.c.week_start)
    with engine.connect() as conn:
        silver_counts = dict(conn.execute(kids).all())
        gold_rows = {r[0]: r[1:] for r in conn.execute(reports)}
    return [
        (str(week), n, *(gold_rows.get(week) or (0, 0.0, "-")))
        for week, n in sorted(silver_counts.items())
    ]


def print_summary(settings: Settings, failed: list[str], seconds: float) -> None:
    print("\n  week         kids  reports  cost (USD)  writer")
    for week, kids, reports, cost, writer in _week_counts(settings):
        print(f"  {week}  {kids:>5}  {reports:>7}  {cost or 0:>10.4f}  {writer}")
    print(f"\n  database : {db.redact(settings.warehouse.database_url)}")
    ext = EXTENSIONS[settings.exports.format]
    first = settings.exports.target().location(f"kids_analysis_<week>{ext}")
    print(f"  exports  : {first}, kids_reports_<week>{ext}")
    print(f"  dagster  : {os.environ.get('DAGSTER_HOME', '(ephemeral instance)')}")
    print(f"  took     : {seconds:.1f} s")
    if not os.environ.get("OPENAI_API_KEY"):
        print("  reports  : written by the OFFLINE rules writer (no OPENAI_API_KEY set)")
    print("\n  Open the UI with `make dev` (http://127.0.0.1:3000).")
    if failed:
        print(f"\n  FAILED weeks: {', '.join(failed)} (see the run logs in the UI)")


def detect_weeks(settings: Settings) -> list[str]:
    """Complete weeks with activity, found in the database (as AI Production Pipeline did)."""
    tz = settings.analysis.timezone
    first = Week(WEEKS.start_date, tz)
    last = Week.containing(dt.datetime.now(dt.UTC), tz).shifted(-1)
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    with engine.connect() as conn:
        found = weeks_with_activity(conn, source_tables(settings.sources), first, last)
    return [w.key for w in found]


def demo_weeks(timezone: str, now: dt.datetime, weeks: int = DemoSpec.weeks) -> list[Week]:
    """The demo's weeks: the last `weeks` complete ones."""
    last = Week.containing(now, timezone).shifted(-1)
    return [last.shifted(-n) for n in range(weeks - 1, -1, -1)]


def start_partitions_at(first: Week, make_include: Path) -> None:
    """Partitions start at the demo's first week, in this process and in `make dev` (which
    includes `make_include`), so a fresh demo shows its weeks and no Missing ones. A
    KIDSFIN_WEEKS__START_DATE of the user's wins in both."""
    if START_DATE_ENV not in os.environ:
        os.environ[START_DATE_ENV] = first.key
    make_include.parent.mkdir(parents=True, exist_ok=True)
    make_include.write_text(
        "# Written by `make demo`: weekly partitions start at the demo's first week.\n"
        f"DEMO_START_DATE := {first.key}\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kidsfin_demo.run_demo")
    parser.add_argument(
        "--make-include",
        type=Path,
        default=resolve_path(DEFAULT_MAKE_INCLUDE),
        help="where to write the demo's partition start for `make dev`",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    try:
        settings = load_settings()
        weeks_loaded = demo_weeks(settings.analysis.timezone, dt.datetime.now(dt.UTC))
        start_partitions_at(weeks_loaded[0], args.make_include)
        settings = load_settings()
    except SettingsError as exc:
        print(f"kidsfin demo: {exc}", file=sys.stderr)
        return 2
    engine = db.create_engine(settings.warehouse.database_url)
    spec = DemoSpec(
        weeks=len(weeks_loaded),
        end_week=weeks_loaded[-1].start,
        timezone=settings.analysis.timezone,
    )
    summary = generate(engine, settings.sources, spec)
    engine.dispose()
    print(
        f"kidsfin demo: loaded {summary.kids} kids, {summary.transactions} transactions, "
        f"{summary.app_events} app events"
    )
    weeks = detect_weeks(settings)
    print(f"  weeks with activity in the database: {', '.join(weeks)}")
    instance = _instance()
    failed = []
    for week in weeks:
        ok = run_week(settings, instance, week)
        print(f"  materialised week {week}: {'ok' if ok else 'FAILED'}", flush=True)
        if not ok:
            failed.append(week)
    print_summary(settings, failed, time.monotonic() - started)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
