"""Gold without an API (issue 22, item 4): the offline writer at the speed of its rules.

On PostgreSQL: `python -m kidsfin_demo --kids N --weeks 3` (the demo CLI, COPY), then raw and
silver of the last week and gold of that week, each through the real CLI (`dagster asset
materialize -m kidsfin_assets.definitions`, a throw-away DAGSTER_HOME), no OPENAI_API_KEY: the
offline writer writes, grounds and stores every kid's report. While gold runs, the process
tree of its CLI (the run, its step process, the offline writer's worker processes) is
sampled every 0.2 s: the peak of the tree's summed RSS, and each process's own peak.

Reported: reports written, reports a second (over the writer's wall time in the step, and
over the Dagster step from its start to its success), the step's and the CLI's wall, peak
RSS, the CPU the tree and PostgreSQL spent, the machine's load average at the start and the
end, and the CPU ms of a million Python additions then (the machine is shared: other work on
its two cores slows every figure here; the yardstick says how much). Goal: >= 2,000 reports
a second at 100,000 kids.

    python -m bench.gold_offline [--quick] [--kids N] [--code-dir DIR] [--label NAME]

`--quick`: 12,000 kids (three pages of 5,000: the worker processes are used).
`--code-dir` runs the CLI from another checkout (e.g. main's), whose kidsfin_assets it then
imports, on data made the same way: compare at the same time on the same machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from bench.common import (
    PROJECT,
    RAW_SILVER_SELECTION,
    Goal,
    goals_table,
    gold_count,
    gold_run_metadata,
    load_raw_before,
    machine_info,
    machine_line,
    scratch_database,
    table,
    use_settings,
    warehouse_scalar,
    write_results,
)
from bench.environment import _proc_cpu, descendants, load_average, postgres_backends, reference_ms
from kidsfin_assets.config.weeks import Week

NAME = "gold_offline"
FULL_KIDS, QUICK_KIDS = 100_000, 12_000
GOAL_REPORTS_PER_SECOND = 2_000.0
SAMPLE_SECONDS = 0.2
SPEED_EVERY = 5  # a speed sample a second (~3 ms of CPU each)
SPEED_ADDITIONS = 100_000
SLOW_FACTOR = 1.6


def last_complete_week(timezone: str) -> str:
    return Week.containing(dt.datetime.now(dt.UTC), timezone).shifted(-1).key


def load_demo_cli(url: str, kids: int, week: str) -> float:
    """The demo CLI's data: N kids over 3 weeks ending with `week`; its wall seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    command = [sys.executable, "-m", "kidsfin_demo", "--database-url", url]
    command += ["--kids", str(kids), "--weeks", "3", "--end-week", week]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kidsfin_demo failed: {done.stderr[-2000:]}")
    return time.perf_counter() - began


def offline_env(url: str, workdir: Path, home: Path) -> dict[str, str]:
    """The CLI's environment: no API key (the offline writer), nothing from our shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **env,
        "DAGSTER_HOME": str(home),
        "KIDSFIN_DATABASE_URL": url,
        "KIDSFIN_EXPORTS__EXPORT_DIR": str(workdir / "exports"),
        "KIDSFIN_WAREHOUSE__SPOOL_DIR": str(workdir / "spool"),
    }


def _rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB; zeros once it is gone."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class TreeSampler:
    """Samples a process tree (and the PostgreSQL backends of a database) until stopped:
    the peak of the tree's summed RSS, each process's own peak (VmHWM), and the CPU seconds
    each spent (its last reading before it exited)."""

    def __init__(self, root: int, database: str) -> None:
        self.root, self.database = root, database
        self.peak_tree_mib = 0.0
        self.peak_by_pid: dict[int, float] = {}
        self.cpu_by_pid: dict[int, float] = {}
        self.workers: set[int] = set()  # the offline writer's spawned processes
        self.postgres_cpu_by_pid: dict[int, float] = {}
        # The CPU's speed through the run: CPU time, so waiting for a core does not count;
        # what does is the host slowing the core itself (seen here: a virtual CPU that runs
        # the same loop in 20 ms, then 39 ms, for tens of seconds at a time, idle or busy).
        self.speed_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu(self, workers: bool) -> float:
        return sum(c for pid, c in self.cpu_by_pid.items() if (pid in self.workers) == workers)

    def _run(self) -> None:
        samples = 0
        while not self._stop.wait(SAMPLE_SECONDS):
            samples += 1
            if samples % SPEED_EVERY == 0:
                self.speed_ms.append(reference_ms(SPEED_ADDITIONS))
            total = 0.0
            for pid in [self.root, *descendants(self.root)]:
                rss, hwm = _rss_mib(pid)
                total += rss
                self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0.0), hwm)
                cpu = _proc_cpu(pid)
                if cpu is not None:
                    self.cpu_by_pid[pid] = cpu
                if pid not in self.workers and "spawn_main" in _cmdline(pid):
                    self.workers.add(pid)
            self.peak_tree_mib = max(self.peak_tree_mib, total)
            for pid in postgres_backends(self.database):
                cpu = _proc_cpu(pid)
                if cpu is not None:
                    self.postgres_cpu_by_pid[pid] = cpu


def speed_summary(samples: list[float]) -> dict[str, Any]:
    """The median and the fastest of the run's speed samples, and the share of the run the
    CPU spent at half its speed or slower (samples at 1.6 times the fastest or more)."""
    if not samples:
        return {"speed_ms_median": None, "speed_ms_fastest": None, "slow_share": None}
    fastest = min(samples)
    slow = sum(1 for s in samples if s >= SLOW_FACTOR * fastest)
    return {
        "speed_ms_median": round(statistics.median(samples), 1),
        "speed_ms_fastest": fastest,
        "slow_share": round(slow / len(samples), 2),
        "speed_samples": len(samples),
    }


def materialize_cli(
    week: str, selection: str, env: dict[str, str], log: Path, code: Path = PROJECT
) -> subprocess.Popen[bytes]:
    """The CLI in the code's folder (`--code-dir`: another checkout), whose kidsfin_assets
    `python -m` imports first."""
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "kidsfin_assets.definitions", "--select", selection, "--partition", week]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)


def run_cli(week: str, selection: str, env: dict[str, str], log: Path, code: Path) -> float:
    began = time.perf_counter()
    proc = materialize_cli(week, selection, env, log, code)
    if proc.wait() != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{selection} failed; its log ends with:\n{tail}")
    return time.perf_counter() - began


def measure_gold(url: str, week: str, env: dict[str, str], log: Path, code: Path) -> dict[str, Any]:
    """Gold's CLI run, its process tree sampled while it runs."""
    database = url.rsplit("/", 1)[-1]
    load_before, yardstick_before = load_average(), reference_ms()
    began = time.perf_counter()
    proc = materialize_cli(week, "gold/kid_weekly_reports", env, log, code)
    sampler = TreeSampler(proc.pid, database)
    sampler.start()
    exit_code = proc.wait()
    wall = time.perf_counter() - began
    sampler.stop()
    if exit_code != 0:
        raise RuntimeError(f"gold failed; its log ends with:\n{log.read_text()[-3000:]}")
    meta = gold_run_metadata(Path(env["DAGSTER_HOME"]))
    written = int(meta.get("reports_written") or 0)
    writer_s = float(meta.get("wall_seconds") or 0.0)
    step_s = float(meta.get("step_seconds") or 0.0)
    return {
        "reports_written": written,
        "reports_grounded": meta.get("reports_grounded"),
        "reports_ungrounded": meta.get("reports_ungrounded"),
        "writer_seconds": round(writer_s, 2),
        "step_seconds": round(step_s, 2),
        "cli_seconds": round(wall, 2),
        "reports_per_second": round(written / writer_s, 1) if writer_s else None,
        "reports_per_second_step": round(written / step_s, 1) if step_s else None,
        "peak_tree_rss_mib": round(sampler.peak_tree_mib, 1),
        "peak_process_rss_mib": round(max(sampler.peak_by_pid.values(), default=0.0), 1),
        "processes_seen": len(sampler.peak_by_pid),
        "tree_cpu_seconds": round(sum(sampler.cpu_by_pid.values()), 1),
        "worker_cpu_seconds": round(sampler.cpu(workers=True), 1),
        "dagster_cpu_seconds": round(sampler.cpu(workers=False), 1),
        "postgres_cpu_seconds": round(sum(sampler.postgres_cpu_by_pid.values()), 1),
        "cpu_ms_per_report": round(
            1000
            * (sum(sampler.cpu_by_pid.values()) + sum(sampler.postgres_cpu_by_pid.values()))
            / max(1, written),
            3,
        ),
        "load_avg_at_start": load_before,
        "load_avg_at_end": load_average(),
        "python_loop_ms_at_start": yardstick_before,
        "python_loop_ms_at_end": reference_ms(),
        **speed_summary(sampler.speed_ms),
    }


def measure(kids: int, workdir: Path, code_dir: Path | None) -> dict[str, Any]:
    with scratch_database(f"{NAME}_{kids}") as url:
        settings = use_settings(url)
        week = last_complete_week(settings.analysis.timezone)
        out: dict[str, Any] = {"kids": kids, "week": week}
        out["load_seconds"] = round(load_demo_cli(url, kids, week), 1)
        env = offline_env(url, workdir, workdir / "home")
        code = code_dir or PROJECT
        # Raw refuses to load a week past earlier weeks with app rows it never loaded (the
        # savings balance sums them all): the weeks before first, in one run, as setup.
        load_raw_before(settings, week)
        print(f"  raw and silver of {week} ...", flush=True)
        selection = RAW_SILVER_SELECTION
        out["raw_silver_seconds"] = round(
            run_cli(week, selection, env, workdir / "rs.log", code), 1
        )
        silver = "SELECT count(*) FROM kidsfin.kid_weekly_analysis WHERE week_start = :w"
        out["silver_rows"] = int(warehouse_scalar(settings, silver, w=dt.date.fromisoformat(week)))
        print(f"  gold of {week} ({out['silver_rows']:,} kids), offline ...", flush=True)
        out.update(measure_gold(url, week, env, workdir / "gold.log", code))
        out["gold_rows"] = gold_count(settings, week)
        return out


def report_rows(r: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        ("kids (silver rows) / reports in gold", f"{r['silver_rows']:,} / {r['gold_rows']:,}"),
        (
            "reports written (grounded / kept for review)",
            f"{r['reports_written']:,} ({r['reports_grounded']} / {r['reports_ungrounded']})",
        ),
        (
            "reports a second: writer / Dagster step",
            f"{r['reports_per_second']} / {r['reports_per_second_step']}",
        ),
        (
            "wall, s: writer / step / CLI",
            f"{r['writer_seconds']} / {r['step_seconds']} / {r['cli_seconds']}",
        ),
        (
            "peak RSS, MiB: process tree / largest process",
            f"{r['peak_tree_rss_mib']} / "
            f"{r['peak_process_rss_mib']} ({r['processes_seen']} processes)",
        ),
        (
            "CPU, s: offline workers / CLI, forkserver and step / PostgreSQL",
            f"{r['worker_cpu_seconds']} / {r['dagster_cpu_seconds']} / {r['postgres_cpu_seconds']}",
        ),
        (
            "CPU ms a report, every process (start-up included) / what the machine's CPUs "
            "allow, reports a second",
            f"{r['cpu_ms_per_report']} / "
            f"{round((os.cpu_count() or 1) * 1000 / r['cpu_ms_per_report'])}",
        ),
        (
            "load average (1, 5, 15 min) at start / end",
            f"{r['load_avg_at_start']} / {r['load_avg_at_end']}",
        ),
        (
            "1M Python additions, CPU ms, start / end (33.7 idle)",
            f"{r['python_loop_ms_at_start']} / {r['python_loop_ms_at_end']}",
        ),
        (
            "1M Python additions through the run, CPU ms: median / fastest; share of the run "
            "at 1.6x the fastest or slower",
            f"{r.get('speed_ms_median')} / {r.get('speed_ms_fastest')}; {r.get('slow_share')}",
        ),
        (
            "demo data load (CLI) / raw + silver (CLI), s",
            f"{r['load_seconds']} / {r['raw_silver_seconds']}",
        ),
    ]


def speed_note(r: dict[str, Any]) -> str:
    """What the CPU's speed through the run says about the figures."""
    median, fastest, slow = r.get("speed_ms_median"), r.get("speed_ms_fastest"), r.get("slow_share")
    if not median or not fastest:
        return "The CPU's speed was not sampled (a run under a second)."
    at_fastest = round((os.cpu_count() or 1) * 1000 / r["cpu_ms_per_report"] * median / fastest)
    return (
        f"The CPU ran a million Python additions in {median} ms of CPU at the median of the run "
        f"and {fastest} ms at its fastest, {slow:.0%} of the run at {SLOW_FACTOR}x the fastest "
        f"or slower: every CPU figure above is that much slower than the same code on the "
        f"same CPU at full speed (at the fastest all through, the CPUs would allow "
        f"~{at_fastest:,} reports a second)."
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.gold_offline")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_KIDS:,} kids")
    parser.add_argument("--kids", type=int, help=f"default {FULL_KIDS:,}")
    parser.add_argument("--code-dir", type=Path, help="run another checkout's kidsfin_assets")
    parser.add_argument("--label", help="results as gold_offline_<label>.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    kids = args.kids or (QUICK_KIDS if args.quick else FULL_KIDS)
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp:
        result = measure(kids, Path(tmp), args.code_dir)
    print(table(f"Gold with the offline writer, {kids:,} kids", ("", ""), report_rows(result)))
    rate = result["reports_per_second"] or 0.0
    goal = Goal(
        f"{NAME}: reports a second at {kids:,} kids (offline writer, writer's wall)",
        rate,
        f">= {GOAL_REPORTS_PER_SECOND:,.0f}",
        rate >= GOAL_REPORTS_PER_SECOND and result["gold_rows"] == result["silver_rows"],
    )
    # A comparison run (another size, another checkout) is no measure of the goal.
    goals = [] if args.label or args.code_dir else [goal]
    print(goals_table([goal]))
    print(
        f"\nThe machine is shared: load average {result['load_avg_at_start'][0]} at the start, "
        f"{result['load_avg_at_end'][0]} at the end; a million Python additions took "
        f"{result['python_loop_ms_at_start']} ms of CPU (33.7 on an idle machine of this kind)."
    )
    print(speed_note(result))
    payload = {"elapsed_s": round(time.perf_counter() - started, 1), **result, "goals": goals}
    if args.code_dir is not None:
        payload["code_dir"] = str(args.code_dir)
    name = f"{NAME}_{args.label}" if args.label else NAME
    write_results(name, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
