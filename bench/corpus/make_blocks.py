"""Makes the data blocks of the independent grounding corpus (bench/corpus/independent/).

Run once, before the writers were briefed; the file it wrote is frozen. The blocks are
what the model is given (`prompt_data`), one for every kind of week the issue names:
no income, no spending, a goal completed, a goal set, a new category, flat and reversed
trends, negative net flow, W-2 empty, and the edge cases of the generated corpus.

    python -m bench.corpus.make_blocks
    python -m bench.corpus.make_blocks --seed 20261208 --per-kind 2 \\
        --out bench/corpus/heldout/data_blocks.json   # the second corpus, never tuned on
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from kidsfin_assets.reports.prompt import prompt_data
from openai_test_server.report_corpus import _trend, random_metrics

OUT = Path(__file__).parent / "independent" / "data_blocks.json"
TRENDED = ("income_total", "spending_total", "saving_total", "txn_count", "active_days")

# (kind of week, the generated corpus's case it starts from)
KINDS = [
    ("typical", "typical"),
    ("no_income", "no_income"),
    ("no_spending", "no_spending"),
    ("negative_net_flow", "negative_net"),
    ("negative_balance", "negative_balance"),
    ("millions", "millions"),
    ("all_new_trends", "new_trends"),
    ("inactive", "inactive"),
    ("goal_completed", "typical"),
    ("goal_set", "typical"),
    ("new_category", "typical"),
    ("flat_trends", "typical"),
    ("reversed_trends", "typical"),
    ("w2_empty", "typical"),
    ("typed_category", "typical"),
    ("many_categories", "typical"),
]


def _retrend(row: dict[str, Any]) -> None:
    for m in TRENDED:
        row[f"{m}_trend"] = _trend(row[m], row[f"{m}_prev1"], row[f"{m}_prev2"])


def _shape(row: dict[str, Any], kind: str, rng: random.Random) -> None:
    if kind == "goal_completed":
        target = max(10_000.0, round(row["savings_balance"] * 0.6 / 1000) * 1000)
        row["savings_goals"] = [
            dict(
                title="Mua xe",
                target_amount=target,
                open_at_week_end=False,
                created_in_week=False,
                completed_in_week=True,
                progress_percent=None,
                reached=None,
            ),
            *row["savings_goals"][:1],
        ]
    elif kind == "goal_set":
        target = float(rng.randrange(50, 900) * 1000)
        balance = max(row["savings_balance"], 0)
        row["savings_goals"] = [
            dict(
                title="Quà",
                target_amount=target,
                open_at_week_end=True,
                created_in_week=True,
                completed_in_week=False,
                progress_percent=min(100, int(balance * 100 // target)),
                reached=balance >= target,
            )
        ]
    elif kind == "new_category":
        cats = dict(row["spending_by_category"])
        cats["books"] = cats.get("books", 0) + 15_000.0
        row["spending_by_category"] = cats
        row["spending_total"] = sum(cats.values())
        row["net_flow"] = row["income_total"] - row["spending_total"]
        row["spending_total_prev1"] = row["spending_total_prev2"] = 0.0
    elif kind == "flat_trends":
        for m in TRENDED:
            v = row[m]
            row[f"{m}_prev1"] = v if isinstance(v, int) else round(v * 1.04 / 1000) * 1000
            row[f"{m}_prev2"] = v if isinstance(v, int) else round(v * 0.98 / 1000) * 1000
    elif kind == "reversed_trends":
        # up this week after two weeks falling, or down after two rising
        for m in ("income_total", "spending_total", "saving_total"):
            v = row[m]
            if rng.random() < 0.5:
                row[f"{m}_prev1"], row[f"{m}_prev2"] = (
                    round(v * 0.5 / 1000) * 1000,
                    round(v * 0.8 / 1000) * 1000,
                )
            else:
                row[f"{m}_prev1"], row[f"{m}_prev2"] = (
                    round(v * 1.9 / 1000) * 1000,
                    round(v * 1.4 / 1000) * 1000,
                )
    elif kind == "w2_empty":
        for m in TRENDED:
            row[f"{m}_prev2"] = 0 if m in ("txn_count", "active_days") else 0.0
    elif kind == "typed_category":
        cats = dict(row["spending_by_category"])
        cats["Quà sinh nhật bạn Lan"] = 23_000.0
        row["spending_by_category"] = cats
        row["spending_total"] = sum(cats.values())
        row["net_flow"] = row["income_total"] - row["spending_total"]
    elif kind == "many_categories":
        cats = {
            k: float(rng.randrange(3, 60) * 1000)
            for k in (
                "snacks",
                "toys",
                "books",
                "games",
                "transport",
                "stationery",
                "gifts",
                "food",
            )
        }
        row["spending_by_category"] = cats
        row["spending_total"] = sum(cats.values())
        row["net_flow"] = row["income_total"] - row["spending_total"]
    cats = row["spending_by_category"]
    row["top_spending_category"] = max(cats, key=lambda k: (cats[k], k)) if cats else None
    row["txn_count"] = max(row["txn_count"], sum(1 for v in cats.values() if v > 0))
    _retrend(row)


def blocks(per_kind: int = 3, seed: int = 20261207) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for kind, case in KINDS:
        for i in range(per_kind):
            row = random_metrics(rng, case)
            _shape(row, kind, rng)
            out.append({"block_id": f"{kind}_{i + 1}", "kind": kind, "data": prompt_data(row)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--per-kind", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(blocks(args.per_kind, args.seed), ensure_ascii=False, indent=1)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
