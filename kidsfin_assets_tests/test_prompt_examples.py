"""The prompt's example sentences and the grounding checker agree (issue 19 item 4).

The prompt steers the model towards the forms the checker reads by giving one short example
sentence per kind of claim. Each example must pass the checker on a week where it is true
and be flagged on the same week with one figure changed, so that the prompt cannot teach a
form the checker refuses (a paid re-ask) or one it reads wrongly. A new example sentence in
the prompt files fails `test_every_example_sentence_in_the_prompt_is_tested` until it is
added here."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kidsfin_assets.reports.grounding import check_report
from kidsfin_assets.reports.prompt import (
    PROMPTS_DIR,
    REPORT_PROMPT_FILE,
    SYSTEM_PROMPT_FILE,
    prompt_data,
)

FILLER = "Tuần này [[KID]] có một tuần bình thường."
ADVICE_FILLER = "Cùng con lập bảng theo dõi chi tiêu mỗi tối."
# A quoted text of at least this many words is an example sentence; shorter ones are forms
# ("160.000 đ", "8 giao dịch") or names ("mục tiêu 1", "các danh mục khác").
SENTENCE_WORDS = 5


def goal(target: float, balance: float) -> list[dict[str, Any]]:
    progress = max(0, min(100, int(balance * 100 // target)))
    return [
        {
            "target_amount": target,
            "open_at_week_end": True,
            "created_in_week": False,
            "completed_in_week": False,
            "progress_percent": progress,
            "reached": balance >= target,
        }
    ]


def week(**overrides: Any) -> dict[str, Any]:
    """A typical week (120.000 đ in, 234.000 đ out in toys, snacks and transport, no saving,
    8 transactions), with the overrides; the sums that follow from them are kept in step."""
    row: dict[str, Any] = {
        "kid_id": 1,
        "week_start": "2026-11-16",
        "income_total": 120000.0,
        "saving_total": 0.0,
        "withdrawal_total": 0.0,
        "txn_count": 8,
        "event_count": 20,
        "active_days": 4,
        "spending_by_category": {"toys": 120000.0, "snacks": 70000.0, "transport": 44000.0},
        "savings_balance": 18000.0,
        "income_total_prev1": 120000.0,
        "income_total_prev2": 120000.0,
        "income_total_trend": "flat",
        "spending_total_prev1": 38000.0,
        "spending_total_prev2": 120000.0,
        "spending_total_trend": "up",
        "saving_total_prev1": 0.0,
        "saving_total_prev2": 0.0,
        "saving_total_trend": "flat",
        "txn_count_prev1": 8,
        "txn_count_prev2": 8,
        "txn_count_trend": "flat",
        "active_days_prev1": 4,
        "active_days_prev2": 4,
        "active_days_trend": "flat",
        "savings_goals": goal(70000.0, 18000.0),
    } | overrides
    categories = row["spending_by_category"]
    row.setdefault("spending_total", sum(categories.values()))
    row.setdefault("top_spending_category", max(categories, key=categories.get))
    row.setdefault("net_flow", row["income_total"] - row["spending_total"])
    income = row["income_total"]
    row.setdefault("savings_rate", row["saving_total"] / income if income else None)
    return prompt_data(row)


# Each example sentence of the prompt: a week where it is true, the same week with one
# figure changed (where it is false).
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "chi tiêu tuần này là 160.000 đ": (
        {"spending_by_category": {"toys": 160000.0}},
        {"spending_by_category": {"toys": 165000.0}},
    ),
    "tuần trước con chi 38.000 đ": (
        {"spending_total_prev1": 38000.0},
        {"spending_total_prev1": 40000.0},
    ),
    "hai tuần trước con không chi tiêu": (
        {"spending_total_prev2": 0.0},
        {"spending_total_prev2": 5000.0},
    ),
    "con có 8 giao dịch": ({"txn_count": 8}, {"txn_count": 9}),
    "số giao dịch giảm so với trung bình hai tuần trước": (
        {"txn_count": 6, "txn_count_trend": "down"},
        {"txn_count": 12, "txn_count_trend": "up"},
    ),
    "chi tiêu gấp đôi tuần trước": (
        {"spending_by_category": {"toys": 160000.0}, "spending_total_prev1": 80000.0},
        {"spending_by_category": {"toys": 160000.0}, "spending_total_prev1": 60000.0},
    ),
    "chi tiêu gấp 3 lần thu nhập": (
        {"spending_by_category": {"toys": 360000.0}, "income_total": 120000.0},
        {"spending_by_category": {"toys": 360000.0}, "income_total": 150000.0},
    ),
    "con chi nhiều hơn số tiền nhận được": ({"income_total": 120000.0}, {"income_total": 300000.0}),
    "tuần này con không rút tiền tiết kiệm": (
        {"withdrawal_total": 0.0},
        {"withdrawal_total": 10000.0},
    ),
    "ba khoản chi lớn nhất lần lượt là đồ chơi (120.000 đ), đồ ăn vặt (70.000 đ) và đi lại "
    "(44.000 đ)": (
        {"spending_by_category": {"toys": 120000.0, "snacks": 70000.0, "transport": 44000.0}},
        {"spending_by_category": {"toys": 120000.0, "snacks": 130000.0, "transport": 44000.0}},
    ),
    "mục tiêu 1 còn thiếu 52.000 đ": (
        {"savings_balance": 18000.0, "savings_goals": goal(70000.0, 18000.0)},
        {"savings_balance": 28000.0, "savings_goals": goal(70000.0, 28000.0)},
    ),
    "[[KID]] đã để dành được 60 % cho mục tiêu 1 (300.000 đ)": (
        {"savings_balance": 180000.0, "savings_goals": goal(300000.0, 180000.0)},
        {"savings_balance": 150000.0, "savings_goals": goal(300000.0, 150000.0)},
    ),
}
# Example advice: a target in a recommendation, not a claim about the week.
ADVICE = ("đặt mục tiêu để dành ít nhất 20% số tiền nhận được",)


def prompt_sentences() -> set[str]:
    texts = (PROMPTS_DIR / name for name in (SYSTEM_PROMPT_FILE, REPORT_PROMPT_FILE))
    quoted = (q for path in texts for q in re.findall(r'"([^"\n]+)"', path.read_text("utf-8")))
    return {q for q in quoted if len(q.split()) >= SENTENCE_WORDS}


def as_sentence(example: str) -> str:
    return example[0].upper() + example[1:] + "."


def report(financial_health: str, advice: str = ADVICE_FILLER) -> dict[str, Any]:
    return {
        "financial_health": financial_health,
        "spending_pattern": FILLER,
        "savings_behavior": FILLER,
        "activity_level": FILLER,
        "recommendations": [advice, FILLER],
        "overall_score": 5,
    }


def test_every_example_sentence_in_the_prompt_is_tested() -> None:
    assert prompt_sentences() == set(EXAMPLES) | set(ADVICE)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_an_example_passes_where_it_is_true_and_is_caught_where_a_figure_changed(
    example: str,
) -> None:
    true_week, false_week = (week(**overrides) for overrides in EXAMPLES[example])
    sentence = as_sentence(example)
    assert check_report(report(sentence), true_week) == []
    assert check_report(report(sentence), false_week), f"{sentence!r} passed on {false_week}"


@pytest.mark.parametrize("advice", ADVICE)
def test_the_example_advice_passes_in_recommendations(advice: str) -> None:
    for overrides in ({}, {"income_total": 0.0}, {"spending_by_category": {"toys": 5000.0}}):
        assert check_report(report(FILLER, as_sentence(advice)), week(**overrides)) == []
