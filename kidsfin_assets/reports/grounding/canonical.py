"""The canonical forms: sentences in the one Vietnamese form the prompt asks for, each read
whole and checked exactly against the data block, ahead of the general checker.

A report every sentence of which is one of these forms, and true, is grounded without the
general reading (a few regular expressions a sentence instead of every reader over every
field): the offline writer writes only these forms, and a model that follows the prompt
writes many. Anything else (one sentence in another form, one canonical sentence whose
figure is wrong) sends the whole report to the general checker, so this path can only
accept what it has verified, never reject, and every finding is the general checker's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kidsfin_assets.reports.grounding.facts import Facts
from kidsfin_assets.reports.grounding.vocabulary import group_of

_MONEY = r"(-?\d{1,3}(?:\.\d{3})*) đ"
_TRENDS = {"tăng": "up", "giảm": "down", "ổn định": "flat", "mới xuất hiện": "new"}
_TREND = "(tăng|giảm|ổn định|mới xuất hiện)"
_KID = "\x00"  # where the data's `child` (the placeholder or the nickname) was in the text
_SENTENCE_END = re.compile(r"(?<=\.)\s+")
_QUOTED = re.compile(r"mục “([^”]+)”")

Check = Callable[[re.Match[str], Mapping[str, Any], Facts], bool]


def _amount(text: str) -> float:
    return float(text.replace(".", ""))


def _is(data: Mapping[str, Any], key: str, amount: str) -> bool:
    value = data.get(key)
    return isinstance(value, int | float) and abs(float(value) - _amount(amount)) < 0.5


def _zero(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    return isinstance(value, int | float) and abs(float(value)) < 0.5


def _week(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    income = _is(d, "income_total", m[1]) if m[1] else _zero(d, "income_total")
    spending = _is(d, "spending_total", m[2]) if m[2] else _zero(d, "spending_total")
    return income and spending


def _net(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    # "vì con chi nhiều hơn số tiền nhận được" is said exactly when the flow is negative
    more_out = float(d["spending_total"]) > float(d["income_total"])
    return _is(d, "net_flow", m[1]) and bool(m[2]) == (_amount(m[1]) < 0) and (not m[2] or more_out)


def _trend(metric: str) -> Check:
    return lambda m, d, _f: d.get(f"{metric}_trend") == _TRENDS[m[1]]


def _top(m: re.Match[str], d: Mapping[str, Any], f: Facts) -> bool:
    if not _is(d, "spending_total", m[1]):
        return False
    if m[2] is None:
        return True
    quoted = _QUOTED.fullmatch(m[2])  # the app's own name, quoted: mục “quà tặng”
    said = group_of(quoted[1] if quoted else m[2])
    top = f.ranking[0][1] if f.ranking else None
    amounts = [amount for amount, _share in f.categories.get(said, ())]
    return top is not None and any(
        abs(a - _amount(m[3])) < 0.5 and abs(a - top) < 0.5 for a in amounts
    )


def _rate(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    rate = d.get("savings_rate")
    return isinstance(rate, int | float) and abs(float(rate) * 100 - int(m[1])) <= 0.5


def _goal(m: re.Match[str], d: Mapping[str, Any]) -> Mapping[str, Any] | None:
    goal = next((g for g in d.get("savings_goals") or [] if g.get("goal") == m["goal"]), None)
    if goal is None or not _is(goal, "target_amount", m["target"]):
        return None
    return goal


def _goal_done(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    goal = _goal(m, d)
    return goal is not None and bool(goal.get("completed_in_week"))


def _goal_reached(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    goal = _goal(m, d)
    return (
        goal is not None
        and bool(goal.get("reached"))
        and not goal.get("completed_in_week")
        and bool(goal.get("created_in_week")) == bool(m["set"])
    )


def _goal_progress(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    goal = _goal(m, d)
    return (
        goal is not None
        and not goal.get("reached")
        and not goal.get("completed_in_week")
        and goal.get("progress_percent") == int(m["pct"])
        and bool(goal.get("created_in_week")) == bool(m["set"])
    )


def _days(m: re.Match[str], d: Mapping[str, Any], _f: Facts) -> bool:
    return d.get("active_days") == int(m[1]) and d.get("event_count") == int(m[2])


def _advice(_m: re.Match[str], _d: Mapping[str, Any], _f: Facts) -> bool:
    return True  # advice holds no claim the general checker would read either


_GOAL = r"(?P<goal>mục tiêu \d+) \((?P<target>\d{1,3}(?:\.\d{3})*) đ\)"
_SET = "(?P<set> vừa đặt trong tuần)?"
# (form, check) by field: each form is a whole sentence, its figures checked by `check`
FORMS: dict[str, tuple[tuple[re.Pattern[str], Check], ...]] = {
    "financial_health": (
        (
            re.compile(
                rf"Tuần này {_KID} (?:nhận {_MONEY}|không có thu nhập) và "
                rf"(?:chi {_MONEY}|không chi khoản nào)\."
            ),
            _week,
        ),
        (
            re.compile(
                rf"Dòng tiền ròng của tuần là {_MONEY}( vì con chi nhiều hơn số tiền nhận được)?\."
            ),
            _net,
        ),
        (
            re.compile(rf"Số dư tiết kiệm hiện là {_MONEY}\."),
            lambda m, d, _f: _is(d, "savings_balance", m[1]),
        ),
    ),
    "spending_pattern": (
        (
            re.compile(rf"Tuần này {_KID} không có khoản chi nào\."),
            lambda m, d, _f: _zero(d, "spending_total"),
        ),
        (
            re.compile(
                rf"Tuần này {_KID} chi tổng cộng {_MONEY}"
                rf"(?:, nhiều nhất cho ([^(]+?) \({_MONEY}\))?\."
            ),
            _top,
        ),
        (
            re.compile(rf"Chi tiêu {_TREND} so với trung bình hai tuần trước\."),
            _trend("spending_total"),
        ),
    ),
    "savings_behavior": (
        (
            re.compile(rf"Tuần này {_KID} để dành {_MONEY}\."),
            lambda m, d, _f: _is(d, "saving_total", m[1]) and _amount(m[1]) > 0,
        ),
        (
            re.compile(rf"Tuần này {_KID} chưa để dành thêm khoản nào\."),
            lambda m, d, _f: _zero(d, "saving_total"),
        ),
        (
            re.compile(rf"{_KID} đã rút {_MONEY} từ tiền tiết kiệm\."),
            lambda m, d, _f: _is(d, "withdrawal_total", m[1]) and _amount(m[1]) > 0,
        ),
        (
            re.compile(r"Con chưa có thu nhập trong tuần nên chưa tính được tỷ lệ tiết kiệm\."),
            lambda m, d, _f: d.get("savings_rate") is None and _zero(d, "income_total"),
        ),
        (re.compile(r"Tỷ lệ tiết kiệm là (\d+)% số tiền nhận được\."), _rate),
        (
            re.compile(rf"Tiền để dành {_TREND} so với trung bình hai tuần trước\."),
            _trend("saving_total"),
        ),
        (re.compile(rf"Tuần này {_KID} đã hoàn thành {_GOAL}\."), _goal_done),
        (re.compile(rf"Số tiền {_KID} để dành đã đủ cho {_GOAL}{_SET}\."), _goal_reached),
        (
            re.compile(rf"{_KID} đã để dành được (?P<pct>\d+) % cho {_GOAL}{_SET}\."),
            _goal_progress,
        ),
    ),
    "activity_level": (
        (
            re.compile(rf"Tuần này {_KID} chưa mở ứng dụng ngày nào\."),
            lambda m, d, _f: d.get("active_days") == 0,
        ),
        (
            re.compile(
                rf"{_KID} hoạt động (\d+) ngày trong tuần với (\d+) sự kiện trong ứng dụng\."
            ),
            _days,
        ),
    ),
    # advice in the forms that hold no figure and no claim (the target "ít nhất 20%" is one
    # the general checker lets pass in advice too)
    "recommendations": (
        (
            re.compile(
                r"Cùng con xem lại các khoản chi (?:cho [^.]+?|trong tuần) và chọn một khoản"
                r" có thể bớt\."
                r"|Cùng con xem lại các khoản chi trong tuần để con biết tiền đã đi đâu\."
                r"|Khen con vì đã giữ được tiền và hỏi con dự định dùng tiền vào việc gì\."
                r"|Hỏi con lý do rút tiền tiết kiệm và cùng con lập kế hoạch bù lại\."
                r"|Cùng con lập kế hoạch để dành một phần ngay khi có khoản tiền tiếp theo\."
                r"|Đặt mục tiêu để dành ít nhất 20% số tiền nhận được\."
                r"|Khen con vì đã để dành đều đặn và cùng con duy trì thói quen này\."
                r"|Khuyến khích con mở ứng dụng và hoàn thành một bài học mỗi ngày\."
                r"|Cùng con tính xem mỗi tuần cần để dành bao nhiêu để đạt mục tiêu đã đặt\."
            ),
            _advice,
        ),
    ),
}


def _sentence_holds(field: str, sentence: str, facts: Facts) -> bool:
    data = facts.data
    child = data.get("child")
    if "\x00" in sentence or not isinstance(child, str) or not child:
        return False
    sentence = sentence.replace(child, "\x00")
    for form, check in FORMS.get(field, ()):
        m = form.fullmatch(sentence)
        if m is not None:
            return check(m, data, facts)
    return False


def canonical_and_true(texts: list[tuple[str, str]], facts: Facts) -> bool:
    """True when every sentence of every (field, text) is a canonical form, and true."""
    for field, text in texts:
        name = "recommendations" if field.startswith("recommendations") else field
        for sentence in _SENTENCE_END.split(text.strip()):
            if not _sentence_holds(name, sentence, facts):
                return False
    return True
