"""A week of 100,000 reports through OpenAI's Batch API (issue 10, item 8).

On PostgreSQL, against the suite's OpenAI-compatible server (its Files and Batches APIs,
over real HTTP, the official SDK on the client side): demo data of 100,000 kids over 3
weeks, raw and silver of the last week, then gold for that week in batch mode
(`openai.api: batch`, `batch_max_requests` half the kids, so the week goes in two files,
and a queue budget far above the week so that nothing is held back):

* submit - the first gold materialisation, in a fresh interpreter (`dg.materialize`, in
           process): it builds the JSONL lines, uploads the files and creates the batches,
           and yields an observation. Its wall time and its peak RSS (VmHWM: the process
           that built and uploaded the files, Dagster and the imports included);
* server - the server then answers the lines (not the client's time: shown for context);
* ingest - once every batch has ended, gold again in a fresh interpreter: it downloads the
           results, validates and grounds each answer, and stores the reports; it
           materialises the week. Its wall time and peak RSS. Repeated (at most 3 runs) only
           if a run leaves the week unmaterialised; the runs are counted;
* lines answered twice - the server's `batch_lines_answered_again` (goal 0);
* cost   - what the ledger says the week cost at batch prices, against the same prompt,
           completion and cached token counts (the server's count of what it answered)
           priced at the sync prices of config/pricing.yaml: computed, not a measured sync
           run (the sync path's cost per token is the price list's; its throughput is
           bench/llm_throughput.py's). Goal: batch / sync <= 0.50.

    python -m bench.batch [--quick]     # --quick: 5,000 kids in two files of 2,500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from bench.common import (
    API_KEY,
    GOLD_SELECTION,
    PROJECT,
    QUIET_RUN_CONFIG,
    RAW_SILVER_SELECTION,
    FakeServer,
    Goal,
    goals_table,
    gold_count,
    gold_env,
    load_demo,
    machine_info,
    machine_line,
    materialize_in_process,
    scratch_database,
    table,
    use_settings,
    warehouse_scalar,
    write_results,
)
from bench.silver_scale import peak_rss_kib
from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.llm.pricing import load_prices

NAME = "batch"
FULL_KIDS, QUICK_KIDS = 100_000, 5_000
MAX_COST_RATIO = 0.50
MAX_INGEST_RUNS = 3
MAX_FILE_LINES = 50_000  # openai.batch_max_requests at most
QUEUE_TOKENS = 10**12  # the bench measures the week, not the queue budget
BATCH_WAIT_S = 3600.0
ENDED = {"completed", "failed", "expired", "cancelled"}


# --- the child: one gold materialisation, measured from inside -----------------------------


def child(week: str) -> None:
    """Runs in a fresh interpreter with the run's environment; prints one RESULT line."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from kidsfin_assets.definitions import pipeline_assets, run_resources
    from kidsfin_assets.defs.resources import load_settings

    settings = load_settings()
    assets, resources = pipeline_assets, run_resources(settings)
    baseline = peak_rss_kib()
    began = time.perf_counter()
    result = dg.materialize(
        assets,
        resources=resources,
        partition_key=week,
        selection=GOLD_SELECTION,
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=False,
    )
    seconds = time.perf_counter() - began
    node = "gold__kid_weekly_reports"
    events = result.asset_materializations_for_node(node) or result.asset_observations_for_node(
        node
    )
    meta = {}
    for event in events[-1:]:
        for key, value in event.metadata.items():
            inner = getattr(value, "value", value)
            if isinstance(inner, int | float | str | bool) and key not in ("summary", "batches"):
                meta[key] = inner
    out = {
        "success": result.success,
        "materialised": bool(result.asset_materializations_for_node(node)),
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_rss_kib() / 1024, 1),
        "baseline_rss_mib": round(baseline / 1024, 1),
        "metadata": meta,
    }
    print("RESULT " + json.dumps(out), flush=True)


def vm_hwm_mib(pid: int) -> float | None:
    """Peak RSS so far of a running process (VmHWM), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_child(week: str, env: dict[str, str], log: Path, budget_s: float | None) -> dict[str, Any]:
    """One gold materialisation in a fresh interpreter; its log (stderr) into `log`. Past
    `budget_s` it is killed (what it stored stays stored) and reported as unfinished, with
    its peak RSS sampled from outside."""
    command = [sys.executable, "-m", "bench.batch", "--child", week]
    began = time.perf_counter()
    sampled: float | None = None
    with log.open("ab") as err:
        proc = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        while proc.poll() is None:
            sampled = vm_hwm_mib(proc.pid) or sampled
            if budget_s is not None and time.perf_counter() - began > budget_s:
                proc.kill()
                proc.wait()
                return {
                    "finished": False,
                    "materialised": False,
                    "killed_after_s": round(time.perf_counter() - began, 1),
                    "peak_rss_mib": sampled,
                }
            time.sleep(1.0)
        stdout = proc.stdout.read().decode()
    wall = time.perf_counter() - began
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"gold child exited {proc.returncode}; its log ends with:\n{tail}")
    out = json.loads(lines[-1].removeprefix("RESULT "))
    out["finished"] = True
    out["process_wall_s"] = round(wall, 2)  # interpreter start and imports included
    return out


def ingest_rate(settings: Settings, week: str) -> dict[str, Any]:
    """Reports stored and their rate, from the ledger's receipt times (a killed run too)."""
    sql = (
        "SELECT json_build_object('answers', count(*), "
        "'span_s', extract(epoch FROM max(received_at) - min(received_at))) "
        "FROM kidsfin.report_ledger WHERE week_start = CAST(:week AS date)"
    )
    value = warehouse_scalar(settings, sql, week=week)
    got = value if isinstance(value, dict) else json.loads(value)
    span = float(got["span_s"] or 0.0)
    per_s = (got["answers"] - 1) / span if span > 0 else None
    return {
        "answers_stored": got["answers"],
        "span_s": round(span, 1),
        "answers_per_s": round(per_s, 1) if per_s else None,
    }


# --- the server's batches -----------------------------------------------------------------


def server_batches(server: FakeServer) -> list[dict[str, Any]]:
    """Every batch on the server, through its /v1/batches list (pages of 100)."""
    found: list[dict[str, Any]] = []
    after = ""
    while True:
        url = f"{server.base_url}/batches?limit=100" + (f"&after={after}" if after else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            page = json.loads(response.read())
        found += page["data"]
        if not page.get("has_more"):
            return found
        after = page["last_id"]


def wait_for_batches(server: FakeServer, timeout: float = BATCH_WAIT_S) -> float:
    """Seconds until every batch on the server has ended."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if all(b["status"] in ENDED for b in server_batches(server)):
            return time.perf_counter() - began
        time.sleep(2.0)
    raise RuntimeError(f"batches still open after {timeout:.0f} s")


# --- the week -----------------------------------------------------------------------------


def ledger_totals(settings: Settings, week: str) -> dict[str, Any]:
    sql = (
        "SELECT json_build_object('answers', count(*), 'cost_usd', coalesce(sum(cost_usd), 0), "
        "'prompt_tokens', coalesce(sum(prompt_tokens), 0), "
        "'completion_tokens', coalesce(sum(completion_tokens), 0), "
        "'cached_tokens', coalesce(sum(cached_tokens), 0), "
        "'tiers', coalesce(json_agg(DISTINCT tier), '[]')) "
        "FROM kidsfin.report_ledger WHERE week_start = CAST(:week AS date)"
    )
    value = warehouse_scalar(settings, sql, week=week)
    return value if isinstance(value, dict) else json.loads(value)


def measure(
    kids: int, per_file: int, workdir: Path, ingest_budget_s: float | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kids": kids,
        "batch_max_requests": per_file,
        "ingest_budget_s": ingest_budget_s,
    }
    with (
        scratch_database(NAME) as url,
        FakeServer(latency=0.0) as server,
    ):
        settings = use_settings(url)
        began = time.perf_counter()
        summary = load_demo(url, settings, kids=kids, weeks=3)
        week = summary.weeks[-1].isoformat()
        out["week"] = week
        out["demo_load_s"] = round(time.perf_counter() - began, 1)
        print(f"  {kids:,} kids loaded in {out['demo_load_s']} s; raw + silver ...", flush=True)
        began = time.perf_counter()
        materialize_in_process(settings, week, RAW_SILVER_SELECTION)
        out["raw_silver_s"] = round(time.perf_counter() - began, 1)
        env = gold_env(
            url,
            server.base_url,
            workdir / "home",
            workdir / "exports",
            KIDSFIN_OPENAI__API="batch",
            KIDSFIN_OPENAI__BATCH_MAX_REQUESTS=str(per_file),
            KIDSFIN_OPENAI__BATCH_QUEUE_TOKENS=str(QUEUE_TOKENS),
        )
        log = workdir / "gold.log"
        print(f"  week {week}: submitting in batch mode ...", flush=True)
        submit = run_child(week, env, log, None)
        stats = server.stats()
        out["submit"] = submit
        out["batches_created"] = stats["batches_created"]
        print(
            f"  submitted {stats['batches_created']} batches in {submit['seconds']} s "
            f"(peak RSS {submit['peak_rss_mib']} MiB); the server answers ...",
            flush=True,
        )
        out["server_s"] = round(wait_for_batches(server), 1)
        ingests = []
        while len(ingests) < MAX_INGEST_RUNS:
            print(f"  ingest run {len(ingests) + 1} ...", flush=True)
            ingests.append(run_child(week, env, log, ingest_budget_s))
            if ingests[-1]["materialised"] or not ingests[-1]["finished"]:
                break
            wait_for_batches(server)
        out["ingest_runs"] = ingests
        out["ingest"] = ingest_rate(settings, week)
        stats = server.stats()
        out["server_stats"] = {k: v for k, v in stats.items() if k.startswith("batch")}
        out["reports"] = gold_count(settings, week)
        out["ledger"] = ledger_totals(settings, week)
        out["lines_per_batch"] = [b["request_counts"]["total"] for b in server_batches(server)]
        out["lines_in_batches"] = sum(out["lines_per_batch"])
        out["cost"] = cost(out, resolve_path(settings.openai.pricing_file), settings.openai.model)
    return out


def cost(out: dict[str, Any], settings_path: Path, model: str) -> dict[str, Any]:
    """The ledger's batch cost against the same token counts at the sync price."""
    price = load_prices(settings_path)[model]
    led = out["ledger"]
    sync_in, sync_out = price.split_cost(
        led["prompt_tokens"], led["completion_tokens"], led["cached_tokens"]
    )
    stats = out["server_stats"]
    sync_server = sum(
        price.split_cost(stats["batch_prompt_tokens"], stats["batch_completion_tokens"], 0)
    )
    batch_cost = led["cost_usd"]
    sync_cost = sync_in + sync_out
    return {
        "model": model,
        "batch_cost_usd": round(batch_cost, 4),
        "sync_cost_same_tokens_usd": round(sync_cost, 4),
        "sync_cost_server_tokens_usd": round(sync_server, 4),
        "ratio": round(batch_cost / sync_cost, 4) if sync_cost else None,
        "per_1000_reports_batch_usd": round(1000 * batch_cost / max(1, out["reports"]), 4),
    }


# --- output ---------------------------------------------------------------------------------


def report_rows(r: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The figures (also bench/report.py)."""
    submit, ingest = r["submit"], r["ingest_runs"][-1]
    c, stats = r["cost"], r["server_stats"]
    answered = f"{stats['batch_lines_answered']:,} / {stats['batch_lines_answered_again']}"
    return [
        ("kids / reports stored", f"{r['kids']:,} / {r['reports']:,}"),
        (
            "batch_max_requests / batches created",
            f"{r['batch_max_requests']:,} / {r['batches_created']}",
        ),
        ("submit: gold step wall (dg.materialize), s", submit["seconds"]),
        (
            "submit: peak RSS, MiB (before the run)",
            f"{submit['peak_rss_mib']} ({submit['baseline_rss_mib']})",
        ),
        ("server answering every line, s", r["server_s"]),
        ("ingest: runs until materialised", _runs(r)),
        (
            "ingest: gold step wall (last run), s",
            ingest["seconds"] if ingest["finished"] else _killed(ingest),
        ),
        (
            "ingest: peak RSS, MiB (before the run)",
            f"{ingest['peak_rss_mib']} ({ingest.get('baseline_rss_mib', 'sampled from outside')})",
        ),
        ("ingest: answers stored per second", r.get("ingest", {}).get("answers_per_s")),
        (
            "lines answered / answered twice (goal 0)",
            answered,
        ),
        ("cost at batch prices (ledger), USD", c["batch_cost_usd"]),
        ("same tokens at sync prices, USD", c["sync_cost_same_tokens_usd"]),
        ("batch / sync (goal <= 0.50)", c["ratio"]),
    ]


def _runs(r: dict[str, Any]) -> str:
    runs = r["ingest_runs"]
    return str(len(runs)) + ("" if runs[-1]["finished"] else " (the last one killed)")


def _killed(run: dict[str, Any]) -> str:
    return f"unfinished: killed after {run['killed_after_s']} s"


def goals(r: dict[str, Any]) -> list[Goal]:
    again = r["server_stats"]["batch_lines_answered_again"]
    ratio = r["cost"]["ratio"]
    files = r["batches_created"]
    return [
        Goal("lines answered twice", again, "0", again == 0),
        Goal(
            "cost batch / sync",
            ratio,
            f"<= {MAX_COST_RATIO}",
            ratio is not None and ratio <= MAX_COST_RATIO,
        ),
        Goal("every kid reported", r["reports"], f"{r['kids']:,}", r["reports"] == r["kids"]),
        Goal("files (batches) created", files, ">= 2", files >= 2),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_KIDS:,} kids: a smoke run")
    parser.add_argument(
        "--ingest-budget",
        type=float,
        default=None,
        metavar="S",
        help="kill an ingest run after S seconds and report its rate (a machine too slow "
        "or too loaded to ingest the whole week in the time there is)",
    )
    parser.add_argument(
        "--kids",
        type=int,
        default=None,
        metavar="N",
        help=f"N kids instead of {FULL_KIDS:,} (a second size shows the per-kid slope; "
        "figures of another size are written to batch_<N>.json)",
    )
    parser.add_argument("--child", metavar="WEEK", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return None
    warnings.filterwarnings("ignore")
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    began = time.perf_counter()
    kids = args.kids or (QUICK_KIDS if args.quick else FULL_KIDS)
    with tempfile.TemporaryDirectory(prefix="kidsfin_bench_") as tmp:
        # Two files at least; at most OpenAI's 50,000 lines a file (batch_max_requests).
        result = measure(kids, min(kids // 2, MAX_FILE_LINES), Path(tmp), args.ingest_budget)
    print(table("Batch mode", ("", ""), report_rows(result)))
    found = goals(result)
    print(goals_table(found))
    payload = {"elapsed_s": round(time.perf_counter() - began, 1), **result, "goals": found}
    name = NAME if kids in (FULL_KIDS, QUICK_KIDS) else f"{NAME}_{kids}"
    write_results(name, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
