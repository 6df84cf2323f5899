"""Gold's peak memory against the number of kids (issue 12, part 4: "memory flat in the
number of children").

For each size: demo data of N kids over 3 weeks (`load_demo`), raw and silver of the last
week in process, then gold for that week in a fresh interpreter (`bench.batch --child`:
`dagster.materialize()`, its own peak RSS, VmHWM) with the async client against the suite's
server answering at once, limits far above the week. Gold reads silver a page of kids at a
time (`report_writer.PAGE_KIDS`, or 10 x max_concurrent), and holds at most two pages (the
next one is read and claimed while the current one is asked for), so its peak should stop
growing once a week has two pages or more. The slope from each size to the next, in KiB a
kid, says how flat it is; the goal is judged on the slope between the two largest sizes (it
was ~3.5-5 KiB a kid when every silver row, pending report and nickname was held).

    python -m bench.gold_memory [--quick] [--sizes N [N ...]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.batch import run_child
from bench.common import (
    RAW_SILVER_SELECTION,
    FakeServer,
    Goal,
    goals_table,
    gold_env,
    load_demo,
    machine_info,
    machine_line,
    materialize_in_process,
    scratch_database,
    table,
    use_settings,
    write_results,
)

NAME = "gold_memory"
MAX_CONCURRENT = 200
UNBOUNDED_RPM = 1_000_000
UNBOUNDED_TPM = 100_000_000
GOAL_KIB_PER_KID = 0.5  # "flat": well under a tenth of what holding every row cost


def measure(kids: int, server: FakeServer, workdir: Path) -> dict[str, Any]:
    with scratch_database(f"{NAME}_{kids}") as url:
        settings = use_settings(url)
        summary = load_demo(url, settings, kids=kids, weeks=3)
        week = summary.weeks[-1].isoformat()
        materialize_in_process(settings, week, RAW_SILVER_SELECTION)
        server.configure(rpm=UNBOUNDED_RPM, tpm=UNBOUNDED_TPM, latency=0.0, jitter=0.0)
        server.reset()
        home = workdir / f"home_{kids}"
        home.mkdir()
        env = gold_env(
            url,
            server.base_url,
            home,
            workdir / "exports",
            KIDSFIN_OPENAI__MAX_CONCURRENT=str(MAX_CONCURRENT),
            KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS="0.25",
            KIDSFIN_OPENAI__REQUESTS_PER_MINUTE=str(UNBOUNDED_RPM),
            KIDSFIN_OPENAI__TOKENS_PER_MINUTE=str(UNBOUNDED_TPM),
        )
        out = run_child(week, env, workdir / f"gold_{kids}.log", budget_s=None)
        return {
            "kids": kids,
            "reports_written": out["metadata"].get("reports_written"),
            "success": out["success"],
            "seconds": out["seconds"],
            "baseline_rss_mib": out["baseline_rss_mib"],
            "peak_rss_mib": out["peak_rss_mib"],
        }


def _slope(small: dict[str, Any], large: dict[str, Any]) -> float:
    """Peak RSS growth in KiB a kid from `small` to `large`."""
    grown = (large["peak_rss_mib"] - small["peak_rss_mib"]) * 1024
    return round(grown / (large["kids"] - small["kids"]), 3)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.gold_memory")
    parser.add_argument("--quick", action="store_true", help="1,000 and 4,000 kids")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="numbers of kids (default 5,000 10,000 20,000 40,000)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    sizes = args.sizes or ((1_000, 4_000) if args.quick else (5_000, 10_000, 20_000, 40_000))
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    started = time.perf_counter()
    rows = []
    with FakeServer() as server, tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp:
        for kids in sizes:
            print(f"  {kids:,} kids ...", flush=True)
            rows.append(measure(kids, server, Path(tmp)))
    for before, r in zip([None, *rows], rows, strict=False):
        r["kib_per_kid_from_previous"] = None if before is None else _slope(before, r)
    slope = _slope(rows[-2], rows[-1]) if len(rows) > 1 else float("nan")
    header = (
        "kids",
        "reports written",
        "gold step, s",
        "RSS before, MiB",
        "peak RSS, MiB",
        "KiB a kid from the size before",
    )
    body = [
        (
            r["kids"],
            r["reports_written"],
            r["seconds"],
            r["baseline_rss_mib"],
            r["peak_rss_mib"],
            r["kib_per_kid_from_previous"],
        )
        for r in rows
    ]
    print(table("Gold's peak memory against the number of kids", header, body))
    goal = Goal(
        f"{NAME}: peak RSS growth per kid between the two largest sizes, KiB",
        round(slope, 3),
        f"<= {GOAL_KIB_PER_KID}",
        all(r["success"] for r in rows) and slope <= GOAL_KIB_PER_KID,
    )
    print(goals_table([goal]))
    payload = {
        "elapsed_s": round(time.perf_counter() - started, 1),
        "cases": rows,
        "kib_per_kid": round(slope, 3),
        "goals": [goal],
    }
    write_results(NAME, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
