"""The weekly report: its schema, its prompt, pseudonymisation and the offline writer."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kidsfin_assets.settings import DEFAULT_KNOWN_CATEGORIES, PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "prompts"
SYSTEM_PROMPT_FILE = "system_message.txt"
REPORT_PROMPT_FILE = "vietnamese_financial_report.txt"
# Stands for the child in everything sent to the API; replaced by the nickname after.
PLACEHOLDER = "[[KID]]"
OFFLINE_MODEL = "offline-rules"
MAX_PROMPT_CATEGORIES = 10
MAX_CATEGORY_CHARS = 40
OTHER_CATEGORIES_LABEL = "(các danh mục khác)"
# What a category outside privacy.known_categories is sent as (it may be a name, a phone).
TYPED_CATEGORY = "khác"
NULL_CATEGORY = "other"  # silver's name for spending without a category (validation.py)
MAX_PROMPT_GOALS = 5
GOAL_LABEL = "mục tiêu {n}"  # what a goal is called in the prompt: never its title
# The data block's size with every field at its longest (bounded categories and goals).
MAX_DATA_BYTES = 5120
# What the data block is made of, beyond the prompt files: part of the prompt version, so
# that a change here (categories mapped, goals added) re-writes the reports.
DATA_FORMAT = "2: known categories, goals"

# What the model sees: metrics only. No ids, names, notes or goal titles.
PROMPT_FIELDS = (
    "income_total",
    "spending_total",
    "saving_total",
    "withdrawal_total",
    "net_flow",
    "savings_rate",
    "txn_count",
    "event_count",
    "active_days",
    "spending_by_category",
    "top_spending_category",
    "savings_balance",
    *(
        f"{m}_{s}"
        for m in ("income_total", "spending_total", "saving_total", "txn_count", "active_days")
        for s in ("prev1", "prev2", "trend")
    ),
)


# A text field is a sentence: at least four words, one space apart. As a `pattern`, which
# OpenAI's strict mode and llama.cpp's grammar both enforce while generating (OpenAI's
# strict mode does not support `minLength`); the grounding checker flags what is still
# not a sentence (words, not JSON fragments).
SENTENCE_PATTERN = r"^[^ ]+( [^ ]+){3,}$"
Sentence = Annotated[str, StringConstraints(pattern=SENTENCE_PATTERN)]
MIN_RECOMMENDATIONS, MAX_RECOMMENDATIONS = 2, 4


class KidWeeklyReport(BaseModel):
    """One child's weekly report for the parents (the API's response format).

    Bounds are JSON Schema keywords that strict mode keeps (minimum/maximum, minItems/
    maxItems, pattern), so the server's grammar cannot produce a score of 10^15."""

    model_config = ConfigDict(extra="forbid")

    financial_health: Sentence = Field(description="2-3 sentences on the week's financial health.")
    spending_pattern: Sentence = Field(description="2-3 sentences on how the money was spent.")
    savings_behavior: Sentence = Field(description="2-3 sentences on saving habits.")
    activity_level: Sentence = Field(description="1-2 sentences on activity in the app.")
    recommendations: list[Sentence] = Field(
        min_length=MIN_RECOMMENDATIONS,
        max_length=MAX_RECOMMENDATIONS,
        description="2-4 short, concrete recommendations.",
    )
    overall_score: int = Field(ge=0, le=10, description="Overall score, a whole number 0-10.")


@dataclass(frozen=True)
class Prompt:
    system: str
    instructions: str
    version: str

    def messages(self, metrics: dict[str, Any]) -> list[dict[str, str]]:
        """System message and fixed instructions first, the child's data last (cacheable)."""
        data = json.dumps(prompt_data(metrics), ensure_ascii=False, sort_keys=True)
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": f"{self.instructions}\n<data>\n{data}\n</data>"},
        ]


@cache
def load_prompt(directory: Path = PROMPTS_DIR) -> Prompt:
    system = (directory / SYSTEM_PROMPT_FILE).read_text(encoding="utf-8").strip()
    instructions = (directory / REPORT_PROMPT_FILE).read_text(encoding="utf-8").strip()
    payload = f"{system}\x00{instructions}\x00{DATA_FORMAT}"
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return Prompt(system=system, instructions=instructions, version=f"p-{digest}")


@cache
def _known_names(known: tuple[str, ...]) -> dict[str, str]:
    """Each known category by its comparison form -> as it is sent."""
    names = {_comparable(name): name.strip() for name in reversed(known)}
    return {_comparable(NULL_CATEGORY): NULL_CATEGORY, **names}


def _comparable(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip().casefold()


def _public_categories(by_category: dict[str, float], known: tuple[str, ...]) -> dict[str, float]:
    """Categories are free text from the app: a known one keeps its name, any other is
    sent as "khác". Amounts of names that become one are added, never overwritten."""
    names = _known_names(known)
    public: dict[str, float] = {}
    for name, amount in by_category.items():
        key = names.get(_comparable(name), TYPED_CATEGORY)
        public[key] = round(public.get(key, 0) + float(amount), 2)
    return public


def _short_name(name: str, taken: dict[str, float]) -> str:
    """The name cut to MAX_CATEGORY_CHARS; one that another cut name already holds gets a
    number, so that two names sharing their first characters keep both amounts."""
    short, n = name[:MAX_CATEGORY_CHARS], 1
    while short in taken:
        n += 1
        suffix = f" ({n})"
        short = name[: MAX_CATEGORY_CHARS - len(suffix)] + suffix
    return short


def _bounded_categories(by_category: dict[str, float]) -> tuple[dict[str, float], str | None]:
    """The largest MAX_PROMPT_CATEGORIES (names bounded), the rest summed; and the top
    category's name as sent (ties: byte order), so that the prompt's cost stays bounded."""
    ranked = sorted(by_category.items(), key=lambda item: (-item[1], item[0].encode()))
    kept: dict[str, float] = {}
    for name, amount in ranked[:MAX_PROMPT_CATEGORIES]:
        kept[_short_name(name, kept)] = amount
    rest = sum(amount for _, amount in ranked[MAX_PROMPT_CATEGORIES:])
    if rest:
        kept[OTHER_CATEGORIES_LABEL] = round(kept.get(OTHER_CATEGORIES_LABEL, 0) + rest, 2)
    top = next(iter(kept)) if ranked and ranked[0][1] > 0 else None
    return kept, top


def _goal_list(goals: Any) -> list[dict[str, Any]]:
    if isinstance(goals, str):  # a JSON column read as text
        goals = json.loads(goals)
    return [g for g in goals or [] if isinstance(g, dict)]


def prompt_goals(goals: Any) -> list[dict[str, Any]]:
    """Silver's savings goals as the model sees them: "mục tiêu 1", "mục tiêu 2" and their
    figures, never a title (typed by the child). At most MAX_PROMPT_GOALS: those created or
    completed in the week first, then the open ones, in silver's order (oldest first)."""
    listed = _goal_list(goals)
    news = sorted(
        range(len(listed)),
        key=lambda i: (
            not (listed[i].get("created_in_week") or listed[i].get("completed_in_week")),
            i,
        ),
    )
    shown = sorted(news[:MAX_PROMPT_GOALS])
    return [
        {
            "goal": GOAL_LABEL.format(n=n),
            "target_amount": listed[i].get("target_amount"),
            "open_at_week_end": bool(listed[i].get("open_at_week_end")),
            "created_in_week": bool(listed[i].get("created_in_week")),
            "completed_in_week": bool(listed[i].get("completed_in_week")),
            "progress_percent": listed[i].get("progress_percent"),
            "reached": listed[i].get("reached"),
        }
        for n, i in enumerate(shown, start=1)
    ]


def prompt_data(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the model is given for a kid-week: metrics, categories by known name (others
    as "khác"), goals by number. `metrics` is a silver row; the report writer adds
    `child` and `known_categories` (privacy settings)."""
    data = {k: metrics[k] for k in PROMPT_FIELDS}
    known = tuple(metrics.get("known_categories", DEFAULT_KNOWN_CATEGORIES))
    public = _public_categories(metrics["spending_by_category"] or {}, known)
    data["spending_by_category"], data["top_spending_category"] = _bounded_categories(public)
    data["savings_goals"] = prompt_goals(metrics.get("savings_goals"))
    # The child is the placeholder unless privacy.pseudonymize is off (then the nickname).
    return {"child": metrics.get("child", PLACEHOLDER), **data}


def max_prompt_bytes(prompt: Prompt) -> int:
    """An upper bound on one request's prompt size, for sizing the token bucket."""
    return len(prompt.system.encode()) + len(prompt.instructions.encode()) + MAX_DATA_BYTES


def input_hash(metrics: dict[str, Any], model: str, prompt_version: str, writer: str) -> str:
    """Identifies a report's inputs: same hash, same report, no second request."""
    payload = json.dumps(
        [prompt_data(metrics), model, prompt_version, writer],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def personalise(report: KidWeeklyReport | dict[str, Any], nickname: str | None) -> dict[str, Any]:
    """Put the child's nickname where the model wrote the placeholder (every field, list
    items included)."""
    name = nickname or "bé"
    data = report.model_dump() if isinstance(report, KidWeeklyReport) else report

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(PLACEHOLDER, name)
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    return {key: fill(value) for key, value in data.items()}


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
    d = prompt_data(metrics)
    return KidWeeklyReport(
        financial_health=_financial_health(d),
        spending_pattern=_spending_pattern(d),
        savings_behavior=_savings_behavior(d),
        activity_level=_activity_level(d),
        recommendations=_recommendations(d),
        overall_score=offline_score(d),
    )
