"""The figures section of bench/README.md, rendered from bench/results/*.json.

    python -m bench.report           # print the Markdown
    python -m bench.report --write   # replace the block between the README's markers

Kept apart from `make bench` on purpose: a run on another machine must not rewrite the
README's figures (and the causes written next to them) unless someone means it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, fmt, machine_line

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def throughput(data: dict[str, Any]) -> str:
    cases = data["cases"]
    keys = (
        ("reports (N) / processes", lambda c: f"{c['reports_expected']:,} / {c['processes']}"),
        ("limit", lambda c: f"TPM {c['tpm_limit']:,}" if c["tpm_limit"] else f"R {c['rpm_limit']}"),
        (
            "latency, max_concurrent",
            lambda c: f"{c['latency_s']} ± {c['jitter_s']} s, {c['max_concurrent']}",
        ),
        ("requests sent / over the limit", lambda c: f"{c['requests_sent']:,} / {c['over_limit']}"),
        ("steady rate / limit (goal >= 0.95; tier5 >= 0.9)", lambda c: c["steady_share"]),
        ("best 60 s window / limit", lambda c: c["best_60s_window_share"]),
        ("whole run / limit (Dagster start-up incl.)", lambda c: c["whole_run_share"]),
        ("bucket ceiling / limit", lambda c: c["ceiling"]),
        ("gold step wall / ideal", lambda c: f"{c['gold_step_wall_s']} s / {c['ideal_s']} s"),
        ("run wall (CLI) / ideal", lambda c: f"{c['wall_s']} s = {c['wall_over_ideal']}x"),
    )
    for c in cases:
        c["ceiling"] = (
            c["tokens_ceiling_share"] if c["binding"] == "tokens" else c["requests_ceiling_share"]
        )
    if any(c.get("cpu") for c in cases):
        keys += _cpu_keys()
    rows = [(label, *(get(c) for c in cases)) for label, get in keys]
    out = _table(("", *(c["case"] for c in cases)), rows)
    if data.get("environment"):
        out += "\n\n" + depends_on(data["environment"], cases)
    return out


def _cpu_keys() -> tuple[tuple[str, Any], ...]:
    def cpu(c: dict[str, Any]) -> dict[str, Any]:
        return c.get("cpu") or {}

    def ms(c: dict[str, Any], role: str) -> Any:
        return cpu(c).get("cpu_ms_per_request", {}).get(role)

    return (
        ("HTTP transport (async client)", lambda c: c.get("http_transport") or "-"),
        (
            "CPU ms a request, API span: step / test server / PostgreSQL",
            lambda c: f"{ms(c, 'step')} / {ms(c, 'server')} / {ms(c, 'postgres')}",
        ),
        (
            "step busy (share of a core) / other work (cores)",
            lambda c: f"{cpu(c).get('step_core_share')} / {cpu(c).get('other_work_cores')}",
        ),
        (
            "one core / the machine allows, share of limit",
            lambda c: (
                f"{cpu(c).get('one_core_allows_share')} / {cpu(c).get('machine_allows_share')}"
            ),
        ),
    )


def depends_on(env: dict[str, Any], cases: list[dict[str, Any]]) -> str:
    """What the run's figures depend on besides the code, and what did not hold."""
    py, cpu, start = env["python"], env["cpu"], env["yardsticks_at_start"]
    end = env.get("yardsticks_at_end") or {}
    missing = env.get("speedups_missing") or []
    rows = [
        (
            "Python",
            f"{py['version']} ({py['executable']}; "
            + ("libpython linked in" if not py.get("libpython") else "shared libpython")
            + (", PGO" if py["pgo"] else "")
            + (", LTO" if py["lto"] else "")
            + ")",
        ),
        (
            "CPU",
            f"{cpu['model']} {cpu['family_model_stepping']}"
            + (f" ({cpu['generation']})" if cpu.get("generation") else "")
            + f", {cpu['cores']} cores",
        ),
        (
            "load average at start / end",
            f"{env['load_average_at_start'][0]} / {(env.get('load_average_at_end') or ['?'])[0]}",
        ),
        (
            "1M additions, CPU ms (33.7 where tier5 met its goal): start / end",
            f"{start['python_loop_ms']} / {end.get('python_loop_ms')}",
        ),
        (
            "a load from 64 MiB, CPU ns beyond L2: start / end",
            f"{start['memory_ns_per_load']} / {end.get('memory_ns_per_load')}",
        ),
        (
            "packages",
            ", ".join(f"{k} {v}" for k, v in env["packages"].items() if k != "dagster"),
        ),
        ("C speedups not in use", ", ".join(missing) or "none: all compiled"),
    ]
    warnings = [f"- {c['case']}: {w}" for c in cases for w in c.get("warnings", [])]
    return _table(("what the figures depend on", ""), rows) + (
        "\n\nWarnings of the run:\n\n" + "\n".join(warnings) if warnings else ""
    )


def silver(data: dict[str, Any]) -> str:
    scales = data["scales"]
    keys = (
        ("kids", "kids"),
        ("transactions in the week", "week_transactions"),
        ("transactions, W-2 .. W", "all_transactions"),
        ("silver step, s", "silver_step_s"),
        ("floor (bare GROUP BY kid_id, kind), s", "floor_s"),
        ("ratio (goal <= 1.5)", "ratio"),
        ("floor over W-2 .. W, s", "floor_3_weeks_s"),
        ("silver / 3-week floor", "ratio_vs_3_week_floor"),
        ("peak RSS of the silver process, MiB (goal < 1024)", "peak_rss_mib"),
    )
    rows = [(label, *(s[k] for s in scales)) for label, k in keys]
    scaling = data["scaling"]
    rows.append(
        (
            "large / small: rows, silver time, per-row cost",
            f"{scaling['rows_ratio']}x, {scaling['silver_time_ratio']}x, "
            f"{scaling['per_row_cost_ratio']}",
            "",
        )
    )
    return _table(("", *(s["scale"] + " kids" for s in scales)), rows)


def faults(data: dict[str, Any]) -> str:
    free, bad = data["faults"]["fault_free"], data["faults"]["faults"]
    resume, quota = data["kill_and_resume"], data["quota"]
    rows = [
        ("reports written (goal 100 %)", free["reports_written"], bad["reports_written"]),
        ("duplicates: paid twice / rows (goal 0)", "0 / 0", _dups(bad)),
        ("requests / report", free["requests_per_report"], bad["requests_per_report"]),
        ("retries / report", free["retries_per_report"], bad["retries_per_report"]),
        ("Dagster step attempts", free["dagster_step_attempts"], bad["dagster_step_attempts"]),
        ("requests over the limit (goal 0)", free["over_limit"], bad["over_limit"]),
        ("gold step wall, s", free["gold_step_wall_s"], bad["gold_step_wall_s"]),
        ("95 % / 100 % of reports stored, s", _pct(free), _pct(bad)),
        ("stalls >= 1 s without a request", _stall(free), _stall(bad)),
    ]
    injected = ", ".join(f"{k}: {v}" for k, v in sorted(bad["faults_injected"].items()))
    out = [_table(("", "fault-free", "20 % faults"), rows), "", f"Faults injected: {injected}."]
    out += [
        "",
        _table(
            ("SIGKILL half-way, re-run", ""),
            [
                ("reports kept / missing after the kill", _pair(resume, "reports_kept")),
                ("answers paid but lost in flight", resume["answers_lost_in_flight"]),
                ("requests sent by the re-run", resume["rerun_requests"]),
                ("re-run requests / missing (goal <= 1.05)", resume["resume_ratio"]),
            ],
        ),
        "",
        _table(
            (f"insufficient_quota after {quota['quota_after']}", ""),
            [
                ("reports kept (goal 50)", quota["reports_kept"]),
                ("requests after the first refusal", quota["requests_after_first_refusal"]),
                ("last request, s after the first refusal", quota["last_request_after_refusal_s"]),
                ("run stopped (process exit), s after it (goal < 5)", quota["stop_s"]),
            ],
        ),
    ]
    if "two_runs_at_once" in data:  # results from before the gold ledger have none
        from bench.faults import ledger_tables

        for title, header, rows in ledger_tables(data):
            out += ["", f"{title}:", "", _table(header, rows)]
    return "\n".join(out)


def grounding(data: dict[str, Any]) -> str:
    rows = [
        ("lie", data["true_positives"], data["false_negatives"]),
        ("truthful (corpus + offline writer)", data["false_positives"], data["true_negatives"]),
    ]
    kinds = ", ".join(f"{k} {v['caught']}/{v['lies']}" for k, v in data["by_kind"].items())
    figures = [
        ("reports / lies", f"{data['reports']:,} / {data['lies']:,} ({data['lie_share']:.1%})"),
        ("recall (goal >= 0.995)", data["recall"]),
        ("false-positive rate (goal <= 0.005)", data["false_positive_rate"]),
        ("precision", data["precision"]),
        (
            "offline writer's reports rejected",
            f"{data['offline_rejected']} / {data['offline_reports']}",
        ),
        ("CPU ms per report (goal < 2)", data["cpu_ms_per_report"]),
        ("wall ms per report, median / p99", f"{data['median_ms']} / {data['p99_ms']}"),
        ("reference: CPU ms of 1M Python additions", data.get("reference_loop_cpu_ms")),
    ]
    m = data["machine"]
    load = f"load average {m.get('load_avg_1m_at_start')} at the start, "
    load += f"{data.get('load_avg_1m_at_end')} at the end"
    return "\n".join(
        [
            _table(("", "flagged", "passed"), rows),
            "",
            f"Caught by lie kind: {kinds}.",
            "",
            _table(("", ""), figures),
            "",
            _table(
                (
                    "written corpus",
                    "recall (worst kind)",
                    "true sentences flagged",
                    "true reports re-asked",
                ),
                [_written_row(w) for w in (data.get("written") or {}).values()],
            ),
            "",
            f"Grounding at {m.get('git_commit')}, {m.get('date_utc')}; {load}.",
        ]
    )


def _written_row(w: dict[str, Any]) -> tuple[Any, ...]:
    """One written corpus: which one it is (bench/README.md section 4 says which were tuned on)."""
    kinds = w["recall_by_kind"].values()
    worst = min((k["caught"] / k["lies"] for k in kinds if k["lies"]), default=1.0)
    return (
        w["corpus"],
        f"{w['recall']:.3f} ({worst:.3f})",
        f"{w['true_sentences_flagged']} / {w['true_sentences']} ({w['false_positive_rate']:.1%})",
        f"{w['reports_reasked']} / {w['reports']} ({w['reports_reasked_share']:.1%})",
    )


def _dups(run: dict[str, Any]) -> str:
    return f"{run['paid_duplicates']} / {run['duplicate_rows']}"


def _pct(run: dict[str, Any]) -> str:
    return f"{run.get('reports_95pct_s')} / {run.get('reports_100pct_s')}"


def _stall(run: dict[str, Any]) -> str:
    before = run.get("stalled_before_95pct_s")
    return f"{run.get('stalls')} ({run.get('stalled_s')} s, {before} s before 95 %)"


def _pair(resume: dict[str, Any], key: str) -> str:
    return f"{resume[key]} / {resume['reports_missing']}"


def history(data: dict[str, Any]) -> str:
    from bench.history import report_rows

    cases = data["cases"]
    return _table(("", *(c["case"] for c in cases)), report_rows(cases))


def batch(data: dict[str, Any]) -> str:
    from bench.batch import report_rows

    return _table(("", ""), report_rows(data))


def bucket(data: dict[str, Any]) -> str:
    rows = [
        (r["processes"], r["lease_seconds"], r["grants_per_s"], r["cpu_ms_per_grant"])
        for r in data["bucket"]
    ]
    return _table(("processes (16 threads each)", "lease, s", "grants/s", "CPU ms a grant"), rows)


def gold_memory(data: dict[str, Any]) -> str:
    header = ("kids", "gold step, s", "RSS before, MiB", "peak RSS, MiB", "KiB a kid from before")
    rows = [
        (
            c["kids"],
            c["seconds"],
            c["baseline_rss_mib"],
            c["peak_rss_mib"],
            c.get("kib_per_kid_from_previous"),
        )
        for c in data["cases"]
    ]
    return _table(header, rows)


def exports(data: dict[str, Any]) -> str:
    header = ("kids", "step", "case", "rows", "wall, s", "CPU, s", "RSS before, MiB")
    header += ("peak RSS, MiB", "file, MiB", "load (1 min)")
    steps = [
        (
            s["kids"],
            s["step"],
            s["case"],
            s["rows"],
            s["seconds"],
            s.get("cpu_seconds"),
            s["baseline_rss_mib"],
            s["peak_rss_mib"],
            s["file_mib"],
            s.get("load_avg_1m"),
        )
        for size in data["sizes"]
        for s in size["steps"]
    ]
    compared = [
        (
            r["step"],
            r["case"],
            r["peak_small_mib"],
            r["peak_large_mib"],
            r["peak_ratio"],
            r["kib_per_kid"],
        )
        for r in data["comparison"]
    ]
    small, large = (f"{size['kids']:,}" for size in (data["sizes"][0], data["sizes"][-1]))
    ratio = ("step", "case", f"peak at {small}, MiB", f"peak at {large}, MiB", "ratio")
    return "\n\n".join([_table(header, steps), _table((*ratio, "KiB a kid"), compared)])


def week_scale(data: dict[str, Any]) -> str:
    from bench.week_scale import report

    return report(data)


def gold_offline(data: dict[str, Any]) -> str:
    from bench.gold_offline import report_rows

    return _table(("", ""), [tuple(row) for row in report_rows(data)])


def _code(name: str) -> str:
    data = _load(name)
    if not data:
        return f"{name} (no results)"
    m = data["machine"]
    changed = ", ".join(m.get("uncommitted_project_files") or [])
    return f"{name} at {m.get('git_commit')}" + (f" + uncommitted {changed}" if changed else "")


def render() -> str:
    summary = _load("run_all")
    parts = []
    if summary:
        m = summary["machine"]
        parts += [
            f"Machine: {machine_line(m)}; {m['os']}; PostgreSQL shared_buffers "
            f"{m.get('pg_shared_buffers')}, work_mem {m.get('pg_work_mem')}. Load average "
            f"{m.get('load_avg_1m_at_start')} at the start and {summary.get('load_avg_1m_at_end')} "
            "at the end (other work shared the 2 CPUs). Code measured: "
            + "; ".join(_code(name) for name in summary["seconds"])
            + ".",
            "",
            f"`make bench` took {summary['total_s'] / 60:.1f} min ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items())
            + ").",
        ]
    sections = (
        ("llm_throughput", "LLM throughput", throughput),
        ("silver_scale", "Silver at scale", silver),
        ("faults", "Faults", faults),
        ("grounding", "Grounding", grounding),
        ("history", "A week against the length of history", history),
        ("history_large", "A week at 100,000 kids (history.py --large)", history),
        ("batch", "A week through the Batch API", batch),
        ("llm_throughput_tier5", "The big tiers: one step process at R = 30,000", throughput),
        ("llm_throughput_bucket", "The shared bucket alone", bucket),
        ("gold_memory", "Gold's peak memory against the number of kids", gold_memory),
        ("exports", "Each export step's memory and time against the number of kids", exports),
        ("exports_before", "The same, with the exports before streaming (8e93c61)", exports),
        ("week_scale", "A week at scale, end to end", week_scale),
        ("gold_offline", "Gold without an API: the offline writer at 100,000 kids", gold_offline),
        ("gold_offline_12k", "The same at 12,000 kids", gold_offline),
        (
            "gold_offline_main_12k",
            "The same at 12,000 kids, right after: main's code (b2c97db), a report at a time",
            gold_offline,
        ),
    )
    for name, title, render_one in sections:
        data = _load(name)
        if data:
            parts += ["", f"#### {title}", "", render_one(data)]
    # From each benchmark's own results, so a benchmark re-run alone stays consistent.
    rows = [
        (f"{name}: {g['name']}", g["value"], g["target"], "met" if g["met"] else "**MISSED**")
        for name, _title, _render in sections
        for g in (_load(name) or {}).get("goals", [])
    ]
    if rows:
        parts += ["", "#### Goals", "", _table(("goal", "measured", "target", ""), rows)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("--write", action="store_true", help=f"update {README.name}")
    args = parser.parse_args(argv)
    block = render()
    if not args.write:
        print(block)
        return
    text = README.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{block}\n{END}{tail}")
    print(f"updated {README}")


if __name__ == "__main__":
    main()
