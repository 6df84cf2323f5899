"""LLM throughput: how close gold gets to the API's per-minute limits, and never over.

Three cases, each a real `dagster asset materialize` of gold (a subprocess per week)
against the suite's OpenAI-compatible server on 127.0.0.1, which enforces a sliding
60-second window and counts every request over its limit:

* single   - one week of N kids in one run, the request limit R binding;
* parallel - the same N split over 3 weeks, 3 runs at once sharing the database's bucket
             (the backfill case);
* tokens   - one week of N kids with the token limit binding (R raised out of the way).

Achieved rate is measured on the server: over the steady part (first to last request) and
over the whole run (Dagster start-up and teardown included), and the best 60 s window.

    python -m bench.llm_throughput [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench import environment
from bench.common import (
    RAW_SILVER_SELECTION,
    FakeServer,
    Goal,
    GoldRun,
    goals_table,
    gold_count,
    load_demo,
    machine_info,
    machine_line,
    materialize_in_process,
    per_minute,
    scratch_database,
    start_gold,
    table,
    use_settings,
    warehouse_scalar,
    write_results,
)

NAME = "llm_throughput"
GOAL_SHARE = 0.95
TIER5_GOAL_SHARE = 0.9  # issue 12 part 4: >= 0.9 of R from one step process
# A token limit no run reaches: set on the client when only R should bind.
UNBOUNDED_TPM = 100_000_000


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    kids_per_week: int
    weeks: int  # weeks materialised, one process each, all at once
    rpm: int
    tpm: int | None  # server's token limit (None: none)
    # The big tiers (issue 12 part 4): their own latency, requests in flight and client.
    latency: float | None = None
    jitter: float | None = None
    max_concurrent: int | None = None
    client: str = "async"  # the only client since stop 27 (results before say "threads")
    lease_seconds: float = 0.25  # 0 (a transaction a grant) was the threaded client's
    # False: the client's defaults (async, max_concurrent and the lease auto); `client`
    # and `lease_seconds` then say what auto is expected to pick.
    knobs: bool = True


@dataclass(frozen=True)
class Plan:
    latency: float
    jitter: float
    max_concurrent: int
    max_tokens: int
    cases: tuple[Case, ...]


def plan(quick: bool) -> Plan:
    """Sizes: N >= 1,000 (the issue's minimum), each case about 60-110 s at its limit.

    The token case's limit is sized from the measured ~950 tokens a request (prompt ~800,
    answer ~155 by the server's count) so that N reports need ~75 s: TPM binds, R does not.
    """
    if quick:
        return Plan(
            latency=0.2,
            jitter=0.05,
            max_concurrent=16,
            max_tokens=800,
            cases=(
                Case("single", "1 week x 100 kids, 1 run", 100, 1, 1200, None),
                Case("parallel", "3 weeks x 34 kids, 3 runs", 34, 3, 1200, None),
                Case("tokens", "1 week x 100 kids, TPM binding", 100, 1, 6000, 1_000_000),
            ),
        )
    return Plan(
        latency=0.5,
        jitter=0.2,
        max_concurrent=16,
        max_tokens=800,
        cases=(
            Case("single", "1 week x 1,000 kids, 1 run", 1000, 1, 600, None),
            Case("parallel", "3 weeks x 334 kids, 3 runs", 334, 3, 600, None),
            Case("tokens", "1 week x 1,000 kids, TPM binding", 1000, 1, 3000, 750_000),
        ),
    )


def client_env(case: Case, p: Plan) -> dict[str, str]:
    """The run's limits equal the server's: the client is told the real budget, no margin."""
    env = {
        "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE": str(case.rpm),
        "KIDSFIN_OPENAI__TOKENS_PER_MINUTE": str(case.tpm or UNBOUNDED_TPM),
        "KIDSFIN_OPENAI__MAX_TOKENS": str(p.max_tokens),
        "KIDSFIN_OPENAI__TIMEOUT_SECONDS": "30",
    }
    if case.knobs:
        env["KIDSFIN_OPENAI__MAX_CONCURRENT"] = str(case.max_concurrent or p.max_concurrent)
        env["KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS"] = str(case.lease_seconds)
    return env


def tier5_cases(quick: bool) -> tuple[Case, ...]:
    """Tier 5 of a small model: R = 30,000 a minute, answers of 3 s +- 1 s, so ~1,500
    requests must be in flight; at least 20,000 kids (2,000 with --quick). No knob set
    (issue 20 item 4): the async client, its requests in flight and the bucket's lease
    are the defaults' (auto)."""
    kids = 2000 if quick else 20_000
    return (
        Case(
            "tier5",
            f"1 week x {kids:,} kids, 1 run, R = 30,000, 3 s +- 1 s, no knobs (auto)",
            kids,
            1,
            30_000,
            None,
            latency=3.0,
            jitter=1.0,
            client="async",
            lease_seconds=0.25,
            knobs=False,
        ),
    )


def bucket_ceiling(case: Case, p: Plan) -> dict[str, float]:
    """What the project's shared bucket can ever grant, as a share of each limit: its refill
    is (limit - capacity) per period (kidsfin_assets/llm/bucket.py, SharedRateLimiter)."""
    from kidsfin_assets.llm.bucket import SharedRateLimiter
    from kidsfin_assets.warehouse.db import create_engine

    engine = create_engine("sqlite://")  # no connection is made: only the arithmetic is read
    limiter = SharedRateLimiter(
        engine,
        requests_per_minute=case.rpm,
        tokens_per_minute=case.tpm or UNBOUNDED_TPM,
        max_request_tokens=p.max_tokens * 4,
        lease_seconds=case.lease_seconds,
    )
    engine.dispose()
    return {
        "requests_capacity": limiter.requests.capacity,
        "requests_ceiling_share": limiter.requests.refill_per_second * 60 / case.rpm,
        "tokens_capacity": limiter.tokens.capacity,
        "tokens_ceiling_share": (
            limiter.tokens.refill_per_second * 60 / case.tpm if case.tpm else math.nan
        ),
    }


def run_case(
    case: Case, p: Plan, server: FakeServer, workdir: Path, env: dict[str, Any]
) -> dict[str, Any]:
    with scratch_database(f"llm_{case.name}") as url:
        settings = use_settings(url)
        summary = load_demo(url, settings, kids=case.kids_per_week, weeks=max(3, case.weeks))
        weeks = [w.isoformat() for w in summary.weeks[-case.weeks :]]
        for week in weeks:
            materialize_in_process(settings, week, RAW_SILVER_SELECTION)
        n = int(
            warehouse_scalar(
                settings,
                "SELECT count(*) FROM kidsfin.kid_weekly_analysis WHERE week_start >= :first",
                first=summary.weeks[-case.weeks],
            )
        )
        latency = p.latency if case.latency is None else case.latency
        jitter = p.jitter if case.jitter is None else case.jitter
        # Every arrival kept (the steady rate is read from them), not the last 10,000.
        server.configure(
            rpm=case.rpm,
            tpm=case.tpm,
            latency=latency,
            jitter=jitter,
            max_recorded=max(10_000, n + 1_000),
        )
        server.reset()
        client = client_env(case, p)
        runs: list[GoldRun] = []
        database = make_url(url).database or ""
        # The CPU of every process of the run, by role: the steps (the CLI's process:
        # the project's executor runs a run's steps in it, defs/executor.py; with
        # `processes: true`, its children), the server, PostgreSQL's backends for this
        # database, and this process (its sampler included).
        sampler = environment.CpuSampler(
            {
                "step": lambda: [
                    p for r in runs for p in (r.proc.pid, *environment.descendants(r.proc.pid))
                ],
                "server": lambda: [server.proc.pid],
                "postgres": lambda: environment.postgres_backends(database),
                "bench": lambda: [os.getpid()],
            }
        )
        with sampler:
            started = time.time()
            for week in weeks:
                runs.append(start_gold(week, workdir / case.name, url, server.base_url, **client))
            codes = [run.wait(1800) for run in runs]
            ended = time.time()
        stats, times = server.stats(), server.chat_times()
        written = gold_count(settings)
        metas = [run.metadata() for run in runs]
        failures = [run.tail() for run, code in zip(runs, codes, strict=True) if code != 0]
    out = figures(case, p, n, written, codes, metas, stats, times, ended - started, failures)
    out.update(cpu_figures(out, sampler, times, env, metas))
    return out


def cpu_figures(
    r: dict[str, Any],
    sampler: environment.CpuSampler,
    times: list[float],
    env: dict[str, Any],
    metas: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the rate depended on: each process's CPU a request over the API span (first to
    last arrival: the steady part), the share of a core the step had, what one core (and
    the whole machine) would allow at that CPU a request, and the transport it used."""
    transports = sorted({str(m["http_transport"]) for m in metas if m.get("http_transport")})
    transport = ", ".join(transports) or None
    if len(times) < 2:
        return {"cpu": None, "http_transport": transport, "warnings": []}
    span = sampler.between(times[0], times[-1])
    requests = len(times) - 1
    per_request = {role: round(1000 * s / requests, 3) for role, s in span["cpu_s"].items()}
    step_ms = per_request["step"]
    rate_per_s = r["rpm_limit"] / 60
    ceilings = {
        # One step process runs its Python on one core (the GIL).
        "one_core_allows_share": round(1000 / step_ms / rate_per_s, 3) if step_ms else None,
        # Every process of the run shares the machine's cores.
        "machine_allows_share": round(
            span["cores"] * 1000 / sum(per_request.values()) / rate_per_s, 3
        ),
    }
    whole = sampler.samples[-1][1]
    return {
        "cpu": {
            **span,
            "cpu_ms_per_request": per_request,
            "step_core_share": round(span["cpu_s"]["step"] / span["seconds"], 3),
            **ceilings,
            # Start-up, page reads and the asset checks included: every process's CPU.
            "whole_run_cpu_ms_per_report": {
                role: round(1000 * s / max(1, r["reports_written"]), 3) for role, s in whole.items()
            },
        },
        "http_transport": transport,
        "warnings": environment.precondition_warnings(
            env, span, per_request, r["rpm_limit"], transport, goal_share(r)
        ),
    }


def figures(
    case: Case,
    p: Plan,
    n: int,
    written: int,
    codes: list[int],
    metas: list[dict[str, Any]],
    stats: dict[str, Any],
    times: list[float],
    wall: float,
    failures: list[str],
) -> dict[str, Any]:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    sent = len(times)
    tokens = stats["prompt_tokens"] + stats["completion_tokens"]
    # Steady part: n-1 intervals between the first and the last arrival.
    steady_rpm = per_minute(sent - 1, span)
    steady_tpm = per_minute(round(tokens * (sent - 1) / max(1, sent)), span)
    processes = case.weeks
    latency = p.latency if case.latency is None else case.latency
    in_flight = (case.max_concurrent or p.max_concurrent) if case.knobs else None
    ideal = 60.0 * n / case.rpm  # auto: sized for the limit, which binds
    if in_flight is not None:
        ideal = max(ideal, n * latency / (in_flight * processes))
    if case.tpm:
        ideal = max(ideal, 60.0 * tokens / case.tpm)
    binding = "tokens" if case.tpm else "requests"
    limit = case.tpm if case.tpm else case.rpm
    steady = steady_tpm if case.tpm else steady_rpm
    whole = per_minute(tokens if case.tpm else stats["ok"], wall)
    best_window = (
        stats["max_admitted_tokens_in_window"] if case.tpm else stats["max_requests_in_window"]
    )
    step_wall = max((m.get("step_seconds", 0.0) for m in metas), default=0.0)
    return {
        "case": case.name,
        "label": case.label,
        "processes": processes,
        "reports_expected": n,
        "reports_written": written,
        "exit_codes": codes,
        "rpm_limit": case.rpm,
        "tpm_limit": case.tpm,
        "binding": binding,
        "latency_s": latency,
        "jitter_s": p.jitter if case.jitter is None else case.jitter,
        "max_concurrent": in_flight if in_flight is not None else "auto",
        "client": case.client,
        "lease_seconds": case.lease_seconds,
        "requests_sent": sent,
        "requests_ok": stats["ok"],
        "over_limit": stats["over_limit"],
        "retries": sent - written,  # at the server: every attempt of every run
        "dagster_step_attempts": [m.get("step_attempts") for m in metas],
        "tokens": tokens,
        "tokens_per_request": round(tokens / max(1, stats["ok"]), 1),
        "max_in_flight": stats["max_in_flight"],
        "api_span_s": round(span, 2),
        "steady_rpm": round(steady_rpm, 1),
        "steady_tpm": round(steady_tpm),
        "steady_share": round(steady / limit, 4),
        "whole_run_share": round(whole / limit, 4),
        "best_60s_window": best_window,
        "best_60s_window_share": round(best_window / limit, 4) if span >= 60 else None,
        "wall_s": round(wall, 2),
        "gold_step_wall_s": round(step_wall, 2),
        "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3),
        "gold_step_over_ideal": round(step_wall / ideal, 3) if step_wall else None,
        **{k: round(v, 4) for k, v in bucket_ceiling(case, p).items()},
        "failures": failures,
    }


def goal_share(r: dict[str, Any]) -> float:
    return TIER5_GOAL_SHARE if r["case"] == "tier5" else GOAL_SHARE


def goals(results: list[dict[str, Any]]) -> list[Goal]:
    out = []
    for r in results:
        limit = "TPM" if r["binding"] == "tokens" else "R"
        out.append(
            Goal(
                f"{r['case']}: steady rate / {limit}",
                r["steady_share"],
                f">= {goal_share(r)}",
                r["steady_share"] >= goal_share(r),
            )
        )
        over = r["over_limit"]
        out.append(Goal(f"{r['case']}: requests over the limit", over, "0", over == 0))
        out.append(
            Goal(
                f"{r['case']}: reports written",
                f"{r['reports_written']}/{r['reports_expected']}",
                "all",
                r["reports_written"] == r["reports_expected"],
            )
        )
    return out


ROWS = (
    ("reports (N)", "reports_expected"),
    ("processes", "processes"),
    ("binding limit", "binding"),
    ("limit R (req/min)", "rpm_limit"),
    ("client, requests in flight", "client_line"),
    ("server latency, s", "latency_s"),
    ("limit TPM", "tpm_limit"),
    ("requests sent", "requests_sent"),
    ("requests over the limit", "over_limit"),
    ("retries", "retries"),
    ("tokens / request", "tokens_per_request"),
    ("steady rate, req/min", "steady_rpm"),
    ("steady rate, tokens/min", "steady_tpm"),
    ("steady rate / limit", "steady_share"),
    ("best 60 s window / limit", "best_60s_window_share"),
    ("whole run / limit", "whole_run_share"),
    ("bucket ceiling / limit", "ceiling"),
    ("API span, s", "api_span_s"),
    ("gold step wall, s", "gold_step_wall_s"),
    ("run wall (CLI, start-up incl.), s", "wall_s"),
    ("ideal, s", "ideal_s"),
    ("run wall / ideal", "wall_over_ideal"),
    ("gold step / ideal", "gold_step_over_ideal"),
    # What the rate depended on (the API span: first to last arrival).
    ("HTTP transport (async client)", "http_transport"),
    ("CPU ms a request: step process", "cpu_step"),
    ("CPU ms a request: test server", "cpu_server"),
    ("CPU ms a request: PostgreSQL", "cpu_postgres"),
    ("CPU ms a request: the benchmark", "cpu_rest"),
    ("step process busy, share of a core", "step_core_share"),
    ("other work on the machine, cores", "other_work_cores"),
    ("one core allows, share of limit", "one_core_allows_share"),
    ("the machine allows, share of limit", "machine_allows_share"),
)


def _cpu_cells(r: dict[str, Any]) -> dict[str, Any]:
    cpu = r.get("cpu") or {}
    ms = cpu.get("cpu_ms_per_request", {})
    return {
        "cpu_step": ms.get("step"),
        "cpu_server": ms.get("server"),
        "cpu_postgres": ms.get("postgres"),
        "cpu_rest": round(ms.get("bench", 0.0), 3) if ms else None,
        **{
            k: cpu.get(k)
            for k in (
                "step_core_share",
                "other_work_cores",
                "one_core_allows_share",
                "machine_allows_share",
            )
        },
    }


def report(results: list[dict[str, Any]]) -> str:
    cells = []
    for r in results:
        cells.append(
            {
                **r,
                **_cpu_cells(r),
                "client_line": f"{r.get('client', 'threads')}, {r['max_concurrent']}",
                "ceiling": r["tokens_ceiling_share"]
                if r["binding"] == "tokens"
                else r["requests_ceiling_share"],
            }
        )
    rows = [(label, *(c.get(key) for c in cells)) for label, key in ROWS]
    header = ("", *(r["case"] for r in results))
    return table("LLM throughput (gold through `dagster asset materialize`)", header, rows)


def environment_report(env: dict[str, Any]) -> str:
    """What the figures above depend on besides the code, as measured in this run."""
    py, cpu = env["python"], env["cpu"]
    start, end = env["yardsticks_at_start"], env.get("yardsticks_at_end", {})
    build = [
        "configured with PGO" if py["pgo"] else "configured without PGO",
        "LTO" if py["lto"] else "no LTO",
        f"on {py['libpython']}" if py["libpython"] else "libpython linked in",
    ]
    rows: list[tuple[str, Any]] = [
        ("Python", f"{py['version']} {py['executable']} ({', '.join(build)}, {py['compiler']})"),
        ("Python environment", ", ".join(f"{k}={v}" for k, v in py["env"].items()) or "none"),
        (
            "CPU",
            f"{cpu['model']}, family/model/stepping {cpu['family_model_stepping']}"
            + (f" = {cpu['generation']}" if cpu.get("generation") else "")
            + ", "
            f"{cpu['mhz']} MHz, {cpu['cores']} cores"
            + (", AVX-512" if cpu["avx512f"] else "")
            + (", under a hypervisor" if cpu["hypervisor"] else ""),
        ),
        (
            "load average (1, 5, 15 min): start / end",
            f"{env['load_average_at_start']} / {env.get('load_average_at_end')}",
        ),
        (
            "yardstick: 1M additions, CPU ms (33.7 where tier5 met its goal): start / end",
            f"{start['python_loop_ms']} / {end.get('python_loop_ms')}",
        ),
        (
            "yardstick: a load from 64 MiB, CPU ns beyond L2: start / end",
            f"{start['memory_ns_per_load']} / {end.get('memory_ns_per_load')}",
        ),
    ]
    for name, version in env["packages"].items():
        used = env["speedups"].get(name.replace("-binary", ""))
        rows.append((f"package {name}", f"{version}" + (f" ({used})" if used else "")))
    return table("What these figures depend on (besides the code)", ("", "measured"), rows)


def warnings_report(results: list[dict[str, Any]]) -> str:
    lines = [
        f"  WARNING {r['case']}: {warning}" for r in results for warning in r.get("warnings", [])
    ]
    return "\n".join(["", *lines]) if lines else "\nEvery precondition of the figures held."


# --- the shared bucket alone -------------------------------------------------------------

BUCKET_RPM = 6_000_000  # 100,000 a second: far above what any process asks, so never binds
BUCKET_TPM = 6_000_000_000


_READY: Any = None  # each bucket worker's barrier: every process imported and connected


def _bucket_ready(barrier: Any) -> None:
    global _READY
    _READY = barrier


def _bucket_worker(
    url: str, lease_seconds: float, threads: int, seconds: float
) -> tuple[int, float]:
    """Grants (acquire, then settle with fewer tokens) from `threads` threads for `seconds`
    once every process is ready, and this process's CPU seconds."""
    import threading

    from kidsfin_assets.llm.bucket import SharedRateLimiter
    from kidsfin_assets.warehouse.db import create_engine

    engine = create_engine(url)
    limiter = SharedRateLimiter(
        engine,
        requests_per_minute=BUCKET_RPM,
        tokens_per_minute=BUCKET_TPM,
        max_request_tokens=4000,
        lease_seconds=lease_seconds,
    )
    limiter.state()  # table, rows and a connection made before the clock starts
    counts = [0] * threads
    # Every process starts together, however long the others took to import (8 of them
    # spawned on 2 cores took longer than a fixed 3 s head start: no grant in the window).
    _READY.wait()
    stop_at = time.time() + seconds

    def loop(k: int) -> None:
        while time.time() < stop_at:
            limiter.settle(limiter.acquire(1500), 950)
            counts[k] += 1

    cpu = time.process_time()
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    limiter.close()
    engine.dispose()
    return sum(counts), time.process_time() - cpu


def bucket_case(processes: int, threads: int, seconds: float, lease_seconds: float) -> dict:
    """Grants a second that `processes` processes get from one bucket (the bucket alone:
    no HTTP, no Dagster), each grant settled as gold settles it."""
    import multiprocessing

    with scratch_database(f"bucket_{processes}_{int(lease_seconds * 1000)}") as url:
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Barrier(processes)
        with ctx.Pool(processes, initializer=_bucket_ready, initargs=(ready,)) as pool:
            args = [(url, lease_seconds, threads, seconds)] * processes
            per_process = pool.starmap(_bucket_worker, args, chunksize=1)
            # Let the workers end on their own: the pool's exit terminates them, which first
            # takes the task queue's read lock that an idle worker holds while it waits for
            # a task (CPython's Pool._help_stuff_finish), and the benchmark waited for good.
            pool.close()
            pool.join()
    grants = sum(n for n, _ in per_process)
    cpu = sum(c for _, c in per_process)
    return {
        "processes": processes,
        "threads_per_process": threads,
        "lease_seconds": lease_seconds,
        "seconds": seconds,
        "grants": grants,
        "grants_per_s": round(grants / seconds, 1),
        "cpu_ms_per_grant": round(1000 * cpu / max(1, grants), 3),
    }


def bucket_cases(quick: bool) -> list[dict]:
    seconds = 3.0 if quick else 10.0
    out = []
    for lease in (0.0, 0.25):
        for processes in (1, 8):
            print(f"  bucket: {processes} processes, lease {lease} s ...", flush=True)
            out.append(bucket_case(processes, 16, seconds, lease))
    return out


BUCKET_GOAL = 1000  # grants a second across 8 processes (issue 12 part 4)


def bucket_goals(rows: list[dict]) -> list[Goal]:
    return [
        Goal(
            f"bucket: grants/s, 8 processes, lease {r['lease_seconds']} s",
            r["grants_per_s"],
            f">= {BUCKET_GOAL:,}",
            r["grants_per_s"] >= BUCKET_GOAL,
        )
        for r in rows
        if r["processes"] == 8 and r["lease_seconds"] > 0
    ]


def bucket_report(rows: list[dict]) -> str:
    header = ("processes", "lease_seconds", "grants/s", "CPU ms/grant")
    body = [
        (r["processes"], r["lease_seconds"], r["grants_per_s"], r["cpu_ms_per_grant"]) for r in rows
    ]
    return table("The shared bucket alone (16 threads a process, never binding)", header, body)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.llm_throughput")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated cases to run (single, parallel, tokens, bucket, tier5)",
    )
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name}
    warnings.filterwarnings("ignore")  # Dagster's beta/preview notices
    p = plan(args.quick)
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    env = environment.environment()  # before any case: the load and yardsticks as found
    started = time.perf_counter()
    results = []
    with FakeServer() as server, tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp:
        for case in (*p.cases, *tier5_cases(args.quick)):
            if only and case.name not in only:
                continue
            print(f"  {case.name}: {case.label} ...", flush=True)
            results.append(run_case(case, p, server, Path(tmp), env))
            for failure in results[-1]["failures"]:
                print(f"    run failed:\n{failure}", flush=True)
    buckets = bucket_cases(args.quick) if not only or "bucket" in only else []
    env["yardsticks_at_end"] = environment.yardsticks()
    env["load_average_at_end"] = environment.load_average()
    if results:
        print(report(results))
        print(environment_report(env))
        print(warnings_report(results))
    if buckets:
        print(bucket_report(buckets))
    goal_list = goals(results) + bucket_goals(buckets)
    print(goals_table(goal_list))
    payload = {
        "environment": env,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "plan": {
            "latency_s": p.latency,
            "jitter_s": p.jitter,
            "max_concurrent": p.max_concurrent,
            "max_tokens": p.max_tokens,
        },
        "cases": results,
        "bucket": buckets,
        "goals": goal_list,
    }
    # A partial run (--only) never replaces the full run's figures.
    name = NAME if not only else f"{NAME}_{'_'.join(sorted(only))}"
    write_results(name, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
