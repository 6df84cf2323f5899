"""The closed world (issue 19): every quantitative or comparative phrase is read and checked,
or the report is asked again as `unverifiable`. The issue's own examples, on two weeks shaped
as its demo kids' were: each false sentence is caught, each true one passes."""

from __future__ import annotations

from typing import Any

import pytest

from kidsfin_assets.reports.grounding import check_report
from kidsfin_assets.reports.grounding.spelled import spell_digits
from kidsfin_assets.reports.prompt import prompt_data
from openai_test_server.report_corpus import amount_in_words

FILLER = "Tuần này [[KID]] có một tuần bình thường."


def week(**overrides: Any) -> dict[str, Any]:
    """Kid A: 120.000 đ in, 234.000 đ out (6.2x last week's 38.000 đ; 120.000 đ two weeks
    ago), toys, snacks and transport in that order, 11 transactions and 10 events, goal 1
    of 70.000 đ with 18.000 đ saved (52.000 đ missing)."""
    row: dict[str, Any] = {
        "kid_id": 1,
        "week_start": "2026-11-16",
        "income_total": 120000.0,
        "spending_total": 234000.0,
        "saving_total": 0.0,
        "withdrawal_total": 0.0,
        "net_flow": -114000.0,
        "savings_rate": 0.0,
        "txn_count": 11,
        "event_count": 10,
        "active_days": 4,
        "spending_by_category": {"toys": 120000.0, "snacks": 70000.0, "transport": 44000.0},
        "top_spending_category": "toys",
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
        "txn_count_prev1": 9,
        "txn_count_prev2": 9,
        "txn_count_trend": "up",
        "active_days_prev1": 4,
        "active_days_prev2": 4,
        "active_days_trend": "flat",
        "savings_goals": [
            {
                "target_amount": 70000.0,
                "open_at_week_end": True,
                "created_in_week": False,
                "completed_in_week": False,
                "progress_percent": 25,
                "reached": False,
            }
        ],
    }
    return prompt_data(row | overrides)


KID_A = week()
# Kid B: 162.000 đ spent, down 32 % on last week's 238.000 đ; 7 transactions, down 42 %.
KID_B = week(
    spending_total=162000.0,
    net_flow=-42000.0,
    spending_total_prev1=238000.0,
    spending_total_prev2=238000.0,
    spending_total_trend="down",
    spending_by_category={"snacks": 100000.0, "toys": 62000.0},
    top_spending_category="snacks",
    txn_count=7,
    txn_count_prev1=12,
    txn_count_prev2=12,
    txn_count_trend="down",
)


def findings(text: str, data: dict[str, Any]) -> list[str]:
    report = {
        "financial_health": text,
        "spending_pattern": FILLER,
        "savings_behavior": FILLER,
        "activity_level": FILLER,
        "recommendations": ["Cùng con lập bảng theo dõi chi tiêu mỗi tối.", FILLER],
        "overall_score": 5,
    }
    return [f.kind for f in check_report(report, data)]


# The issue's table: what passed before, one example of each.
ISSUE_LIES = [
    ("Chi tiêu tuần này gấp ba tuần trước.", KID_A),  # 6.2x
    ("Con đã chi một trăm năm mươi nghìn đồng.", KID_B),  # 162.000 đ
    ("Chi tiêu giảm 42% so với tuần trước.", KID_B),  # spending -32 %, transactions -42 %
    ("Con có 11 sự kiện trong ứng dụng.", KID_A),  # 11 transactions, 10 events
    ("Con chi tiêu ít hơn thu nhập.", KID_A),  # 234.000 đ out, 120.000 đ in
    ("Tuần này con không mua đồ chơi nào.", KID_A),  # toys were the top category
    ("Con còn thiếu 70.000 đ để đạt mục tiêu 1.", KID_A),  # the target; 52.000 đ missing
    ("Tuần trước con chi 120.000 đ.", KID_A),  # two weeks ago; last week 38.000 đ
]


@pytest.mark.parametrize(("lie", "data"), ISSUE_LIES)
def test_the_issues_lies_are_caught(lie: str, data: dict[str, Any]) -> None:
    assert findings(lie, data), lie


@pytest.mark.parametrize(
    ("truth", "data"),
    [
        ("Đồ chơi, ăn vặt và đi lại là ba khoản chi lớn nhất của con.", KID_A),
        ("Chi tiêu tuần này gấp hơn sáu lần tuần trước.", KID_A),
        ("Con đã chi một trăm sáu mươi hai nghìn đồng.", KID_B),
        ("Chi tiêu giảm 32% so với tuần trước.", KID_B),
        ("Con có 10 sự kiện và 11 giao dịch trong ứng dụng.", KID_A),
        ("Con chi tiêu nhiều hơn thu nhập.", KID_A),
        ("Tuần này con không gửi tiết kiệm và không rút tiền ra.", KID_A),
        ("Con còn thiếu 52.000 đ để đạt mục tiêu 1.", KID_A),
        ("Tuần trước con chi 38.000 đ.", KID_A),
        ("Hơn một nửa chi tiêu của con là đồ chơi.", KID_A),
        ("Con chi cho đồ chơi nhiều hơn đồ ăn vặt 50.000 đ.", KID_A),
    ],
)
def test_the_same_claims_said_truly_pass(truth: str, data: dict[str, Any]) -> None:
    assert findings(truth, data) == [], truth


@pytest.mark.parametrize(
    "text",
    [
        "Con chi tiêu nhiều hơn hẳn so với bạn bè cùng lớp.",  # nothing the data holds
        "Mục tiêu 1 tăng thêm một chút.",  # the data has no trend for a goal
        "Con đã mua 3 lần đồ chơi.",  # the data counts no purchases
        "So với tuần trước, con tiến bộ rất nhiều.",  # another week, nothing to check
    ],
)
def test_what_the_checker_cannot_read_is_asked_again(text: str) -> None:
    assert "unverifiable" in findings(text, KID_A), text


def test_an_unverifiable_finding_names_the_sentence_and_what_to_change() -> None:
    report = {
        "financial_health": "Con chi tiêu nhiều hơn hẳn so với bạn bè cùng lớp.",
        "spending_pattern": FILLER,
        "savings_behavior": FILLER,
        "activity_level": FILLER,
        "recommendations": [FILLER, FILLER],
        "overall_score": 5,
    }
    (finding,) = check_report(report, KID_A)
    assert finding.kind == "unverifiable"
    assert finding.text == "Con chi tiêu nhiều hơn hẳn so với bạn bè cùng lớp"
    assert "nhiều hơn" in finding.message and "leave it out" in finding.message


def test_every_amount_said_in_words_is_read_as_its_digits() -> None:
    """One nghìn to 999 nghìn in words (the generated corpus's lies), read back exactly."""
    for thousands in range(1, 1000):
        said = amount_in_words(thousands * 1000.0)
        assert spell_digits(said) == f"{thousands} nghìn đồng", said
