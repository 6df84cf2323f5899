"""Each export step's peak memory and time against the number of kids (issue 22, item 4:
"an export's memory does not grow with the number of kids").

For each size N, on PostgreSQL: `python -m kidsfin_demo --kids N --weeks 1` (the demo CLI,
COPY), raw and silver of that week in process, every kid's report from the offline writer
(its rules, stored straight into gold: the gold asset is not what is measured), then each
export step in a fresh interpreter (`bench/export_child.py`: `dagster.materialize()` of the
one asset, its own peak RSS, VmHWM), in three cases:

* json    - the default format, into a local folder;
* jsonl   - JSON Lines, into a local folder;
* s3-json - the default format into `s3://kidsfin-bench/...` on moto's S3 server
            (`python -m moto.server`, a subprocess on 127.0.0.1: real HTTP, multipart
            uploads of 8 MiB parts).

The steps: analysis (`exports/kids_analysis_json`, every silver row of the week with its
nickname) and reports (`exports/kids_reports_json`, every report; no review file here).

Reported per step: rows written, the step's wall and CPU time (materialize(), Dagster's
start-up in it; the CPU time is the process's own, which other work on the machine does not
inflate), the peak RSS before the run (imports, Dagster, the definitions) and at its end,
the file's size. The slope from the smaller size to the larger, in KiB a kid, says how flat
the memory is. Goals (at the full sizes): each step's peak at 300,000 kids within 1.25x of
its peak at 100,000, and each step under 30 s at 100,000.

    python -m bench.exports [--quick] [--sizes N N] [--cases json jsonl s3-json]
                            [--code-dir DIR --label NAME]

`--quick`: 1,000 and 3,000 kids, json and s3-json (a minute or two; `make bench QUICK=1`).
`--code-dir` measures the export steps of another checkout (`git archive` of an older commit, its
kidsfin_assets/, config/ and prompts/) on the same data, written to `exports_<label>.json`:
how the streamed exports compare with what they replaced (`--cases json`: older code knows
no other).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.batch import vm_hwm_mib
from bench.common import (
    PROJECT,
    RAW_SILVER_SELECTION,
    Goal,
    goals_table,
    machine_info,
    machine_line,
    materialize_in_process,
    scratch_database,
    table,
    use_settings,
    write_results,
)
from kidsfin_assets.config.weeks import Week
from kidsfin_assets.defs.assets import exports
from kidsfin_assets.defs.assets.exports import pages_in_order
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.reports.offline_writer import OFFLINE_MODEL, offline_report
from kidsfin_assets.reports.report_writer import WRITER_OFFLINE
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import kid_weekly_analysis, kid_weekly_reports

NAME = "exports"
FULL_SIZES, QUICK_SIZES = (100_000, 300_000), (1_000, 3_000)
STEPS = {"analysis": "exports/kids_analysis_json", "reports": "exports/kids_reports_json"}
S3_BUCKET = "kidsfin-bench"
GOAL_PEAK_RATIO = 1.25
GOAL_SECONDS = 30.0
CHILD = PROJECT / "bench" / "export_child.py"


def last_complete_week(timezone: str) -> str:
    return Week.containing(dt.datetime.now(dt.UTC), timezone).shifted(-1).key


def load_week(url: str, kids: int, week: str) -> float:
    """The demo CLI's data (one week); its wall seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    command = [sys.executable, "-m", "kidsfin_demo", "--database-url", url]
    command += ["--kids", str(kids), "--weeks", "1", "--end-week", week]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kidsfin_demo failed: {done.stderr[-2000:]}")
    return time.perf_counter() - began


def fill_gold_offline(settings: Settings, week: str) -> float:
    """Every silver row's report from the offline writer (its rules, no model), stored as
    gold stores an offline report, 2,000 kids a transaction; its wall seconds. Not the gold
    asset: its per-report transactions and grounding take ~20 ms a report here, hours at
    300,000 kids, and gold is not what is measured."""
    began = time.perf_counter()
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    silver, gold = kid_weekly_analysis, kid_weekly_reports
    day = dt.date.fromisoformat(week)
    others = [c for c in silver.c if c.name != "kid_id"]
    query = sa.select(silver.c.kid_id, *others).where(silver.c.week_start == day)
    now = dt.datetime.now(dt.UTC)
    with engine.connect() as reader:
        for page in pages_in_order(reader, query, silver.c.kid_id, exports.PAGE_KIDS):
            rows = [
                {
                    "week_start": day,
                    "kid_id": row.kid_id,
                    "report": offline_report(dict(row._mapping)).model_dump(),
                    "model": OFFLINE_MODEL,
                    "prompt_version": "bench",
                    "input_hash": "bench",
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cached_tokens": 0,
                    "cost_usd": 0.0,
                    "writer": WRITER_OFFLINE,
                    "generated_at": now,
                    "grounded": True,
                }
                for row in page
            ]
            with engine.begin() as conn:
                conn.execute(sa.insert(gold), rows)
    return time.perf_counter() - began


def timed_materialize(settings: Any, week: str, selection: str) -> float:
    began = time.perf_counter()
    result = materialize_in_process(settings, week, selection)
    if not result.success:
        raise RuntimeError(f"{selection} failed for {week}")
    return time.perf_counter() - began


def run_step(
    step: str, week: str, env: dict[str, str], code_dir: Path, log: Path
) -> dict[str, Any]:
    """One export step in a fresh interpreter, its peak RSS also sampled from outside."""
    command = [sys.executable, str(CHILD), STEPS[step], week]
    child_env = {**env, "PYTHONPATH": str(code_dir)}
    sampled = None
    with log.open("ab") as err:
        proc = subprocess.Popen(
            command, cwd=code_dir, env=child_env, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        while proc.poll() is None:
            sampled = vm_hwm_mib(proc.pid) or sampled
            time.sleep(0.2)
        stdout = proc.stdout.read().decode()
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{step} export exited {proc.returncode}; its log ends with:\n{tail}")
    out = json.loads(lines[-1].removeprefix("RESULT "))
    if not out["success"]:
        raise RuntimeError(f"{step} export failed; see {log}")
    out["sampled_peak_rss_mib"] = sampled
    return out


@dataclass(frozen=True)
class Case:
    """Where an export step writes, and in which format."""

    name: str
    target: str  # local or s3
    export_format: str


CASES = {
    "json": Case("json", "local", "json"),
    "jsonl": Case("jsonl", "local", "jsonl"),
    "s3-json": Case("s3-json", "s3", "json"),
}
QUICK_CASES = ["json", "s3-json"]  # jsonl's streaming is the same; the tests cover it


@contextlib.contextmanager
def s3_server(workdir: Path) -> Iterator[dict[str, str]]:
    """moto's S3 server (`python -m moto.server`) on a free port of 127.0.0.1, a bucket in
    it; the AWS_* environment an export step needs to write there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (workdir / "moto.log").open("wb")
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(env["AWS_ENDPOINT_URL"], timeout=1).close()
                break
            time.sleep(0.2)
        client = s3_client(env)
        client.create_bucket(Bucket=S3_BUCKET)
        yield env
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def s3_client(env: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def step_env(url: str, case: Case, folder: Path, s3: dict[str, str] | None) -> dict[str, str]:
    """The child's environment: the shell's, without its KIDSFIN_* / OPENAI_* / AWS_*."""
    drop = ("KIDSFIN_", "OPENAI_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["KIDSFIN_DATABASE_URL"] = url
    if case.export_format != "json":  # unset: the default (and a variable older code refuses)
        env["KIDSFIN_EXPORTS__FORMAT"] = case.export_format
    if case.target == "s3":
        assert s3 is not None
        env.update(s3, KIDSFIN_EXPORTS__EXPORT_DIR=f"s3://{S3_BUCKET}/{folder.name}")
    else:
        env["KIDSFIN_EXPORTS__EXPORT_DIR"] = str(folder)
    return env


def written_mib(case: Case, folder: Path, step: str, s3: dict[str, str] | None) -> float:
    """The size of the step's files, then removed (the next size's disk or memory)."""
    prefix = f"kids_{step}_"
    if case.target == "s3":
        assert s3 is not None
        client = s3_client(s3)
        listed = client.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{folder.name}/{prefix}")
        objects = listed.get("Contents", [])
        for o in objects:
            client.delete_object(Bucket=S3_BUCKET, Key=o["Key"])
        return round(sum(o["Size"] for o in objects) / 2**20, 1)
    files = sorted(folder.glob(prefix + "*"))
    size = sum(f.stat().st_size for f in files)
    for f in files:
        f.unlink()
    return round(size / 2**20, 1)


def measure(
    kids: int, workdir: Path, code_dir: Path, cases: list[Case], s3: dict[str, str] | None
) -> dict[str, Any]:
    """One size: its data prepared, then every export step in every case."""
    with scratch_database(f"{NAME}_{kids}") as url:
        settings = use_settings(url)
        week = last_complete_week(settings.analysis.timezone)
        prepared = {"demo_s": round(load_week(url, kids, week), 1)}
        prepared["raw_silver_s"] = round(timed_materialize(settings, week, RAW_SILVER_SELECTION), 1)
        prepared["gold_offline_s"] = round(fill_gold_offline(settings, week), 1)
        print(f"    prepared: {prepared}", flush=True)
        steps = []
        for case in cases:
            folder = workdir / f"exports_{kids}_{case.name}"
            env = step_env(url, case, folder, s3)
            for step in STEPS:
                out = run_step(step, week, env, code_dir, workdir / f"{step}_{kids}.log")
                steps.append(
                    {
                        "kids": kids,
                        "step": step,
                        "case": case.name,
                        "rows": out["metadata"].get("dagster/row_count"),
                        "seconds": out["seconds"],
                        "cpu_seconds": out["cpu_seconds"],
                        "baseline_rss_mib": out["baseline_rss_mib"],
                        "peak_rss_mib": out["peak_rss_mib"],
                        "sampled_peak_rss_mib": out["sampled_peak_rss_mib"],
                        "file_mib": written_mib(case, folder, step, s3),
                        "load_avg_1m": round(os.getloadavg()[0], 2),
                    }
                )
                print(f"    {step} {case.name}: {steps[-1]}", flush=True)
        return {"kids": kids, "week": week, "prepared": prepared, "steps": steps}


def slope_kib_per_kid(small: dict[str, Any], large: dict[str, Any]) -> float:
    grown = (large["peak_rss_mib"] - small["peak_rss_mib"]) * 1024
    return round(grown / (large["kids"] - small["kids"]), 4)


def compare(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step and case: the smaller and the larger size's peaks, their ratio, the slope."""
    small, large = sizes[0], sizes[-1]
    rows = []
    for a in small["steps"]:
        b = next(s for s in large["steps"] if (s["step"], s["case"]) == (a["step"], a["case"]))
        rows.append(
            {
                "step": a["step"],
                "case": a["case"],
                "peak_small_mib": a["peak_rss_mib"],
                "peak_large_mib": b["peak_rss_mib"],
                "peak_ratio": round(b["peak_rss_mib"] / a["peak_rss_mib"], 3),
                "kib_per_kid": slope_kib_per_kid(a, b),
                "seconds_small": a["seconds"],
                "seconds_large": b["seconds"],
            }
        )
    return rows


def goals(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> list[Goal]:
    small, large = (f"{n:,}" for n in (sizes[0], sizes[-1]))
    found = []
    for r in rows:
        name = f"{r['step']} ({r['case']})"
        found.append(
            Goal(
                f"{name}: peak RSS at {large} kids / at {small}",
                r["peak_ratio"],
                f"<= {GOAL_PEAK_RATIO}",
                r["peak_ratio"] <= GOAL_PEAK_RATIO,
            )
        )
        found.append(
            Goal(
                f"{name}: step at {small} kids, s",
                r["seconds_small"],
                f"< {GOAL_SECONDS:.0f}",
                r["seconds_small"] < GOAL_SECONDS,
            )
        )
    return found


def step_table(measured: list[dict[str, Any]]) -> str:
    header = ("kids", "step", "case", "rows", "wall, s", "CPU, s", "RSS before", "peak", "MiB")
    body = [
        (
            s["kids"],
            s["step"],
            s["case"],
            s["rows"],
            s["seconds"],
            s["cpu_seconds"],
            s["baseline_rss_mib"],
            s["peak_rss_mib"],
            s["file_mib"],
        )
        for m in measured
        for s in m["steps"]
    ]
    return table("Each export step against the number of kids (RSS in MiB)", header, body)


def comparison_table(rows: list[dict[str, Any]]) -> str:
    header = ("step", "case", "peak small, MiB", "peak large, MiB", "ratio", "KiB a kid")
    body = [
        (
            r["step"],
            r["case"],
            r["peak_small_mib"],
            r["peak_large_mib"],
            r["peak_ratio"],
            r["kib_per_kid"],
        )
        for r in rows
    ]
    return table("Peak RSS at the smaller and the larger size", header, body)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.exports")
    parser.add_argument("--quick", action="store_true", help="1,000 and 3,000 kids")
    parser.add_argument("--sizes", type=int, nargs=2, metavar="N", help="two numbers of kids")
    parser.add_argument("--cases", nargs="+", choices=CASES, help="default: all (quick: 2)")
    parser.add_argument("--code-dir", type=Path, default=PROJECT, help="the code to measure")
    parser.add_argument("--label", default="", help="results as exports_<label>.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    chosen = args.cases or (QUICK_CASES if args.quick else list(CASES))
    cases = [CASES[name] for name in chosen]
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    started = time.perf_counter()
    measured = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kidsfin_bench_")))
        needs_s3 = any(c.target == "s3" for c in cases)
        s3 = stack.enter_context(s3_server(workdir)) if needs_s3 else None
        for kids in sizes:
            print(f"  {kids:,} kids ...", flush=True)
            measured.append(measure(kids, workdir, args.code_dir.resolve(), cases, s3))
    print(step_table(measured))
    rows = compare(measured)
    print(comparison_table(rows))
    found = goals(rows, sizes)
    print(goals_table(found))
    payload = {
        "elapsed_s": round(time.perf_counter() - started, 1),
        "code_dir": str(args.code_dir),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "sizes": measured,
        "comparison": rows,
        "goals": found,
    }
    write_results(NAME + (f"_{args.label}" if args.label else ""), args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
