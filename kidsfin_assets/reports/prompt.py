"""The prompt: its files and version, and the data block a kid-week is sent as (metrics
only: categories by known name, goals by number, the child as the placeholder)."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.reports.report_schema import PLACEHOLDER
from kidsfin_assets.warehouse.tables import TREND_METRICS

PROMPTS_DIR = PROJECT_ROOT / "prompts"
SYSTEM_PROMPT_FILE = "system_message.txt"
REPORT_PROMPT_FILE = "vietnamese_financial_report.txt"
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
    *(f"{m}_{s}" for m in TREND_METRICS for s in ("prev1", "prev2", "trend")),
)


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
    return input_hashes(metrics, prompt_version, [(model, writer)])[0]


def input_hashes(
    metrics: dict[str, Any], prompt_version: str, writers: list[tuple[str, str]]
) -> list[str]:
    """`input_hash` for each (model, writer), the data block made and serialised once.

    Byte for byte the JSON of `[prompt_data(metrics), model, prompt_version, writer]` (the
    list's items joined as json.dumps joins them), so that stored hashes still match."""
    data = _json(prompt_data(metrics))
    version = _json(prompt_version)
    return [
        hashlib.sha256(f"[{data}, {_json(model)}, {version}, {_json(writer)}]".encode()).hexdigest()
        for model, writer in writers
    ]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
