"""The canonical forms' fast path may only accept what the general checker accepts: on every
offline report of every kind of week, and on each report changed to say something false."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kidsfin_assets.reports.grounding import check_report, facts_for, report_texts
from kidsfin_assets.reports.grounding.canonical import canonical_and_true
from kidsfin_assets.reports.offline_writer import report_of_data

CORPORA = Path(__file__).resolve().parents[1] / "bench" / "corpus"
# every kind of week the corpora's blocks were drawn for, four corpora's worth
BLOCKS = [
    block["data"]
    for name in ("independent", "sixth", "twelfth", "nineteenth")
    for block in json.loads((CORPORA / name / "data_blocks.json").read_text(encoding="utf-8"))
]
# and weeks whose categories carry the app's own names (the demo's): written quoted,
# mục “quà tặng”
BLOCKS += [
    {
        **data,
        "spending_by_category": {"quà tặng": 34000.0, "sách vở": 16000.0},
        "top_spending_category": "quà tặng",
        "spending_total": 50000.0,
        "net_flow": data["income_total"] - 50000.0,
    }
    for data in BLOCKS[:16]
]
_NUMBER = re.compile(r"\d+(?:\.\d{3})*")
_SWAPS = {
    "tăng": "giảm",
    "giảm": "tăng",
    "ổn định": "tăng",
    "mới xuất hiện": "ổn định",
    "không có thu nhập": "nhận 10.000 đ",
    "chưa để dành thêm khoản nào": "để dành 1.000 đ",
    "nhiều nhất cho": "ít nhất cho",
    " vừa đặt trong tuần": "",
    "đã hoàn thành": "chưa hoàn thành",
    "đã đủ cho": "chưa đủ cho",
}


def _offline(data: dict[str, Any]) -> dict[str, Any]:
    return report_of_data(data).model_dump()


def _changed(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report with one figure or one word changed: each number moved by a step of its
    own size, each trend, event, goal state or rank word turned."""
    changed = []
    for field in ("financial_health", "spending_pattern", "savings_behavior", "activity_level"):
        text = report[field]
        for m in _NUMBER.finditer(text):
            value = int(m.group().replace(".", ""))
            step = 1000 if "." in m.group() else 1
            for new in (value + step, value + 7 * step):
                said = f"{new:,}".replace(",", ".") if step == 1000 else str(new)
                changed.append({**report, field: text[: m.start()] + said + text[m.end() :]})
        for word, other in _SWAPS.items():
            if word in text:
                changed.append({**report, field: text.replace(word, other, 1)})
    return changed


@pytest.mark.parametrize("data", BLOCKS, ids=lambda d: str(d.get("week_start", "")))
def test_offline_reports_take_the_canonical_path_and_agree(data: dict[str, Any]) -> None:
    report = _offline(data)
    assert canonical_and_true(report_texts(report), facts_for(data))
    assert check_report(report, data, canonical=False) == []


def test_the_canonical_path_accepts_no_changed_report() -> None:
    """Over 144 weeks of every kind, several thousand reports with one thing made false:
    the fast path accepts none, and the verdict is the general checker's, finding for
    finding."""
    tried = 0
    for data in BLOCKS:
        facts = facts_for(data)
        for report in _changed(_offline(data)):
            tried += 1
            general = check_report(report, data, canonical=False)
            if canonical_and_true(report_texts(report), facts):
                # a change that is still true (two goals of one target, a rounding): then
                # the general checker must find nothing either
                assert general == [], (report, general)
            assert check_report(report, data) == general
    assert tried > 3000


def test_a_nickname_or_another_child_is_not_canonical() -> None:
    data = {**BLOCKS[0], "child": "Bé Na"}
    report = _offline(data)
    assert canonical_and_true(report_texts(report), facts_for(data))
    other = {k: v.replace("Bé Na", "Bé Bo") if isinstance(v, str) else v for k, v in report.items()}
    assert not canonical_and_true(report_texts(other), facts_for(data))


# What an adversary tried on the canonical path (stop 30): each must not be accepted by it.
def _spender() -> dict[str, Any]:
    """A week that spent, withdrew and saved nothing, with no goal."""
    data = next(
        d
        for d in BLOCKS
        if d["spending_total"] > 0 and d["withdrawal_total"] == 0 and not d["savings_goals"]
    )
    return {**data, "savings_rate": 0.0 if data["income_total"] else None}


@pytest.mark.parametrize(
    "advice",
    [
        # a category slot that smuggles a figure, a claim or a sentence
        "Cùng con xem lại các khoản chi cho quà, con đã tiêu 250k tuần này, gấp 3 lần tuần"
        " trước và chọn một khoản có thể bớt.",
        "Cùng con xem lại các khoản chi cho ăn uống! Con đã nói dối bố mẹ! Hãy phạt con và"
        " chọn một khoản có thể bớt.",
        # a category nothing was spent on, advice that praises what did not happen
        "Cùng con xem lại các khoản chi cho trò chơi điện tử và chọn một khoản có thể bớt.",
        "Khen con vì đã giữ được tiền và hỏi con dự định dùng tiền vào việc gì.",
        "Hỏi con lý do rút tiền tiết kiệm và cùng con lập kế hoạch bù lại.",
        "Khen con vì đã để dành đều đặn và cùng con duy trì thói quen này.",
        "Cùng con tính xem mỗi tuần cần để dành bao nhiêu để đạt mục tiêu đã đặt.",
    ],
    ids=["figure", "sentences", "unspent", "kept", "withdrew", "saved", "goal"],
)
def test_advice_the_week_does_not_bear_out_is_not_canonical(advice: str) -> None:
    data = _spender()
    report = _offline(data)
    assert canonical_and_true(report_texts(report), facts_for(data))
    report["recommendations"] = [advice, report["recommendations"][-1]]
    assert not canonical_and_true(report_texts(report), facts_for(data))


def test_odd_digits_and_odd_data_are_left_to_the_general_checker() -> None:
    data = BLOCKS[0]
    report = _offline(data)
    days = data["active_days"]
    for text in (
        f"[[KID]] hoạt động {'1' + '0' * 4400} ngày trong tuần với 10 sự kiện trong ứng dụng.",
        f"[[KID]] hoạt động {chr(0x09E6 + days)} ngày trong tuần với"
        f" {data['event_count']} sự kiện trong ứng dụng.",  # a Bengali digit of the same value
    ):
        changed = {**report, "activity_level": text}
        assert not canonical_and_true(report_texts(changed), facts_for(data))
        assert check_report(changed, data) != []  # no exception: findings
    odd = {**data, "income_total": None, "spending_total": "many"}
    net = {**report, "financial_health": "Dòng tiền ròng của tuần là 68.000 đ."}
    assert not canonical_and_true(report_texts(net), facts_for(odd))


def test_only_the_writers_words_name_the_top_category() -> None:
    data = next(d for d in BLOCKS if "books" in d["spending_by_category"])
    data = {**data, "spending_by_category": {"books": 30000.0}, "top_spending_category": "books"}
    data = {**data, "spending_total": 30000.0, "net_flow": data["income_total"] - 30000.0}
    report = _offline(data)
    assert "nhiều nhất cho sách truyện (30.000 đ)" in report["spending_pattern"]
    assert canonical_and_true(report_texts(report), facts_for(data))
    for words in ("books", "mục “books”", "sách vở"):
        said = report["spending_pattern"].replace("sách truyện", words)
        changed = {**report, "spending_pattern": said}
        assert not canonical_and_true(report_texts(changed), facts_for(data))
