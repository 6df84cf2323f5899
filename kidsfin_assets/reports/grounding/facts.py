"""The values a report may state about one data block, computed once (`Facts`), and
which of them each subject's figures may be."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kidsfin_assets.reports.grounding.vocabulary import group_of
from kidsfin_assets.warehouse.tables import TREND_METRICS

MONEY_METRICS = ("income_total", "spending_total", "saving_total")


COUNT_METRICS = ("txn_count",)


DAY_METRICS = ("active_days",)  # with the two above: the kinds of TREND_METRICS


@dataclass(frozen=True)
class Values:
    """Allowed values of one kind, sorted, each with what it is (for the messages)."""

    values: tuple[float, ...]
    labels: tuple[str, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, str]]) -> Values:
        # Equal values: the plainest name first (income_total before a mean equal to it),
        # then in the given order. Sorted as plain tuples, without a key function; a whole
        # float is its own rounding, so only the others pay for `round` (built per report).
        ordered = [
            (v if type(v) is float and v.is_integer() else round(v, 6), len(label), i, label)
            for i, (v, label) in enumerate(pairs)
            if math.isfinite(v)
        ]
        ordered.sort()
        return cls(tuple([o[0] for o in ordered]), tuple([o[3] for o in ordered]))

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
        return f"{self.labels[near]} = {plain(self.values[near])}"


_SIGNABLE = re.compile(r"net_flow|savings_balance| - ")


@dataclass(frozen=True)
class Facts:
    """Everything a report may state about one data block, computed once."""

    money: Values  # absolute values
    signed_money: Values
    percents: Values  # absolute values
    signed_percents: Values
    days: Values
    counts: Values
    trends: Mapping[str, str]  # metric -> up/down/flat/new (savings_balance derived)
    changes: Mapping[str, tuple[tuple[float, str], ...]]  # metric -> signed changes
    percent_changes: Mapping[str, tuple[tuple[float, str], ...]]
    prev1: Mapping[str, float]
    values: Mapping[str, float]
    net_flow: float
    masked: tuple[str, ...]  # data text (names, categories) with digits, not the model's
    masks: re.Pattern[str] | None  # `masked` as one pattern, any case
    # (absolute value, label) of every allowed value, by kind: what `pool` filters
    labelled: Mapping[str, tuple[tuple[float, str], ...]]
    categories: Mapping[str, tuple[tuple[float, float], ...]]  # group -> (amount, share %)
    goals: Mapping[str, tuple[bool, float | None]]  # "1" -> (reached or completed, progress)
    data: Mapping[str, Any]  # the data block itself, for the claims read by `value`
    ranking: tuple[tuple[str, float], ...]  # category groups by amount spent, largest first
    _pools: dict[tuple[str, str | None, bool | str], tuple[tuple[float, str], ...]] = (
        dataclasses.field(default_factory=dict)
    )
    _labels: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # by kind

    def pool(
        self, kind: str, subject: str | None, now: bool | str
    ) -> tuple[tuple[float, str], ...]:
        """The allowed (value, label) of `kind` that are `subject`'s (income, spending,
        goal:1 ...; None: any), and only this week's own when `now` is True (no prev1,
        prev2, mean or change); `now` "prev1" or "prev2": only that week's."""
        key = (kind, subject, now)
        if key not in self._pools:
            labelled = self.labelled[kind]
            if kind not in self._labels:
                self._labels[kind] = tuple(label for _, label in labelled)
            members = _pool_members(self._labels[kind], subject, now)
            self._pools[key] = tuple(labelled[i] for i in members)
        return self._pools[key]

    def _goal_value(self, what: str, number: str) -> float | None:
        """A goal's target or progress (as a share); an unnumbered goal is the only one."""
        goals = self.data.get("savings_goals") or []
        if not number and len(goals) == 1:
            number = str(goals[0].get("goal") or "").rpartition(" ")[2]
        goal = next((g for g in goals if str(g.get("goal")) == f"mục tiêu {number}"), None)
        if goal is None:
            return None
        if what == "target":
            target = goal.get("target_amount")
            return float(target) if isinstance(target, int | float) else None
        progress = goal.get("progress_percent")
        if progress is None and goal.get("completed_in_week"):
            progress = 100
        return float(progress) / 100 if isinstance(progress, int | float) else None

    def value(self, metric: str, week: str = "now") -> float | None:
        """A metric of the data block in a week ("now", "prev1", "prev2", "mean"); None
        where the data does not hold it (a category's or the balance's other weeks)."""
        if metric.startswith("cat:"):
            if week != "now":
                return None
            return sum(amount for amount, _ in self.categories.get(metric[4:], ()))
        if metric.startswith(("target:", "progress:")):
            return self._goal_value(*metric.split(":"))
        if week == "now":
            value = self.data.get(metric)
            return float(value) if isinstance(value, int | float) else None
        if metric not in self.prev1:
            return None
        p1, p2 = _num(self.data, f"{metric}_prev1"), _num(self.data, f"{metric}_prev2")
        return {"prev1": p1, "prev2": p2, "mean": (p1 + p2) / 2}.get(week)


def plain(value: float) -> str:
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
    counts += _count_facts(data)
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
    masked = tuple(sorted((t for t in texts if any(c.isdigit() for c in t)), key=len)[::-1])
    # (absolute value, label) by kind, made once for the unsigned Values and `labelled`
    absolute = {k: [(abs(v), label) for v, label in p] for k, p in labelled.items()}
    return Facts(
        money=Values.of(absolute["money"]),
        # "dương 19.000 đ", "âm 19.000 đ": only what can be either (a mean cannot)
        signed_money=Values.of([(v, label) for v, label in money if _SIGNABLE.search(label)]),
        percents=Values.of(absolute["percent"]),
        signed_percents=Values.of(percents),
        days=Values.of(absolute["days"]),
        counts=Values.of(absolute["counts"]),
        trends=trends,
        changes=changes,
        percent_changes=percent_changes,
        prev1=prev1s,
        values=values,
        net_flow=_num(data, "net_flow"),
        masked=masked,
        # "mục tiêu 1" is no label in "mục tiêu 10.000 đ"
        masks=re.compile(f"(?:{'|'.join(map(re.escape, masked))})(?!\\d|[.,]\\d)", re.IGNORECASE)
        if masked
        else None,
        labelled={k: tuple(p) for k, p in absolute.items()},
        categories=_category_groups(categories, spending),
        goals=_goal_states(data),
        data=data,
        ranking=_ranking(categories),
    )


def _ranking(categories: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    groups: dict[str, float] = {}
    for name, amount in categories.items():
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + float(amount)
    return tuple(sorted(((g, a) for g, a in groups.items() if a > 0), key=lambda x: -x[1]))


def _category_groups(
    categories: Mapping[str, Any], spending: float
) -> dict[str, tuple[tuple[float, float], ...]]:
    groups: dict[str, list[tuple[float, float]]] = {}
    for name, amount in categories.items():
        share = float(amount) / spending * 100 if spending > 0 else math.nan
        groups.setdefault(group_of(name), []).append((float(amount), share))
    return {group: tuple(pairs) for group, pairs in groups.items()}


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


def _count_facts(data: Mapping[str, Any]) -> list[tuple[float, str]]:
    """How many categories were spent on, and how many goals (listed, set, completed,
    open): "3 danh mục", "2 mục tiêu"."""
    categories = data.get("spending_by_category") or {}
    goals = data.get("savings_goals") or []
    return [
        (float(sum(1 for a in categories.values() if float(a) > 0)), "categories"),
        (float(len(goals)), "goals"),
        (float(sum(1 for g in goals if g.get("created_in_week"))), "goals created_in_week"),
        (float(sum(1 for g in goals if g.get("completed_in_week"))), "goals completed_in_week"),
        (float(sum(1 for g in goals if g.get("open_at_week_end"))), "goals open_at_week_end"),
        (  # "đã đạt cả hai mục tiêu": reached, whether completed this week or still open
            float(sum(1 for g in goals if g.get("reached") or g.get("completed_in_week"))),
            "goals reached",
        ),
    ]


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
            # the prompt's lack, target_amount - savings_balance: with a balance below zero it
            # is more than the target, never the target itself
            lack = float(target) - _num(data, "savings_balance")
            money.append((lack, f"{label} target_amount - savings_balance"))
    return labels


# The labels (build_facts') each subject's figures carry, by kind of figure.
_SUBJECT_PATTERNS = {
    "income": r"income_total",
    "spending": r"spending_total|spending_by_category\[|share of",
    "saving": r"saving_total|savings_balance|savings_rate",
    "deposit": r"saving_total",  # "gửi tiết kiệm 74k": this week's deposits, or a week's
    "withdrawal": r"^withdrawal_total",
    "balance": r"savings_balance|saving_total - withdrawal_total",
    "net": r"^net_flow",
    "goal": r"target_amount|progress_percent",
    "rate": r"^savings_rate",
    "spent_share": r"^spending_total / income_total",
    "total_spending": r"spending_total",  # its changes and weeks too, no category
    "of_income": r"^savings_rate|^spending_total / income_total",
    "lack": r"target_amount - savings_balance",
    # counts by their unit: "11 sự kiện" is the events', not the transactions'
    "giao dịch": r"^(?:mean\()?txn_count",  # "trung bình hai tuần trước là 2 giao dịch"
    "sự kiện": r"^event_count",
    "lượt": r"^event_count",
    "ngày": r"^(?:mean\()?active_days",
    "danh mục": r"^categories$",
    "loại": r"^categories$",
    "khoản": r"^categories$",  # "chỉ có 2 khoản: đồ ăn vặt và đi lại"
    "goals": r"^goals$",
    "goals created": r"^goals created_in_week$",
    "goals completed": r"^goals completed_in_week$",
    "goals open": r"^goals open_at_week_end$",
    "goals reached": r"^goals reached$",
}


# The labels of one week's figures, for a figure said of that week ("tuần trước con chi").
_WEEK_LABELS = {
    "prev1": re.compile(r"_prev1$"),
    "prev2": re.compile(r"_prev2$|^mean\("),
    "past": re.compile(r"_prev[12]$|^mean\("),  # "so với hai tuần trước (13.000 đ và ...)"
}
_NOT_NOW = re.compile(
    r"prev|mean|^saving_total - withdrawal_total"
)  # W-1's, W-2's, their mean, a change against them


def _subject_labels(subject: str) -> re.Pattern[str]:
    if subject.startswith("target:"):
        return re.compile(rf"^mục tiêu {re.escape(subject[7:])} target_amount$")
    if subject.startswith("lack:"):
        return re.compile(rf"^mục tiêu {re.escape(subject[5:])} target_amount - savings_balance$")
    if subject.startswith("goal:"):
        return re.compile(rf"^mục tiêu {re.escape(subject[5:])} progress_percent$")
    return _SUBJECT_REGEXES[subject]


_SUBJECT_REGEXES = {k: re.compile(v) for k, v in _SUBJECT_PATTERNS.items()}


@functools.lru_cache(maxsize=4096)
def _pool_members(labels: tuple[str, ...], subject: str | None, now: bool | str) -> tuple[int, ...]:
    """Which of `labels` are in `Facts.pool`'s pool of `subject` and `now`: remembered, since
    one data block's labels are mostly the next one's."""
    return tuple(i for i, label in enumerate(labels) if _in_pool(label, subject, now))


@functools.lru_cache(maxsize=16384)
def _in_pool(label: str, subject: str | None, now: bool | str) -> bool:
    """Whether a value labelled `label` is in `Facts.pool`'s pool of `subject` and `now`."""
    if subject and not _subject_labels(subject).search(label):
        return False
    if now is True and _NOT_NOW.search(label):
        return False
    week = _WEEK_LABELS.get(now) if isinstance(now, str) else None
    return week is None or bool(week.search(label))


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
