"""Silver at scale: one week's silver materialisation against the SQL floor, and its memory.

On PostgreSQL, with the demo generator's data (the benchmarked week plus the two weeks
before, which silver's trends read; raw loaded for the three, untimed: silver reads raw), at
two scales 10x apart:

* silver - a real Dagster materialisation of `silver/kid_weekly_analysis` for the week
           (`dagster.materialize`, in a fresh subprocess so that its peak RSS is silver's
           own): the step's duration (Dagster's job set-up excluded) and the whole call;
* floor  - one bare `SELECT kid_id, kind, sum(amount), count(*) ... GROUP BY kid_id, kind`
           over the same week's transactions, all rows fetched (median of 3, warm cache).

Also, to say where silver's time goes: every SQL statement it ran, timed from the
driver, and PostgreSQL's plan (EXPLAIN ANALYZE, rolled back) of the slowest one.

    python -m bench.silver_scale [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.common import (
    PROJECT,
    QUIET_RUN_CONFIG,
    Goal,
    goals_table,
    load_demo,
    load_raw_before,
    machine_info,
    machine_line,
    scratch_database,
    table,
    use_settings,
    write_results,
)
from kidsfin_assets.config.weeks import Week
from kidsfin_assets.defs.resources import Settings

NAME = "silver_scale"
SILVER_SELECTION = "silver/kid_weekly_analysis"
SILVER_STEP = "silver__kid_weekly_analysis"
MAX_RATIO = 1.5
MAX_RSS_MIB = 1024
# Per-row cost at the large scale may exceed the small one's by this much and still count
# as linear (timer noise, and a hash table that outgrows a cache, are not a trend).
LINEAR_TOLERANCE = 1.2
FLOOR_SQL = """
SELECT kid_id, kind, sum(amount) AS total, count(*) AS n
FROM {transactions}
WHERE occurred_at >= :start AND occurred_at < :end
GROUP BY kid_id, kind
"""


@dataclass(frozen=True)
class Scale:
    name: str
    kids: int
    txns_per_kid_week: float
    # Silver runs, median taken: a ~1 s run on a shared 2-CPU machine is noisy.
    runs: int = 1


def scales(quick: bool) -> tuple[Scale, Scale]:
    """10.5 transactions a kid-week: >= 1,000,000 valid ones in the week at 100,000 kids
    (the issue's minimum), plus ~2 % deliberately invalid rows."""
    if quick:
        return Scale("10k", 10_000, 10.5), Scale("1k", 1_000, 10.5, runs=3)
    # Medians of 3 at both scales: a single run moves by +-10 % here, enough to tip the
    # scaling ratio across its tolerance.
    return Scale("100k", 100_000, 10.5, runs=3), Scale("10k", 10_000, 10.5, runs=3)


# --- the child: one silver materialisation, measured from inside ---------------------------


def peak_rss_kib() -> int:
    """Peak RSS of this process's own address space (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across execve, so a child started by
    subprocess (vfork + exec) reports its parent's peak when that was larger (here: the
    parent that generated 3 million demo rows)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(url: str, week: str, explain: bool) -> None:
    """Runs in a fresh interpreter: prints one JSON line with its figures."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from kidsfin_assets.definitions import pipeline_assets, run_resources

    settings = use_settings(url)
    statements: list[dict[str, Any]] = []
    pending: dict[int, float] = {}

    # Every statement silver sends, timed at the driver: SQL time vs Python time.
    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        pending[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        began = pending.pop(id(cursor), None)
        if began is not None:
            seconds = time.perf_counter() - began
            statements.append({"s": seconds, "sql": statement, "params": params, "many": many})

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    assets, resources = pipeline_assets, run_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    baseline_kib = peak_rss_kib()
    began = time.perf_counter()
    result = dg.materialize(
        assets,
        resources=resources,
        partition_key=week,
        selection=SILVER_SELECTION,
        instance=instance,
        run_config=QUIET_RUN_CONFIG,
    )
    call_s = time.perf_counter() - began
    peak_kib = peak_rss_kib()  # before any diagnosis
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)

    step_s, rows = math.nan, None
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key != SILVER_STEP:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            step_start = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            step_s = entry.timestamp - step_start
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            meta = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
            rows = getattr(meta.get("row_count"), "value", None)

    sql_s = sum(s["s"] for s in statements)
    slowest = sorted(statements, key=lambda s: -s["s"])
    out: dict[str, Any] = {
        "success": result.success,
        "silver_rows": rows,
        "step_s": round(step_s, 3),
        "materialize_call_s": round(call_s, 3),
        "sql_s": round(sql_s, 3),
        "statements": len(statements),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "baseline_rss_mib": round(baseline_kib / 1024, 1),
        "ru_maxrss_mib": round(maxrss_kib / 1024, 1),
        "slowest_statements": [
            {"seconds": round(s["s"], 3), "sql": " ".join(s["sql"].split())[:160]}
            for s in slowest[:5]
        ],
    }
    if explain and slowest:
        out["plan_hotspots"] = explain_hotspots(settings.warehouse.database_url, week, slowest[0])
    print("RESULT " + json.dumps(out, default=str), flush=True)


def explain_hotspots(
    url: str, week: str, statement: dict[str, Any], top: int = 12
) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of one captured statement (rolled back), nodes by their own time."""
    from kidsfin_assets.warehouse import db

    if statement["many"] or not statement["sql"].lstrip().upper().startswith(
        ("SELECT", "INSERT", "WITH")
    ):
        return []
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                # As silver does, in the same (rolled-back) transaction: its session
                # settings (work_mem, no JIT), and the week's rows go first, so that an
                # INSERT of them (the analysis or the stored balances) meets no duplicate key.
                db.tune_for_aggregation(conn)
                for table in ("kid_weekly_analysis", "savings_balances"):
                    conn.execute(
                        sa.text(f"DELETE FROM kidsfin.{table} WHERE week_start = :week"),
                        {"week": week},
                    )
                raw = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement["sql"],
                    statement["params"],
                ).scalar_one()
            finally:
                trans.rollback()
    finally:
        engine.dispose()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    nodes: list[dict[str, Any]] = []

    def inclusive(node: dict[str, Any]) -> float:
        return node.get("Actual Total Time", 0.0) * (node.get("Actual Loops", 1) or 1)

    def is_cte(node: dict[str, Any]) -> bool:
        return str(node.get("Subplan Name", "")).startswith("CTE ")

    # A CTE's own plan hangs under the statement's root, but its time is spent inside the
    # CTE Scan that first reads it: count it there once, under the CTE's own nodes.
    cte_ms: dict[str, float] = {}

    def collect(node: dict[str, Any]) -> None:
        if is_cte(node):
            cte_ms[node["Subplan Name"][4:]] = inclusive(node)
        for c in node.get("Plans", []):
            collect(c)

    def walk(node: dict[str, Any]) -> None:
        children = node.get("Plans", [])
        own = inclusive(node) - sum(inclusive(c) for c in children if not is_cte(c))
        if node["Node Type"] == "CTE Scan":
            own -= cte_ms.pop(node.get("CTE Name", ""), 0.0)
        label = node["Node Type"]
        for key in ("Relation Name", "CTE Name", "Subplan Name", "Strategy"):
            if key in node:
                label += f" {node[key]}"
        spill = node.get("Sort Space Type") == "Disk" or node.get("Disk Usage", 0) > 0
        nodes.append(
            {
                "node": label,
                "own_ms": round(max(own, 0.0), 1),
                "inclusive_ms": round(inclusive(node), 1),
                "rows": node.get("Actual Rows", 0) * (node.get("Actual Loops", 1) or 1),
                "spilled_to_disk": spill,
                "temp_blocks_written": node.get("Temp Written Blocks", 0),
            }
        )
        for c in children:
            walk(c)

    collect(plan["Plan"])
    walk(plan["Plan"])
    nodes.sort(key=lambda n: -n["own_ms"])
    jit = (plan.get("JIT") or {}).get("Timing") or {}
    total_jit = jit.get("Total", 0.0)
    jit_ms = total_jit if isinstance(total_jit, int | float) else 0.0
    head = {"execution_ms": round(plan.get("Execution Time", 0.0), 1), "jit_ms": round(jit_ms, 1)}
    return [head, *nodes[:top]]


# --- the parent ---------------------------------------------------------------------------


def run_child(url: str, week: str, explain: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.silver_scale", "--child", url, week]
    if explain:
        command.append("--explain")
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    # The error's first lines name it; SQLAlchemy's echo of the parameters fills the rest.
    err = (
        done.stderr
        if len(done.stderr) <= 6000
        else done.stderr[:3000] + "\n...\n" + done.stderr[-3000:]
    )
    raise RuntimeError(f"silver child failed ({done.returncode}):\n{err}")


def floor_seconds(
    url: str,
    settings: Settings,
    week: Week,
    repeats: int = 3,
    weeks_back: int = 0,
) -> tuple[float, int]:
    """The bare GROUP BY, all rows fetched: (median seconds, groups). `weeks_back`=2 reads
    W-2 .. W, the rows silver must read for its trends."""
    from kidsfin_assets.warehouse import db

    sql = sa.text(FLOOR_SQL.format(transactions=settings.sources.transactions))
    params = {"start": week.shifted(-weeks_back).starts_at, "end": week.ends_at}
    engine = sa.create_engine(db.normalize_url(url))  # the server's settings, as a user has
    timings, groups = [], 0
    try:
        with engine.connect() as conn:
            for _ in range(repeats):
                began = time.perf_counter()
                groups = len(conn.execute(sql, params).all())
                timings.append(time.perf_counter() - began)
    finally:
        engine.dispose()
    return statistics.median(timings), groups


def week_counts(url: str, settings: Settings, week: Week) -> dict[str, int]:
    from kidsfin_assets.warehouse import db
    from kidsfin_assets.warehouse.tables import source_tables
    from kidsfin_assets.warehouse.validation import rows_in_window, valid_transactions

    src = source_tables(settings.sources)
    engine = db.create_engine(url)
    window = (week.starts_at, week.ends_at)
    try:
        with engine.connect() as conn:
            rows = conn.execute(rows_in_window(engine, src.transactions, *window)).scalar_one()
            valid = valid_transactions(engine, src, week.timezone, *window).subquery()
            n_valid = conn.execute(sa.select(sa.func.count()).select_from(valid)).scalar_one()
            kids = conn.execute(sa.text(f"SELECT count(*) FROM {settings.sources.kids}")).scalar()
            total = conn.execute(
                sa.text(f"SELECT count(*) FROM {settings.sources.transactions}")
            ).scalar()
    finally:
        engine.dispose()
    return {
        "kids": int(kids or 0),
        "week_transactions": int(rows),
        "week_valid_transactions": int(n_valid),
        "all_transactions": int(total or 0),
    }


def vacuum(url: str, settings: Settings) -> None:
    """VACUUM ANALYZE the freshly loaded tables, as autovacuum would have long since done in
    production; otherwise whichever query reads them first pays for setting hint bits."""
    from kidsfin_assets.warehouse import db

    engine = db.create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    names = settings.sources
    try:
        with engine.connect() as conn:
            for name in (names.kids, names.transactions, names.app_events, names.savings_goals):
                conn.exec_driver_sql(f"VACUUM ANALYZE {name}")
    finally:
        engine.dispose()


def run_scale(scale: Scale, explain: bool) -> dict[str, Any]:
    from kidsfin_assets.config.weeks import Week

    with scratch_database(f"silver_{scale.name}") as url:
        settings = use_settings(url)
        began = time.perf_counter()
        summary = load_demo(
            url, settings, kids=scale.kids, weeks=3, txns_per_kid_week=scale.txns_per_kid_week
        )
        vacuum(url, settings)
        load_s = time.perf_counter() - began
        week = Week(summary.weeks[-1], settings.analysis.timezone)
        # Silver reads raw: raw for the three weeks first (untimed), as a backfill leaves it.
        load_raw_before(settings, week.shifted(1).key)
        counts = week_counts(url, settings, week)
        floor_seconds(url, settings, week, repeats=1)  # warm the cache for both sides
        runs = [run_child(url, week.key, explain and i == 0) for i in range(scale.runs)]
        silver = sorted(runs, key=lambda r: r["step_s"])[len(runs) // 2]  # the median run
        silver["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
        floor_s, groups = floor_seconds(url, settings, week)
        floor_3w_s, _ = floor_seconds(url, settings, week, weeks_back=2)
    step_s = silver["step_s"]
    return {
        "scale": scale.name,
        "week": week.key,
        **counts,
        "load_s": round(load_s, 1),
        "silver_rows": silver["silver_rows"],
        "silver_step_s": step_s,
        "silver_step_s_all_runs": [r["step_s"] for r in runs],
        "silver_call_s": silver["materialize_call_s"],
        "silver_sql_s": silver["sql_s"],
        "silver_python_s": round(step_s - silver["sql_s"], 3),
        "silver_statements": silver["statements"],
        "floor_s": round(floor_s, 3),
        "floor_groups": groups,
        "ratio": round(step_s / floor_s, 3),
        "ratio_whole_call": round(silver["materialize_call_s"] / floor_s, 3),
        "floor_3_weeks_s": round(floor_3w_s, 3),
        "ratio_vs_3_week_floor": round(step_s / floor_3w_s, 3),
        "peak_rss_mib": silver["peak_rss_mib"],
        "baseline_rss_mib": silver["baseline_rss_mib"],
        "ru_maxrss_mib": silver["ru_maxrss_mib"],
        "slowest_statements": silver["slowest_statements"],
        "plan_hotspots": runs[0].get("plan_hotspots", []),  # the run that explained
        "success": silver["success"],
    }


ROWS = (
    ("kids", "kids"),
    ("transactions in the week (all / valid)", "week_tx"),
    ("transactions, all 3 weeks", "all_transactions"),
    ("silver rows written", "silver_rows"),
    ("silver step, s", "silver_step_s"),
    ("  of which SQL (driver-timed), s", "silver_sql_s"),
    ("  of which Python, s", "silver_python_s"),
    ("silver incl. Dagster job set-up, s", "silver_call_s"),
    ("floor: bare GROUP BY kid_id, kind, s", "floor_s"),
    ("ratio silver step / floor", "ratio"),
    ("ratio incl. Dagster set-up / floor", "ratio_whole_call"),
    ("floor over W-2 .. W (what trends read), s", "floor_3_weeks_s"),
    ("ratio silver step / 3-week floor", "ratio_vs_3_week_floor"),
    ("peak RSS of the silver process, MiB", "peak_rss_mib"),
    ("  RSS before the run (imports), MiB", "baseline_rss_mib"),
    ("  (ru_maxrss, parent's peak incl.), MiB", "ru_maxrss_mib"),
    ("data load (COPY + VACUUM), s", "load_s"),
)


def scaling(large: dict[str, Any], small: dict[str, Any]) -> dict[str, float]:
    rows = large["week_transactions"] / small["week_transactions"]
    time_ratio = large["silver_step_s"] / small["silver_step_s"]
    return {
        "rows_ratio": round(rows, 2),
        "silver_time_ratio": round(time_ratio, 2),
        "floor_time_ratio": round(large["floor_s"] / small["floor_s"], 2),
        # 1.0: linear; above: per-row cost grows with size.
        "per_row_cost_ratio": round(time_ratio / rows, 3),
        "exponent": round(math.log(time_ratio) / math.log(rows), 3),
    }


def goals(
    large: dict[str, Any], small: dict[str, Any], scale: dict[str, float], quick: bool
) -> list[Goal]:
    out = []
    for r in (large, small):
        tag = f"{r['scale']} kids"
        out += [
            Goal(f"{tag}: silver / floor", r["ratio"], f"<= {MAX_RATIO}", r["ratio"] <= MAX_RATIO),
            Goal(
                f"{tag}: peak RSS, MiB",
                r["peak_rss_mib"],
                f"< {MAX_RSS_MIB}",
                r["peak_rss_mib"] < MAX_RSS_MIB,
            ),
        ]
    out.append(
        Goal(
            "silver time scales linearly (per-row cost large / small)",
            scale["per_row_cost_ratio"],
            f"<= {LINEAR_TOLERANCE}",
            scale["per_row_cost_ratio"] <= LINEAR_TOLERANCE,
        )
    )
    if quick:
        return out  # the smoke run is 10x smaller on purpose
    out.append(
        Goal(
            "large week has >= 1,000,000 transactions",
            large["week_transactions"],
            ">= 1,000,000",
            large["week_transactions"] >= 1_000_000,
        )
    )
    return out


def report(results: list[dict[str, Any]], scale: dict[str, float]) -> str:
    for r in results:
        r["week_tx"] = f"{r['week_transactions']:,} / {r['week_valid_transactions']:,}"
    rows = [(label, *(r.get(key) for r in results)) for label, key in ROWS]
    out = [table("Silver at scale (PostgreSQL)", ("", *(r["scale"] for r in results)), rows)]
    out.append(
        table(
            "Scaling (large / small)",
            ("rows", "silver time", "floor time", "per-row cost", "exponent"),
            [tuple(scale.values())],
        )
    )
    large = results[0]
    out.append(
        table(
            f"Where silver's time goes at {large['scale']} kids: slowest statements",
            ("seconds", "statement"),
            [(s["seconds"], s["sql"]) for s in large["slowest_statements"]],
        )
    )
    if large["plan_hotspots"]:
        head, *nodes = large["plan_hotspots"]
        out.append(
            table(
                f"EXPLAIN ANALYZE of the slowest ({head['execution_ms']:,.0f} ms, of which JIT "
                f"compilation {head.get('jit_ms', 0):,.0f} ms): plan nodes by own time",
                ("node", "own ms", "rows", "spilled to disk"),
                [(n["node"], n["own_ms"], n["rows"], n["spilled_to_disk"]) for n in nodes],
            )
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(prog="python -m bench.silver_scale")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--child", nargs=2, metavar=("URL", "WEEK"), help=argparse.SUPPRESS)
    parser.add_argument("--explain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, explain=args.explain)
        return None
    warnings.filterwarnings("ignore")
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    started = time.perf_counter()
    results = []
    for i, s in enumerate(scales(args.quick)):
        print(f"  {s.name} kids: loading and materialising ...", flush=True)
        results.append(run_scale(s, explain=i == 0))
    scale = scaling(*results)
    print(report(results, scale))
    goal_list = goals(*results, scale, args.quick)
    print(goals_table(goal_list))
    payload = {
        "elapsed_s": round(time.perf_counter() - started, 1),
        "floor_sql": " ".join(FLOOR_SQL.split()),
        "scales": results,
        "scaling": scale,
        "goals": goal_list,
    }
    write_results(NAME, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
