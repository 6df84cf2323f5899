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
from kidsfin_assets.reports.offline_writer import category_words

# ASCII digits only, no leading zero, at most what a week's figure can be ("৪" is no 4)
_MONEY = r"(0|-?[1-9][0-9]{0,2}(?:\.[0-9]{3}){0,4}) đ"
_SMALL = "(0|[1-9][0-9]{0,3})"  # a percentage, a count of days or events
_TRENDS = {"tăng": "up", "giảm": "down", "ổn định": "flat", "mới xuất hiện": "new"}
_TREND = "(tăng|giảm|ổn định|mới xuất hiện)"
_KID = "\x00"  # where the data's `child` (the placeholder or the nickname) was in the text
_SENTENCE_END = re.compile(r"(?<=\.)\s+")

Check = Callable[[re.Match[str], Mapping[str, Any]], bool]


def _amount(text: str) -> float:
    return float(text.replace(".", ""))


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else None


def _is(data: Mapping[str, Any], key: str, amount: str) -> bool:
    value = _number(data, key)
    return value is not None and abs(value - _amount(amount)) < 0.5


def _zero(data: Mapping[str, Any], key: str) -> bool:
    return _is(data, key, "0")


def _more_than(data: Mapping[str, Any], key: str, floor: float) -> bool:
    value = _number(data, key)
    return value is not None and value > floor


def _week(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    income = _is(d, "income_total", m[1]) if m[1] else _zero(d, "income_total")
    spending = _is(d, "spending_total", m[2]) if m[2] else _zero(d, "spending_total")
    return income and spending


def _net(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    # "vì con chi nhiều hơn số tiền nhận được" is said exactly when the flow is negative
    spending, income = _number(d, "spending_total"), _number(d, "income_total")
    more_out = spending is not None and income is not None and spending > income
    return _is(d, "net_flow", m[1]) and bool(m[2]) == (_amount(m[1]) < 0) and (not m[2] or more_out)


def _trend(metric: str) -> Check:
    return lambda m, d: d.get(f"{metric}_trend") == _TRENDS[m[1]]


def _spent_on(said: str, d: Mapping[str, Any]) -> float | None:
    """What the category the text names, in the writer's words for one of the data's keys,
    was spent on; None for any other words (a group id, an English key, "mục “khác”")."""
    spent = d.get("spending_by_category")
    if not isinstance(spent, Mapping):
        return None
    keys = [k for k in spent if category_words(str(k)) == said]
    amounts = [_number(spent, k) for k in keys]
    return amounts[0] if len(amounts) == 1 else None


def _top(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    if not _is(d, "spending_total", m[1]):
        return False
    if m[2] is None:
        return True
    amount = _spent_on(m[2], d)
    spent = d.get("spending_by_category") or {}
    top = max((_number(spent, k) or 0.0 for k in spent), default=None)
    return (
        amount is not None
        and top is not None
        and abs(amount - _amount(m[3])) < 0.5
        and abs(amount - top) < 0.5
    )


def _rate(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    rate = _rate_of(d)
    return rate is not None and abs(rate * 100 - int(m[1])) <= 0.5


def _goal(m: re.Match[str], d: Mapping[str, Any]) -> Mapping[str, Any] | None:
    goal = next((g for g in d.get("savings_goals") or [] if g.get("goal") == m["goal"]), None)
    if goal is None or not _is(goal, "target_amount", m["target"]):
        return None
    return goal


def _goal_done(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    goal = _goal(m, d)
    return goal is not None and bool(goal.get("completed_in_week"))


def _goal_reached(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    goal = _goal(m, d)
    return (
        goal is not None
        and bool(goal.get("reached"))
        and not goal.get("completed_in_week")
        and bool(goal.get("created_in_week")) == bool(m["set"])
    )


def _goal_progress(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    goal = _goal(m, d)
    return (
        goal is not None
        and not goal.get("reached")
        and not goal.get("completed_in_week")
        and goal.get("progress_percent") == int(m["pct"])
        and bool(goal.get("created_in_week")) == bool(m["set"])
    )


def _days(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    return d.get("active_days") == int(m[1]) and d.get("event_count") == int(m[2])


def _review_category(m: re.Match[str], d: Mapping[str, Any]) -> bool:
    amount = _spent_on(m[1], d) if m[1] else None
    return _more_than(d, "spending_total", 0) and (m[1] is None or (amount or 0.0) > 0)


def _open_goal(d: Mapping[str, Any]) -> bool:
    goals = d.get("savings_goals") or []
    return any(
        isinstance(g, Mapping) and g.get("open_at_week_end") and not g.get("reached") for g in goals
    )


def _advice(condition: Callable[[Mapping[str, Any]], bool]) -> Check:
    """A piece of advice, held to the week it fits ("Hỏi con lý do rút tiền tiết kiệm" only
    in a week with a withdrawal): what its words take for granted must be so."""
    return lambda _m, d: condition(d)


def _rate_of(d: Mapping[str, Any]) -> float | None:
    return _number(d, "savings_rate")


_GOAL = r"(?P<goal>mục tiêu [1-9][0-9]?) \((?P<target>[1-9][0-9]{0,2}(?:\.[0-9]{3}){0,4}) đ\)"
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
            lambda m, d: _is(d, "savings_balance", m[1]),
        ),
    ),
    "spending_pattern": (
        (
            re.compile(rf"Tuần này {_KID} không có khoản chi nào\."),
            lambda m, d: _zero(d, "spending_total"),
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
            lambda m, d: _is(d, "saving_total", m[1]) and _amount(m[1]) > 0,
        ),
        (
            re.compile(rf"Tuần này {_KID} chưa để dành thêm khoản nào\."),
            lambda m, d: _zero(d, "saving_total"),
        ),
        (
            re.compile(rf"{_KID} đã rút {_MONEY} từ tiền tiết kiệm\."),
            lambda m, d: _is(d, "withdrawal_total", m[1]) and _amount(m[1]) > 0,
        ),
        (
            re.compile(r"Con chưa có thu nhập trong tuần nên chưa tính được tỷ lệ tiết kiệm\."),
            lambda m, d: d.get("savings_rate") is None and _zero(d, "income_total"),
        ),
        (re.compile(rf"Tỷ lệ tiết kiệm là {_SMALL}% số tiền nhận được\."), _rate),
        (
            re.compile(rf"Tiền để dành {_TREND} so với trung bình hai tuần trước\."),
            _trend("saving_total"),
        ),
        (re.compile(rf"Tuần này {_KID} đã hoàn thành {_GOAL}\."), _goal_done),
        (re.compile(rf"Số tiền {_KID} để dành đã đủ cho {_GOAL}{_SET}\."), _goal_reached),
        (
            re.compile(
                rf"{_KID} đã để dành được (?P<pct>0|[1-9][0-9]{{0,2}}) % cho {_GOAL}{_SET}\."
            ),
            _goal_progress,
        ),
    ),
    "activity_level": (
        (
            re.compile(rf"Tuần này {_KID} chưa mở ứng dụng ngày nào\."),
            lambda m, d: d.get("active_days") == 0,
        ),
        (
            re.compile(
                rf"{_KID} hoạt động {_SMALL} ngày trong tuần với {_SMALL} sự kiện trong ứng dụng\."
            ),
            _days,
        ),
    ),
    # the offline writer's advice, each where what it takes for granted is so
    "recommendations": (
        (
            re.compile(
                r"Cùng con xem lại các khoản chi (?:cho ([^.,;:!?()]+?)|trong tuần) và chọn một"
                r" khoản có thể bớt\."
            ),
            _review_category,
        ),
        (
            re.compile(r"Cùng con xem lại các khoản chi trong tuần để con biết tiền đã đi đâu\."),
            _advice(lambda d: _more_than(d, "spending_total", 0)),
        ),
        (
            re.compile(r"Khen con vì đã giữ được tiền và hỏi con dự định dùng tiền vào việc gì\."),
            _advice(lambda d: _zero(d, "spending_total")),
        ),
        (
            re.compile(r"Hỏi con lý do rút tiền tiết kiệm và cùng con lập kế hoạch bù lại\."),
            _advice(lambda d: _more_than(d, "withdrawal_total", 0)),
        ),
        (
            re.compile(
                r"Cùng con lập kế hoạch để dành một phần ngay khi có khoản tiền tiếp theo\."
            ),
            _advice(lambda d: _rate_of(d) is None),
        ),
        (
            re.compile(r"Đặt mục tiêu để dành ít nhất 20% số tiền nhận được\."),
            _advice(lambda d: (_rate_of(d) or 0.0) < 0.2 and _rate_of(d) is not None),
        ),
        (
            re.compile(r"Khen con vì đã để dành đều đặn và cùng con duy trì thói quen này\."),
            _advice(lambda d: (_rate_of(d) or 0.0) >= 0.2),
        ),
        (
            re.compile(r"Khuyến khích con mở ứng dụng và hoàn thành một bài học mỗi ngày\."),
            _advice(lambda d: (_number(d, "active_days") or 0.0) < 3),
        ),
        (
            re.compile(
                r"Cùng con tính xem mỗi tuần cần để dành bao nhiêu để đạt mục tiêu đã đặt\."
            ),
            _advice(_open_goal),
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
            return check(m, data)
    return False


def canonical_and_true(texts: list[tuple[str, str]], facts: Facts) -> bool:
    """True when every sentence of every (field, text) is a canonical form, and true."""
    try:
        return _all_hold(texts, facts)
    except (TypeError, ValueError, KeyError, AttributeError):
        return False  # data of an odd shape: the general checker reads it


def _all_hold(texts: list[tuple[str, str]], facts: Facts) -> bool:
    for field, text in texts:
        name = "recommendations" if field.startswith("recommendations") else field
        for sentence in _SENTENCE_END.split(text.strip()):
            if not _sentence_holds(name, sentence, facts):
                return False
    return True
