"""Raw and silver together (issue 21 item 1): what the pair costs at 100,000 kids.

On PostgreSQL, with the demo generator's data (`python -m kidsfin_demo --kids 100000
--weeks 4`: ~3.3 million transactions, ~1 million app events, ~2 % invalid rows), the
weekly partitions starting at the demo's first week (as `make demo` sets them), two cases,
each a real Dagster run of `raw/kid_activity` and `silver/kid_weekly_analysis` (and their
checks) in a fresh interpreter, so that its peak RSS is the pair's own:

* backfill - one run over the four weeks, as the UI's backfill launches it (single run);
* week     - the last week again, alone (raw W, then silver W: the steady state, a
             sensor's or the UI's run of one week), median of 3.

Per case: wall time of the run (Dagster's job set-up included), each step's duration
(STEP_START to STEP_SUCCESS: raw, silver, the checks), the process's peak RSS (VmHWM;
PostgreSQL's own memory is not in it), and the load average before and after (the
machine is shared: read the figures against it).

`--database URL` measures on an existing database instead (its schema `kidsfin` is
dropped first), so that two versions of the code can be measured on the same rows:
`--prepare` makes and keeps such a database and prints its URL. `--code DIR` runs the
measured runs from another checkout of the project (the "before" of bench/README.md).

    python -m bench.raw_silver [--quick] [--prepare] [--database URL] [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    PROJECT,
    QUIET_RUN_CONFIG,
    RAW_SILVER_SELECTION,
    Goal,
    goals_table,
    load_demo,
    machine_info,
    machine_line,
    scratch_database,
    table,
    use_settings,
    write_results,
)

NAME = "raw_silver"
WEEKS = 4
RUNS = 3
RESULTS_DIR = PROJECT / "bench" / "results"
# The figures of the code before silver read raw (bench/README.md), to compare with.
BASELINE = RESULTS_DIR / "raw_silver_before.json"
STEPS = {"raw__kid_activity": "raw_s", "silver__kid_weekly_analysis": "silver_s"}


def peak_rss_kib() -> int:
    """This process's own peak RSS (VmHWM; see bench/silver_scale.py)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# --- the child: one run of raw and silver, measured from inside -----------------------------


def child(first: str, last: str) -> None:
    """Runs in a fresh interpreter (settings from the environment): one JSON line."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from kidsfin_assets.definitions import build_definitions
    from kidsfin_assets.defs.resources import load_settings

    job = dg.define_asset_job("raw_silver", selection=RAW_SILVER_SELECTION)
    defs = dg.Definitions.merge(build_definitions(load_settings()), dg.Definitions(jobs=[job]))
    instance = dg.DagsterInstance.ephemeral()
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    began = time.perf_counter()
    result = defs.resolve_job_def("raw_silver").execute_in_process(
        tags=tags, instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False
    )
    wall = time.perf_counter() - began
    steps: dict[str, float] = {}
    started: dict[str, float] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            seconds = entry.timestamp - started[event.step_key]
            name = STEPS.get(event.step_key, "checks_s")
            steps[name] = steps.get(name, 0.0) + seconds
    out = {
        "success": result.success,
        "wall_s": round(wall, 3),
        **{k: round(v, 3) for k, v in steps.items()},
        "peak_rss_mib": round(peak_rss_kib() / 1024, 1),
        "kidsfin_assets": sys.modules["kidsfin_assets"].__file__,
    }
    print("RESULT " + json.dumps(out), flush=True)


def measure(code: Path, env: dict[str, str], first: str, last: str) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    command = [sys.executable, "-m", "bench.raw_silver", "--child", first, last]
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the measured run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    out = json.loads(lines[-1].removeprefix("RESULT "))
    if not out["success"]:
        raise RuntimeError(f"the measured run did not succeed:\n{done.stderr[-3000:]}")
    out["load_1m_before"] = round(load_before, 2)
    out["load_1m_after"] = round(os.getloadavg()[0], 2)
    return out


# --- the parent -----------------------------------------------------------------------------


def child_env(url: str, first_week: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    env.update(
        KIDSFIN_DATABASE_URL=url,
        KIDSFIN_WEEKS__START_DATE=first_week,  # as `make demo` does: no Missing weeks
        PYTHONWARNINGS="ignore",
    )
    return env


def prepare(url: str, kids: int) -> list[str]:
    settings = use_settings(url)
    summary = load_demo(url, settings, kids=kids, weeks=WEEKS)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum would have done
    engine.dispose()
    print(
        f"loaded {summary.kids:,} kids, {summary.transactions:,} transactions, "
        f"{summary.app_events:,} app events, {summary.savings_goals:,} goals "
        f"in {summary.elapsed_seconds:.0f} s",
        flush=True,
    )
    return [w.isoformat() for w in summary.weeks]


def demo_weeks(url: str) -> list[str]:
    """The weeks an existing benchmark database holds (its first and last activity)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        first, last = conn.exec_driver_sql(
            "SELECT min(occurred_at), max(occurred_at) FROM transactions "
            "WHERE occurred_at IS NOT NULL"
        ).one()
        conn.exec_driver_sql("SET TIME ZONE 'Asia/Ho_Chi_Minh'")
        mondays = conn.exec_driver_sql(
            "SELECT to_char(d, 'YYYY-MM-DD') FROM generate_series("
            "date_trunc('week', CAST(%(a)s AS timestamptz)), "
            "CAST(%(b)s AS timestamptz), interval '1 week') AS d",
            {"a": first, "b": last},
        ).scalars()
        weeks = list(mondays)
    engine.dispose()
    return weeks


def reset_warehouse(url: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS kidsfin CASCADE")
    engine.dispose()


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over runs; the code measured, as the runs say."""
    out: dict[str, Any] = {
        key: round(statistics.median(r.get(key, 0.0) for r in runs), 3)
        for key in runs[0]
        if isinstance(runs[0][key], int | float) and not isinstance(runs[0][key], bool)
    }
    out["kidsfin_assets"] = runs[0]["kidsfin_assets"]
    return out


def run_cases(url: str, weeks: list[str], code: Path, week_runs: int = RUNS) -> dict[str, Any]:
    env = child_env(url, weeks[0])
    reset_warehouse(url)
    print(f"backfill of {weeks[0]} .. {weeks[-1]} (one run) ...", flush=True)
    backfill = measure(code, env, weeks[0], weeks[-1])
    print(f"  {backfill}", flush=True)
    runs = []
    for n in range(week_runs):
        print(f"week {weeks[-1]} alone, run {n + 1}/{week_runs} ...", flush=True)
        runs.append(measure(code, env, weeks[-1], weeks[-1]))
        print(f"  {runs[-1]}", flush=True)
    return {"backfill": backfill, "week": median_of(runs), "week_runs": runs}


def compare(url: str, weeks: list[str], before: Path, after: Path, rounds: int) -> dict[str, Any]:
    """Before and after (two checkouts) in alternating rounds on the same rows, each on a
    fresh warehouse: other work on the shared machine weighs on both."""
    found: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for n in range(rounds):
        for label, code in (("before", before), ("after", after)):
            print(f"round {n + 1}/{rounds}: {label} ({code})", flush=True)
            found[label].append(run_cases(url, weeks, code, week_runs=1))
    return {
        label: {
            "backfill": median_of([r["backfill"] for r in results]),
            "week": median_of([r["week"] for r in results]),
            "rounds": results,
        }
        for label, results in found.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_silver")
    parser.add_argument("--quick", action="store_true", help="2,000 kids instead of 100,000")
    parser.add_argument("--kids", type=int, default=None)
    parser.add_argument("--prepare", action="store_true", help="make a database, keep it")
    parser.add_argument("--database", help="measure on this existing database")
    parser.add_argument(
        "--code", type=Path, default=PROJECT, help="checkout to measure (--compare: after)"
    )
    parser.add_argument("--out", help="results name (default raw_silver)")
    parser.add_argument(
        "--compare", type=Path, help="a checkout of the code before: alternating rounds"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare")
    parser.add_argument("--child", nargs=2, metavar=("FIRST", "LAST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return None
    kids = args.kids or (2_000 if args.quick else 100_000)
    if args.prepare:
        with scratch_database(f"{NAME}_{kids}", keep=True) as url:
            weeks = prepare(url, kids)
        print(f"database kept: {url} (weeks {', '.join(weeks)})")
        return None
    machine = machine_info()
    if args.compare:
        url = args.database
        if not url:
            parser.error("--compare needs --database (the same rows for both)")
        both = compare(
            url, demo_weeks(url), args.compare.resolve(), args.code.resolve(), args.rounds
        )
        header = ("code", "case", "wall s", "raw s", "silver s", "checks s", "peak RSS MiB")
        rows = [
            (
                label,
                case,
                m["wall_s"],
                m.get("raw_s", 0.0),
                m.get("silver_s", 0.0),
                m.get("checks_s", 0.0),
                m["peak_rss_mib"],
            )
            for label, found in both.items()
            for case, m in (("backfill", found["backfill"]), ("week", found["week"]))
        ]
        loads = [
            r[case]["load_1m_before"]
            for found in both.values()
            for r in found["rounds"]
            for case in ("backfill", "week")
        ]
        print(f"\nmachine: {machine_line(machine)}")
        print(table(f"raw + silver, medians of {args.rounds} alternating rounds", header, rows))
        print(f"load average (1 min) at the runs' starts: {min(loads):.1f} to {max(loads):.1f}")
        write_results(args.out or f"{NAME}_compare", False, machine, both)
        return both
    if args.database:
        url, weeks = args.database, demo_weeks(args.database)
        measured = run_cases(url, weeks, args.code.resolve())
    else:
        with scratch_database(f"{NAME}_{kids}") as url:
            weeks = prepare(url, kids)
            measured = run_cases(url, weeks, args.code.resolve())
    rows = []
    for case in ("backfill", "week"):
        m = measured[case]
        rows.append(
            (
                case,
                m["wall_s"],
                m.get("raw_s", 0.0),
                m.get("silver_s", 0.0),
                m.get("checks_s", 0.0),
                m["peak_rss_mib"],
                f"{m['load_1m_before']:.1f} / {m['load_1m_after']:.1f}",
            )
        )
    header = (
        "case",
        "wall s",
        "raw s",
        "silver s",
        "checks s",
        "peak RSS MiB",
        "load before/after",
    )
    print(f"\nmachine: {machine_line(machine)}")
    print(table(f"raw + silver, {kids:,} kids, {len(weeks)} weeks", header, rows))
    goals: list[Goal] = []
    if BASELINE.exists() and not args.quick and args.out is None:
        before = json.loads(BASELINE.read_text())
        for case in ("backfill", "week"):
            then = before[case]["raw_s"] + before[case]["silver_s"]
            now = measured[case].get("raw_s", 0.0) + measured[case].get("silver_s", 0.0)
            goals.append(
                Goal(
                    f"{case}: raw + silver steps (s)", round(now, 2), f"<= {then:.2f}", now <= then
                )
            )
        print(goals_table(goals))
    payload = {"kids": kids, "weeks": weeks, **measured, "goals": goals}
    write_results(args.out or NAME, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
