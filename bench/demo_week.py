"""One demo week through the whole graph with the CLI (issue 21 item 4): how long a small
week takes end to end, and where the time goes.

`make demo`'s data (10 kids, 6 weeks, SQLite, the offline writer), its weeks materialised
first as `make demo` does (untimed), then the last week again with
`dagster asset materialize -m kidsfin_assets.definitions --select '*' --partition <week>`
in a fresh `DAGSTER_HOME` (the local instance, dagster.yaml), `--runs` times. Reported:
the CLI's wall time (interpreter start to exit), the run's own span (RUN_START to
RUN_SUCCESS), the steps, and each step's span (STEP_START to STEP_SUCCESS), medians.
`--code DIR` measures another checkout (the "before" of bench/README.md).

    python -m bench.demo_week [--runs N] [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PROJECT, machine_info, machine_line, table, write_results

NAME = "demo_week"


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    env.update(
        KIDSFIN_DATABASE_URL=f"sqlite:///{tmp / 'kidsfin.db'}",
        KIDSFIN_EXPORTS__EXPORT_DIR=str(tmp / "exports"),
        KIDSFIN_FILE_LOGGER__PATH=str(tmp / "kidsfin.log"),
        DAGSTER_HOME=str(tmp / "home"),
        PYTHONWARNINGS="ignore",
    )
    return env


def prepare(code: Path, tmp: Path, env: dict[str, str]) -> str:
    """`make demo` into `tmp`: its weeks materialised; returns the last week."""
    (tmp / "home").mkdir(parents=True)
    shutil.copy(code / "dagster.yaml", tmp / "home" / "dagster.yaml")
    command = [sys.executable, "-m", "kidsfin_demo.run_demo", "--make-include", str(tmp / "d.mk")]
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"make demo failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    start = (tmp / "d.mk").read_text().split(":=")[1].strip()
    env["KIDSFIN_WEEKS__START_DATE"] = start
    weeks = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  2026")]
    return sorted(weeks)[-1]


def run_once(code: Path, env: dict[str, str], week: str) -> dict[str, Any]:
    import dagster as dg

    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "kidsfin_assets.definitions", "--select", "*", "--partition", week]
    load = os.getloadavg()[0]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"the CLI run failed:\n{done.stderr[-3000:]}")
    home = env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(home) as instance:
        run = instance.get_runs(limit=1)[0]
        steps: dict[str, float] = {}
        started: dict[str, float] = {}
        first = last = None
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind == dg.DagsterEventType.RUN_START:
                first = entry.timestamp
            elif kind == dg.DagsterEventType.RUN_SUCCESS:
                last = entry.timestamp
            elif kind == dg.DagsterEventType.STEP_START and event.step_key:
                started[event.step_key] = entry.timestamp
            elif kind == dg.DagsterEventType.STEP_SUCCESS and event.step_key:
                steps[event.step_key] = round(entry.timestamp - started[event.step_key], 2)
    return {
        "wall_s": round(wall, 2),
        "run_s": round((last or 0) - (first or 0), 2),
        "steps": len(steps),
        "step_s": steps,
        "load_1m_before": round(load, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_week")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, default=PROJECT)
    parser.add_argument("--out", default=NAME)
    parser.add_argument("--quick", action="store_true", help="one run")
    args = parser.parse_args(argv)
    code = args.code.resolve()
    machine = machine_info()
    runs = 1 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="kidsfin_demo_week_") as name:
        tmp = Path(name)
        env = environment(tmp)
        week = prepare(code, tmp, env)
        found = []
        for n in range(runs):
            found.append(run_once(code, env, week))
            print(f"run {n + 1}/{runs}: {found[-1]}", flush=True)
    median = {key: statistics.median(r[key] for r in found) for key in ("wall_s", "run_s", "steps")}
    step_names = sorted({s for r in found for s in r["step_s"]})
    per_step = {s: statistics.median(r["step_s"].get(s, 0.0) for r in found) for s in step_names}
    print(f"\nmachine: {machine_line(machine)}")
    rows = [("CLI wall (s)", median["wall_s"]), ("run span (s)", median["run_s"])]
    rows += [("steps", median["steps"]), *((f"  {s} (s)", v) for s, v in per_step.items())]
    rows.append(
        ("load (1 min) before each run", ", ".join(str(r["load_1m_before"]) for r in found))
    )
    print(table(f"one demo week through the CLI ({code}), medians of {runs}", ("", ""), rows))
    payload = {"code": str(code), "week": week, "median": median, "per_step": per_step}
    write_results(args.out, args.quick, machine, {**payload, "runs": found})
    return payload


if __name__ == "__main__":
    main()
