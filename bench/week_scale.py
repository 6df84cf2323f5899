"""A week at scale, end to end (issue 22, item 3): raw -> silver -> gold through the Batch
API -> both exports, each step a real Dagster run through the CLI, at several numbers of
kids; and silver's first run on two years of history, before any savings balance is stored.

For each size N, on PostgreSQL (a scratch database of its own):

* setup  - `python -m kidsfin_demo --database-url ... --kids N --weeks 4` (COPY), timed
           apart; then raw for W-3 .. W-1 (`--partition-range`, one run: silver's trends
           read W-1 and W-2, from the app's tables today and from raw once silver reads raw),
           timed apart too;
* steps  - one `dagster asset materialize -m kidsfin_assets.definitions --select <asset key>
           --partition W` each, with a DAGSTER_HOME of its own holding the repository's
           dagster.yaml: raw/kid_activity, silver/kid_weekly_analysis,
           gold/kid_weekly_reports with `openai.api: batch` against the suite's server
           (`python -m openai_test_server`, its Files and Batches APIs over HTTP): the first
           run submits the week and ends with an observation, then the bench waits until
           every batch on the server has ended (the Batch API's queue: reported apart, never
           in the week's total), then gold again ingests the answers and materialises the
           week (repeated, at most 3 runs, while it does not); then
           exports/kids_analysis_json and exports/kids_reports_json (the default format, a
           local folder).

Each step: the CLI's wall time (interpreter start and loading the definitions included),
the step's own time (Dagster's STEP_START to STEP_SUCCESS, from the run's event log), and
the peak RSS of the CLI's whole process tree (the CLI and its step process, summed, sampled
every 0.2 s from /proc: pages two processes share are counted twice, so this is an upper
bound), with the largest single process's own peak (VmHWM) beside it. PostgreSQL's memory is
not in either. Then, between consecutive sizes, each step's per-kid slope (seconds and KiB
a kid), and from the two largest sizes the linear extrapolation to 1,000,000 kids.

History: the bench's history case (bench/history.py's direct SQL generator: K kids, 10
transactions and 2 app events a kid-week, over 104 weeks), raw for W-5 .. W (one ranged
run, timed apart), then silver through the CLI three times: W with nothing stored (its
savings balance sums the whole history: the first day), W-3 (nothing at or before W-6 is
stored: the whole history again; it stores W-3's balances), and W again (the balance of
W-3 carried: every later week). The extra seconds of the first run, per transaction of
history, extrapolated to a million kids over two years.

    python -m bench.week_scale [--quick] [--kids 100000,300000] [--million]
                               [--history-kids K] [--no-history] [--merge]

`--quick`: 1,000 and 3,000 kids, history of 1,000 kids (~4 min on a loaded 2-core machine).
`--million` adds 1,000,000 kids to the sizes. `--merge` keeps, from the last
`results/week_scale.json`, the sizes (and the history case) this run does not measure, so
that sizes run on different occasions share one file (each size records its own load and
commit).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from bench.batch import QUEUE_TOKENS, wait_for_batches
from bench.common import (
    API_KEY,
    PROJECT,
    RESULTS_DIR,
    FakeServer,
    Goal,
    goals_table,
    machine_info,
    machine_line,
    scratch_database,
    table,
    use_settings,
    write_results,
)
from bench.environment import CpuSampler, descendants, environment, postgres_backends
from kidsfin_assets.config.weeks import Week, WeeklyPartitions

NAME = "week_scale"
FULL_SIZES, QUICK_SIZES = (100_000, 300_000), (1_000, 3_000)
MILLION = 1_000_000
HISTORY_KIDS, QUICK_HISTORY_KIDS, HISTORY_WEEKS = 20_000, 1_000, 104
DEMO_TXNS_PER_KID_WEEK = 8  # kidsfin_demo's default: the million-kid team's volume
STEPS = {
    "raw": "raw/kid_activity",
    "silver": "silver/kid_weekly_analysis",
    "gold_submit": "gold/kid_weekly_reports",
    "gold_ingest": "gold/kid_weekly_reports",
    "export_analysis": "exports/kids_analysis_json",
    "export_reports": "exports/kids_reports_json",
}
MAX_INGEST_RUNS = 3
GOAL_PEAK_RATIO = 1.25
GOAL_MILLION_MIB = 1024.0
GOAL_WEEK_S = 300.0
GOAL_EXPORT_S = 30.0
SAMPLE_S = 0.2


# --- one command, measured from outside ---------------------------------------------------


def _status_kib(pid: int, key: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return None


class TreeMemory:
    """Samples a process tree every SAMPLE_S: the peak of the sum of its processes' RSS,
    and the largest VmHWM (a process's own peak) seen in any of them."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tree_peak_kib = 0
        self.process_peak_kib = 0
        self.processes: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def sample(self) -> None:
        pids = [self.pid, *descendants(self.pid)]
        self.processes.update(pids)
        total = 0
        for pid in pids:
            total += _status_kib(pid, "VmRSS:") or 0
            self.process_peak_kib = max(self.process_peak_kib, _status_kib(pid, "VmHWM:") or 0)
        self.tree_peak_kib = max(self.tree_peak_kib, total)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(
    command: list[str], env: dict[str, str], log: Path, database: str
) -> dict[str, Any]:
    """Run `command` (its output to `log`), its wall time, the peak RSS of its process
    tree, its CPU and PostgreSQL's for its database, and the load around it."""
    load_before = round(os.getloadavg()[0], 2)
    began = time.time()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)
        roles = {
            "run": lambda: [proc.pid, *descendants(proc.pid)],
            "postgres": lambda: postgres_backends(database),
        }
        with TreeMemory(proc.pid) as memory, CpuSampler(roles) as cpu:
            code = proc.wait()
    ended = time.time()
    span = cpu.between(began, ended)
    return {
        "exit_code": code,
        "wall_s": round(ended - began, 2),
        "tree_peak_rss_mib": round(memory.tree_peak_kib / 1024, 1),
        "process_peak_rss_mib": round(memory.process_peak_kib / 1024, 1),
        "processes": len(memory.processes),
        "cpu_s": span["cpu_s"],
        "other_work_cores": span["other_work_cores"],
        "load_1m_before": load_before,
        "load_1m_after": round(os.getloadavg()[0], 2),
    }


def dagster_command(selection: str, partition: str) -> list[str]:
    flag = "--partition-range" if "..." in partition else "--partition"
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    return [*command, "-m", "kidsfin_assets.definitions", "--select", selection, flag, partition]


def last_run(home: Path, asset_key: str) -> dict[str, Any]:
    """From the instance's latest run: its status, whether it materialised `asset_key`, the
    step's own seconds (first STEP_START to last STEP_SUCCESS/FAILURE of the step that
    materialised or observed it) and its numeric metadata."""
    import dagster as dg

    key = dg.AssetKey.from_user_string(asset_key)
    out: dict[str, Any] = {"materialised": False}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return out
        run = runs[0]
        out["run_status"] = run.status.value
        entries = instance.all_logs(run.run_id)
        step_key = None
        for entry in entries:
            event = entry.dagster_event
            if event is None or event.event_type not in (
                dg.DagsterEventType.ASSET_MATERIALIZATION,
                dg.DagsterEventType.ASSET_OBSERVATION,
            ):
                continue
            if event.asset_key != key:
                continue
            step_key = event.step_key
            data = event.event_specific_data
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                out["materialised"] = True
                metadata = data.materialization.metadata  # type: ignore[union-attr]
            else:
                metadata = data.asset_observation.metadata  # type: ignore[union-attr]
            for name, value in metadata.items():
                inner = getattr(value, "value", value)
                if isinstance(inner, int | float | bool) and not isinstance(inner, str):
                    out.setdefault("metadata", {})[name] = inner
        first = last = None
        for entry in entries:
            event = entry.dagster_event
            if event is None or step_key is None or event.step_key != step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START and first is None:
                first = entry.timestamp
            if event.event_type in (
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            ):
                last = entry.timestamp
        if first is not None and last is not None:
            out["step_s"] = round(last - first, 2)
    return out


class CliRuns:
    """The CLI runs of one scratch database and one DAGSTER_HOME."""

    def __init__(self, url: str, database: str, workdir: Path, env: dict[str, str]) -> None:
        self.url, self.database, self.workdir = url, database, workdir
        self.home = workdir / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copy(PROJECT / "dagster.yaml", self.home / "dagster.yaml")
        self.log = workdir / "runs.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
        self.env = {**base, "DAGSTER_HOME": str(self.home), "KIDSFIN_DATABASE_URL": url, **env}

    def materialize(self, name: str, asset_key: str, partition: str) -> dict[str, Any]:
        out = run_measured(dagster_command(asset_key, partition), self.env, self.log, self.database)
        out.update(last_run(self.home, asset_key))
        print(
            f"    {name} {partition}: {out['wall_s']} s (step {out.get('step_s')} s), "
            f"tree peak {out['tree_peak_rss_mib']} MiB, load {out['load_1m_before']}",
            flush=True,
        )
        if out["exit_code"] != 0 or out.get("run_status") != "SUCCESS":
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} {partition} failed ({out['exit_code']}):\n{tail}")
        return out

    def materialize_range(self, asset_key: str, first: Week, last: Week) -> dict[str, Any]:
        """One ranged run; per-week runs if the asset cannot run a range in one run."""
        with contextlib.suppress(RuntimeError):
            return self.materialize("setup raw", asset_key, f"{first.key}...{last.key}")
        began, week = time.perf_counter(), first
        while week <= last:
            self.materialize("setup raw", asset_key, week.key)
            week = week.shifted(1)
        return {"wall_s": round(time.perf_counter() - began, 2), "per_week_runs": True}


# --- a week at one size -------------------------------------------------------------------


def load_demo_cli(url: str, kids: int, week: Week, log: Path, database: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    command = [sys.executable, "-m", "kidsfin_demo", "--database-url", url]
    command += ["--kids", str(kids), "--weeks", "4", "--end-week", week.key]
    out = run_measured(command, env, log, database)
    if out["exit_code"] != 0:
        raise RuntimeError(f"kidsfin_demo failed: {log.read_text(errors='replace')[-2000:]}")
    return out


def measure_size(kids: int, workdir: Path) -> dict[str, Any]:
    began = time.perf_counter()
    timezone = WeeklyPartitions().timezone  # the default: the shell's KIDSFIN_* are not used
    week = Week.containing(dt.datetime.now(dt.UTC), timezone).shifted(-1)
    out: dict[str, Any] = {"kids": kids, "week": week.key, "environment": environment()}
    with (
        scratch_database(f"{NAME}_{kids}") as url,
        FakeServer(latency=0.0) as server,
    ):
        database = url.rsplit("/", 1)[1]
        folder = workdir / f"size_{kids}"
        exports = folder / "exports"
        run = CliRuns(
            url,
            database,
            folder,
            {
                "KIDSFIN_EXPORTS__EXPORT_DIR": str(exports),
                "OPENAI_API_KEY": API_KEY,
                "OPENAI_BASE_URL": server.base_url,
                "KIDSFIN_OPENAI__API": "batch",
                "KIDSFIN_OPENAI__BATCH_QUEUE_TOKENS": str(QUEUE_TOKENS),
            },
        )
        print(f"  {kids:,} kids, week {week.key}: loading demo data ...", flush=True)
        setup = {"demo": load_demo_cli(url, kids, week, run.log, database)}
        print(f"    demo: {setup['demo']['wall_s']} s", flush=True)
        setup["raw_earlier_weeks"] = run.materialize_range(
            STEPS["raw"], week.shifted(-3), week.shifted(-1)
        )
        out["setup"] = setup
        steps: dict[str, Any] = {}
        for name in ("raw", "silver", "gold_submit"):
            steps[name] = run.materialize(name, STEPS[name], week.key)
        queue_began = time.perf_counter()
        wait_for_batches(server)
        out["batch_queue_s"] = round(time.perf_counter() - queue_began, 1)
        print(f"    Batch API queue (server answering): {out['batch_queue_s']} s", flush=True)
        ingests = []
        while len(ingests) < MAX_INGEST_RUNS:
            ingests.append(run.materialize("gold_ingest", STEPS["gold_ingest"], week.key))
            if ingests[-1]["materialised"]:
                break
            wait_for_batches(server)
        steps["gold_ingest"] = _combine(ingests)
        stats = server.stats()
        out["batches_created"] = stats.get("batches_created")
        out["batch_lines_answered"] = stats.get("batch_lines_answered")
        for name in ("export_analysis", "export_reports"):
            steps[name] = run.materialize(name, STEPS[name], week.key)
        out["export_file_mib"] = {
            f.name.split("_")[1]: round(f.stat().st_size / 2**20, 1)
            for f in sorted(exports.glob("kids_*"))
        }
        shutil.rmtree(exports, ignore_errors=True)
        out["steps"] = steps
    out["week_s"] = round(sum(s["wall_s"] for s in steps.values()), 1)
    out["elapsed_s"] = round(time.perf_counter() - began, 1)
    print(
        f"  {kids:,} kids: the week {out['week_s']} s end to end (queue apart), "
        f"{out['elapsed_s']} s with setup",
        flush=True,
    )
    return out


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one step as one: times added, peaks the largest."""
    if len(runs) == 1:
        return {**runs[0], "runs": 1}
    out = {**runs[-1], "runs": len(runs)}
    for key in ("wall_s", "step_s"):
        out[key] = round(sum(r.get(key) or 0.0 for r in runs), 2)
    for key in ("tree_peak_rss_mib", "process_peak_rss_mib"):
        out[key] = max(r[key] for r in runs)
    return out


# --- silver's first run on two years of history ------------------------------------------


def measure_history(kids: int, workdir: Path) -> dict[str, Any]:
    from bench import history

    began = time.perf_counter()
    case = history.Case(f"{HISTORY_WEEKS} weeks", kids, HISTORY_WEEKS)
    with scratch_database(f"{NAME}_history") as url:
        settings = use_settings(url)
        weeks = history._mondays(settings, case.weeks, dt.datetime.now(dt.UTC))
        last = weeks[-1]
        print(f"  history: {kids:,} kids x {case.weeks} weeks, generating ...", flush=True)
        out: dict[str, Any] = {"kids": kids, "weeks": case.weeks, "week": last.key}
        out["generated"] = history.generate(url, settings, case, weeks)
        print(f"    generated: {out['generated']}", flush=True)
        run = CliRuns(url, url.rsplit("/", 1)[1], workdir / "history", {})
        # Raw from the first partition (its load keeps the older history as the opening
        # balance): raw refuses to load past a week with app rows it never loaded.
        first = Week(WeeklyPartitions().start_date, last.timezone)
        out["raw_setup"] = run.materialize_range(STEPS["raw"], first, last)
        out["silver_first"] = run.materialize("silver first", STEPS["silver"], last.key)
        out["silver_w3_first"] = run.materialize(
            "silver W-3 first", STEPS["silver"], last.shifted(-3).key
        )
        out["silver_steady"] = run.materialize("silver steady", STEPS["silver"], last.key)
    gen = out["generated"]
    # What the first run reads that the steady one does not: the flows before W-2.
    before_window = gen["transactions"] - 3 * gen["transactions_per_week"]
    extra = out["silver_first"]["step_s"] - out["silver_steady"]["step_s"]
    out["history_transactions_before_window"] = before_window
    out["first_extra_s"] = round(extra, 2)
    out["first_extra_us_per_history_txn"] = round(1e6 * extra / before_window, 4)
    out["elapsed_s"] = round(time.perf_counter() - began, 1)
    return out


# --- slopes, extrapolation, the first day ---------------------------------------------------


def slopes(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step, between each pair of consecutive sizes: seconds and KiB a kid."""
    rows = []
    for a, b in itertools.pairwise(sizes):
        kids = b["kids"] - a["kids"]
        for step in STEPS:
            sa_, sb = a["steps"][step], b["steps"][step]
            rows.append(
                {
                    "step": step,
                    "from_kids": a["kids"],
                    "to_kids": b["kids"],
                    "wall_ms_per_kid": round(1000 * (sb["wall_s"] - sa_["wall_s"]) / kids, 4),
                    "step_ms_per_kid": round(
                        1000 * ((sb.get("step_s") or 0.0) - (sa_.get("step_s") or 0.0)) / kids, 4
                    ),
                    "rss_kib_per_kid": round(
                        1024 * (sb["tree_peak_rss_mib"] - sa_["tree_peak_rss_mib"]) / kids, 4
                    ),
                    "peak_ratio": round(sb["tree_peak_rss_mib"] / sa_["tree_peak_rss_mib"], 3),
                }
            )
    return rows


def extrapolate(sizes: list[dict[str, Any]], kids: int = MILLION) -> dict[str, Any] | None:
    """Each step at `kids`, linear from the two largest sizes measured (None with one):
    the step's own time and the tree's peak RSS; the wall adds the larger size's CLI
    overhead (wall - step) unchanged."""
    if len(sizes) < 2:
        return None
    a, b = sizes[-2], sizes[-1]
    grow = (kids - b["kids"]) / (b["kids"] - a["kids"])
    steps = {}
    for step in STEPS:
        sa_, sb = a["steps"][step], b["steps"][step]
        # The step's own time grows with the kids; the CLI's start-up around it does not
        # (and is noisy on a shared machine): the larger size's, kept as it is.
        step_a, step_b = sa_.get("step_s") or sa_["wall_s"], sb.get("step_s") or sb["wall_s"]
        step_at = step_b + grow * (step_b - step_a)
        steps[step] = {
            "step_s": round(step_at, 1),
            "wall_s": round(sb["wall_s"] - step_b + step_at, 1),
            "tree_peak_rss_mib": round(
                sb["tree_peak_rss_mib"]
                + grow * (sb["tree_peak_rss_mib"] - sa_["tree_peak_rss_mib"]),
                1,
            ),
        }
    queue = b["batch_queue_s"] + grow * (b["batch_queue_s"] - a["batch_queue_s"])
    return {
        "kids": kids,
        "from_sizes": [a["kids"], b["kids"]],
        "steps": steps,
        "week_s": round(sum(s["wall_s"] for s in steps.values()), 1),
        "suite_server_queue_s": round(queue, 1),
    }


def first_day(million: dict[str, Any] | None, hist: dict[str, Any] | None) -> dict[str, Any] | None:
    """A million kids with two years of data, its first week: every step at a million
    kids, silver plus the whole history's extra (per transaction, from the history case)."""
    if million is None or hist is None:
        return None
    history_txns = MILLION * DEMO_TXNS_PER_KID_WEEK * (HISTORY_WEEKS - 3)
    silver_extra = hist["first_extra_us_per_history_txn"] * history_txns / 1e6
    steps = {name: s["wall_s"] for name, s in million["steps"].items()}
    steps["silver"] = round(steps["silver"] + silver_extra, 1)
    return {
        "kids": MILLION,
        "weeks_of_history": HISTORY_WEEKS,
        "history_transactions": history_txns,
        "silver_first_extra_s": round(silver_extra, 1),
        "steps_s": steps,
        "total_s_without_queue": round(sum(steps.values()), 1),
    }


# --- output ---------------------------------------------------------------------------------


def step_rows(sizes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for size in sizes:
        setup = size["setup"]
        rows.append(
            (
                size["kids"],
                "setup: kidsfin_demo --weeks 4",
                setup["demo"]["wall_s"],
                "-",
                setup["demo"]["tree_peak_rss_mib"],
                "-",
                setup["demo"]["load_1m_before"],
            )
        )
        rows.append(
            (
                size["kids"],
                "setup: raw W-3..W-1",
                setup["raw_earlier_weeks"]["wall_s"],
                "-",
                setup["raw_earlier_weeks"].get("tree_peak_rss_mib", "-"),
                "-",
                setup["raw_earlier_weeks"].get("load_1m_before", "-"),
            )
        )
        for name, s in size["steps"].items():
            rows.append(
                (
                    size["kids"],
                    STEPS[name]
                    + (
                        " (submit)"
                        if name == "gold_submit"
                        else " (ingest)"
                        if name == "gold_ingest"
                        else ""
                    ),
                    s["wall_s"],
                    s.get("step_s"),
                    s["tree_peak_rss_mib"],
                    s["process_peak_rss_mib"],
                    s["load_1m_before"],
                )
            )
            if name == "gold_submit":
                rows.append(
                    (
                        size["kids"],
                        "Batch API queue (apart)",
                        size["batch_queue_s"],
                        "-",
                        "-",
                        "-",
                        "-",
                    )
                )
        rows.append(
            (size["kids"], "the week, end to end (queue apart)", size["week_s"], "-", "-", "-", "-")
        )
    return rows


STEP_HEADER = (
    "kids",
    "step",
    "CLI wall, s",
    "step, s",
    "tree peak RSS, MiB",
    "largest process, MiB",
    "load (1 min)",
)


def history_rows(h: dict[str, Any]) -> list[tuple[Any, ...]]:
    def row(label: str, s: dict[str, Any]) -> tuple[Any, ...]:
        return (label, s["wall_s"], s.get("step_s"), s["tree_peak_rss_mib"], s["load_1m_before"])

    return [
        row(f"silver W, nothing stored ({h['weeks']} weeks summed)", h["silver_first"]),
        row("silver W-3, nothing stored", h["silver_w3_first"]),
        row("silver W, balance of W-3 stored (steady)", h["silver_steady"]),
    ]


def goals(sizes: list[dict[str, Any]], million: dict[str, Any] | None) -> list[Goal]:
    found = []
    by = {s["kids"]: s for s in sizes}
    if 100_000 in by and 300_000 in by:
        for step in STEPS:
            ratio = round(
                by[300_000]["steps"][step]["tree_peak_rss_mib"]
                / by[100_000]["steps"][step]["tree_peak_rss_mib"],
                3,
            )
            found.append(
                Goal(
                    f"{step}: peak RSS 300k / 100k",
                    ratio,
                    f"<= {GOAL_PEAK_RATIO}",
                    ratio <= GOAL_PEAK_RATIO,
                )
            )
    # From small sizes (--quick) the slope is noise (sampling, CLI start-up): no goal.
    if million is not None and million["from_sizes"][0] >= 100_000:
        for step, s in million["steps"].items():
            mib = s["tree_peak_rss_mib"]
            found.append(
                Goal(
                    f"{step}: peak RSS at 1M by the slope, MiB",
                    mib,
                    f"<= {GOAL_MILLION_MIB:.0f}",
                    mib <= GOAL_MILLION_MIB,
                )
            )
    if 100_000 in by:
        week = by[100_000]["week_s"]
        found.append(
            Goal(
                "the 100k week end to end (queue apart), s",
                week,
                f"< {GOAL_WEEK_S:.0f}",
                week < GOAL_WEEK_S,
            )
        )
        for step in ("export_analysis", "export_reports"):
            wall = by[100_000]["steps"][step]["wall_s"]
            found.append(
                Goal(
                    f"{step} at 100k (CLI wall), s",
                    wall,
                    f"< {GOAL_EXPORT_S:.0f}",
                    wall < GOAL_EXPORT_S,
                )
            )
    return found


def warnings_for(sizes: list[dict[str, Any]]) -> list[str]:
    out = []
    for size in sizes:
        env = size["environment"]
        load = env["load_average_at_start"][0]
        if load >= 1.0:
            out.append(
                f"{size['kids']:,} kids: the machine was busy, load average {load} at "
                "the start (the timings assume it idle; the memory does not)"
            )
        busiest = max(size["steps"].items(), key=lambda kv: kv[1]["other_work_cores"])
        if busiest[1]["other_work_cores"] >= 0.25:
            out.append(
                f"{size['kids']:,} kids: other work took up to "
                f"{busiest[1]['other_work_cores']} of the 2 cores during a step "
                f"({busiest[0]})"
            )
        if env["speedups_missing"]:
            out.append(f"compiled speedups not in use: {env['speedups_missing']}")
    return out


def report(payload: dict[str, Any]) -> str:
    sizes = payload["sizes"]
    parts = [table("A week at scale, each step a CLI run", STEP_HEADER, step_rows(sizes))]
    if payload["slopes"]:
        parts.append(
            table(
                "Per kid, between sizes (tree peak RSS)",
                (
                    "step",
                    "from",
                    "to",
                    "CLI wall, ms a kid",
                    "step, ms a kid",
                    "KiB a kid",
                    "peak ratio",
                ),
                [
                    (
                        r["step"],
                        r["from_kids"],
                        r["to_kids"],
                        r["wall_ms_per_kid"],
                        r["step_ms_per_kid"],
                        r["rss_kib_per_kid"],
                        r["peak_ratio"],
                    )
                    for r in payload["slopes"]
                ],
            )
        )
    m = payload["million"]
    if m:
        rows = [
            (s, v["wall_s"], v["step_s"], v["tree_peak_rss_mib"]) for s, v in m["steps"].items()
        ]
        rows.append(("the week (queue apart)", m["week_s"], "-", "-"))
        parts.append(
            table(
                f"At 1,000,000 kids, linear from {m['from_sizes']}",
                ("step", "CLI wall, s", "step, s", "tree peak RSS, MiB"),
                rows,
            )
        )
    h = payload.get("history")
    if h:
        parts.append(
            table(
                f"Silver on {h['weeks']} weeks of history, {h['kids']:,} kids "
                f"({h['generated']['transactions']:,} transactions)",
                ("run", "CLI wall, s", "step, s", "tree peak RSS, MiB", "load (1 min)"),
                history_rows(h),
            )
        )
    d = payload.get("first_day")
    if d:
        parts.append(
            table(
                "A million kids, two years of data: the first day (queue apart)",
                ("step", "s"),
                [*d["steps_s"].items(), ("in all", d["total_s_without_queue"])],
            )
        )
    return "\n".join(parts)


def previous() -> dict[str, Any]:
    path = RESULTS_DIR / f"{NAME}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.week_scale")
    parser.add_argument("--quick", action="store_true", help="1,000 and 3,000 kids: a smoke run")
    parser.add_argument("--kids", help="comma-separated sizes (default 100000,300000)")
    parser.add_argument("--million", action="store_true", help="add 1,000,000 kids")
    parser.add_argument("--history-kids", type=int, help=f"default {HISTORY_KIDS:,}")
    parser.add_argument("--no-history", action="store_true", help="skip the history case")
    parser.add_argument("--merge", action="store_true", help="keep the last file's other sizes")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.kids:
        chosen = [int(k.replace("_", "")) for k in args.kids.split(",") if k.strip()]
    else:
        chosen = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.million:
        chosen.append(MILLION)
    chosen = sorted(set(chosen))
    history_kids = args.history_kids or (QUICK_HISTORY_KIDS if args.quick else HISTORY_KIDS)
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp:
        measured = []
        for kids in chosen:
            measured.append(measure_size(kids, Path(tmp)))
            measured[-1]["machine"] = {**machine_info(), "load_avg_1m_at_end": os.getloadavg()[0]}
        hist = None if args.no_history else measure_history(history_kids, Path(tmp))
    kept: list[dict[str, Any]] = []
    if args.merge and not args.quick:
        old = previous()
        kept = [s for s in old.get("sizes", []) if s["kids"] not in chosen]
        hist = hist or old.get("history")
    sizes = sorted(measured + kept, key=lambda s: s["kids"])
    million = next((s for s in sizes if s["kids"] == MILLION), None)
    projected = extrapolate([s for s in sizes if s["kids"] < MILLION])
    payload: dict[str, Any] = {
        "elapsed_s": round(time.perf_counter() - began, 1),
        "sizes_measured_this_run": chosen,
        "sizes_kept_from_earlier_runs": [s["kids"] for s in kept],
        "sizes": sizes,
        "slopes": slopes(sizes),
        "million": projected,
        "history": hist,
        "first_day": first_day(projected, hist),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    if million is not None:
        payload["million_measured"] = million
    payload["warnings"] = warnings_for(sizes)
    print(report(payload))
    found = goals(sizes, projected)
    print(goals_table(found))
    for line in payload["warnings"]:
        print(f"WARNING: {line}")
    payload["goals"] = found
    write_results(NAME, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
