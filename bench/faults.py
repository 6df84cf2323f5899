"""Faults: gold against a server that fails 20 % of the requests, a run killed half-way,
and a quota that runs out.

Every run is a real `dagster asset materialize` of gold (a subprocess with a DAGSTER_HOME
of its own) on PostgreSQL, against the suite's OpenAI-compatible server on 127.0.0.1, with
the project's own retry policy (config/pipeline.yaml: 4 attempts, 2-10 s back-off) and a
5 s request timeout (so that a `hang` outlasts it):

1. the week fault-free, then again with 20 % faults (429 with Retry-After, 500, 503, hangs
   past the timeout, invalid JSON): reports written, duplicates, retries, requests over
   the limit, wall time against the fault-free run;
2. a fault-free run killed with SIGKILL half-way, then re-run: requests the re-run sends
   per report missing after the kill (each kept report must not be paid for again);
3. `429 insufficient_quota` after 50 answers: seconds from the first refusal until the run
   stops, and reports kept.

    python -m bench.faults [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

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
    scratch_database,
    start_gold,
    table,
    use_settings,
    warehouse_execute,
    warehouse_scalar,
    write_results,
)
from kidsfin_assets.settings import Settings

NAME = "faults"
FAULT_KINDS = ("429", "500", "503", "hang", "invalid_json")
MAX_RESUME_RATIO = 1.05
MAX_STOP_SECONDS = 5.0


@dataclass(frozen=True)
class Plan:
    kids: int
    rpm: int
    latency: float
    jitter: float
    max_concurrent: int
    fault_rate: float
    timeout: float
    hang: float
    quota_after: int


def plan(quick: bool) -> Plan:
    # R binds (N/R = 20 s > N*L/max_concurrent = 6 s), as in production.
    if quick:
        return Plan(40, 1200, 0.2, 0.05, 16, 0.2, 2.0, 3.0, 10)
    return Plan(200, 600, 0.5, 0.2, 16, 0.2, 5.0, 8.0, 50)


def client_env(p: Plan) -> dict[str, str]:
    """Limits equal to the server's; the retry policy is the project's own (not set here)."""
    return {
        "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE": str(p.rpm),
        "KIDSFIN_OPENAI__TOKENS_PER_MINUTE": "100000000",
        "KIDSFIN_OPENAI__MAX_CONCURRENT": str(p.max_concurrent),
        "KIDSFIN_OPENAI__TIMEOUT_SECONDS": str(p.timeout),
    }


def settle(server: FakeServer, limit: float = 15.0) -> dict[str, Any]:
    """The server's stats once nothing is in flight (a `hang` answers after its sleep)."""
    deadline = time.monotonic() + limit
    stats = server.stats()
    while stats["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = server.stats()
    return stats


def clear_gold(settings: Settings) -> None:
    warehouse_execute(settings, "DELETE FROM kidsfin.kid_weekly_reports")


def duplicate_rows(settings: Settings) -> int:
    return int(
        warehouse_scalar(
            settings,
            "SELECT count(*) - count(DISTINCT (week_start, kid_id)) "
            "FROM kidsfin.kid_weekly_reports",
        )
        or 0
    )


def report_times(settings: Settings, week: str) -> list[float]:
    """When each report was stored (epoch seconds), oldest first."""
    from kidsfin_assets import db

    engine = db.get_engine(settings.resolved_database_url, settings.warehouse.schema_name)
    sql = sa.text(
        "SELECT extract(epoch FROM generated_at) FROM kidsfin.kid_weekly_reports "
        "WHERE week_start = CAST(:week AS date) ORDER BY 1"
    )
    with engine.connect() as conn:
        return [float(t) for t in conn.execute(sql, {"week": week}).scalars()]


def timeline(arrivals: list[float], stored: list[float]) -> dict[str, Any]:
    """Where a run's time goes: when 50/95/100 % of the reports were stored (seconds after
    the first request), and the stalls (gaps of 1 s or more with no request sent)."""
    if not arrivals or not stored:
        return {}
    first = arrivals[0]

    def at(share: float) -> float:
        return round(stored[max(0, round(share * len(stored)) - 1)] - first, 2)

    gaps = [(a - first, b - a) for a, b in itertools.pairwise(arrivals) if b - a >= 1.0]
    p95 = at(0.95)
    return {
        "reports_50pct_s": at(0.5),
        "reports_95pct_s": p95,
        "reports_100pct_s": at(1.0),
        "stalls": len(gaps),
        "stalled_s": round(sum(g for _, g in gaps), 2),
        # Before 95 %: work was queued, yet nothing was sent (a pause); after: the tail.
        "stalled_before_95pct_s": round(sum(g for t, g in gaps if t < p95), 2),
        "stall_list": [(round(t, 2), round(g, 2)) for t, g in gaps],
    }


def gold_once(
    week: str, workdir: Path, url: str, server: FakeServer, p: Plan
) -> tuple[GoldRun, int]:
    run = start_gold(week, workdir, url, server.base_url, **client_env(p))
    return run, run.wait(1800)


def fault_runs(
    week: str, workdir: Path, url: str, settings: Settings, server: FakeServer, p: Plan
) -> dict[str, Any]:
    """The week fault-free, then with faults; the second starts from no reports."""
    out: dict[str, Any] = {}
    for label, rate in (("fault_free", 0.0), ("faults", p.fault_rate)):
        clear_gold(settings)
        server.configure(fault_rate=rate, faults=list(FAULT_KINDS), quota_after=None)
        server.reset()
        run, code = gold_once(week, workdir, url, server, p)
        stats, times = settle(server), server.chat_times()
        written = gold_count(settings, week)
        meta = run.metadata()
        injected = stats["faults_injected"]
        # A clean 200 answer is a report paid for; more of them than reports: paid twice.
        clean_ok = stats["ok"] - injected.get("invalid_json", 0) - injected.get("hang", 0)
        out[label] = {
            "exit_code": code,
            "reports_written": written,
            "requests": len(times),
            "requests_per_report": round(len(times) / max(1, written), 3),
            # Counted at the server, over every Dagster attempt of the step.
            "retries_per_report": round((len(times) - written) / max(1, written), 3),
            "client_retries_last_attempt": meta.get("retries"),
            "dagster_step_attempts": meta.get("step_attempts"),
            "over_limit": stats["over_limit"],
            "max_requests_in_window": stats["max_requests_in_window"],
            "faults_injected": injected,
            "paid_duplicates": clean_ok - written,
            "duplicate_rows": duplicate_rows(settings),
            "gold_step_wall_s": meta.get("step_seconds"),
            "run_wall_s": round(run.wall_seconds, 2),
            "api_span_s": round(times[-1] - times[0], 2) if len(times) > 1 else 0.0,
            "dagster_run_status": meta.get("run_status"),
            **timeline(times, report_times(settings, week)),
            "log_tail": run.tail(600) if code else "",
        }
    return out


def kill_and_resume(
    week: str, workdir: Path, url: str, settings: Settings, server: FakeServer, p: Plan
) -> dict[str, Any]:
    """Fault-free, so that the re-run's requests measure resumption alone (with 20 % faults
    the retries alone would cost ~1.25 requests a report, whatever the resume does)."""
    clear_gold(settings)
    server.configure(fault_rate=0.0, quota_after=None)
    server.reset()
    run = start_gold(week, workdir, url, server.base_url, **client_env(p))
    half = p.kids // 2
    while gold_count(settings, week) < half:
        if run.poll() is not None:
            raise RuntimeError(f"run ended before half-way:\n{run.tail()}")
        time.sleep(0.05)
    run.kill()
    stats = settle(server)
    kept = gold_count(settings, week)
    missing = p.kids - kept
    server.reset()
    rerun, code = gold_once(week, workdir, url, server, p)
    restats = settle(server)
    resent = len(server.chat_times())
    return {
        "killed_at_reports": half,
        "reports_kept": kept,
        "reports_missing": missing,
        "answers_lost_in_flight": stats["ok"] - kept,
        "rerun_exit_code": code,
        "rerun_requests": resent,
        "rerun_ok": restats["ok"],
        "resume_ratio": round(resent / max(1, missing), 4),
        "reports_after_rerun": gold_count(settings, week),
        "duplicate_rows": duplicate_rows(settings),
        "rerun_run_wall_s": round(rerun.wall_seconds, 2),
    }


def quota_stop(
    week: str, workdir: Path, url: str, settings: Settings, server: FakeServer, p: Plan
) -> dict[str, Any]:
    clear_gold(settings)
    server.configure(fault_rate=0.0, quota_after=p.quota_after)
    server.reset()
    run, code = gold_once(week, workdir, url, server, p)
    stats, times = settle(server), server.chat_times()
    server.configure(quota_after=None)
    kept = gold_count(settings, week)
    refused = stats["faults_injected"].get("insufficient_quota", 0)
    # Quota is taken in arrival order: the (quota_after + 1)-th request is the first refused.
    first_refusal = times[p.quota_after] if len(times) > p.quota_after else float("nan")
    assert run.ended is not None
    return {
        "exit_code": code,
        "dagster_run_status": run.metadata().get("run_status"),
        "quota_after": p.quota_after,
        "reports_kept": kept,
        "requests": len(times),
        "refused_insufficient_quota": refused,
        "requests_after_first_refusal": len(times) - p.quota_after - 1,
        "last_request_after_refusal_s": round(times[-1] - first_refusal, 3),
        "stop_s": round(run.ended - first_refusal, 2),
        "run_wall_s": round(run.wall_seconds, 2),
    }


def goals(
    faults: dict[str, Any], resume: dict[str, Any], quota: dict[str, Any], p: Plan
) -> list[Goal]:
    f = faults["faults"]
    return [
        Goal(
            "20 % faults: reports written",
            f"{f['reports_written']}/{p.kids}",
            "100 %",
            f["reports_written"] == p.kids,
        ),
        Goal(
            "20 % faults: duplicates (paid twice + duplicate rows)",
            f["paid_duplicates"] + f["duplicate_rows"],
            "0",
            f["paid_duplicates"] + f["duplicate_rows"] == 0,
        ),
        Goal("20 % faults: requests over the limit", f["over_limit"], "0", f["over_limit"] == 0),
        Goal(
            "SIGKILL half-way: re-run requests / missing reports",
            resume["resume_ratio"],
            f"<= {MAX_RESUME_RATIO}",
            resume["resume_ratio"] <= MAX_RESUME_RATIO and resume["reports_after_rerun"] == p.kids,
        ),
        Goal(
            "insufficient_quota: seconds until the run stops",
            quota["stop_s"],
            f"< {MAX_STOP_SECONDS:g}",
            quota["stop_s"] < MAX_STOP_SECONDS,
        ),
        Goal(
            "insufficient_quota: reports kept",
            quota["reports_kept"],
            str(p.quota_after),
            quota["reports_kept"] == p.quota_after,
        ),
    ]


def report(faults: dict[str, Any], resume: dict[str, Any], quota: dict[str, Any]) -> str:
    keys = (
        ("exit code", "exit_code"),
        ("reports written", "reports_written"),
        ("requests", "requests"),
        ("requests / report", "requests_per_report"),
        ("retries / report", "retries_per_report"),
        ("Dagster step attempts", "dagster_step_attempts"),
        ("requests over the limit", "over_limit"),
        ("paid duplicates (clean 200s - reports)", "paid_duplicates"),
        ("duplicate rows", "duplicate_rows"),
        ("gold step wall, s", "gold_step_wall_s"),
        ("run wall (CLI), s", "run_wall_s"),
    )
    free, bad = faults["fault_free"], faults["faults"]
    rows = [(label, free[k], bad[k]) for label, k in keys]
    ratio = bad["gold_step_wall_s"] / free["gold_step_wall_s"] if free["gold_step_wall_s"] else 0
    rows.append(("gold step wall / fault-free", 1.0, round(ratio, 3)))
    for label, key in (
        ("50 % of reports stored, s", "reports_50pct_s"),
        ("95 % of reports stored, s", "reports_95pct_s"),
        ("100 % of reports stored, s", "reports_100pct_s"),
        ("stalls (>= 1 s without a request)", "stalls"),
        ("  total stalled, s", "stalled_s"),
        ("  of which before 95 % was stored, s", "stalled_before_95pct_s"),
    ):
        rows.append((label, free.get(key), bad.get(key)))
    injected = ", ".join(f"{k}: {v}" for k, v in sorted(bad["faults_injected"].items()))
    rows.append(("faults injected", "-", injected))
    out = [table("Faults: one week with 20 % faults", ("", "fault-free", "20 % faults"), rows)]
    out.append(
        table(
            "SIGKILL half-way, then re-run",
            ("", "value"),
            [
                ("reports kept after the kill", resume["reports_kept"]),
                ("reports missing", resume["reports_missing"]),
                ("answers lost in flight (paid, not stored)", resume["answers_lost_in_flight"]),
                ("requests sent by the re-run", resume["rerun_requests"]),
                ("re-run requests / missing", resume["resume_ratio"]),
                ("reports after the re-run", resume["reports_after_rerun"]),
            ],
        )
    )
    out.append(
        table(
            f"insufficient_quota after {quota['quota_after']} answers",
            ("", "value"),
            [
                ("reports kept", quota["reports_kept"]),
                ("requests after the first refusal", quota["requests_after_first_refusal"]),
                ("last request, s after the first refusal", quota["last_request_after_refusal_s"]),
                ("run stopped (process exit), s after it", quota["stop_s"]),
                (
                    "exit code / Dagster run",
                    f"{quota['exit_code']} / {quota['dagster_run_status']}",
                ),
            ],
        )
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    p = plan(args.quick)
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    started = time.perf_counter()
    with (
        scratch_database("faults") as url,
        FakeServer(
            rpm=p.rpm,
            latency=p.latency,
            jitter=p.jitter,
            hang_seconds=p.hang,
            fault_retry_after=1.0,
        ) as server,
        tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp,
    ):
        settings = use_settings(url)
        summary = load_demo(url, settings, kids=p.kids, weeks=3)
        week = summary.weeks[-1].isoformat()
        materialize_in_process(settings, week, RAW_SILVER_SELECTION)
        workdir = Path(tmp)
        print(f"  {p.kids} kids, week {week}: fault-free, then 20 % faults ...", flush=True)
        faults = fault_runs(week, workdir, url, settings, server, p)
        print("  SIGKILL half-way, then re-run ...", flush=True)
        resume = kill_and_resume(week, workdir, url, settings, server, p)
        print(f"  insufficient_quota after {p.quota_after} ...", flush=True)
        quota = quota_stop(week, workdir, url, settings, server, p)
    print(report(faults, resume, quota))
    goal_list = goals(faults, resume, quota, p)
    print(goals_table(goal_list))
    for label, run in faults.items():
        if run["log_tail"]:
            print(f"\n{label} run exited {run['exit_code']}; its log ends with:\n{run['log_tail']}")
    payload = {
        "elapsed_s": round(time.perf_counter() - started, 1),
        "plan": p.__dict__,
        "fault_kinds": FAULT_KINDS,
        "faults": faults,
        "kill_and_resume": resume,
        "quota": quota,
        "goals": goal_list,
    }
    write_results(NAME, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
