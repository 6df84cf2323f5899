"""Reports as a model might write them, truthful or lying, from a week's data block.

- `random_metrics(rng, case)`: a silver row (the metrics the prompt is built from), with
  the edge cases: negative net flow, negative balance, no income (savings_rate None), no
  spending, amounts in millions, new trends, a week without activity;
- `truthful_report(data, rng)`: a report that states only what `data` (``prompt_data``)
  supports, in varied forms: phrasings, money as ``160.000 đ`` / ``160.000đ`` / ``160.000
  VND`` / ``160 nghìn đồng`` / ``160k`` / ``1,2 triệu đồng`` / ``1 triệu 235 nghìn``
  (rounded honestly to what is written), negatives as ``-77.000 đ`` / ``âm 77.000 đ`` /
  "chi nhiều hơn nhận", percentages, days, counts, trend words;
- `lying_report(data, rng, kind)`: the same with one lie of `LIE_KINDS`;
- `corpus_answer(messages, mode, lie_rate)`: what the suite's OpenAI server answers in its
  ``truthful`` / ``lying`` report modes.

The values a lie must avoid are computed here from the rules of issue 9, not by the
grounding checker, so that the checker is measured against an independent label.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

LIE_KINDS = (
    "wrong_amount",
    "reversed_trend",
    "invented_amount",
    "wrong_days",
    "misattributed",
    # the closed world's (issue 19)
    "in_words",
    "ratio",
    "comparison",
    "event",
    "ranking",
    "goal_lack",
    "other_week",
    "count_unit",
)
EDGE_CASES = (
    "typical",
    "negative_net",
    "negative_balance",
    "no_income",
    "no_spending",
    "millions",
    "new_trends",
    "inactive",
)
PLACEHOLDER = "[[KID]]"
TREND_THRESHOLD = 0.10  # config/pipeline.yaml trends.threshold
CATEGORIES = {
    "snacks": "đồ ăn vặt",
    "toys": "đồ chơi",
    "books": "sách truyện",
    "games": "trò chơi",
    "transport": "đi lại",
    "stationery": "đồ dùng học tập",
    "gifts": "quà tặng",
    "food": "ăn uống",
    "other": "các khoản khác",
}
_DATA_BLOCK = re.compile(r"<data>\s*(\{.*\})\s*</data>", re.S)
_WORDS = {
    "up": ("tăng", "tăng lên", "tăng mạnh"),
    "down": ("giảm", "giảm xuống", "giảm nhẹ"),
    "flat": ("ổn định", "không đổi", "giữ nguyên", "không thay đổi nhiều"),
    "new": ("mới xuất hiện", "lần đầu xuất hiện"),
}
_REVERSED = {"up": ("down",), "down": ("up",), "flat": ("up", "down"), "new": ("down",)}
_SUBJECTS = {
    "income_total": ("Thu nhập", "Tiền tiêu vặt nhận được"),
    "spending_total": ("Chi tiêu", "Mức chi tiêu", "Tiền chi"),
    "saving_total": ("Tiền để dành", "Tiền gửi tiết kiệm"),
    "txn_count": ("Số giao dịch",),
    "active_days": ("Số ngày hoạt động",),
}
_MEAN_REFS = ("so với trung bình hai tuần trước", "so với hai tuần trước", "")


# --- metric rows ------------------------------------------------------------------------


def _trend(value: float, prev1: float, prev2: float) -> str:
    """The silver rule (metrics._trend) in floats: new/flat at a zero mean, else ±10 %."""
    s = prev1 + prev2
    if s == 0:
        return "new" if value > 0 else "flat"
    change = 2 * value - s
    if change > TREND_THRESHOLD * s:
        return "up"
    if change < -TREND_THRESHOLD * s:
        return "down"
    return "flat"


def _amount(rng: random.Random, low: int, high: int, step: int = 1000) -> float:
    return float(rng.randrange(low // step, high // step + 1) * step)


def random_metrics(rng: random.Random, case: str = "typical") -> dict[str, Any]:
    """A silver row with every field the prompt reads, shaped by `case` (EDGE_CASES)."""
    scale = 1_000_000 if case == "millions" else 1
    top = 2_000_000 * scale if case == "millions" else 400_000
    income = 0.0 if case == "no_income" else _amount(rng, 20_000, top)
    if case == "millions":
        income = _amount(rng, 1_000_000, 25_000_000, step=rng.choice((1000, 500, 1)))
    spending = 0.0 if case == "no_spending" else _amount(rng, 5_000, max(income, 200_000))
    if case == "negative_net":
        spending = income + _amount(rng, 1_000, 150_000)
    saving = 0.0 if rng.random() < 0.25 else _amount(rng, 0, max(30_000, int(income * 0.6)))
    withdrawal = _amount(rng, 5_000, 120_000) if rng.random() < 0.3 else 0.0
    balance = _amount(rng, 0, 2_000_000)
    if case == "negative_balance":
        withdrawal = _amount(rng, 50_000, 300_000)
        balance = -_amount(rng, 1_000, 200_000)
    categories: dict[str, float] = {}
    if spending > 0:
        names = rng.sample(sorted(CATEGORIES), rng.randint(1, 4))
        cuts = sorted(rng.random() for _ in names[1:])
        left = spending
        for name, cut in zip(names, [*cuts, 1.0], strict=True):
            share = round(spending * cut / 1000) * 1000 if cut < 1.0 else left
            share = min(share, left)
            if share > 0:
                categories[name] = share
                left -= share
        if left > 0:
            categories[names[0]] = categories.get(names[0], 0) + left
    row: dict[str, Any] = {
        "kid_id": rng.randrange(1, 10**9),
        "week_start": "2026-03-16",
        "income_total": income,
        "spending_total": spending,
        "saving_total": saving,
        "withdrawal_total": withdrawal,
        "net_flow": income - spending,
        "savings_rate": None if income == 0 else saving / income,
        "txn_count": 0,
        "event_count": 0 if case == "inactive" else rng.randint(1, 60),
        "active_days": 0 if case == "inactive" else rng.randint(1, 7),
        "spending_by_category": categories,
        "top_spending_category": max(categories, key=lambda k: (categories[k], k))
        if categories
        else None,
        "savings_balance": balance,
    }
    kinds = ("income_total", "spending_total", "saving_total", "withdrawal_total")
    row["txn_count"] = sum(1 for k in kinds if row[k] > 0) + rng.randint(0, 12)
    for metric in ("income_total", "spending_total", "saving_total", "txn_count", "active_days"):
        value = row[metric]
        if case == "new_trends" or (metric != "active_days" and rng.random() < 0.08):
            prev1 = prev2 = 0.0 if metric.endswith("_total") else 0
        elif metric.endswith("_total"):
            base = max(value, 10_000.0)
            prev1 = _amount(rng, 0, int(base * 1.8)) if rng.random() > 0.1 else value
            prev2 = _amount(rng, 0, int(base * 1.8))
        else:
            bound = 7 if metric == "active_days" else max(int(value) * 2, 4)
            prev1, prev2 = rng.randint(0, bound), rng.randint(0, bound)
        row[f"{metric}_prev1"], row[f"{metric}_prev2"] = prev1, prev2
        row[f"{metric}_trend"] = _trend(value, prev1, prev2)
    # Its own generator: the rows and reports drawn from `rng` stay what they were.
    row["savings_goals"] = random_goals(random.Random(row["kid_id"]), balance)
    return row


def random_goals(rng: random.Random, balance: float) -> list[dict[str, Any]]:
    """0-3 savings goals as silver lists them, progress by the contract's rule (the
    balance against the target, rounded down, 0 at most, capped at 100)."""
    goals = []
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        target = _amount(rng, 10_000, 3_000_000)
        if rng.random() < 0.2:
            target = max(balance, 10_000.0)  # exactly reached
        is_open = rng.random() < 0.8
        progress = min(100, max(0, int(max(balance, 0) * 100 // target)))
        goals.append(
            {
                "goal_id": rng.randrange(1, 10**9),
                "title": rng.choice(("Mua xe đạp", "Quà cho mẹ", "0912 345 678 Lan")),
                "target_amount": target,
                "open_at_week_end": is_open,
                "created_in_week": rng.random() < 0.3,
                "completed_in_week": not is_open,
                "progress_percent": progress if is_open else None,
                "reached": balance >= target if is_open else None,
            }
        )
    return goals


def random_data(rng: random.Random, case: str = "typical") -> dict[str, Any]:
    """What the model is given for a random row: ``prompt_data(random_metrics(...))``."""
    from kidsfin_assets.reports.prompt import prompt_data

    return prompt_data(random_metrics(rng, case))


# --- writing numbers ------------------------------------------------------------------------


def _dots(value: float) -> str:
    return f"{round(value):,}".replace(",", ".")


def money(value: float, rng: random.Random, exact: bool = False) -> str:
    """A non-negative amount in one of the forms a Vietnamese writer uses, rounded to what
    the form can say (a "nghìn" amount to the thousand, "1,2 triệu" to 100.000)."""
    value = abs(value)
    forms: list[Callable[[], str]] = [
        lambda: f"{_dots(value)} đ",
        lambda: f"{_dots(value)}đ",
        lambda: f"{_dots(value)} VND",
        lambda: f"{_dots(value)} đồng",
    ]
    if not exact and 1000 <= value < 1_000_000:
        forms += [
            lambda: f"{round(value / 1000)} nghìn đồng",
            lambda: f"{round(value / 1000)} ngàn",
            lambda: f"{round(value / 1000)}k",
        ]
    if not exact and value >= 1_000_000:
        forms += [
            lambda: f"{round(value / 1e6, 1):.1f}".replace(".", ",") + " triệu đồng",
            lambda: f"{round(value / 1e6, 2):.2f}".replace(".", ",") + " triệu",
            lambda: _million_thousands(value),
        ]
    return rng.choice(forms)()


def _million_thousands(value: float) -> str:
    thousands = round(value / 1000)
    millions, rest = divmod(thousands, 1000)
    return f"{millions} triệu {rest} nghìn đồng" if rest else f"{millions} triệu đồng"


def signed_money(value: float, rng: random.Random) -> str:
    """An amount that may be negative: "-77.000 đ" or "âm 77.000 đ"."""
    if value >= 0:
        return money(value, rng)
    return rng.choice((f"-{_dots(-value)} đ", f"âm {money(-value, rng)}"))


def percent(value: float, rng: random.Random) -> str:
    number = round(value)
    return rng.choice((f"{number}%", f"{number} %", f"{number} phần trăm"))


# Categories the child named are sent as "khác" and called as the prompt asks.
_NAMED_BY_CHILD = {"khác": "các danh mục khác", "(các danh mục khác)": "các danh mục khác"}


def _category(name: str) -> str:
    return CATEGORIES.get(name) or _NAMED_BY_CHILD.get(name) or f"mục “{name}”"


# --- truthful sentences ------------------------------------------------------------------------

Sentence = Callable[[dict[str, Any], random.Random], str]


def _kid(d: dict[str, Any]) -> str:
    return str(d.get("child") or PLACEHOLDER)


def _income_spending(d: dict[str, Any], rng: random.Random, exact: bool = False) -> str:
    kid, income, spending = _kid(d), d["income_total"], d["spending_total"]
    got = money(income, rng, exact) if income else None
    spent = money(spending, rng, exact) if spending else None
    if got is None and spent is None:
        return f"Tuần này {kid} không nhận và cũng không chi khoản tiền nào."
    if got is None:
        return f"Tuần này {kid} không có thu nhập nhưng đã chi {spent}."
    if spent is None:
        return f"Tuần này {kid} nhận {got} và không chi khoản nào."
    return rng.choice(
        (
            f"Tuần này {kid} nhận {got} và chi {spent}.",
            f"{kid} có thu nhập {got} trong tuần, còn chi tiêu là {spent}.",
            f"Thu nhập tuần này đạt {got}, chi tiêu {spent}.",
        )
    )


def _net_flow(d: dict[str, Any], rng: random.Random) -> str:
    net, kid = d["net_flow"], _kid(d)
    if net < 0:
        return rng.choice(
            (
                f"Dòng tiền ròng là {signed_money(net, rng)}.",
                f"{kid} chi nhiều hơn nhận {money(net, rng)} trong tuần này.",
                f"Dòng tiền ròng của tuần âm {money(net, rng)}.",
            )
        )
    if net == 0:
        return f"Số tiền {kid} nhận và chi trong tuần cân bằng nhau."
    return rng.choice(
        (
            f"Dòng tiền ròng là {money(net, rng)}.",
            f"Sau khi chi tiêu, {kid} còn dư {money(net, rng)}.",
            f"Dòng tiền ròng dương {money(net, rng)}.",
        )
    )


def _balance(d: dict[str, Any], rng: random.Random, exact: bool = False) -> str:
    balance = d["savings_balance"]
    if balance < 0:
        return rng.choice(
            (
                f"Số dư tiết kiệm đang âm {money(balance, rng, exact)}.",
                f"Số dư tiết kiệm hiện là -{_dots(-balance)} đ.",
            )
        )
    return rng.choice(
        (
            f"Số dư tiết kiệm hiện là {money(balance, rng, exact)}.",
            f"Tổng số dư tiết kiệm đạt {money(balance, rng, exact)}.",
        )
    )


def _top_category(d: dict[str, Any], rng: random.Random, exact: bool = False) -> str:
    kid, top = _kid(d), d["top_spending_category"]
    amount = d["spending_by_category"][top]
    said = money(amount, rng, exact)
    options = [
        f"{kid} chi nhiều nhất cho {_category(top)} với {said}.",
        f"Khoản chi lớn nhất là {_category(top)} ({said}).",
    ]
    if d["spending_total"] > 0:
        share = percent(amount / d["spending_total"] * 100, rng)
        options.append(f"Khoản chi lớn nhất là {_category(top)}, chiếm {share} tổng chi tiêu.")
    return rng.choice(options)


def _trend_sentence(metric: str, direction: str, rng: random.Random, ref: str | None = None) -> str:
    word = rng.choice(_WORDS[direction])
    subject = rng.choice(_SUBJECTS[metric])
    ref = rng.choice(_MEAN_REFS) if ref is None else ref
    return f"{subject} {word} {ref}".strip() + "."


def _change_sentence(metric: str, d: dict[str, Any], rng: random.Random) -> str | None:
    """A stated change with its sign: against the mean (as the trend) or against prev1."""
    value, prev1, prev2 = d[metric], d[f"{metric}_prev1"], d[f"{metric}_prev2"]
    trend, mean = d[f"{metric}_trend"], (prev1 + prev2) / 2
    subject = rng.choice(_SUBJECTS[metric])
    is_money = metric.endswith("_total")
    unit = {"txn_count": " giao dịch", "active_days": " ngày"}.get(metric, "")

    def amount(change: float) -> str:
        return money(change, rng) if is_money else f"{round(abs(change))}{unit}"

    if rng.random() < 0.5 and value != prev1:
        word = "tăng" if value > prev1 else "giảm"
        said = amount(value - prev1) if is_money or float(prev1).is_integer() else None
        if rng.random() < 0.5 and prev1 > 0:
            said = percent(abs(value - prev1) / prev1 * 100, rng)
        if said is None:
            return None
        return rng.choice(
            (
                f"So với tuần trước, {subject.lower()} {word} {said}.",
                f"{subject} {word} {said} so với tuần trước.",
            )
        )
    if trend not in ("up", "down"):
        return None
    word = "tăng" if trend == "up" else "giảm"
    change = value - mean
    if rng.random() < 0.5 and mean > 0:
        said = percent(abs(change) / mean * 100, rng)
    elif is_money:
        said = money(change, rng, exact=True)
    elif float(mean).is_integer():
        said = amount(change)
    else:
        return None
    return f"{subject} {word} {said} so với trung bình hai tuần trước."


def _spending(d: dict[str, Any], rng: random.Random) -> list[str]:
    trend = d["spending_total_trend"]
    if d["spending_total"] <= 0:
        out = [f"Tuần này {_kid(d)} không chi tiêu khoản nào."]
        if trend != "flat":
            out.append(_trend_sentence("spending_total", trend, rng))
        return out
    out = [_top_category(d, rng)]
    out.append(
        (rng.random() < 0.4 and _change_sentence("spending_total", d, rng))
        or _trend_sentence("spending_total", trend, rng)
    )
    return out


def _rate(d: dict[str, Any], rng: random.Random) -> str:
    rate = d["savings_rate"]
    if rate is None:
        return "Tuần này chưa có thu nhập nên chưa tính được tỷ lệ tiết kiệm."
    said = percent(rate * 100, rng)
    return rng.choice(
        (
            f"Tỷ lệ tiết kiệm đạt {said}.",
            f"{_kid(d)} để dành được {said} số tiền nhận được.",
        )
    )


def _saving(d: dict[str, Any], rng: random.Random, exact: bool = False) -> str:
    kid, saving = _kid(d), d["saving_total"]
    if saving <= 0:
        return f"Tuần này {kid} chưa gửi thêm tiền tiết kiệm."
    said = money(saving, rng, exact)
    return rng.choice(
        (f"{kid} để dành {said} trong tuần.", f"Tiền gửi tiết kiệm tuần này là {said}.")
    )


def _savings(d: dict[str, Any], rng: random.Random) -> list[str]:
    out = [_saving(d, rng)]
    if d["withdrawal_total"] > 0:
        out.append(f"{_kid(d)} đã rút {money(d['withdrawal_total'], rng)} từ tiền tiết kiệm.")
    out.append(_rate(d, rng))
    moved = d["saving_total"] - d["withdrawal_total"]
    if moved and rng.random() < 0.3:
        word = "tăng" if moved > 0 else "giảm"
        out.append(f"Số dư tiết kiệm {word} {money(moved, rng)} trong tuần.")
    elif d["saving_total_trend"] != "flat" or d["saving_total"] > 0:
        out.append(
            (rng.random() < 0.3 and _change_sentence("saving_total", d, rng))
            or _trend_sentence("saving_total", d["saving_total_trend"], rng)
        )
    goal_rng = random.Random(len(d.get("savings_goals") or ()))  # `rng`'s draws unchanged
    out += [_goal(d, goal, goal_rng) for goal in d.get("savings_goals") or ()]
    return out


def _goal(d: dict[str, Any], goal: dict[str, Any], rng: random.Random) -> str:
    kid, name, target = _kid(d), goal["goal"], money(goal["target_amount"], rng, exact=True)
    if goal["completed_in_week"]:
        return f"{kid} đã hoàn thành {name} ({target}) trong tuần."
    progress = goal["progress_percent"]
    lacks = goal["target_amount"] - d["savings_balance"]  # the prompt's: also below zero
    if lacks > 0 and rng.random() < 0.5:
        return f"Để đạt {name} ({target}), {kid} còn thiếu {money(lacks, rng, exact=True)}."
    return rng.choice(
        (
            f"{kid} đã để dành được {progress} % cho {name} ({target}).",
            f"{name.capitalize()} {target}: đã đạt {progress}%.",
        )
    )


def _days(d: dict[str, Any], rng: random.Random, days: int | None = None) -> str:
    kid, events = _kid(d), d["event_count"]
    days = d["active_days"] if days is None else days
    if days <= 0:
        return f"Tuần này {kid} không mở ứng dụng ngày nào."
    return rng.choice(
        (
            f"{kid} hoạt động {days} ngày trong tuần với {events} sự kiện trong ứng dụng.",
            f"{kid} mở ứng dụng {days}/7 ngày và có {events} sự kiện.",
            f"Trong tuần, {kid} hoạt động {days} ngày và thực hiện {d['txn_count']} giao dịch.",
        )
    )


def _activity(d: dict[str, Any], rng: random.Random) -> list[str]:
    out = [_days(d, rng)]
    if rng.random() < 0.5:
        metric = rng.choice(("active_days", "txn_count"))
        out.append(
            (rng.random() < 0.3 and _change_sentence(metric, d, rng))
            or _trend_sentence(metric, d[f"{metric}_trend"], rng)
        )
    return out


def _income_trend(d: dict[str, Any], rng: random.Random) -> str:
    return _trend_sentence("income_total", d["income_total_trend"], rng)


_TIPS = (
    "Cùng con lập bảng theo dõi chi tiêu mỗi tối trước khi đi ngủ.",
    "Khen ngợi con mỗi khi con tự giác bỏ tiền vào heo đất.",
    "Đặt mục tiêu để dành ít nhất {pct}% tiền tiêu vặt mỗi tuần.",
    "Hãy thử {n} ngày không mua đồ ăn vặt và cùng con xem kết quả.",
    "Để dành thêm 5.000 đ mỗi ngày cho mục tiêu mua sách.",
    "Cho con tự chọn một mục tiêu tiết kiệm nhỏ và theo dõi tiến độ.",
    "Khuyến khích con hoàn thành một bài học tài chính trong ứng dụng mỗi ngày.",
)


def _recommendations(d: dict[str, Any], rng: random.Random) -> list[str]:
    tips = [
        t.format(pct=rng.choice((10, 20, 30)), n=rng.choice((2, 3)))
        for t in rng.sample(_TIPS, rng.randint(2, 4))
    ]
    if d["spending_total"] > 0 and d["top_spending_category"] and len(tips) < 4:
        name = _category(d["top_spending_category"])
        tips.insert(rng.randrange(len(tips) + 1), f"Cùng con xem lại các khoản chi cho {name}.")
    return tips


def _score(d: dict[str, Any], rng: random.Random) -> int:
    score = 6 + (1 if d["net_flow"] >= 0 else -2) + (1 if (d["savings_rate"] or 0) >= 0.2 else 0)
    score -= 1 if d["withdrawal_total"] > 0 else 0
    return max(0, min(10, score + rng.choice((-1, 0, 0, 1))))


def _fields(d: dict[str, Any], rng: random.Random) -> dict[str, list[str]]:
    health = [_income_spending(d, rng), _net_flow(d, rng)]
    health.append(_balance(d, rng) if rng.random() < 0.7 else _income_trend(d, rng))
    return {
        "financial_health": health,
        "spending_pattern": _spending(d, rng),
        "savings_behavior": _savings(d, rng),
        "activity_level": _activity(d, rng),
    }


def _report(fields: dict[str, list[str]], d: dict[str, Any], rng: random.Random) -> dict:
    report: dict[str, Any] = {name: " ".join(parts) for name, parts in fields.items()}
    report["recommendations"] = _recommendations(d, rng)
    report["overall_score"] = _score(d, rng)
    return report


def truthful_report(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A report every statement of which `data` supports."""
    return _report(_fields(data, rng), data, rng)


# --- lies ---------------------------------------------------------------------------------


def true_amounts(d: dict[str, Any]) -> list[float]:
    """Every amount issue 9 lets a report state (absolute values), for lies to avoid."""
    values = [d[k] for k in ("withdrawal_total", "net_flow", "savings_balance")]
    values += list((d.get("spending_by_category") or {}).values())
    values.append(d["saving_total"] - d["withdrawal_total"])
    for m in ("income_total", "spending_total", "saving_total"):
        v, p1, p2 = d[m], d[f"{m}_prev1"], d[f"{m}_prev2"]
        mean = (p1 + p2) / 2
        values += [v, p1, p2, mean, v - p1, v - p2, v - mean]
    return sorted(abs(float(v)) for v in values)


def true_days(d: dict[str, Any]) -> set[float]:
    v, p1, p2 = d["active_days"], d["active_days_prev1"], d["active_days_prev2"]
    mean = (p1 + p2) / 2
    return {abs(float(x)) for x in (v, p1, p2, mean, v - p1, v - p2, v - mean)}


def _far_from(value: float, truths: Sequence[float]) -> bool:
    # Wider than any rounding a truthful form allows ("1,2 triệu" is ±50.000).
    return all(abs(value - t) > max(2_000.0, 0.06 * max(t, value)) for t in truths)


def _lie_amount(d: dict[str, Any], rng: random.Random, near: float | None) -> float:
    truths = true_amounts(d)
    for _ in range(200):
        if near:
            factor = rng.choice((0.5, 0.6, 0.75, 1.3, 1.5, 2.0, 3.0))
            value = round(near * factor / 1000) * 1000 + rng.choice((0, 1000, 3000))
        else:
            value = float(rng.choice((5, 8, 12, 15, 20, 25, 35, 45, 60, 75, 90, 120, 150)) * 1000)
            value *= rng.choice((1, 1, 1, 3, 10))
        if value > 0 and _far_from(value, truths):
            return float(value)
    return float(round(max(truths) * 3 / 1000) * 1000 + 7_000)


def _wrong_amount(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """A true amount changed: the income, the spending, the saving, the top category or the
    balance, written in exact digits so that no rounding can excuse it."""
    choices = ["income_total", "spending_total", "saving_total", "savings_balance"]
    if d["top_spending_category"]:
        choices.append("top")
    key = rng.choice(choices)
    if key == "top":
        top = d["top_spending_category"]
        wrong = _lie_amount(d, rng, d["spending_by_category"][top])
        lied = {**d, "spending_by_category": {**d["spending_by_category"], top: wrong}}
        sentence = _top_category(lied, rng, exact=True)
        sentence = re.sub(r", chiếm [^.]*", f" ({money(wrong, rng, exact=True)})", sentence)
        fields["spending_pattern"][0] = sentence
        return
    wrong = _lie_amount(d, rng, abs(d[key]) or None)
    if key == "savings_balance":
        wrong = -wrong if d[key] < 0 else wrong
        fields["financial_health"].insert(2, _balance({**d, key: wrong}, rng, exact=True))
    elif key == "saving_total":
        fields["savings_behavior"][0] = _saving({**d, key: wrong}, rng, exact=True)
    else:
        fields["financial_health"][0] = _income_spending({**d, key: wrong}, rng, exact=True)


_INVENTED = (
    "{kid} còn nhận thêm {amount} tiền thưởng từ ông bà.",
    "Con đã mua một món đồ chơi giá {amount}.",
    "Tuần này con tiêu {amount} cho trà sữa.",
    "Con được bố mẹ cho thêm {amount} vào cuối tuần.",
)


def _invented_amount(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """An amount that is nowhere in the data, in a sentence of its own."""
    amount = money(_lie_amount(d, rng, None), rng, exact=True)
    sentence = rng.choice(_INVENTED).format(kid=_kid(d), amount=amount)
    name = rng.choice(("financial_health", "spending_pattern", "savings_behavior"))
    fields[name].insert(rng.randint(1, len(fields[name])), sentence)


def _reversed_trend(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """A trend said the other way round (a flat one said to go up or down)."""
    metric = rng.choice(tuple(_SUBJECTS))
    direction = rng.choice(_REVERSED[d[f"{metric}_trend"]])
    ref = rng.choice(("so với trung bình hai tuần trước", "so với hai tuần trước", ""))
    sentence = _trend_sentence(metric, direction, rng, ref)
    name = {
        "income_total": "financial_health",
        "spending_total": "spending_pattern",
        "saving_total": "savings_behavior",
    }.get(metric, "activity_level")
    fields[name].insert(rng.randint(1, len(fields[name])), sentence)


def _wrong_days(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """A number of active days that is not the week's (nor one derived from it)."""
    truths = true_days(d)
    wrong = [n for n in range(1, 8) if float(n) not in truths] or [9, 10, 12]
    fields["activity_level"][0] = _days(d, rng, rng.choice(wrong))


def _misattributed(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """A true figure of the data said of something else: the spending said to be the
    income (or the reverse), another category said to be the top one, an open goal said
    reached. Any lie else when the week has none of these to confuse."""
    kid, income, spending = _kid(d), d["income_total"], d["spending_total"]
    categories = d["spending_by_category"] or {}
    top = d["top_spending_category"]
    lies: list[Callable[[], None]] = []
    amounts = {abs(float(v)) for v in categories.values()}
    if income > 0 and spending > 0 and income != spending and income not in amounts:

        def swap() -> None:
            got, spent = money(spending, rng, exact=True), money(income, rng, exact=True)
            fields["financial_health"][0] = f"Tuần này {kid} nhận {got} và chi {spent}."

        lies.append(swap)
    others = [c for c in categories if top and categories[c] < categories[top]]
    if others:

        def wrong_top() -> None:
            name = _category(rng.choice(others))
            fields["spending_pattern"][0] = f"{kid} chi nhiều nhất cho {name}."

        lies.append(wrong_top)
    goals = d.get("savings_goals") or []
    open_goals = [g for g in goals if g["open_at_week_end"] and not g["reached"]]
    if open_goals:

        def reached() -> None:
            goal = rng.choice(open_goals)
            target = money(goal["target_amount"], rng, exact=True)
            fields["savings_behavior"].append(f"{kid} đã đạt {goal['goal']} ({target}).")

        lies.append(reached)
    if lies:
        rng.choice(lies)()
    else:
        _wrong_amount(d, rng, fields)


# --- the closed world's lies (issue 19): claims without a plain figure, figures bound wrongly


_UNITS = ("", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")


def _hundreds_in_words(n: int) -> str:
    """1..999 as a Vietnamese writer says it: "một trăm năm mươi", "ba mươi lăm"."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words = [f"{_UNITS[hundreds]} trăm"] if hundreds else []
    if tens == 1:
        words.append("mười")
    elif tens:
        words.append(f"{_UNITS[tens]} mươi")
    elif hundreds and units:
        words.append("lẻ")
    if units:
        words.append(
            "lăm" if units == 5 and tens else "mốt" if units == 1 and tens > 1 else _UNITS[units]
        )
    return " ".join(words)


def amount_in_words(value: float) -> str:
    """A whole number of thousands below a million in words: "một trăm năm mươi nghìn đồng"."""
    return f"{_hundreds_in_words(int(value // 1000))} nghìn đồng"


def _said_in_words(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """A wrong spending said in words."""
    truths = true_amounts(d)
    wrong = next(
        (v for v in (rng.randrange(10, 999) * 1000.0 for _ in range(200)) if _far_from(v, truths)),
        None,
    )
    if wrong is None:
        return _wrong_amount(d, rng, fields)
    fields["spending_pattern"].insert(0, f"Tuần này {_kid(d)} đã chi {amount_in_words(wrong)}.")


def _wrong_ratio(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """This week's spending said to be a multiple of last week's that it is not."""
    now, before = d["spending_total"], d["spending_total_prev1"]
    said = {2.0: "gấp đôi", 3.0: "gấp ba", 1.5: "gấp rưỡi", 0.5: "bằng một nửa"}
    wrong = [r for r in said if before <= 0 or abs(now / before - r) > 0.3 * r]
    if before <= 0 or not wrong:
        return _wrong_amount(d, rng, fields)
    fields["spending_pattern"].append(f"Chi tiêu tuần này {said[rng.choice(wrong)]} tuần trước.")


def _wrong_comparison(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """Spending said to be more (or less) than the income, the other way round."""
    income, spending = d["income_total"], d["spending_total"]
    if income == spending:
        return _wrong_amount(d, rng, fields)
    said = "ít hơn" if spending > income else "nhiều hơn"
    fields["financial_health"].append(f"{_kid(d)} chi tiêu {said} số tiền nhận được.")


def _wrong_event(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """Something said to have happened that did not, or not to have happened that did."""
    kid, top = _kid(d), d["top_spending_category"]
    lies = []
    if top:
        lies.append(f"Tuần này {kid} không chi cho {_category(top)} khoản nào.")
    if d["withdrawal_total"] == 0:
        lies.append(f"Tuần này {kid} đã rút tiền tiết kiệm.")
    if d["income_total"] > 0:
        lies.append(f"Tuần này {kid} không nhận được đồng nào.")
    if not lies:
        return _wrong_amount(d, rng, fields)
    fields["savings_behavior"].append(rng.choice(lies))


def _wrong_ranking(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """The second category said to be the largest, the largest to come after it."""
    ranked = sorted((d["spending_by_category"] or {}).items(), key=lambda kv: -kv[1])
    named = [(k, v) for k, v in ranked if k not in ("khác", "(các danh mục khác)")]
    if len(named) < 2 or named[0][1] == named[1][1]:
        return _wrong_amount(d, rng, fields)
    first, second = _category(named[0][0]), _category(named[1][0])
    fields["spending_pattern"].append(
        f"{second.capitalize()} là khoản chi lớn nhất, sau đó là {first}."
    )


def _wrong_lack(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """What an open goal still lacks said to be its whole target."""
    balance = d["savings_balance"]
    goals = [
        g
        for g in d.get("savings_goals") or []
        if g["open_at_week_end"] and not g["reached"] and 0 < balance < g["target_amount"]
    ]
    if not goals:
        return _wrong_amount(d, rng, fields)
    goal = rng.choice(goals)
    target = money(goal["target_amount"], rng, exact=True)
    fields["savings_behavior"].append(f"{_kid(d)} còn thiếu {target} để đạt {goal['goal']}.")


def _wrong_week(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """Two weeks ago's spending said to be last week's."""
    p1, p2 = d["spending_total_prev1"], d["spending_total_prev2"]
    if not _far_from(p2, [p1]) or p2 <= 0:
        return _wrong_amount(d, rng, fields)
    fields["spending_pattern"].append(f"Tuần trước {_kid(d)} chi {money(p2, rng, exact=True)}.")


def _wrong_unit(d: dict[str, Any], rng: random.Random, fields: dict[str, list[str]]) -> None:
    """The transaction count said to be the events'."""
    if d["txn_count"] == d["event_count"]:
        return _wrong_days(d, rng, fields)
    fields["activity_level"].append(f"{_kid(d)} có {d['txn_count']} sự kiện trong ứng dụng.")


_LIARS = {
    "wrong_amount": _wrong_amount,
    "reversed_trend": _reversed_trend,
    "invented_amount": _invented_amount,
    "wrong_days": _wrong_days,
    "misattributed": _misattributed,
    "in_words": _said_in_words,
    "ratio": _wrong_ratio,
    "comparison": _wrong_comparison,
    "event": _wrong_event,
    "ranking": _wrong_ranking,
    "goal_lack": _wrong_lack,
    "other_week": _wrong_week,
    "count_unit": _wrong_unit,
}


def lying_report(data: dict[str, Any], rng: random.Random, kind: str) -> dict[str, Any]:
    """A truthful report but for one lie of `kind` (LIE_KINDS)."""
    if kind not in _LIARS:
        raise ValueError(f"unknown lie kind {kind!r}; valid: {', '.join(LIE_KINDS)}")
    fields = _fields(data, rng)
    _LIARS[kind](data, rng, fields)
    return _report(fields, data, rng)


# --- the suite's OpenAI server --------------------------------------------------------------

REPORT_MODES = ("schema", "truthful", "lying")


def data_block(messages: Any) -> dict[str, Any] | None:
    """The JSON of the last user message's ``<data>...</data>`` block, if any."""
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            found = _DATA_BLOCK.search(content) if isinstance(content, str) else None
            if found:
                try:
                    value = json.loads(found.group(1))
                except json.JSONDecodeError:
                    return None
                return value if isinstance(value, dict) else None
    return None


def corpus_answer(
    messages: Any, mode: str, lie_rate: float, kinds: Sequence[str] = LIE_KINDS
) -> tuple[str, str | None] | None:
    """(content, lie kind or None) for a report request in `mode`, deterministic from the
    messages; None when the request holds no data block (the schema generator answers)."""
    data = data_block(messages)
    if data is None:
        return None
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
    rng = random.Random(int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big"))
    try:
        if mode == "lying" and rng.random() < lie_rate:
            kind = rng.choice(tuple(kinds))
            return json.dumps(lying_report(data, rng, kind), ensure_ascii=False), kind
        return json.dumps(truthful_report(data, rng), ensure_ascii=False), None
    except (KeyError, TypeError, ValueError):
        return None  # a data block not shaped like prompt_data: answer from the schema
