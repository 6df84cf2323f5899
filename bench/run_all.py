"""`make bench`: the benchmarks (issues 5, 9, 10, 12, 21 and 22), one after the other, then every
goal.

    python -m bench.run_all [--quick] [--only NAME,...]   # names: see BENCHMARKS below

Each writes bench/results/<name>.json; this adds bench/results/run_all.json (total time
and the goals). They run in sequence, never together: each one's timings assume it has
the machine (and the PostgreSQL server) to itself.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import (
    batch,
    exports,
    faults,
    gold_memory,
    gold_offline,
    grounding,
    history,
    llm_throughput,
    raw_silver,
    silver_scale,
    week_scale,
)
from bench.common import Goal, goals_table, machine_info, machine_line, write_results

BENCHMARKS: dict[str, Callable[[list[str]], dict[str, Any] | None]] = {
    "llm_throughput": llm_throughput.main,
    "silver_scale": silver_scale.main,
    "raw_silver": raw_silver.main,
    "faults": faults.main,
    "grounding": grounding.main,
    "history": history.main,
    "batch": batch.main,
    "gold_memory": gold_memory.main,
    "exports": exports.main,
    "week_scale": week_scale.main,
    "gold_offline": gold_offline.main,
}
# Bounded under `make bench`: a whole 100,000-line ingest takes ~25 min here (bench/README).
FULL_ARGS: dict[str, list[str]] = {"batch": ["--ingest-budget", "300"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all")
    parser.add_argument("--quick", action="store_true", help="small smoke runs")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
    machine = machine_info()
    started = time.perf_counter()
    goals: list[Goal] = []
    timings: dict[str, float] = {}
    failed: list[str] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        began = time.perf_counter()
        try:
            payload = BENCHMARKS[name](["--quick"] if args.quick else FULL_ARGS.get(name, []))
        except Exception:
            # One broken benchmark must not hide the others' figures.
            traceback.print_exc()
            failed.append(name)
            payload = None
        timings[name] = round(time.perf_counter() - began, 1)
        for goal in (payload or {}).get("goals", []):
            goals.append(Goal(f"{name}: {goal.name}", goal.value, goal.target, goal.met))
    total = time.perf_counter() - started
    print("\n=== all benchmarks ===")
    print(f"machine: {machine_line(machine)}")
    print(goals_table(goals))
    print(
        "\ntimes: "
        + ", ".join(f"{n} {s:.0f} s" for n, s in timings.items())
        + f"; total {total / 60:.1f} min"
    )
    if failed:
        print(f"FAILED to run: {', '.join(failed)}")
    write_results(
        "run_all",
        args.quick,
        machine,
        {
            "seconds": timings,
            "total_s": round(total, 1),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "failed": failed,
            "goals": goals,
        },
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
