"""Faults: gold against a server that fails 20 % of the requests, a run killed half-way, a
quota that runs out, two runs of one week at once, a warehouse outage, a trickling server
and an absurd usage figure.

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
   stops, and reports kept;
4. two CLI runs of the same week started together: answers paid (the server's 200s) per
   report, and what each run wrote and waited for (claims, kidsfin_assets/reports/ledger.py);
5. the warehouse cut for 15 s mid-run (a TCP proxy between gold and PostgreSQL): with
   `warehouse.outage_wait_seconds` above 15 (the run rides it out) and below (the run fails,
   its paid answers kept in the spool) followed by one re-run: answers paid per report;
6. a trickling server (a body byte every 0.5 s, so that no per-read timeout fires): every
   answer of a small week, then 10 % of the answers of the large one: the step's wall time
   against openai.timeout_seconds x retry attempts + the back-off + a margin;
7. an answer whose usage claims 10^9 tokens, at the shipped per-minute limits: seconds from
   that answer to the next request, and the token bucket's lowest level against
   -max_request_tokens (the settle moves the bucket by one request at most).

    python -m bench.faults [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.common import (
    RAW_SILVER_SELECTION,
    FakeServer,
    Goal,
    GoldRun,
    fmt,
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
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.reports.prompt import load_prompt
from kidsfin_assets.warehouse import db

# Test code, imported on purpose: the suite's TCP proxy is the one way to cut the warehouse
# for a while without stopping the PostgreSQL server every other benchmark shares.
from kidsfin_assets_tests.tcp_proxy import TcpProxy

NAME = "faults"
FAULT_KINDS = ("429", "500", "503", "hang", "invalid_json")
MAX_RESUME_RATIO = 1.05
MAX_STOP_SECONDS = 5.0
OUTAGE_SECONDS = 15.0
OUTAGE_WAIT_LONG = 60.0  # above the outage: the run must ride it out
OUTAGE_WAIT_SHORT = 5.0  # below it: the run fails, its paid answers kept in the spool
CLAIM_LEASE_SECONDS = 5.0  # the shortest the settings allow: a dead run's kids free soon
TRICKLE_INTERVAL = 0.5  # seconds between two bytes of a trickled body
TRICKLE_SHARE = 0.1
# The step's own work on top of the requests (claims, ledger writes, Dagster's step
# bookkeeping) on a loaded 2-CPU machine.
TRICKLE_MARGIN_SECONDS = 10.0
ABSURD_LATENCY = 0.2
MAX_GRANT_SECONDS = 1.0


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
    # Two runs at once: slow enough answers that the second CLI run starts while the first
    # is still asking (Dagster's start-up alone is ~6-20 s here).
    overlap_latency: float = 1.0
    overlap_concurrent: int = 8
    # The outage: the cut comes once this many answers arrived.
    outage_latency: float = 0.5
    outage_concurrent: int = 8
    outage_cut_after: int = 50
    # The small week of the trickle-everything and absurd-usage cases: every kid in flight
    # at once, so that one kid's deadlines are the week's.
    small_kids: int = 8


def plan(quick: bool) -> Plan:
    # R binds (N/R = 20 s > N*L/max_concurrent = 6 s), as in production.
    if quick:
        return Plan(40, 1200, 0.2, 0.05, 16, 0.2, 2.0, 3.0, 10, 1.0, 2, 0.5, 4, 10, 6)
    return Plan(200, 600, 0.5, 0.2, 16, 0.2, 5.0, 8.0, 50, 1.0, 8, 0.5, 8, 50, 8)


def client_env(p: Plan, workdir: Path) -> dict[str, str]:
    """Limits equal to the server's; the retry policy is the project's own (not set here).
    The spool is the benchmark's own, never the project's data/spool."""
    return {
        "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE": str(p.rpm),
        "KIDSFIN_OPENAI__TOKENS_PER_MINUTE": "100000000",
        "KIDSFIN_OPENAI__MAX_CONCURRENT": str(p.max_concurrent),
        "KIDSFIN_OPENAI__TIMEOUT_SECONDS": str(p.timeout),
        "KIDSFIN_WAREHOUSE__SPOOL_DIR": str(spool_dir(workdir)),
    }


def spool_dir(workdir: Path) -> Path:
    return workdir / "spool"


def settle(server: FakeServer, limit: float = 15.0) -> dict[str, Any]:
    """The server's stats once nothing is in flight (a `hang` answers after its sleep)."""
    deadline = time.monotonic() + limit
    stats = server.stats()
    while stats["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = server.stats()
    return stats


def clear_gold(settings: Settings) -> None:
    """No reports, no ledger, no claims: each case starts from a week never paid for."""
    for name in ("kid_weekly_reports", "report_ledger", "report_claims"):
        warehouse_execute(settings, f"DELETE FROM kidsfin.{name}")


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
    from kidsfin_assets.warehouse import db

    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
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
    run = start_gold(week, workdir, url, server.base_url, **client_env(p, workdir))
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
    run = start_gold(week, workdir, url, server.base_url, **client_env(p, workdir))
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


# --- the gold ledger under concurrency and faults (issue 8) ----------------------------------


def warehouse_rows(settings: Settings, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


def ledger_by_run(settings: Settings, week: str) -> dict[str, dict[str, int]]:
    """Per run id: answers accepted (reports it wrote), answers paid, requests."""
    rows = warehouse_rows(
        settings,
        "SELECT run_id, count(*) FILTER (WHERE outcome = 'accepted') AS accepted, "
        "count(model_answered) AS paid, count(*) AS requests FROM kidsfin.report_ledger "
        "WHERE week_start = CAST(:week AS date) GROUP BY run_id",
        week=week,
    )
    return {r["run_id"]: {k: int(v) for k, v in r.items() if k != "run_id"} for r in rows}


def costs_agree(settings: Settings, week: str) -> bool:
    """The week's report rows cost what its ledger says was paid (to a micro-dollar)."""
    rows, paid = (
        float(
            warehouse_scalar(
                settings,
                f"SELECT coalesce(sum(cost_usd), 0) FROM kidsfin.{name} "
                "WHERE week_start = CAST(:week AS date)",
                week=week,
            )
        )
        for name in ("kid_weekly_reports", "report_ledger")
    )
    return abs(rows - paid) < 1e-6


def claims_left(settings: Settings) -> int:
    return int(warehouse_scalar(settings, "SELECT count(*) FROM kidsfin.report_claims") or 0)


def spool_entries(workdir: Path) -> tuple[int, int]:
    """(files, entries) in the benchmark's spool directory."""
    files = [f for f in spool_dir(workdir).glob("*") if f.is_file()]
    entries = sum(len(f.read_text().splitlines()) for f in files)
    return len(files), entries


def log_line(run: GoldRun, needle: str) -> str:
    """The first line of the run's log that holds `needle` (shortened), or ''."""
    for line in run.log.read_text(errors="replace").splitlines():
        if needle in line:
            return line.strip()[:400]
    return ""


def two_runs_at_once(
    week: str, workdir: Path, url: str, settings: Settings, server: FakeServer, p: Plan
) -> dict[str, Any]:
    """Two CLI runs of one week started together (a sensor's late-data run meeting a manual
    one): the kid-weeks are claimed before any request, so the second run waits for the
    first's answers instead of paying for them again."""
    clear_gold(settings)
    server.configure(fault_rate=0.0, quota_after=None, latency=p.overlap_latency, jitter=0.0)
    server.reset()
    env = {**client_env(p, workdir), "KIDSFIN_OPENAI__MAX_CONCURRENT": str(p.overlap_concurrent)}
    runs = [start_gold(week, workdir, url, server.base_url, **env) for _ in range(2)]
    codes = [run.wait(1800) for run in runs]
    stats = settle(server)
    server.configure(latency=p.latency, jitter=p.jitter)
    reports = gold_count(settings, week)
    by_run = ledger_by_run(settings, week)
    per_run = []
    for run, code in zip(runs, codes, strict=True):
        meta = run.metadata()
        own = by_run.get(str(meta.get("run_id")), {})
        per_run.append(
            {
                "exit_code": code,
                "reports_written": meta.get("reports_written"),
                "reports_by_other_runs": meta.get("reports_by_other_runs"),
                "reports_reused": meta.get("reports_reused"),
                "ledger_accepted": own.get("accepted", 0),
                "ledger_paid": own.get("paid", 0),
                "waited_line": log_line(run, "waits for their answers"),
                "gold_step_wall_s": meta.get("step_seconds"),
                "run_wall_s": round(run.wall_seconds, 2),
                "log_tail": run.tail(600) if code else "",
            }
        )
    return {
        "kids": p.kids,
        "latency_s": p.overlap_latency,
        "max_concurrent": p.overlap_concurrent,
        "reports": reports,
        "answers_paid": stats["ok"],
        "paid_per_report": round(stats["ok"] / max(1, reports), 3),
        "duplicate_rows": duplicate_rows(settings),
        "report_costs_equal_ledger": costs_agree(settings, week),
        "claims_left": claims_left(settings),
        # The runs overlapped when one of them found kids claimed by the other.
        "overlapped": any(r["waited_line"] for r in per_run),
        "runs": per_run,
    }


@dataclass
class Outage:
    """The proxy is cut for `seconds` once the server has sent `after` answers."""

    server: FakeServer
    proxy: TcpProxy
    after: int
    seconds: float
    cut_at: float | None = None
    timer: threading.Timer | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Outage:
        threading.Thread(target=self._watch, daemon=True, name="outage").start()
        return self

    def _watch(self) -> None:
        while not self.stop.wait(0.05):
            if self.server.stats()["ok"] >= self.after:
                self.cut_at = time.time()
                self.timer = self.proxy.cut_for(self.seconds)
                return

    def wait_restored(self) -> None:
        self.stop.set()
        if self.timer is not None:
            self.timer.join()


def outage_run(
    week: str,
    workdir: Path,
    proxy_url: str,
    server: FakeServer,
    proxy: TcpProxy,
    p: Plan,
    wait_seconds: float,
) -> tuple[GoldRun, int, Outage]:
    """One CLI gold run whose warehouse is reached through the proxy, cut mid-run."""
    env = {
        **client_env(p, workdir),
        "KIDSFIN_OPENAI__MAX_CONCURRENT": str(p.outage_concurrent),
        "KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS": f"{wait_seconds:g}",
        "KIDSFIN_WAREHOUSE__CLAIM_LEASE_SECONDS": f"{CLAIM_LEASE_SECONDS:g}",
    }
    outage = Outage(server, proxy, p.outage_cut_after, OUTAGE_SECONDS).start()
    run = start_gold(week, workdir, proxy_url, server.base_url, **env)
    return run, run.wait(1800), outage


def sent_during(times: list[float], outage: Outage) -> int:
    if outage.cut_at is None:
        return 0
    return sum(outage.cut_at <= t < outage.cut_at + outage.seconds for t in times)


def warehouse_outage(
    week: str, workdir: Path, url: str, settings: Settings, server: FakeServer, p: Plan
) -> dict[str, Any]:
    """A 15 s outage of the warehouse mid-run: ridden out when the run may wait longer;
    otherwise the run fails with its paid answers in the spool, and one re-run (which
    replays the spool first) completes the week without paying for any answer twice."""
    out: dict[str, Any] = {}
    with TcpProxy("127.0.0.1", make_url(url).port or 5432) as proxy:
        # The same proxied URL for the re-run: the spool belongs to the warehouse's URL.
        proxy_url = proxy.url_for(url)
        clear_gold(settings)
        server.configure(fault_rate=0.0, quota_after=None, latency=p.outage_latency)
        server.reset()
        run, code, outage = outage_run(week, workdir, proxy_url, server, proxy, p, OUTAGE_WAIT_LONG)
        outage.wait_restored()
        stats, times, meta = settle(server), server.chat_times(), run.metadata()
        reports = gold_count(settings, week)
        out["rides_out"] = {
            "outage_wait_seconds": OUTAGE_WAIT_LONG,
            "exit_code": code,
            "cut": outage.cut_at is not None,
            "reports": reports,
            "answers_paid": stats["ok"],
            "paid_per_report": round(stats["ok"] / max(1, reports), 3),
            "answers_unstored": meta.get("answers_unstored"),
            "requests_during_outage": sent_during(times, outage),
            "down_line": log_line(run, "warehouse unreachable"),
            "back_line": log_line(run, "reachable again"),
            "duplicate_rows": duplicate_rows(settings),
            "report_costs_equal_ledger": costs_agree(settings, week),
            "gold_step_wall_s": meta.get("step_seconds"),
            "run_wall_s": round(run.wall_seconds, 2),
            "log_tail": run.tail(600) if code else "",
        }

        clear_gold(settings)
        server.reset()
        run, code, outage = outage_run(
            week, workdir, proxy_url, server, proxy, p, OUTAGE_WAIT_SHORT
        )
        failed_after = run.ended - outage.cut_at if run.ended and outage.cut_at else None
        outage.wait_restored()
        stats, times = settle(server), server.chat_times()
        paid_before, stored_before = stats["ok"], gold_count(settings, week)
        files, entries = spool_entries(workdir)
        rerun = start_gold(week, workdir, proxy_url, server.base_url, **client_env(p, workdir))
        rerun_code = rerun.wait(1800)
        restats, remeta = settle(server), rerun.metadata()
        reports = gold_count(settings, week)
        files_after, _ = spool_entries(workdir)
        out["fails_then_rerun"] = {
            "outage_wait_seconds": OUTAGE_WAIT_SHORT,
            "exit_code": code,
            "failed_s_after_cut": round(failed_after, 2) if failed_after else None,
            "requests_during_outage": sent_during(times, outage),
            "failure_line": log_line(run, "unreachable for more than"),
            "answers_paid_before_rerun": paid_before,
            "reports_before_rerun": stored_before,
            "spool_files": files,
            "spool_entries": entries,
            "rerun_exit_code": rerun_code,
            "rerun_answers_replayed": remeta.get("answers_replayed"),
            "rerun_answers_paid": restats["ok"] - paid_before,
            "reports": reports,
            "answers_paid": restats["ok"],
            "paid_per_report": round(restats["ok"] / max(1, reports), 3),
            "spool_files_after_rerun": files_after,
            "duplicate_rows": duplicate_rows(settings),
            "report_costs_equal_ledger": costs_agree(settings, week),
            "log_tail": rerun.tail(600) if rerun_code else "",
        }
    return out


def backoff_max(settings: Settings) -> float:
    """The retry policy's longest total wait between one report's attempts (llm/attempts.py,
    AttemptPolicy.backoff: initial x 2^(n-1) + jitter, capped at max_wait)."""
    r = settings.openai
    return sum(
        min(r.retry_initial_wait_seconds * 2**n + r.retry_jitter_seconds, r.retry_max_wait_seconds)
        for n in range(r.retry_max_attempts - 1)
    )


def trickle_run(
    week: str,
    workdir: Path,
    url: str,
    settings: Settings,
    server: FakeServer,
    p: Plan,
    share: float,
    max_concurrent: int,
) -> dict[str, Any]:
    """Gold against a server trickling `share` of its answers a byte every 0.5 s. No
    Dagster step retry: the bound is one step attempt's."""
    clear_gold(settings)
    server.configure(
        fault_rate=share, faults=["trickle"], trickle_interval=TRICKLE_INTERVAL, quota_after=None
    )
    server.reset()
    env = {
        **client_env(p, workdir),
        "KIDSFIN_OPENAI__MAX_CONCURRENT": str(max_concurrent),
        "KIDSFIN_STEP_RETRY__MAX_RETRIES": "0",
    }
    run = start_gold(week, workdir, url, server.base_url, **env)
    code = run.wait(1800)
    stats = settle(server, limit=30.0)
    server.configure(fault_rate=0.0, faults=list(FAULT_KINDS))
    meta = run.metadata()
    attempts = settings.openai.retry_max_attempts
    bound = p.timeout * attempts + backoff_max(settings) + TRICKLE_MARGIN_SECONDS
    abandoned = warehouse_scalar(
        settings,
        "SELECT count(*) FROM kidsfin.report_ledger WHERE outcome = 'deadline' "
        "AND week_start = CAST(:week AS date)",
        week=week,
    )
    return {
        "share_trickled": share,
        "kids": meta.get("silver_rows"),
        "max_concurrent": max_concurrent,
        "exit_code": code,
        "reports": gold_count(settings, week),
        "reports_failed": meta.get("reports_failed"),
        "requests": len(server.chat_times()),
        "trickled": stats["faults_injected"].get("trickle", 0),
        "abandoned_at_deadline": int(abandoned or 0),
        "timeout_s": p.timeout,
        "attempts": attempts,
        "backoff_max_s": backoff_max(settings),
        "margin_s": TRICKLE_MARGIN_SECONDS,
        "bound_s": round(bound, 2),
        "gold_step_wall_s": meta.get("step_seconds"),
        "run_wall_s": round(run.wall_seconds, 2),
        "server_in_flight_after": stats["in_flight"],
    }


class BucketWatch:
    """Samples the shared token bucket's stored level (no lock taken: a reader must not slow
    the run). The lowest stored level is the level right after the worst settle."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings, self.name = settings, name
        self.samples: list[tuple[float, float]] = []  # (epoch seconds, stored level)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True, name="bucket")

    def _sample(self) -> None:
        sql = "SELECT level FROM kidsfin.rate_limit_buckets WHERE name = :name"
        while not self.stop.wait(0.01):
            level = warehouse_scalar(self.settings, sql, name=self.name)
            if level is not None:
                self.samples.append((time.time(), float(level)))

    def lowest(self) -> float | None:
        return min((level for _, level in self.samples), default=None)

    def first_change_after(self, moment: float) -> float | None:
        """The first stored level after `moment` that differs from the one at it: with
        one request at a time, the settle of the answer sent at `moment`."""
        before = [level for t, level in self.samples if t <= moment]
        for t, level in self.samples:
            if t > moment and (not before or level != before[-1]):
                return level
        return None

    def __enter__(self) -> BucketWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _reservation(watch: BucketWatch) -> float | None:
    """What the first request reserved: the full bucket's first drop."""
    levels = [level for _, level in watch.samples]
    drops = [a - b for a, b in itertools.pairwise(levels) if b < a]
    return drops[0] if drops else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def absurd_usage(
    week: str, workdir: Path, url: str, settings: Settings, server: FakeServer, p: Plan
) -> dict[str, Any]:
    """The run's first answer claims 10^9 prompt tokens, at the shipped per-minute limits
    (config/pipeline.yaml), one request at a time, from a full bucket: how long until the
    next request is granted, and how low the bucket went."""
    clear_gold(settings)
    warehouse_execute(settings, "DELETE FROM kidsfin.rate_limit_buckets")  # full again
    server.configure(fault_rate=0.0, quota_after=None, latency=ABSURD_LATENCY, jitter=0.0)
    server.reset()
    server.configure(script=["usage_absurd"])
    env = {
        **client_env(p, workdir),
        "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE": str(settings.openai.requests_per_minute),
        "KIDSFIN_OPENAI__TOKENS_PER_MINUTE": str(settings.openai.tokens_per_minute),
        "KIDSFIN_OPENAI__MAX_CONCURRENT": "1",
    }
    limiter = settings.openai.limiter(
        db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name),
        load_prompt(),
    )
    with BucketWatch(settings, limiter.tokens.name) as watch:
        run = start_gold(week, workdir, url, server.base_url, **env)
        code = run.wait(1800)
    settle(server)
    times = server.chat_times()
    server.configure(latency=p.latency, jitter=p.jitter)
    # Each answer leaves the server `latency` after its request arrived (no jitter here).
    gaps = [b - (a + ABSURD_LATENCY) for a, b in itertools.pairwise(times)]
    flagged = warehouse_rows(
        settings,
        "SELECT prompt_tokens, usage_note FROM kidsfin.report_ledger "
        "WHERE usage_note LIKE '%above the largest possible request%'",
    )
    refill = limiter.tokens.refill_per_second
    settled = watch.first_change_after(times[0] + ABSURD_LATENCY) if times else None
    reserved = _reservation(watch)
    return {
        "exit_code": code,
        "tokens_per_minute": settings.openai.tokens_per_minute,
        "requests": len(times),
        "reports": gold_count(settings, week),
        "absurd_prompt_tokens_recorded": flagged[0]["prompt_tokens"] if flagged else None,
        "answers_flagged": len(flagged),
        "next_grant_s": round(gaps[0], 3) if gaps else None,
        "other_gaps_median_s": round(statistics.median(gaps[1:]), 3) if gaps[1:] else None,
        "bucket_capacity": limiter.tokens.capacity,
        "max_request_tokens": limiter.max_request_tokens,
        "bucket_reservation": _round(reserved),
        "bucket_after_absurd_settle": _round(settled),
        "bucket_lowest_level": _round(watch.lowest()),
        "bucket_samples": len(watch.samples),
        "refill_per_second": round(refill, 1),
        # What one answer would have cost every process without the clamp.
        "unclamped_stop_hours": round(10**9 / refill / 3600, 1),
        "log_tail": run.tail(600) if code else "",
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


def ledger_goals(
    two: dict[str, Any],
    outage: dict[str, Any],
    trickle: dict[str, Any],
    absurd: dict[str, Any],
    p: Plan,
) -> list[Goal]:
    rides, rerun, every = outage["rides_out"], outage["fails_then_rerun"], trickle["all"]
    wait_long, wait_short = f"{OUTAGE_WAIT_LONG:g}", f"{OUTAGE_WAIT_SHORT:g}"
    lowest, floor = absurd["bucket_lowest_level"], -absurd["max_request_tokens"]
    return [
        Goal(
            "two runs of one week at once: answers paid / reports",
            _paid(two),
            "1.00",
            two["paid_per_report"] == 1.0 and two["reports"] == p.kids and two["overlapped"],
        ),
        Goal(
            f"{OUTAGE_SECONDS:g} s warehouse outage, outage_wait {wait_long} s: answers paid / "
            "reports",
            _paid(rides),
            "1.00",
            rides["paid_per_report"] == 1.0
            and rides["reports"] == p.kids
            and rides["exit_code"] == 0
            and rides["cut"],
        ),
        Goal(
            f"{OUTAGE_SECONDS:g} s warehouse outage, outage_wait {wait_short} s, then one "
            "re-run: answers paid / reports",
            _paid(rerun),
            "1.00",
            rerun["paid_per_report"] == 1.0
            and rerun["reports"] == p.kids
            and rerun["exit_code"] != 0
            and rerun["rerun_exit_code"] == 0,
        ),
        Goal(
            "every answer trickled: gold step wall, s",
            every["gold_step_wall_s"],
            f"<= {every['bound_s']:g} (timeout x attempts + back-off + margin)",
            every["gold_step_wall_s"] is not None and every["gold_step_wall_s"] <= every["bound_s"],
        ),
        Goal(
            "absurd usage: seconds from that answer to the next request",
            absurd["next_grant_s"],
            f"< {MAX_GRANT_SECONDS:g}",
            absurd["next_grant_s"] is not None and absurd["next_grant_s"] < MAX_GRANT_SECONDS,
        ),
        Goal(
            "absurd usage: lowest token bucket level",
            lowest,
            f">= {floor:,} (-max_request_tokens)",
            lowest is not None and lowest >= floor,
        ),
    ]


def _paid(case: dict[str, Any]) -> str:
    return f"{case['answers_paid']}/{case['reports']} = {case['paid_per_report']:.2f}"


def ledger_tables(data: dict[str, Any]) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """The issue-8 cases as (title, header, rows), for this script and bench/report.py."""
    two, outage = data["two_runs_at_once"], data["warehouse_outage"]
    trickle, absurd = data["trickle"], data["absurd_usage"]
    runs = two["runs"]
    out = []

    def per_run(key: str) -> tuple[Any, ...]:
        return tuple(r[key] for r in runs)

    out.append(
        (
            f"Two CLI runs of one week started together ({two['kids']} kids, answers of "
            f"{two['latency_s']:g} s, {two['max_concurrent']} in flight a run)",
            ("", "run 1", "run 2"),
            [
                ("exit code", *per_run("exit_code")),
                (
                    "reports it wrote (its accepted answers in the ledger)",
                    *per_run("ledger_accepted"),
                ),
                (
                    "reports it waited for (written by the other run)",
                    *per_run("reports_by_other_runs"),
                ),
                ("reports already there when it planned", *per_run("reports_reused")),
                ("said it waits for the other run", *(bool(r["waited_line"]) for r in runs)),
                ("gold step wall, s", *per_run("gold_step_wall_s")),
                ("run wall (CLI), s", *per_run("run_wall_s")),
                ("answers paid / reports (goal 1.00)", _paid(two), ""),
                (
                    "duplicate rows; claims left",
                    f"{two['duplicate_rows']}; {two['claims_left']}",
                    "",
                ),
                ("report rows cost = ledger cost", two["report_costs_equal_ledger"], ""),
            ],
        )
    )
    rides, rerun = outage["rides_out"], outage["fails_then_rerun"]
    out.append(
        (
            f"Warehouse cut for {OUTAGE_SECONDS:g} s once {data['plan']['outage_cut_after']} "
            "answers arrived (TCP proxy)",
            (
                "",
                f"outage_wait {rides['outage_wait_seconds']:g} s",
                f"outage_wait {rerun['outage_wait_seconds']:g} s, then one re-run",
            ),
            [
                (
                    "exit code (re-run)",
                    rides["exit_code"],
                    f"{rerun['exit_code']} ({rerun['rerun_exit_code']})",
                ),
                (
                    "requests sent while the warehouse was down",
                    rides["requests_during_outage"],
                    rerun["requests_during_outage"],
                ),
                ("its process exited, s after the cut", "-", rerun["failed_s_after_cut"]),
                (
                    "answers paid / reports stored before the re-run",
                    "-",
                    f"{rerun['answers_paid_before_rerun']} / {rerun['reports_before_rerun']}",
                ),
                (
                    "spool: files / entries kept by the failed run",
                    "-",
                    f"{rerun['spool_files']} / {rerun['spool_entries']}",
                ),
                (
                    "answers replayed from the spool by the re-run",
                    "-",
                    rerun["rerun_answers_replayed"],
                ),
                ("answers the re-run paid for", "-", rerun["rerun_answers_paid"]),
                (
                    "answers unstored at the end",
                    rides["answers_unstored"],
                    rerun["spool_files_after_rerun"],
                ),
                ("answers paid / reports (goal 1.00)", _paid(rides), _paid(rerun)),
                (
                    "duplicate rows; report cost = ledger cost",
                    f"{rides['duplicate_rows']}; {fmt(rides['report_costs_equal_ledger'])}",
                    f"{rerun['duplicate_rows']}; {fmt(rerun['report_costs_equal_ledger'])}",
                ),
                ("gold step wall, s", rides["gold_step_wall_s"], "-"),
            ],
        )
    )
    every, share = trickle["all"], trickle["share"]
    out.append(
        (
            f"A trickling server (a byte every {TRICKLE_INTERVAL:g} s), timeout "
            f"{every['timeout_s']:g} s x {every['attempts']} attempts, no step retry",
            ("", "every answer", f"{share['share_trickled']:.0%} of the answers"),
            [
                (
                    "kids / in flight",
                    f"{every['kids']} / {every['max_concurrent']}",
                    f"{share['kids']} / {share['max_concurrent']}",
                ),
                (
                    "requests / trickled / abandoned at the deadline",
                    _trickled(every),
                    _trickled(share),
                ),
                ("reports / failed; exit code", _outcome(every), _outcome(share)),
                ("gold step wall, s", every["gold_step_wall_s"], share["gold_step_wall_s"]),
                ("bound: timeout x attempts + back-off + margin, s", _bound(every), _bound(share)),
                ("fault-free step wall, s", "-", data["faults"]["fault_free"]["gold_step_wall_s"]),
                ("run wall (CLI), s", every["run_wall_s"], share["run_wall_s"]),
            ],
        )
    )
    out.append(
        (
            f"An answer claiming 10^9 prompt tokens (first of {absurd['requests']}, one at a "
            f"time, TPM {absurd['tokens_per_minute']:,})",
            ("", "value"),
            [
                (
                    "prompt tokens recorded in the ledger (flagged)",
                    f"{fmt(absurd['absurd_prompt_tokens_recorded'])} ({absurd['answers_flagged']})",
                ),
                ("s from that answer to the next request (goal < 1)", absurd["next_grant_s"]),
                ("same, median of the other answers, s", absurd["other_gaps_median_s"]),
                (
                    "token bucket: capacity / first reservation",
                    f"{fmt(absurd['bucket_capacity'])} / {fmt(absurd.get('bucket_reservation'))}",
                ),
                (
                    "token bucket right after that answer's settle",
                    absurd.get("bucket_after_absurd_settle"),
                ),
                (
                    "token bucket: lowest level / capacity",
                    f"{fmt(absurd['bucket_lowest_level'])} / {fmt(absurd['bucket_capacity'])}",
                ),
                ("-max_request_tokens (the floor)", -absurd["max_request_tokens"]),
                ("unclamped: hours every process would stop", absurd["unclamped_stop_hours"]),
                ("reports; exit code", f"{absurd['reports']}; {absurd['exit_code']}"),
            ],
        )
    )
    return out


def _trickled(case: dict[str, Any]) -> str:
    return f"{case['requests']} / {case['trickled']} / {case['abandoned_at_deadline']}"


def _outcome(case: dict[str, Any]) -> str:
    return f"{case['reports']} / {case['reports_failed']}; {case['exit_code']}"


def _bound(case: dict[str, Any]) -> str:
    return (
        f"{case['timeout_s']:g} x {case['attempts']} + {case['backoff_max_s']:g} + "
        f"{case['margin_s']:g} = {case['bound_s']:g}"
    )


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
        FakeServer(
            rpm=p.rpm,
            latency=p.latency,
            jitter=p.jitter,
            hang_seconds=p.hang,
            fault_retry_after=1.0,
        ) as server,
        tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp,
    ):
        workdir = Path(tmp)
        with scratch_database("faults") as url:
            settings, week = prepare_week(url, p.kids)
            print(f"  {p.kids} kids, week {week}: fault-free, then 20 % faults ...", flush=True)
            faults = fault_runs(week, workdir, url, settings, server, p)
            print("  SIGKILL half-way, then re-run ...", flush=True)
            resume = kill_and_resume(week, workdir, url, settings, server, p)
            print(f"  insufficient_quota after {p.quota_after} ...", flush=True)
            quota = quota_stop(week, workdir, url, settings, server, p)
            print("  two runs of the week at once ...", flush=True)
            two = two_runs_at_once(week, workdir, url, settings, server, p)
            print(
                f"  a {OUTAGE_SECONDS:g} s warehouse outage, ridden out, then not ...", flush=True
            )
            outage = warehouse_outage(week, workdir, url, settings, server, p)
            print(f"  {TRICKLE_SHARE:.0%} of the answers trickled ...", flush=True)
            share = trickle_run(
                week, workdir, url, settings, server, p, TRICKLE_SHARE, p.max_concurrent
            )
        with scratch_database("faults_small") as url:
            settings, week = prepare_week(url, p.small_kids)
            print(f"  {p.small_kids} kids, week {week}: every answer trickled ...", flush=True)
            every = trickle_run(week, workdir, url, settings, server, p, 1.0, p.small_kids)
            print("  an absurd usage figure ...", flush=True)
            absurd = absurd_usage(week, workdir, url, settings, server, p)
    trickle = {"all": every, "share": share}
    payload = {
        "elapsed_s": 0.0,
        "plan": p.__dict__,
        "fault_kinds": FAULT_KINDS,
        "faults": faults,
        "kill_and_resume": resume,
        "quota": quota,
        "two_runs_at_once": two,
        "warehouse_outage": outage,
        "trickle": trickle,
        "absurd_usage": absurd,
    }
    print(report(faults, resume, quota))
    for title, header, rows in ledger_tables(payload):
        print(table(title, header, rows))
    goal_list = goals(faults, resume, quota, p) + ledger_goals(two, outage, trickle, absurd, p)
    print(goals_table(goal_list))
    for label, tail in failed_logs(payload):
        print(f"\n{label} exited non-zero; its log ends with:\n{tail}")
    payload["elapsed_s"] = round(time.perf_counter() - started, 1)
    payload["goals"] = goal_list
    write_results(NAME, args.quick, machine, payload)
    return payload


def prepare_week(url: str, kids: int) -> tuple[Settings, str]:
    """Demo data of `kids` kids over 3 weeks, raw and silver of the last one."""
    settings = use_settings(url)
    summary = load_demo(url, settings, kids=kids, weeks=3)
    week = summary.weeks[-1].isoformat()
    materialize_in_process(settings, week, RAW_SILVER_SELECTION)
    return settings, week


def failed_logs(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The log tails of runs that failed where they should not have."""
    cases = {
        **{f"faults/{k}": v for k, v in payload["faults"].items()},
        **{f"two runs/{i + 1}": r for i, r in enumerate(payload["two_runs_at_once"]["runs"])},
        **{f"outage/{k}": v for k, v in payload["warehouse_outage"].items()},
        "absurd usage": payload["absurd_usage"],
    }
    return [(label, case["log_tail"]) for label, case in cases.items() if case.get("log_tail")]


if __name__ == "__main__":
    main()
