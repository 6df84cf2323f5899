"""Reading a text: its sentences and clauses, and the numbers it states with their units."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from kidsfin_assets.reports.grounding.vocabulary import (
    BARE_THOUSANDS,
    BOUNDARIES,
    EXACT,
    NUMBER,
    PER_AFTER,
    SIGN_BEFORE,
    SIGN_OF,
    SPACES,
    SPELLED,
    SPELLED_DAYS,
    TARGET_BEFORE,
    UNIT,
    led,
)


@dataclass(frozen=True)
class Stated:
    """A number as the text states it."""

    kind: str  # money, percent, days, count
    value: float  # as written, made positive
    tolerance: float  # half the unit it is written to
    sign: str  # "", "-", "+", "net-": how the text signed it
    start: int
    end: int
    unit: str = ""  # a count's unit as written: "giao dịch", "sự kiện", "ngày" ...


_GROUP_SPACES = re.compile(r"[ \u00a0\u202f]")


def _parse_number(num: str, decimal_comma: bool) -> tuple[float, float]:
    """(value, unit of the last digit) of a number written Vietnamese or English style."""
    if " " in num or "\u00a0" in num or "\u202f" in num:
        num = _GROUP_SPACES.sub("", num)
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


_LISTED = re.compile(r"\s?(?:và|hoặc|,|-|–)\s?\d+(?:[.,]\d+)?")


# Words each pattern tried before a figure needs (SIGN_BEFORE, _APPROXIMATE, SPELLED_DAYS):
# when the text has none, the pattern is not tried at all.
_SIGN_WORDS = ("âm", "hụt", "dư", "hơn", "vượt")
_HEDGE_WORDS = re.compile(r"khoảng|tầm|cỡ|xấp|chừng|ước|gần|độ|suýt|hơn|trên|chưa|dưới|không")
_SPELLED_UNIT = re.compile(r"(?:" + "|".join(SPELLED) + r")\s(?:ngày|giao\sdịch|sự\skiện)")


def stated_numbers(clause: str, spelled: bool = True) -> Iterator[Stated]:
    consumed = 0  # "1 triệu 200 nghìn" is one amount, not two
    signed = any(word in clause for word in _SIGN_WORDS)
    for m in NUMBER.finditer(clause):
        num, start = m.group("num"), m.start()
        if start < consumed:
            continue
        unit = UNIT.match(clause, m.end())
        group = _unit_kind(unit)
        shared = None
        if group is None:  # "7 và 6 ngày": the unit of the list's last number
            shared = _LISTED.match(clause, m.end())
            unit = UNIT.match(clause, shared.end()) if shared else None
            group = (
                _unit_kind(unit) if unit and unit.lastgroup in ("days", "count", "pct") else None
            )
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
        elif BARE_THOUSANDS.fullmatch(num):  # "nhận 160.000 và chi ..."
            value, step = _parse_number(num, decimal_comma=False)
            kind, scale = "money", 1.0
        else:
            continue  # a small bare number: an ordinal, a list, not a claim we can place
        end = consumed = unit.end() if unit and group and not shared else m.end()
        sign = "-" if m.group("sign") else ""
        if kind == "money" and not sign and signed:
            said = SIGN_BEFORE.search(clause, max(0, start - 56), start)
            sign = SIGN_OF[said.lastgroup] if said and said.lastgroup else ""
        tolerance = step * scale / 2 if kind in ("money", "percent") else EXACT
        if kind in ("days", "count") and step < 1:
            tolerance = step / 2
        said_unit = SPACES.sub(" ", unit.group(group)) if unit and kind in ("days", "count") else ""
        value *= scale
        if _HEDGE_WORDS.search(clause, max(0, start - 16), start):
            value, tolerance = _approximate(clause, start, value, tolerance)
        if kind == "percent" and step == 1 and tolerance == 0.5:
            # "6%" of 6.64 %: rounded or cut to the unit (the data's own progress_percent
            # is floored), so [5.5, 7)
            value, tolerance = value + 0.25, 0.75
        yield Stated(kind, value, tolerance, sign, start, end, said_unit.strip())
    for m in SPELLED_DAYS.finditer(clause) if spelled and _SPELLED_UNIT.search(clause) else ():
        kind = "days" if m.group("unit") == "ngày" else "count"
        yield Stated(kind, float(SPELLED[m.group("word")]), EXACT, "", m.start(), m.end())


# "khoảng 160 nghìn" is a fair rounding, "hơn 150 nghìn" a bound: (low, high) as shares of
# the figure written, around its own precision.
_APPROXIMATE = re.compile(
    r"(?<!\w)(?:(?P<about>khoảng|tầm|cỡ|xấp\sxỉ|chừng|ước\stính|ước\schừng|gần\snhư|độ)"
    r"|(?P<near>gần|suýt|gần\sđạt)"
    r"|(?P<over>(?<!nhiều\s)(?<!ít\s)(?<!cao\s)(?<!lớn\s)(?<!thấp\s)(?<!nhỏ\s)hơn|trên|hơn\scả)"
    r"|(?P<under>chưa\s(?:đến|tới|được|đầy|bằng)|dưới|không\s(?:tới|đến|quá)|chưa\sđủ))"
    r"\s(?:mức\s|con\ssố\s)?$"
)
# How a range ("31-32 nghìn") reads, as "khoảng" and its middle: marked apart from a writer's
# "khoảng" by the space after it, since its middle is no rounding of its own.
RANGE_SPACE = "\u2009"
_BOUNDS = {"about": (0.94, 1.06), "near": (0.85, 1.0), "over": (1.0, 1.35), "under": (0.0, 1.0)}


def _approximate(clause: str, start: int, value: float, tolerance: float) -> tuple[float, float]:
    """The figure and tolerance a hedged number stands for ("khoảng 160 nghìn")."""
    said = _APPROXIMATE.search(clause, max(0, start - 16), start)
    if said is None or not said.lastgroup:
        return value, tolerance
    low, high = _BOUNDS[said.lastgroup]
    if said.lastgroup == "about" and said.group()[-1] != RANGE_SPACE:
        # a fair rounding: "khoảng 156k" is not 165.000 đ, nor "khoảng 750k" 705.000 đ
        width = min(value * (high - 1), _last_place(value))
        low, high = min(value - width, value - tolerance), max(value + width, value + tolerance)
    else:
        low, high = min(value * low, value - tolerance), max(value * high, value + tolerance)
    if said.lastgroup == "over":  # "hơn 1,8 triệu" is more than 1.800.000 đ
        low = value
    elif said.lastgroup == "under":
        high = value
    return (low + high) / 2, (high - low) / 2


def _last_place(value: float) -> float:
    """The place of a figure's last non-zero digit: 160.000 -> 10.000, 156.000 -> 1.000."""
    exponent = Decimal(repr(round(value, 6))).normalize().as_tuple().exponent
    return 10.0 ** int(exponent)


def is_target(text: str, clause_starts: list[int], n: Stated) -> bool:
    """In a recommendation: a goal ("ít nhất 20%", "5.000 đ mỗi ngày"), not a claim."""
    start = clause_starts[bisect.bisect_right(clause_starts, n.start) - 1]
    if TARGET_BEFORE.search(text, start, n.start) or PER_AFTER.match(text, n.end):
        return True
    # "thử 2 ngày không mua đồ ăn vặt", "chờ 1 ngày": days and counts in advice are plans,
    # unless said of this week ("vì tuần này con đã vào app 2 ngày")
    return n.kind in ("days", "count") and not _SAID_OF_WEEK.search(text, start, n.start)


_SAID_OF_WEEK = re.compile(r"(?<!\w)(?:tuần\snày|đã|vừa|tuần\strước|tuần\srồi)(?!\w)")


def split_clauses(text: str) -> list[list[tuple[int, int]]]:
    """The sentences of a text, each as its clauses' (start, end); one regex pass."""
    sentences: list[list[tuple[int, int]]] = []
    clauses: list[tuple[int, int]] = []
    at = 0
    for m in BOUNDARIES.finditer(text):
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


def clause_of(sentences: list[list[tuple[int, int]]], at: int) -> tuple[int, tuple[int, int]]:
    """The start of the clause holding `at`, and its sentence's (start, end)."""
    for clauses in sentences:
        if at < clauses[-1][1]:
            for start, _ in reversed(clauses):  # a loop, not a generator: asked per figure
                if start <= at:
                    return start, (clauses[0][0], clauses[-1][1])
            return clauses[0][0], (clauses[0][0], clauses[-1][1])
    return 0, (0, at)


# The patterns searched through texts or spans, led by their first characters
# (`vocabulary.led`): the same matches, found faster.
(
    _APPROXIMATE,
    _SAID_OF_WEEK,
) = (
    led(pattern)
    for pattern in (
        _APPROXIMATE,
        _SAID_OF_WEEK,
    )
)
