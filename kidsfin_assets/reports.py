"""The weekly report: its schema, its prompt, pseudonymisation and the offline writer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kidsfin_assets.settings import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "prompts"
SYSTEM_PROMPT_FILE = "system_message.txt"
REPORT_PROMPT_FILE = "vietnamese_financial_report.txt"
# Stands for the child in everything sent to the API; replaced by the nickname after.
PLACEHOLDER = "[[KID]]"
OFFLINE_MODEL = "offline-rules"
MAX_PROMPT_CATEGORIES = 10
MAX_CATEGORY_CHARS = 40
OTHER_CATEGORIES_LABEL = "(các danh mục khác)"
# The data block's size with every field at its longest (bounded categories included).
MAX_DATA_BYTES = 4096

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


class KidWeeklyReport(BaseModel):
    """One child's weekly report for the parents (the API's response format)."""

    model_config = ConfigDict(extra="forbid")

    financial_health: str = Field(description="2-3 sentences on the week's financial health.")
    spending_pattern: str = Field(description="2-3 sentences on how the money was spent.")
    savings_behavior: str = Field(description="2-3 sentences on saving habits.")
    activity_level: str = Field(description="1-2 sentences on activity in the app.")
    recommendations: list[str] = Field(description="2-4 short, concrete recommendations.")
    overall_score: float = Field(ge=0, le=10, description="Overall score from 0 to 10.")


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
    digest = hashlib.sha256(f"{system}\x00{instructions}".encode()).hexdigest()[:12]
    return Prompt(system=system, instructions=instructions, version=f"p-{digest}")


def _bounded_categories(by_category: dict[str, float]) -> dict[str, float]:
    """Categories are free text from the app: keep the prompt (and its cost) bounded."""
    ranked = sorted(by_category.items(), key=lambda item: (-item[1], item[0].encode()))
    kept = {name[:MAX_CATEGORY_CHARS]: amount for name, amount in ranked[:MAX_PROMPT_CATEGORIES]}
    rest = sum(amount for _, amount in ranked[MAX_PROMPT_CATEGORIES:])
    if rest:
        kept[OTHER_CATEGORIES_LABEL] = round(kept.get(OTHER_CATEGORIES_LABEL, 0) + rest, 2)
    return kept


def prompt_data(metrics: dict[str, Any]) -> dict[str, Any]:
    data = {k: metrics[k] for k in PROMPT_FIELDS}
    data["spending_by_category"] = _bounded_categories(metrics["spending_by_category"] or {})
    top = metrics["top_spending_category"]
    data["top_spending_category"] = top[:MAX_CATEGORY_CHARS] if top else top
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
    return f"{round(amount):,}".replace(",", ".") + " đ"


_TREND_WORDS = {"up": "tăng", "down": "giảm", "flat": "ổn định", "new": "mới xuất hiện"}


def offline_report(metrics: dict[str, Any]) -> KidWeeklyReport:
    """The same report built by rules from the metrics, when no API key is configured."""
    income, spending = metrics["income_total"], metrics["spending_total"]
    rate = metrics["savings_rate"]
    top = metrics["top_spending_category"]
    score = 5.0
    score += 2.0 if metrics["net_flow"] >= 0 else -2.0
    score += 0 if rate is None else min(2.0, rate * 4)
    score += min(1.0, metrics["active_days"] / 5)
    score = round(max(0.0, min(10.0, score)), 1)
    tips = ["Cùng con xem lại các khoản chi trong tuần và chọn một khoản có thể bớt."]
    if rate is None or rate < 0.2:
        tips.append("Đặt mục tiêu để dành ít nhất 20% tiền nhận được.")
    if metrics["active_days"] < 3:
        tips.append("Khuyến khích con mở ứng dụng và hoàn thành một bài học mỗi ngày.")
    if top:
        tips.append(f"Thảo luận với con về các khoản chi cho '{top}'.")
    return KidWeeklyReport(
        financial_health=(
            f"Tuần này {PLACEHOLDER} nhận {_vnd(income)}, chi {_vnd(spending)}; dòng tiền ròng "
            f"{_vnd(metrics['net_flow'])}, số dư tiết kiệm {_vnd(metrics['savings_balance'])}."
        ),
        spending_pattern=(
            f"Chi tiêu {_TREND_WORDS[metrics['spending_total_trend']]} so với hai tuần trước"
            + (f"; chi nhiều nhất cho '{top}'." if top else "; không có khoản chi nào.")
        ),
        savings_behavior=(
            f"{PLACEHOLDER} để dành {_vnd(metrics['saving_total'])}, rút "
            f"{_vnd(metrics['withdrawal_total'])}"
            + ("." if rate is None else f"; tỷ lệ tiết kiệm {rate:.0%}.")
        ),
        activity_level=(
            f"{PLACEHOLDER} hoạt động {metrics['active_days']} ngày với "
            f"{metrics['event_count']} hoạt động trong ứng dụng."
        ),
        recommendations=tips[:4],
        overall_score=score,
    )
