"""Is every number and trend a report states grounded in the week's data?

The checker reads the report's own text (every text field and every recommendation), not
claims the model makes about itself. It finds, in the forms a Vietnamese writer uses:

- amounts: ``160.000 đ``, ``160.000đ``, ``160.000 VND``, ``160.000 đồng``, ``160 nghìn
  đồng``, ``1,2 triệu đồng``, ``1 triệu 200 nghìn``, ``160k``, and negatives (``-77.000 đ``,
  ``âm 77.000 đ``, ``chi nhiều hơn nhận 77.000 đ``);
- percentages (``7%``, ``7 %``, ``7 phần trăm``), days (``5 ngày``, ``5/7 ngày``) and counts
  (``12 giao dịch``, ``30 sự kiện``);
- trend statements: a clause naming a metric (chi tiêu, thu nhập, tiết kiệm, giao dịch,
  ngày hoạt động ...) followed by a direction (tăng, giảm, ổn định, mới xuất hiện ...).

Each number must equal a value of the data block or one derived from it (its absolute
value; a metric minus its prev1, prev2 or their mean; that change as a percentage; a
category's amount or share of spending; the savings rate as a percentage; a savings
goal's target, progress and, for an open goal, what it still lacks) at the
precision it is written in: ``160.000 đ`` to the đồng, ``160 nghìn`` to the thousand,
``1,2 triệu`` to the hundred thousand, ``7%`` to the unit. A trend statement must agree
with the metric's ``*_trend`` (or, when it says "so với tuần trước", with prev1), and a
stated change with its sign and with the week it names (``tăng 20.000 đ so với tuần
trước`` is the change on prev1, not on the mean). A trend may be said with the verb alone
(``[[KID]] chi ít hơn tuần trước``, ``nhận nhiều hơn``) or before its metric (``đã giảm chi
tiêu``).

What a figure is said to be is checked too, not only that the data holds it somewhere:

- a figure right after its subject (``thu nhập là``, ``nhận``, ``chi``, ``để dành``, ``rút``,
  ``số dư``, ``tỷ lệ tiết kiệm``, a category: ``đồ chơi (60.000 đ)``) or before
  ``cho <category>``, ``cho mục tiêu N`` or ``số tiền nhận được`` must be that subject's
  (``wrong_metric``);
- a sentence that compares no weeks and states no change speaks of this week: its figures
  may not be W-1's, W-2's, their mean or a change (``not_this_week``);
- the category said to be spent on most (``nhiều nhất``, ``lớn nhất``, ``chủ yếu`` ...) must
  be the top one (``wrong_category``);
- a goal said reached or completed (``đã đạt mục tiêu 1``, ``đủ cho mục tiêu 2``) must be,
  and one said not reached must not be; an unnumbered one needs a goal in the data
  (``wrong_goal``).

Not claims, so not checked: numbers in a recommendation that set a target ("đặt mục tiêu
để dành 20%", "ít nhất 3 lần"), direction words in advice ("hãy giảm chi tiêu", "nên
giữ chi tiêu ổn định"), weeks, ages and scores ("2 tuần", "8/10 điểm").
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from kidsfin_assets.report_schema import PLACEHOLDER
from kidsfin_assets.warehouse import TREND_METRICS

TEXT_FIELDS = ("financial_health", "spending_pattern", "savings_behavior", "activity_level")
# A field is a sentence when it has at least this many words (tokens with a letter).
MIN_WORDS = 4
MONEY_METRICS = ("income_total", "spending_total", "saving_total")
COUNT_METRICS = ("txn_count",)
DAY_METRICS = ("active_days",)  # with the two above: the kinds of TREND_METRICS
# Directions a stated trend may have, for each *_trend value.
_AGREES: dict[str, frozenset[str]] = {
    "up": frozenset({"up", "new"}),  # a first amount after two empty weeks went up too
    "down": frozenset({"down"}),
    "flat": frozenset({"flat"}),
    "new": frozenset({"new"}),
}
_NOT_AGREES: dict[str, frozenset[str]] = {  # "không tăng", "không giảm"
    "up": frozenset({"down", "flat"}),
    "down": frozenset({"up", "flat", "new"}),
}
_EXACT = 1e-6  # days and counts are integers: written as they are


@dataclass(frozen=True)
class Finding:
    """One statement of a report that the data does not support."""

    kind: str  # unknown_amount, unknown_percent, unknown_days, unknown_count, wrong_trend,
    # wrong_sign, too_thin
    field: str  # financial_health ... or recommendations[i]
    text: str  # the offending span, as written
    message: str  # one line a human (or the model, when asked again) reads


# --- the values a report may state ----------------------------------------------------


@dataclass(frozen=True)
class _Values:
    """Allowed values of one kind, sorted, each with what it is (for the messages)."""

    values: tuple[float, ...]
    labels: tuple[str, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, str]]) -> _Values:
        # Equal values: the plainest name first (income_total before a mean equal to it).
        ordered = sorted(
            ((round(v, 6), label) for v, label in pairs if math.isfinite(v)),
            key=lambda pair: (pair[0], len(pair[1])),
        )
        return cls(tuple(v for v, _ in ordered), tuple(label for _, label in ordered))

    def match(self, value: float, tolerance: float) -> str | None:
        """The label of a value within tolerance of `value`, or None."""
        i = bisect.bisect_left(self.values, value - tolerance - 1e-9)
        if i < len(self.values) and self.values[i] <= value + tolerance + 1e-9:
            return self.labels[i]
        return None

    def nearest(self, value: float) -> str:
        if not self.values:
            return "none"
        i = bisect.bisect_left(self.values, value)
        near = min(
            (j for j in (i - 1, i) if 0 <= j < len(self.values)),
            key=lambda j: abs(self.values[j] - value),
        )
        near = bisect.bisect_left(self.values, self.values[near])  # its plainest name
        return f"{self.labels[near]} = {_plain(self.values[near])}"


@dataclass(frozen=True)
class Facts:
    """Everything a report may state about one data block, computed once."""

    money: _Values  # absolute values
    signed_money: _Values
    percents: _Values  # absolute values
    signed_percents: _Values
    days: _Values
    counts: _Values
    trends: Mapping[str, str]  # metric -> up/down/flat/new (savings_balance derived)
    changes: Mapping[str, tuple[tuple[float, str], ...]]  # metric -> signed changes
    percent_changes: Mapping[str, tuple[tuple[float, str], ...]]
    prev1: Mapping[str, float]
    values: Mapping[str, float]
    net_flow: float
    masked: tuple[str, ...]  # data text (names, categories) with digits, not the model's
    # (absolute value, label) of every allowed value, by kind: what `pool` filters
    labelled: Mapping[str, tuple[tuple[float, str], ...]]
    categories: Mapping[str, tuple[tuple[float, float], ...]]  # group -> (amount, share %)
    top_groups: frozenset[str]  # the top spending category's group (ties: each)
    goals: Mapping[str, tuple[bool, float | None]]  # "1" -> (reached or completed, progress)
    _pools: dict[tuple[str, str | None, bool], tuple[tuple[float, str], ...]] = dataclasses.field(
        default_factory=dict
    )

    def pool(self, kind: str, subject: str | None, now: bool) -> tuple[tuple[float, str], ...]:
        """The allowed (value, label) of `kind` that are `subject`'s (income, spending,
        goal:1 ...; None: any), and only this week's own when `now` (no prev1, prev2,
        mean or change)."""
        key = (kind, subject, now)
        if key not in self._pools:
            pattern = _subject_labels(subject) if subject else None
            self._pools[key] = tuple(
                (v, label)
                for v, label in self.labelled[kind]
                if (pattern is None or pattern.search(label))
                and not (now and _NOT_NOW.search(label))
            )
        return self._pools[key]


def _plain(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".").replace(",", " ")


def _num(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _changes(value: float, prev1: float, prev2: float) -> list[tuple[float, str, float]]:
    """(signed change, against what, base) for prev1, prev2 and their mean."""
    mean = (prev1 + prev2) / 2
    return [
        (value - prev1, "prev1", prev1),
        (value - prev2, "prev2", prev2),
        (value - mean, "mean", mean),
    ]


def build_facts(data: Mapping[str, Any]) -> Facts:
    """The values, derived values and trends of a data block (``prompt_data(metrics)``)."""
    money: list[tuple[float, str]] = []
    counts: list[tuple[float, str]] = []
    days: list[tuple[float, str]] = []
    percents: list[tuple[float, str]] = []
    changes: dict[str, tuple[tuple[float, str], ...]] = {}
    percent_changes: dict[str, tuple[tuple[float, str], ...]] = {}
    values: dict[str, float] = {}
    prev1s: dict[str, float] = {}
    for key in ("withdrawal_total", "net_flow", "savings_balance"):
        money.append((_num(data, key), key))
    for metric in TREND_METRICS:
        pool = money if metric in MONEY_METRICS else counts if metric in COUNT_METRICS else days
        value, p1, p2 = (_num(data, f"{metric}{s}") for s in ("", "_prev1", "_prev2"))
        values[metric], prev1s[metric] = value, p1
        pool += [(value, metric), (p1, f"{metric}_prev1"), (p2, f"{metric}_prev2")]
        pool.append(((p1 + p2) / 2, f"mean({metric}_prev1, {metric}_prev2)"))
        signed, pct = [], []
        for change, against, base in _changes(value, p1, p2):
            label = f"{metric} - {against}"
            pool.append((change, label))
            signed.append((change, label))
            if base > 0:
                pct.append((change / base * 100, label))
                percents.append((change / base * 100, f"({label}) / {against} %"))
        changes[metric], percent_changes[metric] = tuple(signed), tuple(pct)
    counts.append((_num(data, "event_count"), "event_count"))
    # The balance moved by this week's saving minus withdrawals.
    moved = _num(data, "saving_total") - _num(data, "withdrawal_total")
    money.append((moved, "saving_total - withdrawal_total"))
    changes["savings_balance"] = ((moved, "saving_total - withdrawal_total"),)
    spending = _num(data, "spending_total")
    categories = data.get("spending_by_category") or {}
    for name, amount in categories.items():
        money.append((float(amount), f"spending_by_category[{name}]"))
        if spending > 0:
            percents.append((float(amount) / spending * 100, f"share of {name} in spending %"))
    rate = data.get("savings_rate")
    if isinstance(rate, int | float):
        percents.append((float(rate) * 100, "savings_rate %"))
    income = _num(data, "income_total")
    if income > 0:  # "chi 160.000 đ, tức 80 % số tiền nhận được"
        percents.append((spending / income * 100, "spending_total / income_total %"))
    labels = _goal_facts(data, money, percents)
    trends = {m: str(data.get(f"{m}_trend") or "") for m in TREND_METRICS}
    trends["savings_balance"] = "up" if moved > 0 else "down" if moved < 0 else "flat"
    texts = [str(data.get("child") or ""), *map(str, categories), *labels]
    labelled = {
        "money": money,
        "percent": percents,
        "days": days,
        "counts": counts,
    }
    return Facts(
        money=_Values.of([(abs(v), label) for v, label in money]),
        signed_money=_Values.of(money),
        percents=_Values.of([(abs(v), label) for v, label in percents]),
        signed_percents=_Values.of(percents),
        days=_Values.of([(abs(v), label) for v, label in days]),
        counts=_Values.of([(abs(v), label) for v, label in counts]),
        trends=trends,
        changes=changes,
        percent_changes=percent_changes,
        prev1=prev1s,
        values=values,
        net_flow=_num(data, "net_flow"),
        masked=tuple(sorted((t for t in texts if any(c.isdigit() for c in t)), key=len)[::-1]),
        labelled={k: tuple((abs(v), label) for v, label in p) for k, p in labelled.items()},
        categories=_category_groups(categories, spending),
        top_groups=_top_groups(categories),
        goals=_goal_states(data),
    )


def _category_groups(
    categories: Mapping[str, Any], spending: float
) -> dict[str, tuple[tuple[float, float], ...]]:
    groups: dict[str, list[tuple[float, float]]] = {}
    for name, amount in categories.items():
        share = float(amount) / spending * 100 if spending > 0 else math.nan
        groups.setdefault(_group_of(name), []).append((float(amount), share))
    return {group: tuple(pairs) for group, pairs in groups.items()}


def _top_groups(categories: Mapping[str, Any]) -> frozenset[str]:
    top = max((float(a) for a in categories.values()), default=0.0)
    return frozenset(_group_of(n) for n, a in categories.items() if top > 0 and float(a) == top)


def _goal_states(data: Mapping[str, Any]) -> dict[str, tuple[bool, float | None]]:
    """Each goal by its number: whether it is reached (or was completed in the week), and
    its progress (an open goal's; 100 for a completed one)."""
    states = {}
    for goal in data.get("savings_goals") or []:
        number = str(goal.get("goal") or "").rpartition(" ")[2]
        done = bool(goal.get("reached") or goal.get("completed_in_week"))
        progress = goal.get("progress_percent")
        progress = float(progress) if isinstance(progress, int | float) else None
        states[number] = (done, 100.0 if progress is None and done else progress)
    return states


def _goal_facts(
    data: Mapping[str, Any], money: list[tuple[float, str]], percents: list[tuple[float, str]]
) -> list[str]:
    """A goal's target, an open goal's progress and what it still lacks (target minus the
    balance, when the balance is short of it); returns the goals' labels ("mục tiêu 1")."""
    balance = max(_num(data, "savings_balance"), 0.0)
    labels = []
    for goal in data.get("savings_goals") or []:
        label = str(goal.get("goal") or "")
        labels.append(label)
        target, progress = goal.get("target_amount"), goal.get("progress_percent")
        if not isinstance(target, int | float):
            continue
        money.append((float(target), f"{label} target_amount"))
        if isinstance(progress, int | float):
            percents.append((float(progress), f"{label} progress_percent"))
            if goal.get("open_at_week_end"):  # "chỉ còn 29 % nữa"
                percents.append((100.0 - progress, f"{label} 100 - progress_percent"))
        elif goal.get("completed_in_week"):  # "đã hoàn thành 100 % mục tiêu 3"
            percents.append((100.0, f"{label} progress_percent"))
        if goal.get("open_at_week_end") and balance < target:
            money.append((float(target) - balance, f"{label} target_amount - savings_balance"))
    return labels


# --- what a figure is said to be: subjects, categories, weeks ---------------------------

# Spending categories as the prompt names them (and the app's keys), by group: "đồ ăn vặt"
# and "snacks" are one category to a parent. Longest first in the regex.
_CATEGORY_PHRASES: dict[str, tuple[str, ...]] = {
    "snacks": ("đồ ăn vặt", "ăn vặt", "quà vặt", "snacks", "snack"),
    "food": ("ăn uống", "đồ ăn", "thức ăn", "food"),
    "drinks": ("đồ uống", "nước uống", "drinks"),
    "toys": ("đồ chơi", "toys"),
    "books": ("sách truyện", "sách vở", "sách", "truyện", "books"),
    "games": ("trò chơi", "games", "game"),
    "transport": ("đi lại", "transport"),
    "stationery": ("đồ dùng học tập", "văn phòng phẩm", "stationery"),
    "gifts": ("quà tặng", "quà", "gifts", "gift"),
    "clothes": ("quần áo", "clothes"),
    "entertainment": ("giải trí", "entertainment"),
    "education": ("học tập", "education"),
    # "khác" (categories the prompt does not name) and silver's "other", as one
    "other": (
        "các danh mục khác",
        "danh mục khác",
        "các khoản khác",
        "khoản khác",
        "các mục khác",
        "other",
        "khác",
        "(các danh mục khác)",
    ),
}
_GROUP_OF_PHRASE = {p: g for g, phrases in _CATEGORY_PHRASES.items() for p in phrases}


@functools.lru_cache(maxsize=4096)
def _group_of(name: str) -> str:
    """A category key of the data block (or a phrase of the text) as its group."""
    key = unicodedata.normalize("NFC", str(name)).strip().lower()
    return _GROUP_OF_PHRASE.get(key, key)


def _alternatives(phrases: Sequence[str]) -> str:
    ordered = sorted(phrases, key=len, reverse=True)
    return "|".join(re.escape(p).replace(r"\ ", r"\s") for p in ordered)


_TEXT_CATEGORY_PHRASES = [p for p in _GROUP_OF_PHRASE if p not in ("khác", "(các danh mục khác)")]
_CATEGORIES = re.compile(rf"(?<!\w)(?:{_alternatives(_TEXT_CATEGORY_PHRASES)})(?!\w)")
# What a figure written right after these words is: "thu nhập là 200.000 đ" is income,
# "đồ chơi (60.000 đ)" the toys' amount. Longest first.
_SUBJECT_WORDS: dict[str, str] = {
    "số dư tiết kiệm": "balance",
    "số dư": "balance",
    "tỷ lệ tiết kiệm": "rate",
    "tỉ lệ tiết kiệm": "rate",
    "tỷ lệ để dành": "rate",
    "tỉ lệ để dành": "rate",
    "mục tiêu tiết kiệm": "goal",
    "dòng tiền ròng": "net",
    "dòng tiền": "net",
    "tiền gửi tiết kiệm": "saving",
    "gửi tiết kiệm": "saving",
    "tiền để dành": "saving",
    "để dành": "saving",
    "tiết kiệm": "saving",
    "rút tiết kiệm": "withdrawal",
    "tiền rút": "withdrawal",
    "rút": "withdrawal",
    "thu nhập": "income",
    "tiền tiêu vặt": "income",
    "tiền nhận": "income",
    "nhận": "income",
    "chi tiêu": "spending",
    "tiền chi": "spending",
    "khoản chi": "spending",
    "mức chi": "spending",
    "chi": "spending",
    "tiêu": "spending",
}
# Words that may stand between a subject and its figure: "chi tiêu của [[KID]] là".
_FILLER = (
    r"là|đạt|được|có|khoảng|vào|ở|mức|tổng|cộng|hết|tuần|này|trong|của|\[\[kid\]\]|hiện|"
    r"đang|chỉ|tất|cả|gần|với|con|bé|em|đã|vừa|chiếm|tiền|số|ra|còn|lên|tới|đến"
)
_SUBJECT_BEFORE = re.compile(
    rf"(?<!\w)(?<!mục\s)(?P<subject>{_alternatives([*_SUBJECT_WORDS, *_TEXT_CATEGORY_PHRASES])})"
    rf"(?:[\s(:]+(?:{_FILLER}))*[\s(:]*$"
)
# After a figure: "100.000 đ cho đồ ăn vặt" (not "cho đồ ăn vặt và đồ chơi"), "71 % cho
# mục tiêu 1", "25 % số tiền nhận được" (the savings rate).
_CATEGORY_AFTER = re.compile(
    rf"\s*(?:cho|vào)\s(?P<category>{_CATEGORIES.pattern})"
    rf"(?!\s*(?:,|và|hoặc|cùng)\s*(?:{_CATEGORIES.pattern}))"
)
_GOAL_AFTER = re.compile(r"\s*(?:(?:số\stiền\s)?(?:cho|của)\s)?mục\stiêu\s(?P<goal>\d+)(?!\d)")
_RATE_AFTER = re.compile(
    r"\s*(?:của\s)?(?:số\stiền\s(?:nhận|được\scho)|thu\snhập|tiền\s(?:nhận|tiêu\svặt))"
)
# The labels (build_facts') each subject's figures carry, by kind of figure.
_SUBJECT_PATTERNS = {
    "income": r"income_total",
    "spending": r"spending_total|spending_by_category\[|share of",
    "saving": r"saving_total|savings_balance|savings_rate",
    "withdrawal": r"^withdrawal_total",
    "balance": r"savings_balance|saving_total - withdrawal_total",
    "net": r"^net_flow",
    "goal": r"target_amount|progress_percent",
    "rate": r"^savings_rate",
    "spent_share": r"^spending_total / income_total",
    "of_income": r"^savings_rate|^spending_total / income_total",
}
_NOT_NOW = re.compile(r"prev|mean")  # W-1's, W-2's, their mean, a change against them
# A sentence that compares weeks or states a change may state any allowed value; one that
# does not states this week's figures.
_COMPARES = re.compile(
    r"tuần\strước|trước\sđó|hai\stuần|2\stuần|trung\sbình|so\svới|hơn|tăng|giảm|chênh|"
    r"thay\sđổi|kém|vượt|đi\slên|đi\sxuống|lên|xuống|(?<!\w)từ(?!\w)|thêm|bớt|bằng|như"
)


def _subject_labels(subject: str) -> re.Pattern[str]:
    if subject.startswith("goal:"):
        return re.compile(rf"^mục tiêu {re.escape(subject[5:])} progress_percent$")
    return _SUBJECT_REGEXES[subject]


_SUBJECT_REGEXES = {k: re.compile(v) for k, v in _SUBJECT_PATTERNS.items()}


_FACTS_CACHE: dict[str, Facts] = {}
_FACTS_CACHE_SIZE = 1024


def facts_for(data: Mapping[str, Any] | Facts) -> Facts:
    """`build_facts`, remembered per data block (a re-ask checks the same data again)."""
    if isinstance(data, Facts):
        return data
    key = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    facts = _FACTS_CACHE.get(key)
    if facts is None:
        if len(_FACTS_CACHE) >= _FACTS_CACHE_SIZE:
            _FACTS_CACHE.clear()
        facts = _FACTS_CACHE[key] = build_facts(data)
    return facts


# --- reading the text -------------------------------------------------------------------

_CURRENCY = r"(?:đồng|vnđ|vnd|đ(?!\w)|₫)"
# "160 000 đ": thousands grouped by spaces are one amount when a currency follows
_NUMBER = re.compile(
    rf"(?<![\w.,/])(?P<sign>[-−](?=\d))?"
    rf"(?P<num>\d{{1,3}}(?:[ \u00a0\u202f]\d{{3}})+(?=\s?{_CURRENCY})|\d+(?:[.,]\d+)*)(?!\d)"
)
_UNIT = re.compile(
    rf"""\s?(?:
      (?P<pct>%|phần\s+trăm)
    | (?P<mil>(?:triệu|tr(?!\w))
        (?:\s?(?P<mil_thou>\d{{1,3}})\s?(?:nghìn|ngàn|k(?!\w)))?(?:\s?{_CURRENCY})?)
    | (?P<bil>(?:tỷ|tỉ)(?!\w)(?:\s?{_CURRENCY})?)
    | (?P<thou>(?:nghìn|ngàn|k(?!\w))(?:\s?{_CURRENCY})?)
    | (?P<cur>{_CURRENCY})
    | (?P<days>(?:/\s?7\s?|\s?trên\s7\s)?ngày)
    | (?P<count>giao\sdịch|sự\skiện|hoạt\sđộng|lượt|lần)(?!\w)
    | (?P<skip>/\s?\d|điểm|tuần|tuổi|tháng|năm|giờ|phút|bài|câu|mục)
    )""",
    re.X,
)
_SPELLED = {
    "một": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4, "năm": 5,
    "sáu": 6, "bảy": 7, "bẩy": 7, "tám": 8, "chín": 9, "mười": 10,
}  # fmt: skip
_SPELLED_DAYS = re.compile(
    r"(?<!\w)(?P<word>" + "|".join(_SPELLED) + r")\s(?P<unit>ngày|giao\sdịch|sự\skiện)(?!\w)"
)
_BARE_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?:,\d{3}){2,}")
# Just before an amount: how its sign is said in words.
_SIGN_BEFORE = re.compile(
    # "chi nhiều hơn nhận 77.000 đ": the net flow is -77.000
    r"(?P<net>(?:chi|tiêu|chi\stiêu)\s(?:nhiều\shơn|vượt(?:\squá)?)\s"
    r"(?:số\stiền\s|tiền\s)?(?:nhận(?:\sđược)?|thu\snhập|thu)\s*(?:là\s|khoảng\s)?$)"
    r"|(?P<neg>(?:(?<!\w)âm|thâm\shụt|thiếu\shụt|hụt)\s*$)"
    r"|(?P<pos>(?:(?<!\w)dương|(?<!số\s)(?<!\w)dư(?:\sra)?|(?:nhận|thu\snhập|thu)\snhiều\shơn\s"
    r"(?:chi\stiêu|chi|tiêu))\s*(?:là\s)?$)"
)
_SIGN_OF = {"net": "net-", "neg": "-", "pos": "+"}
# A recommendation's target is not a claim about the week.
_TARGET_BEFORE = re.compile(r"mục\stiêu|ít\snhất|tối\sthiểu|tối\sđa|không\squá|dưới|thêm")
_PER_AFTER = re.compile(r"\s*(?:mỗi|một)\s(?:ngày|tuần|tháng|lần)")
_ADVICE = re.compile(
    r"(?<!\w)(?:nên|hãy|cần|cố\sgắng|khuyến\skhích|thử|mục\stiêu|đặt|giúp|có\sthể|nếu|muốn|nhằm)"
    r"(?!\w)"
)
# Sentences end at . ! ? ; : (not inside 160.000) or a line break; clauses at ", ", " - "
# and before a conjunction that starts a new subject.
_BOUNDARIES = re.compile(
    r"(?P<sentence>(?:[.!?;:](?=\s|$)|\n)+)"
    r"|(?P<clause>,\s|\s[-–]\s|\s(?=(?:nhưng|trong\skhi|tuy\snhiên|song|còn)\s))"
)
# Longest first: "số dư tiết kiệm" is the balance, "tỷ lệ tiết kiệm" has no trend.
_METRIC_WORDS: tuple[tuple[str, str | None], ...] = (
    ("số dư tiết kiệm", "savings_balance"),
    ("số dư", "savings_balance"),
    ("tỷ lệ tiết kiệm", None),
    ("tỉ lệ tiết kiệm", None),
    ("tỷ lệ để dành", None),
    ("mục tiêu tiết kiệm", None),
    ("rút tiết kiệm", None),
    ("hoạt động tài chính", None),
    ("thói quen tiết kiệm", None),  # a habit, not this week's amount
    ("thói quen chi tiêu", None),
    ("tinh thần tiết kiệm", None),
    ("ý thức tiết kiệm", None),
    ("dòng tiền", None),
    ("tiền rút", None),
    ("số ngày hoạt động", "active_days"),
    ("ngày hoạt động", "active_days"),
    ("mức độ hoạt động", "active_days"),
    ("hoạt động", "active_days"),
    ("số giao dịch", "txn_count"),
    ("giao dịch", "txn_count"),
    ("thu nhập", "income_total"),
    ("tiền tiêu vặt", "income_total"),
    ("số tiền nhận", "income_total"),
    ("tiền nhận", "income_total"),
    ("khoản nhận", "income_total"),
    ("chi tiêu", "spending_total"),
    ("tiền chi", "spending_total"),
    ("khoản chi", "spending_total"),
    ("mức chi", "spending_total"),
    ("gửi tiết kiệm", "saving_total"),
    ("tiết kiệm", "saving_total"),
    ("để dành", "saving_total"),
)
# The verbs alone, after every phrase: "[[KID]] chi ít hơn tuần trước" is spending.
_METRIC_VERBS = {"chi": "spending_total", "tiêu": "spending_total", "nhận": "income_total"}
_METRIC_OF = dict(_METRIC_WORDS) | _METRIC_VERBS
_METRICS = re.compile(
    r"(?<!\w)(?:"
    + "|".join(re.escape(w).replace(r"\ ", r"\s") for w, _ in _METRIC_WORDS)
    # not "chi tiết", "mục tiêu", "tiêu cực", "nhận xét", "nhận thấy" ...
    + r"|chi(?!\s(?:tiết|phí))|(?<!mục\s)tiêu(?!\s(?:cực|chí|chuẩn))"
    + r"|nhận(?!\s(?:xét|thấy|ra|thức|biết|định))"
    + r")(?!\w)"
)
_DIRECTIONS = re.compile(
    r"(?<!\w)(?:"
    # not "tương đương" (equal to: "50.000 đ, tương đương 25%"), nor "mới có" (only had)
    r"(?P<flat>không\sđổi|không\sthay\sđổi|giữ\snguyên|ổn\sđịnh|đi\sngang)"
    r"|(?P<new>mới\sxuất\shiện|lần\sđầu|mới\sbắt\sđầu)"
    r"|(?P<neg>(?:không|chưa)\s)?(?:(?P<up>tăng(?!\scường)|đi\slên)|(?P<down>giảm|đi\sxuống)"
    r"|(?P<more>cao\shơn|nhiều\shơn)|(?P<less>thấp\shơn|ít\shơn))"
    r")(?!\w)"
)
_PAST = re.compile(r"tuần\strước|trước\sđó|hai\stuần|2\stuần")
_PREV1_ONLY = re.compile(r"(?<!hai\s)(?<!2\s)(?<!các\s)(?<!những\s)tuần\strước")
_MEAN_REF = re.compile(r"hai\stuần|2\stuần|trung\sbình|các\stuần|những\stuần")
_DIRECTION_KINDS = ("flat", "new", "up", "down", "more", "less")
_SPACES = re.compile(r"\s+")
# A clause states a number only if it has a digit or a number word.
_MAY_STATE = re.compile(r"\d|(?<!\w)(?:" + "|".join(_SPELLED) + r")\s")
_SENTENCE_OF_WORDS = re.compile(rf"(?:[^\W\d_]+[\W\d_]+){{{MIN_WORDS - 1}}}[^\W\d_]")
_JSONISH = re.compile(r"[{}\[\]]|\"\s*:")
_METRIC_NAMES = {
    "income_total": "thu nhập",
    "spending_total": "chi tiêu",
    "saving_total": "tiết kiệm",
    "txn_count": "số giao dịch",
    "active_days": "số ngày hoạt động",
    "savings_balance": "số dư tiết kiệm",
}


@dataclass(frozen=True)
class _Stated:
    """A number as the text states it."""

    kind: str  # money, percent, days, count
    value: float  # as written, made positive
    tolerance: float  # half the unit it is written to
    sign: str  # "", "-", "+", "net-": how the text signed it
    start: int
    end: int


def _parse_number(num: str, decimal_comma: bool) -> tuple[float, float]:
    """(value, unit of the last digit) of a number written Vietnamese or English style."""
    num = re.sub(r"[ \u00a0\u202f]", "", num)
    if "." in num and "," in num:
        dec = "," if num.rfind(",") > num.rfind(".") else "."
        whole, _, frac = num.rpartition(dec)
        whole = whole.replace("." if dec == "," else ",", "")
    elif num.count(".") > 1 or num.count(",") > 1:
        whole, frac = num.replace(".", "").replace(",", ""), ""
    elif "." in num or "," in num:
        sep = "." if "." in num else ","
        whole, _, frac = num.partition(sep)
        # 160.000 / 160,000 are thousands; 1,2 and 7,5 are decimals.
        if len(frac) == 3 and not (decimal_comma and sep == ","):
            whole, frac = whole + frac, ""
    else:
        whole, frac = num, ""
    value = float(f"{whole}.{frac}" if frac else whole)
    return value, 10.0 ** -len(frac)


def _unit_kind(unit: re.Match[str] | None) -> str | None:
    # Each kind is the outermost group of its alternative: the last group to close.
    return unit.lastgroup if unit is not None else None


def _stated_numbers(clause: str, spelled: bool = True) -> Iterator[_Stated]:
    consumed = 0  # "1 triệu 200 nghìn" is one amount, not two
    for m in _NUMBER.finditer(clause):
        num, start = m.group("num"), m.start()
        if start < consumed:
            continue
        unit = _UNIT.match(clause, m.end())
        group = _unit_kind(unit)
        if group == "skip":
            continue
        if group == "pct":
            value, step = _parse_number(num, decimal_comma=True)
            kind, scale = "percent", 1.0
        elif group in ("mil", "bil", "thou"):
            value, step = _parse_number(num, decimal_comma=True)
            scale = {"mil": 1e6, "bil": 1e9, "thou": 1e3}[group]
            kind = "money"
            if group == "mil" and unit and unit.group("mil_thou"):  # 1 triệu 200 nghìn
                value += int(unit.group("mil_thou")) / 1000
                step = min(step, 0.001)
        elif group == "cur":
            value, step = _parse_number(num, decimal_comma=False)
            kind, scale = "money", 1.0
        elif group in ("days", "count"):
            value, step = _parse_number(num, decimal_comma=True)
            kind, scale = group, 1.0
        elif _BARE_THOUSANDS.fullmatch(num):  # "nhận 160.000 và chi ..."
            value, step = _parse_number(num, decimal_comma=False)
            kind, scale = "money", 1.0
        else:
            continue  # a small bare number: an ordinal, a list, not a claim we can place
        end = consumed = unit.end() if unit and group else m.end()
        sign = "-" if m.group("sign") else ""
        if kind == "money" and not sign:
            said = _SIGN_BEFORE.search(clause, max(0, start - 40), start)
            sign = _SIGN_OF[said.lastgroup] if said and said.lastgroup else ""
        tolerance = step * scale / 2 if kind in ("money", "percent") else _EXACT
        if kind in ("days", "count") and step < 1:
            tolerance = step / 2
        yield _Stated(kind, value * scale, tolerance, sign, start, end)
    for m in _SPELLED_DAYS.finditer(clause) if spelled else ():
        kind = "days" if m.group("unit") == "ngày" else "count"
        yield _Stated(kind, float(_SPELLED[m.group("word")]), _EXACT, "", m.start(), m.end())


def _is_target(text: str, clause_starts: list[int], n: _Stated) -> bool:
    """In a recommendation: a goal ("ít nhất 20%", "5.000 đ mỗi ngày"), not a claim."""
    start = clause_starts[bisect.bisect_right(clause_starts, n.start) - 1]
    if _TARGET_BEFORE.search(text, start, n.start) or _PER_AFTER.match(text, n.end):
        return True
    # "thử 2 ngày không mua đồ ăn vặt": days and counts in advice are plans
    return n.kind in ("days", "count") and bool(_ADVICE.search(text, start, n.start))


def _clauses(text: str) -> list[list[tuple[int, int]]]:
    """The sentences of a text, each as its clauses' (start, end); one regex pass."""
    sentences: list[list[tuple[int, int]]] = []
    clauses: list[tuple[int, int]] = []
    at = 0
    for m in _BOUNDARIES.finditer(text):
        if m.start() > at:
            clauses.append((at, m.start()))
        if m.lastgroup == "sentence" and clauses:
            sentences.append(clauses)
            clauses = []
        at = m.end()
    if len(text) > at:
        clauses.append((at, len(text)))
    if clauses:
        sentences.append(clauses)
    return sentences


def _clause_of(sentences: list[list[tuple[int, int]]], at: int) -> tuple[int, tuple[int, int]]:
    """The start of the clause holding `at`, and its sentence's (start, end)."""
    for clauses in sentences:
        if at < clauses[-1][1]:
            start = next((s for s, _ in reversed(clauses) if s <= at), clauses[0][0])
            return start, (clauses[0][0], clauses[-1][1])
    return 0, (0, at)


_SUPERLATIVE = re.compile(
    r"(?<!\w)(?:nhiều\snhất|lớn\snhất|cao\snhất|chủ\syếu|phần\slớn|đứng\sđầu|dẫn\sđầu)(?!\w)"
)
_SPENDS = re.compile(r"(?<!\w)(?:chi|tiêu|mua|khoản|danh\smục)(?!\w)")
# "đã đạt mục tiêu 1", "đủ tiền cho mục tiêu 2", "chưa hoàn thành mục tiêu tiết kiệm",
# "mục tiêu 3 đã hoàn thành"; not "đã đạt 71 %" (a progress, checked as a number).
_GOAL_DONE = r"(?:đạt(?:\sđược)?|hoàn\sthành|đủ(?:\s(?:số\s)?tiền)?(?:\scho)?|chạm(?:\stới|\sđến)?)"
_GOAL_CLAIMS = re.compile(
    rf"(?<!\w)(?P<neg>(?:chưa|không)\s(?:(?:đã|được)\s)?)?{_GOAL_DONE}\s(?:được\s)?mục\stiêu"
    r"(?:\s(?P<n>\d+)(?!\d)|(?=\s*(?:$|[.,;!]|\stiết\skiệm|\scủa\s(?:mình|con|bé)|\sđã\sđặt)))"
    rf"|mục\stiêu\s(?P<n2>\d+)(?:\s\([^)]*\))?\s(?P<neg2>(?:chưa|không)\s)?(?:(?:đã|vừa)\s)?"
    r"(?:được\s)?(?:hoàn\sthành|đạt|đủ)(?!\s*(?:được\s*)?\d)"
)
_NOT_A_CLAIM = re.compile(
    r"(?<!\w)(?:để(?!\sdành)|cần|muốn|sắp|gần|nhằm|sẽ|có\sthể|nên|hãy|cố\sgắng|giúp|nếu|khi|mong"
    r"|nữa)(?!\w)"  # "còn 120.000 đ nữa là đạt mục tiêu 1": what is left
)


# --- the checks ----------------------------------------------------------------------------


class _Checker:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.findings: list[Finding] = []

    def add(self, kind: str, field: str, span: str, message: str) -> None:
        self.findings.append(Finding(kind, field, span.strip(), message))

    def field(self, field: str, original: str) -> None:
        text = unicodedata.normalize("NFC", original)
        for masked in self.facts.masked:  # a child or category named "Bin 2015"
            text = text.replace(masked, " " * len(masked))
        if not _SENTENCE_OF_WORDS.search(text) or _JSONISH.search(text.replace(PLACEHOLDER, "")):
            self.add("too_thin", field, original[:80], f"not a sentence of words: {original!r}")
            return
        low = text.lower()
        # The labels ("mục tiêu 1") masked out of `low`, at the same places.
        labelled_low = unicodedata.normalize("NFC", original).lower()
        advice_field = field.startswith("recommendations")
        # One pass of each regex over the field; clauses only bound what they found.
        stated = list(_stated_numbers(low, not advice_field)) if _MAY_STATE.search(low) else []
        directions = list(_DIRECTIONS.finditer(low))
        sentences = _clauses(low)
        if advice_field and stated:
            starts = [s for clauses in sentences for s, _ in clauses]
            stated = [n for n in stated if not _is_target(low, starts, n)]
        for n in stated:
            before = len(self.findings)
            self.number(field, text[n.start : n.end], n)
            if len(self.findings) == before:
                self.bound(field, text, low, labelled_low, sentences, n)
        if directions:
            self.trends(field, text, low, sentences, directions, stated)
        self.top_category(field, text, low, sentences)
        self.goal_claims(field, text, labelled_low, sentences)

    # what a figure is said to be

    def bound(
        self,
        field: str,
        text: str,
        low: str,
        labelled_low: str,
        sentences: list[list[tuple[int, int]]],
        n: _Stated,
    ) -> None:
        """A figure said of a subject ("thu nhập là 200.000 đ", "đồ chơi (60.000 đ)", "71 %
        cho mục tiêu 1") must be that subject's; one in a sentence that compares no weeks
        and states no change must be this week's ("hoạt động 4 ngày" is not W-2's 4)."""
        if n.sign in ("net-", "+"):  # "chi nhiều hơn nhận 90.000 đ": checked as net_flow
            return
        clause_start, sentence = _clause_of(sentences, n.start)
        now = not _COMPARES.search(low, *sentence)
        span = text[n.start : n.end]
        subject = self.subject_of(low, labelled_low, clause_start, n)
        if subject is not None and subject.startswith("cat:"):
            values = self.facts.categories.get(subject[4:], ())
            allowed = [amount if n.kind == "money" else share for amount, share in values]
            if not any(abs(v - n.value) <= n.tolerance + 1e-9 for v in allowed):
                said = subject[4:]
                near = ", ".join(_plain(v) for v in allowed) or "none in the data"
                msg = f"{span!r} is not what was spent on {said} ({near})"
                self.add("wrong_metric", field, span, msg)
            return
        if subject is None and not now:
            return
        pool = self.facts.pool({"count": "counts"}.get(n.kind, n.kind), subject, now)
        if any(abs(v - n.value) <= n.tolerance + 1e-9 for v, _ in pool):
            return
        near = _Values.of(pool).nearest(n.value)
        if subject is not None:
            msg = f"{span!r} is not {subject}{' this week' if now else ''} (it is: {near})"
            self.add("wrong_metric", field, span, msg)
        else:
            msg = f"{span!r} is not a figure of this week (nearest: {near})"
            self.add("not_this_week", field, span, msg)

    def subject_of(self, low: str, labelled_low: str, clause_start: int, n: _Stated) -> str | None:
        """What the text says a figure is, from the words right after it or before it."""
        if n.kind == "percent":
            goal = _GOAL_AFTER.match(labelled_low, n.end)
            if goal:
                return f"goal:{goal.group('goal')}"
            if _RATE_AFTER.match(low, n.end):  # "... % số tiền nhận được": of the income
                before = _SUBJECT_BEFORE.search(low, clause_start, n.start)
                said = before and _SUBJECT_WORDS.get(_SPACES.sub(" ", before["subject"]))
                return {"spending": "spent_share", "saving": "rate"}.get(said or "", "of_income")
        if n.kind in ("money", "percent"):
            category = _CATEGORY_AFTER.match(low, n.end) if n.kind == "money" else None
            if category:
                return f"cat:{_group_of(category.group('category'))}"
            if _ADVICE.search(low, clause_start, n.start):  # "cần để dành 120.000 đ nữa"
                return None
            before = _SUBJECT_BEFORE.search(low, clause_start, n.start)
            if before:
                word = _SPACES.sub(" ", before.group("subject"))
                subject = _SUBJECT_WORDS.get(word)
                if subject is None:
                    return f"cat:{_group_of(word)}"
                if n.kind == "money" or subject in ("rate", "saving", "spending", "income"):
                    return subject
        return None

    def top_category(
        self, field: str, text: str, low: str, sentences: list[list[tuple[int, int]]]
    ) -> None:
        """ "Chi nhiều nhất cho đồ chơi": the category named must be the top one."""
        for clauses in sentences:
            if not _SPENDS.search(low, clauses[0][0], clauses[-1][1]):
                continue
            for s, e in clauses:
                if not _SUPERLATIVE.search(low, s, e) or _ADVICE.search(low, s, e):
                    continue
                named = [m for m in _CATEGORIES.finditer(low, s, e)]
                groups = {_group_of(m.group()) for m in named}
                if groups and not groups & self.facts.top_groups:
                    top = ", ".join(sorted(self.facts.top_groups)) or "none (no spending)"
                    span = text[s:e]
                    msg = f"{span.strip()!r}: the top spending category is {top}"
                    self.add("wrong_category", field, span, msg)

    def goal_claims(
        self, field: str, text: str, labelled_low: str, sentences: list[list[tuple[int, int]]]
    ) -> None:
        """ "Đã đạt mục tiêu 1", "chưa đạt mục tiêu 2": as the goal's reached/completed."""
        goals = self.facts.goals
        for m in _GOAL_CLAIMS.finditer(labelled_low):
            clause_start, _ = _clause_of(sentences, m.start())
            if _NOT_A_CLAIM.search(labelled_low, clause_start, m.start()):
                continue  # "để đạt mục tiêu 1": a purpose, not a fact
            number = m.group("n") or m.group("n2")
            negated = bool(m.group("neg") or m.group("neg2"))
            states = [goals[number]] if number in goals else [] if number else [*goals.values()]
            said_done = [done for done, _ in states]
            # "chưa đạt mục tiêu 5" with no goal 5 is no truer than "đã đạt" it
            not_done = not all(said_done) if states else not number
            ok = not_done if negated else any(said_done)
            if not ok:
                which = f"mục tiêu {number}" if number else "no goal"
                state = "reached" if any(said_done) else "not reached" if states else "absent"
                span = text[m.start() : m.end()]
                self.add("wrong_goal", field, span, f"{span!r}: {which} is {state}")

    # numbers

    def number(self, field: str, span: str, n: _Stated) -> None:
        f = self.facts
        if n.kind == "money":
            self.money(field, span, n)
        elif n.kind == "percent":
            pool = f.signed_percents if n.sign == "-" else f.percents
            value = -n.value if n.sign == "-" else n.value
            if pool.match(value, n.tolerance) is None:
                if n.sign == "-" and f.percents.match(n.value, n.tolerance):
                    self.add("wrong_sign", field, span, f"{span!r}: that change is not negative")
                else:
                    near = f.percents.nearest(n.value)
                    self.add(
                        "unknown_percent",
                        field,
                        span,
                        f"{span!r} is no percentage of the data (nearest: {near})",
                    )
        elif n.kind == "days" and f.days.match(n.value, n.tolerance) is None:
            near = f.days.nearest(n.value)
            self.add(
                "unknown_days",
                field,
                span,
                f"{span!r} matches no day count of the data (nearest: {near})",
            )
        elif n.kind == "count" and f.counts.match(n.value, n.tolerance) is None:
            near = f.counts.nearest(n.value)
            self.add(
                "unknown_count",
                field,
                span,
                f"{span!r} matches no count of the data (nearest: {near})",
            )

    def money(self, field: str, span: str, n: _Stated) -> None:
        f, v, tol = self.facts, n.value, n.tolerance
        if n.sign == "net-":  # "chi nhiều hơn nhận X": net flow is -X
            if abs(f.net_flow + v) <= tol + 1e-9:
                return
            if abs(f.net_flow - v) <= tol + 1e-9:
                msg = f"{span!r}: spending did not exceed income (net_flow = {_plain(f.net_flow)})"
                self.add("wrong_sign", field, span, msg)
            else:
                msg = f"{span!r}: net_flow is {_plain(f.net_flow)}"
                self.add("unknown_amount", field, span, msg)
            return
        if n.sign in ("-", "+"):
            signed = -v if n.sign == "-" else v
            if f.signed_money.match(signed, tol) is not None:
                return
            if f.signed_money.match(-signed, tol) is not None:
                sign = "negative" if n.sign == "-" else "positive"
                self.add("wrong_sign", field, span, f"{span!r}: that amount is not {sign}")
                return
        if f.money.match(v, tol) is None:
            near = f.money.nearest(v)
            self.add(
                "unknown_amount",
                field,
                span,
                f"{span!r} matches no amount of the data (nearest: {near})",
            )

    # trends

    def trends(
        self,
        field: str,
        text: str,
        low: str,
        sentences: list[list[tuple[int, int]]],
        directions: list[re.Match[str]],
        stated: list[_Stated],
    ) -> None:
        """Check each trend statement: a direction after the metric it is about (in its
        clause, or the clause before in the same sentence: "Chi tiêu 160.000 đ, tăng ...")."""
        metrics = [
            (m.start(), m.end(), _METRIC_OF[_SPACES.sub(" ", m.group())])
            for m in _METRICS.finditer(low)
        ]
        for clauses in sentences:
            first, last = clauses[0][0], clauses[-1][1]
            here = [d for d in directions if first <= d.start() < last]
            if not here:
                continue
            sentence_has_past = any(_PAST.search(low, a, b) for a, b in clauses)
            refs = {_reference(low, a, b) for a, b in clauses} - {None}
            sentence_ref = refs.pop() if len(refs) == 1 else None
            context: str | None = None
            for s, e in clauses:
                named = [(end, metric) for start, end, metric in metrics if s <= start < e]
                said = [d for d in here if s <= d.start() < e]
                if said and not _ADVICE.search(low, s, e):
                    ref = _reference(low, s, e) or sentence_ref
                    for d in said:
                        before = [metric for end, metric in named if end <= d.start()]
                        metric = before[-1] if before else (context if not named else None)
                        if not before:  # "[[KID]] đã giảm chi tiêu": the metric it moves
                            metric = _object_of(low, d.end(), metrics) or metric
                        if metric is None:
                            continue
                        if (d.group("more") or d.group("less")) and not sentence_has_past:
                            continue  # "chi nhiều hơn nhận": metrics compared, not weeks
                        direction = next(k for k in _DIRECTION_KINDS if d.group(k))
                        direction = {"more": "up", "less": "down"}.get(direction, direction)
                        negated = bool(d.group("neg"))
                        span = text[max(s, d.start() - 40) : d.end()]
                        in_sentence = [n for n in stated if n.start < last]
                        self.trend(
                            field, text, span, d, metric, direction, negated, in_sentence, ref
                        )
                context = named[-1][1] if named else context

    def trend(
        self,
        field: str,
        text: str,
        span: str,
        d: re.Match[str],
        metric: str,
        direction: str,
        negated: bool,
        stated: list[_Stated],
        reference: str | None,
    ) -> None:
        f = self.facts
        name = _METRIC_NAMES[metric]
        prev1_only = metric in f.prev1 and reference == "prev1"
        if prev1_only:
            value, prev1 = f.values[metric], f.prev1[metric]
            actual = "up" if value > prev1 else "down" if value < prev1 else "flat"
            if prev1 == 0 and value > 0:
                actual = "new"
            against = f"{metric} {_plain(value)} vs prev1 {_plain(prev1)}"
            ok = _agrees(direction, negated, actual) or (
                direction == "flat" and f.trends[metric] == "flat"
            )
        else:
            actual = f.trends.get(metric, "")
            against = f"{metric}_trend is {actual}" if metric in f.prev1 else f"{metric} {actual}"
            ok = not actual or _agrees(direction, negated, actual)
        if not ok:
            said = d.group()
            self.add("wrong_trend", field, span, f"says {name} {said}, but {against}")
            return
        if negated or direction not in ("up", "down"):
            return
        # The change it states: the next number of its sentence ("giảm 20.000 đ"), not of
        # the next one ("... giảm. Con đã để dành được 0 % cho mục tiêu 1").
        after = next((n for n in stated if n.start >= d.end()), None)
        if after is not None:
            span = text[after.start : after.end]
            self.change_sign(field, span, metric, direction, after, reference)

    def change_sign(
        self,
        field: str,
        span: str,
        metric: str,
        direction: str,
        n: _Stated,
        reference: str | None = None,
    ) -> None:
        """A stated change must have the direction's sign ("tăng 20.000 đ" is +20.000) and
        be the change against the week it names ("so với tuần trước" is prev1's)."""
        f = self.facts
        if n.kind == "percent":
            candidates = list(f.percent_changes.get(metric, ()))
        elif n.kind == _KIND_OF.get(metric):
            candidates = list(f.changes.get(metric, ()))
        else:
            return
        close = [
            (c, label) for c, label in candidates if abs(abs(c) - n.value) <= n.tolerance + 1e-9
        ]
        if not close:
            return  # a level ("tăng lên 160.000 đ") or an unknown number, checked as such
        # The balance's one change is against last week's end: any reference names it.
        against = _AGAINST.get(reference or "", ()) if metric != "savings_balance" else ()
        matching = [c for c, label in close if not against or label.endswith(against)]
        if not matching:
            name, which = _METRIC_NAMES[metric], close[0][1].rpartition(" - ")[2]
            msg = f"{span!r} is {name}'s change against {which}, not against {reference}"
            self.add("wrong_change", field, span, msg)
            return
        want = 1 if direction == "up" else -1
        if not any(c * want > 0 for c in matching):
            name = _METRIC_NAMES[metric]
            said = "tăng" if direction == "up" else "giảm"
            self.add(
                "wrong_sign",
                field,
                span,
                f"says {name} {said} {span}, but that change has the other sign",
            )


# The changes a reference names: "tuần trước" is prev1's; "hai tuần trước" the mean's (as
# the prompt uses it) or W-2's.
_AGAINST = {"prev1": ("- prev1",), "mean": ("- mean", "- prev2")}
_KIND_OF = {
    **dict.fromkeys(MONEY_METRICS, "money"),
    "savings_balance": "money",
    "txn_count": "count",
    "active_days": "days",
}


def _object_of(low: str, at: int, metrics: list[tuple[int, int, str | None]]) -> str | None:
    """The metric named right after a direction ("giảm chi tiêu", "tăng được tiết kiệm")."""
    for start, _, metric in metrics:
        if start >= at:
            return metric if low[at:start].strip() in ("", "được") else None
    return None


def _reference(text: str, start: int, end: int) -> str | None:
    """What a comparison is against: "tuần trước" is prev1, "hai tuần trước" their mean."""
    if _MEAN_REF.search(text, start, end):
        return "mean"
    return "prev1" if _PREV1_ONLY.search(text, start, end) else None


def _agrees(direction: str, negated: bool, actual: str) -> bool:
    if negated:
        return actual in _NOT_AGREES.get(direction, frozenset({actual}))
    return actual in _AGREES.get(direction, frozenset())


def report_texts(report: Mapping[str, Any] | BaseModel) -> list[tuple[str, str]]:
    """(field, text) of every text field and every recommendation."""
    data = report.model_dump() if isinstance(report, BaseModel) else report
    texts = [(name, str(data.get(name) or "")) for name in TEXT_FIELDS]
    recommendations = data.get("recommendations") or []
    texts += [(f"recommendations[{i}]", str(r)) for i, r in enumerate(recommendations)]
    return texts


def check_report(
    report: Mapping[str, Any] | BaseModel, data: Mapping[str, Any] | Facts
) -> list[Finding]:
    """Every statement of `report` that `data` (what the model was given) does not support."""
    checker = _Checker(facts_for(data))
    for field, text in report_texts(report):
        checker.field(field, text)
    return checker.findings


def describe_findings(findings: Sequence[Finding], limit: int = 6) -> str:
    """A few lines for a re-ask message or a reviewer: what is wrong, where."""
    lines = [f"- {f.field}: {f.message}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"- and {len(findings) - limit} more")
    return "\n".join(lines)
