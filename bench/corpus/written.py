"""The written corpora: labelled sentences and true whole reports by writers who never read
the checker (bench/corpus/<name>/, BRIEF.md there), measured by `bench.grounding`.

- each labelled sentence is checked alone, in a report whose other fields say nothing to
  check: a false one must be flagged (recall, by kind), a true one must pass;
- each whole true report is checked as the pipeline checks an answer: any finding means a
  paid re-ask (the closed world's cost), and its sentences count as true sentences too.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import Any

from kidsfin_assets.reports.grounding import check_report

CORPORA = Path(__file__).parent
# In the order they were written. Each was measured once before the checker was tuned on it;
# the last measured is the one never tuned on (bench/README.md, section 4). The sixth
# (seed 20261212, BRIEF.md there) waits for its writers: blocks 1-16 (typical_1 to
# inactive_2) to careful_k and loose_k, blocks 17-32 (goal_completed_1 to
# many_categories_2) to careful_l and loose_l, each given the brief, its data blocks and
# the prompt files as they are at the sixth's commit.
WRITTEN = (
    "independent",
    "heldout",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
    "twentyfirst",
    "twentysecond",
    "twentythird",
)
# Each corpus has two writers of each style (careful_a ... loose_b for the independent one,
# then c/d, e/f, g/h, i/j; the sixth's are k/l, the seventh's m/n, the eighth's o/p,
# the ninth's q/r, the tenth's s/t, the eleventh's u/v, the twelfth's w/x, the thirteenth's
# y/z; from the fourteenth on, letters with a digit: a2/b2, then c2/d2, e2/f2, g2/h2, i2/j2, k2/l2,
# m2/n2, o2/p2, q2/r2, s2/t2).
# One with fewer is skipped, not measured.
STYLES = ("careful", "loose")
WRITERS_PER_STYLE = 2
NEXT_WRITERS = {
    "sixth": "kl",
    "seventh": "mn",
    "eighth": "op",
    "ninth": "qr",
    "tenth": "st",
    "eleventh": "uv",
    "twelfth": "wx",
    "thirteenth": "yz",
    "fourteenth": ("a2", "b2"),
    "fifteenth": ("c2", "d2"),
    "sixteenth": ("e2", "f2"),
    "seventeenth": ("g2", "h2"),
    "eighteenth": ("i2", "j2"),
    "nineteenth": ("k2", "l2"),
    "twentieth": ("m2", "n2"),
    "twentyfirst": ("o2", "p2"),
    "twentysecond": ("q2", "r2"),
    "twentythird": ("s2", "t2"),
}
_FILLER = "Tuần này [[KID]] có một tuần bình thường."
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def _alone(text: str) -> dict[str, Any]:
    return {
        "financial_health": text,
        "spending_pattern": _FILLER,
        "savings_behavior": _FILLER,
        "activity_level": _FILLER,
        "recommendations": ["Cùng con lập bảng theo dõi chi tiêu mỗi tối.", _FILLER],
        "overall_score": 5,
    }


def _sentences_of(report: dict[str, Any]) -> int:
    texts = [str(report.get(k) or "") for k in report if k != "overall_score"]
    texts += [str(r) for r in report.get("recommendations") or []]
    return sum(max(1, len(_SENTENCE_END.findall(t.strip() + " "))) for t in texts if t)


def missing(name: str) -> list[str]:
    """The writers' files the corpus still lacks: none once it holds two of each style."""
    folder = CORPORA / name
    lacking = []
    for style in STYLES:
        have = sorted(p.name for p in folder.glob(f"{style}_*.json"))
        if len(have) < WRITERS_PER_STYLE:
            wanted = [f"{style}_{w}.json" for w in NEXT_WRITERS.get(name, "xy")]
            lacking += [f for f in wanted if f not in have][: WRITERS_PER_STYLE - len(have)]
    return lacking


def load(name: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The corpus's data blocks by id, and its writers' files."""
    folder = CORPORA / name
    blocks = json.loads((folder / "data_blocks.json").read_text(encoding="utf-8"))
    writers = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.json"))
        if path.name != "data_blocks.json"
    ]
    return {b["block_id"]: b["data"] for b in blocks}, writers


def evaluate(name: str) -> dict[str, Any]:
    """Recall by kind and by style, false positives on true sentences, reports re-asked."""
    data, writers = load(name)
    lies: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    by_style: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    rejected: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    for writer in writers:
        style = by_style[writer["style"]]
        for block in writer["blocks"]:
            facts = data[block["block_id"]]
            findings = check_report(block["report"], facts)
            style["reports"] += 1
            style["report_sentences"] += _sentences_of(block["report"])
            if findings:
                style["reports_reasked"] += 1
                rejected.append({"report": block["block_id"], "why": findings[0].message})
            for sentence in block["sentences"]:
                flagged = bool(check_report(_alone(sentence["text"]), facts))
                if sentence["label"] == "false":
                    lies[sentence["kind"]][0] += flagged
                    lies[sentence["kind"]][1] += 1
                    style["lies"] += 1
                    style["caught"] += flagged
                    if not flagged:
                        missed.append({"block": block["block_id"], "text": sentence["text"]})
                else:
                    style["truths"] += 1
                    style["truths_flagged"] += flagged
                    if flagged:
                        rejected.append({"block": block["block_id"], "text": sentence["text"]})
    return _summary(name, lies, by_style, rejected, missed)


def _summary(
    name: str,
    lies: dict[str, list[int]],
    by_style: dict[str, collections.Counter[str]],
    rejected: list[dict[str, Any]],
    missed: list[dict[str, Any]],
) -> dict[str, Any]:
    total = collections.Counter()
    for counts in by_style.values():
        total.update(counts)
    return {
        "corpus": name,
        "writers": {style: dict(c) for style, c in by_style.items()},
        "lies": total["lies"],
        "recall": round(total["caught"] / total["lies"], 4) if total["lies"] else 1.0,
        "recall_by_kind": {k: {"caught": v[0], "lies": v[1]} for k, v in sorted(lies.items())},
        "true_sentences": total["truths"],
        "true_sentences_flagged": total["truths_flagged"],
        "false_positive_rate": round(total["truths_flagged"] / total["truths"], 4),
        "report_sentences": total["report_sentences"],
        "reports": total["reports"],
        "reports_reasked": total["reports_reasked"],
        "reports_reasked_share": round(total["reports_reasked"] / total["reports"], 4),
        "rejected_examples": rejected[:12],
        "missed_examples": missed[:12],
    }
