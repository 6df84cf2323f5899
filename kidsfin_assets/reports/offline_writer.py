"""The offline writer: a report from rules, without a model (`make demo` offline, tests),
written from the same data block the model would be given."""

from __future__ import annotations

from typing import Any

from kidsfin_assets.reports.prompt import OTHER_CATEGORIES_LABEL, TYPED_CATEGORY, prompt_data
from kidsfin_assets.reports.report_schema import MAX_RECOMMENDATIONS, KidWeeklyReport

OFFLINE_MODEL = "offline-rules"


def _vnd(amount: float) -> str:
    """160.000 đ, -77.000 đ: the form the prompt asks the model for."""
    whole = f"{abs(round(amount)):,}".replace(",", ".")
    return f"-{whole} đ" if round(amount) < 0 else f"{whole} đ"


# Category keys the app and the demo use, as a parent reads them in a Vietnamese sentence.
CATEGORY_WORDS = {
    "snacks": "đồ ăn vặt",
    "food": "ăn uống",
    "drinks": "đồ uống",
    "toys": "đồ chơi",
    "books": "sách truyện",
    "games": "trò chơi",
    "transport": "đi lại",
    "stationery": "đồ dùng học tập",
    "gifts": "quà tặng",
    "gift": "quà tặng",
    "clothes": "quần áo",
    "entertainment": "giải trí",
    "education": "học tập",
    "other": "các khoản khác",
    OTHER_CATEGORIES_LABEL: "các danh mục khác",
    TYPED_CATEGORY: "các danh mục khác",
}
_TREND_WORDS = {"up": "tăng", "down": "giảm", "flat": "ổn định", "new": "mới xuất hiện"}


def category_words(name: str) -> str:
    """A category as words of the sentence: known keys translated, the app's own quoted."""
    return CATEGORY_WORDS.get(name.strip().lower(), f"mục “{name}”")


def offline_score(metrics: dict[str, Any]) -> int:
    """0-10 from flow, withdrawals, saving and activity; a week that spent more than it
    received scores 5 at most, one that ends with a negative balance 6 at most."""
    rate = metrics["savings_rate"]
    score = 5 + (2 if metrics["net_flow"] >= 0 else -2)
    score -= 1 if metrics["withdrawal_total"] > 0 else 0
    score += 0 if rate is None else min(2, int(max(rate, 0) * 10))
    score += 1 if metrics["active_days"] >= 3 else 0
    if metrics["net_flow"] < 0:  # more out than in: never a good week, however active
        score = min(score, 5)
    if metrics["savings_balance"] < 0:
        score = min(score, 6)
    return max(0, min(10, score))


def _financial_health(d: dict[str, Any]) -> str:
    kid, net, income, spending = d["child"], d["net_flow"], d["income_total"], d["spending_total"]
    why = " vì con chi nhiều hơn số tiền nhận được" if net < 0 else ""
    got = f"nhận {_vnd(income)}" if income else "không có thu nhập"
    spent = f"chi {_vnd(spending)}" if spending else "không chi khoản nào"
    return (
        f"Tuần này {kid} {got} và {spent}. "
        f"Dòng tiền ròng của tuần là {_vnd(net)}{why}. "
        f"Số dư tiết kiệm hiện là {_vnd(d['savings_balance'])}."
    )


def _trend_sentence(subject: str, trend: str) -> str:
    return f"{subject} {_TREND_WORDS[trend]} so với trung bình hai tuần trước."


def _spending_pattern(d: dict[str, Any]) -> str:
    kid, trend, top = d["child"], d["spending_total_trend"], d["top_spending_category"]
    if d["spending_total"] <= 0:
        text = f"Tuần này {kid} không có khoản chi nào."
        return text + (" " + _trend_sentence("Chi tiêu", trend) if trend != "flat" else "")
    text = f"Tuần này {kid} chi tổng cộng {_vnd(d['spending_total'])}"
    if top and top in d["spending_by_category"]:
        amount = d["spending_by_category"][top]
        text += f", nhiều nhất cho {category_words(top)} ({_vnd(amount)})"
    return f"{text}. {_trend_sentence('Chi tiêu', trend)}"


def _savings_behavior(d: dict[str, Any]) -> str:
    kid, saving, withdrawal = d["child"], d["saving_total"], d["withdrawal_total"]
    rate, trend = d["savings_rate"], d["saving_total_trend"]
    parts = [
        f"Tuần này {kid} để dành {_vnd(saving)}."
        if saving > 0
        else f"Tuần này {kid} chưa để dành thêm khoản nào."
    ]
    if withdrawal > 0:
        parts.append(f"{kid} đã rút {_vnd(withdrawal)} từ tiền tiết kiệm.")
    if rate is None:
        parts.append("Con chưa có thu nhập trong tuần nên chưa tính được tỷ lệ tiết kiệm.")
    else:
        parts.append(f"Tỷ lệ tiết kiệm là {round(rate * 100)}% số tiền nhận được.")
    if trend != "flat" or saving > 0:
        parts.append(_trend_sentence("Tiền để dành", trend))
    parts += [_goal_sentence(kid, goal) for goal in d["savings_goals"]]
    return " ".join(parts)


def _goal_sentence(kid: str, goal: dict[str, Any]) -> str:
    """One goal of the data block, by its number: "[[KID]] đã để dành được 60 % cho mục
    tiêu 1 (300.000 đ)." (its title is the child's and never in the data)."""
    name = f"{goal['goal']} ({_vnd(goal['target_amount'])})"
    if goal["completed_in_week"]:
        return f"Tuần này {kid} đã hoàn thành {name}."
    set_now = " vừa đặt trong tuần" if goal["created_in_week"] else ""
    if goal["reached"]:
        return f"Số tiền {kid} để dành đã đủ cho {name}{set_now}."
    return f"{kid} đã để dành được {goal['progress_percent']} % cho {name}{set_now}."


def _activity_level(d: dict[str, Any]) -> str:
    kid, days, events = d["child"], d["active_days"], d["event_count"]
    if days <= 0:
        return f"Tuần này {kid} chưa mở ứng dụng ngày nào."
    return f"{kid} hoạt động {days} ngày trong tuần với {events} sự kiện trong ứng dụng."


def _recommendations(d: dict[str, Any]) -> list[str]:
    spending, rate, top = d["spending_total"], d["savings_rate"], d["top_spending_category"]
    tips = []
    if spending > 0 and (d["net_flow"] < 0 or d["spending_total_trend"] in ("up", "new")):
        where = f"cho {category_words(top)}" if top else "trong tuần"
        tips.append(f"Cùng con xem lại các khoản chi {where} và chọn một khoản có thể bớt.")
    elif spending > 0:
        tips.append("Cùng con xem lại các khoản chi trong tuần để con biết tiền đã đi đâu.")
    else:
        tips.append("Khen con vì đã giữ được tiền và hỏi con dự định dùng tiền vào việc gì.")
    if d["withdrawal_total"] > 0:
        tips.append("Hỏi con lý do rút tiền tiết kiệm và cùng con lập kế hoạch bù lại.")
    if rate is None:
        tips.append("Cùng con lập kế hoạch để dành một phần ngay khi có khoản tiền tiếp theo.")
    elif rate < 0.2:
        tips.append("Đặt mục tiêu để dành ít nhất 20% số tiền nhận được.")
    else:
        tips.append("Khen con vì đã để dành đều đặn và cùng con duy trì thói quen này.")
    if d["active_days"] < 3:
        tips.append("Khuyến khích con mở ứng dụng và hoàn thành một bài học mỗi ngày.")
    if any(g["open_at_week_end"] and not g["reached"] for g in d["savings_goals"]):
        tips.append("Cùng con tính xem mỗi tuần cần để dành bao nhiêu để đạt mục tiêu đã đặt.")
    return tips[:MAX_RECOMMENDATIONS]


def offline_report(metrics: dict[str, Any]) -> KidWeeklyReport:
    """The same report built by rules from the metrics, when no API key is configured.

    Written from what the model would be given (`prompt_data`), in the forms the prompt
    asks for, so that it passes the same grounding check."""
    return report_of_data(prompt_data(metrics))


def report_of_data(d: dict[str, Any]) -> KidWeeklyReport:
    """`offline_report` of the data block itself (`prompt_data(metrics)`)."""
    return KidWeeklyReport(
        financial_health=_financial_health(d),
        spending_pattern=_spending_pattern(d),
        savings_behavior=_savings_behavior(d),
        activity_level=_activity_level(d),
        recommendations=_recommendations(d),
        overall_score=offline_score(d),
    )
