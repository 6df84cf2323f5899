"""Grounding: precision and recall of the checker on a labelled corpus of reports.

The corpus (openai_test_server/report_corpus.py) is generated from random weeks with
every edge case (negative net flow, negative balance, no income so no savings rate, no
spending, amounts in millions, new trends, a week without activity): for each week a
truthful report in varied forms and the offline writer's report, and for two weeks in
three also a report with one lie (a wrong amount, a reversed trend, an invented amount, a
wrong number of days; the kinds in turn). Labels come from the generator, not from the
checker.

Time per report is the checker's own, on a data block it has not seen (its values are
computed, then the report read): the median and 99th percentile of wall time, and CPU
time per report over the whole corpus (less sensitive to other work on the machine).

    python -m bench.grounding [--quick]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import statistics
import time
from typing import Any

from bench.common import Goal, goals_table, machine_info, machine_line, table, write_results
from bench.corpus.written import WRITTEN, evaluate, missing
from bench.environment import reference_ms  # how fast Python ran here, to read times against
from kidsfin_assets.reports.grounding import check_report
from kidsfin_assets.reports.offline_writer import offline_report
from kidsfin_assets.reports.prompt import prompt_data
from openai_test_server.report_corpus import (
    EDGE_CASES,
    LIE_KINDS,
    lying_report,
    random_metrics,
    truthful_report,
)

NAME = "grounding"
MIN_RECALL = 0.995
MAX_FALSE_POSITIVE_RATE = 0.005
MAX_MS_PER_REPORT = 2.0


def corpus(weeks: int, seed: int) -> list[dict[str, Any]]:
    """Labelled reports: {source, case, lie kind or None, report, data}."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    lies = 0
    for i in range(weeks):
        case = EDGE_CASES[i % len(EDGE_CASES)]
        row = random_metrics(rng, case)
        data = prompt_data(row)
        items.append(dict(source="truthful", case=case, lie=None, data=data))
        items[-1]["report"] = truthful_report(data, rng)
        items.append(dict(source="offline", case=case, lie=None, data=data))
        items[-1]["report"] = offline_report(row).model_dump()
        if i % 3:  # two weeks in three also get a lying report: 25 % of the reports lie
            kind = LIE_KINDS[lies % len(LIE_KINDS)]
            lies += 1
            report = lying_report(data, rng, kind)
            items.append(dict(source="lying", case=case, lie=kind, data=data, report=report))
    return items


def measure(items: list[dict[str, Any]]) -> dict[str, Any]:
    walls: list[float] = []
    reference = reference_ms()
    cpu_started = time.process_time()
    for item in items:
        data = dict(item["data"])  # a new dict: the checker's per-data cache does not help
        data["_nonce"] = len(walls)
        started = time.perf_counter()
        item["findings"] = check_report(item["report"], data)
        walls.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu_started
    walls.sort()
    return {
        "reports": len(items),
        "median_ms": round(statistics.median(walls) * 1000, 3),
        "p99_ms": round(walls[int(0.99 * (len(walls) - 1))] * 1000, 3),
        "cpu_ms_per_report": round(cpu / len(items) * 1000, 3),
        "reference_loop_cpu_ms": round((reference + reference_ms()) / 2, 1),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def confusion(items: list[dict[str, Any]]) -> dict[str, Any]:
    lies = [i for i in items if i["lie"]]
    truths = [i for i in items if not i["lie"]]
    caught = sum(1 for i in lies if i["findings"])
    rejected = sum(1 for i in truths if i["findings"])
    by_kind = {
        kind: [sum(1 for i in lies if i["lie"] == kind and i["findings"]), 0] for kind in LIE_KINDS
    }
    for i in lies:
        by_kind[i["lie"]][1] += 1
    by_case: dict[str, collections.Counter[str]] = {c: collections.Counter() for c in EDGE_CASES}
    for i in items:
        c = by_case[i["case"]]
        c["lies" if i["lie"] else "truths"] += 1
        c["caught" if i["lie"] and i["findings"] else "rejected" if i["findings"] else "ok"] += 1
    finding_kinds = collections.Counter(f.kind for i in lies for f in i["findings"])
    wrongly = collections.Counter(f.kind for i in truths for f in i["findings"])
    return {
        "lies": len(lies),
        "truths": len(truths),
        "lie_share": round(len(lies) / len(items), 4),
        "true_positives": caught,
        "false_negatives": len(lies) - caught,
        "false_positives": rejected,
        "true_negatives": len(truths) - rejected,
        "recall": round(caught / len(lies), 4) if lies else 1.0,
        "precision": round(caught / (caught + rejected), 4) if caught + rejected else 1.0,
        "false_positive_rate": round(rejected / len(truths), 4) if truths else 0.0,
        "offline_rejected": sum(1 for i in truths if i["source"] == "offline" and i["findings"]),
        "offline_reports": sum(1 for i in truths if i["source"] == "offline"),
        "by_kind": {k: {"caught": v[0], "lies": v[1]} for k, v in by_kind.items()},
        "by_case": {k: dict(v) for k, v in by_case.items()},
        "finding_kinds_on_lies": dict(finding_kinds),
        "finding_kinds_on_truths": dict(wrongly),
        "missed_examples": [i["report"] for i in lies if not i["findings"]][:3],
        "rejected_examples": [
            {"report": i["report"], "findings": [f.message for f in i["findings"]]}
            for i in truths
            if i["findings"]
        ][:3],
    }


def report(c: dict[str, Any], timing: dict[str, Any]) -> str:
    matrix = table(
        "Confusion (reports)",
        ("", "flagged", "passed"),
        [
            ("lie", c["true_positives"], c["false_negatives"]),
            ("truthful (corpus + offline writer)", c["false_positives"], c["true_negatives"]),
        ],
    )
    kinds = table(
        "Recall by lie kind",
        ("lie kind", "caught / lies"),
        [(k, f"{v['caught']} / {v['lies']}") for k, v in c["by_kind"].items()],
    )
    cases = table(
        "By edge case",
        ("week", "truthful rejected / reports", "lies caught / lies"),
        [
            (
                k,
                f"{v.get('rejected', 0)} / {v.get('truths', 0)}",
                f"{v.get('caught', 0)} / {v.get('lies', 0)}",
            )
            for k, v in c["by_case"].items()
        ],
    )
    figures = table(
        "Figures",
        ("", "value"),
        [
            ("reports (lies)", f"{timing['reports']} ({c['lies']}, {c['lie_share']:.1%})"),
            ("recall", c["recall"]),
            ("precision", c["precision"]),
            ("false-positive rate", c["false_positive_rate"]),
            (
                "offline writer's reports rejected",
                f"{c['offline_rejected']} / {c['offline_reports']}",
            ),
            (
                "time per report, median / p99 (wall, ms)",
                f"{timing['median_ms']} / {timing['p99_ms']}",
            ),
            ("CPU time per report (ms)", timing["cpu_ms_per_report"]),
            ("reference: CPU ms of 1M Python additions", timing["reference_loop_cpu_ms"]),
        ],
    )
    return "\n".join((matrix, kinds, cases, figures))


def goals(c: dict[str, Any], timing: dict[str, Any]) -> list[Goal]:
    return [
        Goal("recall", c["recall"], f">= {MIN_RECALL}", c["recall"] >= MIN_RECALL),
        Goal(
            "false-positive rate",
            c["false_positive_rate"],
            f"<= {MAX_FALSE_POSITIVE_RATE}",
            c["false_positive_rate"] <= MAX_FALSE_POSITIVE_RATE,
        ),
        Goal(
            "CPU ms per report",
            timing["cpu_ms_per_report"],
            f"< {MAX_MS_PER_REPORT}",
            timing["cpu_ms_per_report"] < MAX_MS_PER_REPORT,
        ),
    ]


def written_report(w: dict[str, Any]) -> str:
    """One written corpus: by kind, by writer's style, and the whole reports' cost."""
    kinds = table(
        f"{w['corpus']}: recall by kind (labelled false sentences)",
        ("kind", "caught / lies"),
        [(k, f"{v['caught']} / {v['lies']}") for k, v in w["recall_by_kind"].items()],
    )
    styles = table(
        f"{w['corpus']}: by writer's style",
        ("style", "lies caught", "true sentences flagged", "true reports re-asked"),
        [
            (
                style,
                f"{c.get('caught', 0)} / {c.get('lies', 0)}",
                f"{c.get('truths_flagged', 0)} / {c.get('truths', 0)}",
                f"{c.get('reports_reasked', 0)} / {c.get('reports', 0)}",
            )
            for style, c in w["writers"].items()
        ],
    )
    figures = table(
        f"{w['corpus']}: figures",
        ("", "value"),
        [
            ("recall (all kinds)", w["recall"]),
            (
                "labelled true sentences flagged",
                f"{w['true_sentences_flagged']} / {w['true_sentences']} "
                f"({w['false_positive_rate']:.2%})",
            ),
            (
                "true whole reports re-asked",
                f"{w['reports_reasked']} / {w['reports']} ({w['reports_reasked_share']:.1%})",
            ),
            ("sentences in the true reports", w["report_sentences"]),
        ],
    )
    return "\n".join((kinds, styles, figures))


def written_goals(w: dict[str, Any]) -> list[Goal]:
    worst = min(
        (v["caught"] / v["lies"] for v in w["recall_by_kind"].values() if v["lies"]), default=1.0
    )
    name = w["corpus"]
    return [
        Goal(f"{name}: recall", w["recall"], ">= 0.99", w["recall"] >= 0.99),
        Goal(f"{name}: recall, worst kind", round(worst, 4), ">= 0.99", worst >= 0.99),
        Goal(
            f"{name}: true sentences flagged",
            w["false_positive_rate"],
            "<= 0.01",
            w["false_positive_rate"] <= 0.01,
        ),
        Goal(
            f"{name}: true reports re-asked",
            w["reports_reasked_share"],
            "<= 0.03",
            w["reports_reasked_share"] <= 0.03,
        ),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.grounding")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    weeks = 240 if args.quick else 1200  # full: 1,200 truthful + 1,200 offline + 800 lies
    machine = machine_info()
    print(f"{NAME}: {machine_line(machine)}", flush=True)
    items = corpus(weeks, args.seed)
    timing = measure(items)
    c = confusion(items)
    print("Generated corpus (written with the checker)")
    print(report(c, timing))
    goal_list = goals(c, timing)
    waiting = {name: missing(name) for name in WRITTEN if missing(name)}
    written = {name: evaluate(name) for name in WRITTEN if name not in waiting}
    for name, files in waiting.items():
        print(
            f"\nWritten corpus: {name}: skipped, its writers' files are not there yet "
            f"({', '.join(files)} missing in bench/corpus/{name}/)"
        )
    for name, w in written.items():
        print(f"\nWritten corpus: {name} (writers who never read the checker)")
        print(written_report(w))
        goal_list += written_goals(w)
    print(goals_table(goal_list))
    payload = {
        "weeks": weeks,
        "seed": args.seed,
        **timing,
        **c,
        "written": written,
        "written_skipped": waiting,
        "goals": goal_list,
    }
    write_results(NAME, args.quick, machine, payload)
    return payload


if __name__ == "__main__":
    main()
