"""The closed world: claims without a figure, and what no check could read.

The checker's number and trend checks read figures and directions. This module reads the
claims a sentence makes without one figure of the data: ratios and fractions ("gấp đôi",
"hơn một nửa"), two metrics compared ("chi nhiều hơn nhận"), things that did or did not
happen ("không mua đồ chơi nào", "đã rút tiền tiết kiệm"), ranked categories ("ba khoản chi
lớn nhất"), and figures said of another week. Each reader marks what it read in
`Reading.read`; `sweep` then turns every claim-like word no check read (a digit, a direction,
a comparative, a ratio, a superlative, a negated event, another week) into an
`unverifiable` finding, so that what the checker does not understand is asked again,
never passed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kidsfin_assets.reports.grounding.facts import Facts
from kidsfin_assets.reports.grounding.reading import Stated
from kidsfin_assets.reports.grounding.vocabulary import ADVICE, CATEGORIES, group_of

Span = tuple[int, int]


@dataclass
class Reading:
    """One field as the readers see it: its text (numbers in words made digits, data
    text masked), lower-cased, its sentences, and what has been read so far."""

    field: str
    text: str
    low: str
    sentences: list[list[Span]]
    facts: Facts
    add: Callable[[str, str, str, str], None]  # kind, field, span, message
    advice_field: bool
    labelled: str = ""  # `low` with the goals' labels ("mục tiêu 1") not masked
    stated: list[Stated] = field(default_factory=list)
    read: list[Span] = field(default_factory=list)

    def locate(self, at: int) -> tuple[list[Span], Span]:
        """The sentence (its clauses) and the clause holding `at`."""
        for clauses in self.sentences:
            if at < clauses[-1][1]:
                return clauses, next((c for c in clauses if c[0] <= at < c[1]), clauses[0])
        return self.sentences[-1], self.sentences[-1][-1]

    def mark(self, start: int, end: int) -> None:
        self.read.append((start, end))

    def is_read(self, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in self.read)

    def goal_of(self, metric: str, at: int) -> str:
        """ "mục tiêu" without a number is the goal its sentence named last."""
        if metric != "target:":
            return metric
        start = max((c[0][0] for c in self.sentences if c[0][0] <= at), default=0)
        named = re.findall(r"mục\stiêu\s(\d+)", self.labelled[start:at])
        return f"target:{named[-1]}" if named else metric

    def flag(self, kind: str, start: int, end: int, message: str) -> None:
        self.mark(start, end)
        self.add(kind, self.field, self.text[start:end], message)


# --- what a sentence names: metrics, categories, weeks ------------------------------------

# Longest first. "rút tiền tiết kiệm" is the withdrawal, "số dư tiết kiệm" the balance;
# None: words that hold a metric's word but are not that metric ("tỷ lệ tiết kiệm").
_MENTION_WORDS: tuple[tuple[str, str | None], ...] = (
    ("số dư tiết kiệm", "savings_balance"),
    ("số dư", "savings_balance"),
    ("quỹ tiết kiệm", "savings_balance"),
    ("tổng tiết kiệm", "savings_balance"),
    ("tỷ lệ tiết kiệm", None),
    ("tỉ lệ tiết kiệm", None),
    ("tỷ lệ để dành", None),
    ("mục tiêu tiết kiệm", None),
    ("thói quen tiết kiệm", None),
    ("thói quen chi tiêu", None),
    ("ý thức tiết kiệm", None),
    ("tinh thần tiết kiệm", None),
    ("dòng tiền ròng", "net_flow"),
    ("dòng tiền", "net_flow"),
    ("rút tiền tiết kiệm", "withdrawal_total"),
    ("rút khỏi tiết kiệm", "withdrawal_total"),
    ("rút ra khỏi tiết kiệm", "withdrawal_total"),
    ("rút từ tiết kiệm", "withdrawal_total"),
    ("rút tiết kiệm", "withdrawal_total"),
    ("số tiền rút", "withdrawal_total"),
    ("tiền rút", "withdrawal_total"),
    ("rút ra", "withdrawal_total"),
    ("rút", "withdrawal_total"),
    ("tiền gửi tiết kiệm", "saving_total"),
    ("gửi tiết kiệm", "saving_total"),
    ("gửi vào", "saving_total"),
    ("tiền gửi", "saving_total"),
    ("tiền để dành", "saving_total"),
    ("để dành", "saving_total"),
    ("tiền tiết kiệm", "saving_total"),
    ("tiết kiệm", "saving_total"),
    ("gửi", "saving_total"),
    ("thu nhập", "income_total"),
    ("tiền tiêu vặt", "income_total"),
    ("số tiền nhận", "income_total"),
    ("tiền nhận", "income_total"),
    ("khoản nhận", "income_total"),
    ("khoản thu", "income_total"),
    ("nhận", "income_total"),
    ("tổng chi tiêu", "spending_total"),
    ("tiền chi tiêu", "spending_total"),
    ("chi tiêu", "spending_total"),
    ("tổng chi", "spending_total"),
    ("tiền chi", "spending_total"),
    ("khoản chi", "spending_total"),
    ("mức chi", "spending_total"),
    ("tiền tiêu", "spending_total"),
    ("chi", "spending_total"),
    ("tiêu", "spending_total"),
    ("số giao dịch", "txn_count"),
    ("giao dịch", "txn_count"),
    ("số sự kiện", "event_count"),
    ("sự kiện", "event_count"),
    ("số ngày hoạt động", "active_days"),
    ("ngày hoạt động", "active_days"),
    ("hoạt động", "active_days"),
    ("vào app", "active_days"),
    ("vào ứng dụng", "active_days"),
    ("mở app", "active_days"),
    ("dùng app", "active_days"),
    ("giữ lại", "net_flow"),
)
_MENTION_OF = dict(_MENTION_WORDS)
_MENTIONS = re.compile(
    r"(?<!\w)(?:(?P<word>"
    + "|".join(re.escape(w).replace(r"\ ", r"\s") for w, _ in _MENTION_WORDS)
    + r")(?!\w)(?<!chi(?=\stiết))(?<!nhận(?=\s(?:xét|thấy|ra|thức|biết|định)))"
    + r"|(?P<category>"
    + CATEGORIES.pattern
    + r"))"
)
# Weeks as a sentence names them. "tuần qua" / "tuần vừa qua" is the report's own week.
_WEEKS = re.compile(
    r"(?<!\w)(?:(?P<prev2>tuần\strước\snữa|tuần\skia|(?:hai|2)\stuần\strước(?!\sđó)"
    r"|tuần\strước\sđó)"
    r"|(?P<mean>trung\sbình\s(?:của\s)?(?:hai|2)\stuần(?:\strước)?|(?:hai|2)\stuần\s(?:qua|gần\sđây)"
    r"|(?:các|những)\stuần\strước|(?<=sau\s)(?:hai|2)\stuần|(?<=trong\s)(?:hai|2)\stuần"
    r"|(?:mức\s)?trung\sbình)"
    r"|(?P<prev1>tuần\strước|tuần\srồi|tuần\svừa\srồi)"
    r"|(?P<now>tuần\snày|tuần\squa|tuần\svừa\squa))(?!\w)"
)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    metric: str | None  # income_total ... or cat:<group>; None: not a metric
    week: str | None  # the week named right after it ("chi tiêu tuần trước"), if any


def mentions(low: str, start: int, end: int, labelled: str = "") -> list[Mention]:
    """The metrics, categories and goals a span names, each with the week named right after
    it. "khoản chi cho ăn uống" is the category; "mục tiêu 1" (in `labelled`, where the
    goals' labels are not masked) is that goal's target."""
    found: list[Mention] = []
    for m in _MENTIONS.finditer(low, start, end):
        if low.endswith(("từ ", "khỏi ", "danh "), 0, m.start()):
            continue  # "rút 47.000 đ từ tiền tiết kiệm": where from; "danh sách": a list
        if m.group("category"):
            metric: str | None = f"cat:{group_of(m.group('category'))}"
            if (
                found
                and found[-1].metric == "spending_total"
                and _FOR.fullmatch(low, found[-1].end, m.start())
            ):  # "khoản chi cho ăn uống", "tiền mua sách": the category's
                start_at = found.pop().start
                week = _WEEKS.match(low, m.end() + 1) if m.end() < end else None
                found.append(Mention(start_at, m.end(), metric, week.lastgroup if week else None))
                continue
        else:
            metric = _MENTION_OF.get(re.sub(r"\s+", " ", m.group("word")))
        week = _WEEKS.match(low, m.end() + 1) if m.end() < end else None
        found.append(Mention(m.start(), m.end(), metric, week.lastgroup if week else None))
    for m in _GOAL_TARGET.finditer(labelled, start, end) if labelled else ():
        found.append(Mention(m.start(), m.end(), f"target:{m.group('n') or ''}", None))
    return sorted(found, key=lambda x: x.start)


def mentions_in(r: Reading, start: int, end: int) -> list[Mention]:
    return mentions(r.low, start, end, r.labelled)


_FOR = re.compile(r"\s(?:cho|vào|để|mua)\s(?:các\s|những\s)?")
_GOAL_TARGET = re.compile(
    r"(?<!\w)(?:số\stiền\s)?mục\stiêu(?:\s(?P<n>\d+))?(?!\s(?:tiết\skiệm|mới))"
)


def week_refs(low: str, start: int, end: int) -> list[re.Match[str]]:
    return list(_WEEKS.finditer(low, start, end))


# --- ratios and fractions ------------------------------------------------------------------

_RATIO_WORDS = {"đôi": 2.0, "rưỡi": 1.5, "ba": 3.0, "bốn": 4.0, "tư": 4.0, "năm": 5.0}
_FRACTION_WORDS = {
    "một": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4, "năm": 5,
    "sáu": 6, "bảy": 7, "tám": 8, "chín": 9, "mười": 10,
}  # fmt: skip
_HEDGE = (
    r"hơn\scả|hơn|gần\snhư|gần|khoảng|xấp\sxỉ|tầm|cỡ|chừng|trên|chưa\s(?:đến|tới|bằng|được|đạt)|dưới"
    r"|không\s(?:tới|đến|bằng)|chỉ\sbằng|chỉ|ít\snhất|bằng|đúng"
)
_RATIO = re.compile(
    rf"(?<!\w)(?:(?P<hedge>{_HEDGE})\s)?(?:"
    rf"gấp\s(?:(?P<hedge2>{_HEDGE})\s)?(?:(?P<times>đôi|rưỡi|ba|bốn|năm|\d+(?:[.,]\d+)?)"
    r"(?:\slần)?)"
    r"|(?P<half>(?:một\s|phân\s)?nửa)(?!\s(?:triệu|nghìn|ngàn))|(?P<most>phần\slớn)"
    r"|(?P<num>một|hai|ba|bốn|năm|sáu|bảy|tám|chín|\d+)\sphần\s"
    r"(?P<den>hai|ba|tư|bốn|năm|mười|\d+)(?!\s?trăm)"
    r"|(?P<slash>\d+)\s?/\s?(?P<over>[2-9]|10)(?!\d|\s?ngày)"
    r"|(?P<lan>\d+(?:[.,]\d+)?)\slần"
    r")(?!\w)"
)
# How far a hedged ratio may be from the truth, as shares of the ratio said.
_RATIO_BOUNDS = {
    "": (0.9, 1.1),
    "about": (0.85, 1.15),
    "near": (0.8, 1.02),
    "over": (1.0, float("inf")),
    "under": (0.0, 1.0),
}
_HEDGE_KIND = {
    "hơn": "over",
    "hơn cả": "over",
    "trên": "over",
    "ít nhất": "over",
    "gần": "near",
    "gần như": "about",
    "khoảng": "about",
    "xấp xỉ": "about",
    "tầm": "about",
    "cỡ": "about",
    "chừng": "about",
    "chưa đến": "under",
    "chưa tới": "under",
    "chưa bằng": "under",
    "chưa được": "under",
    "chưa đạt": "under",
    "dưới": "under",
    "không tới": "under",
    "không đến": "under",
    "không bằng": "under",
}
_AFTER_FILLER = re.compile(
    r"\s*(?:(?:so\svới|của|số\stiền|tiền|mức|khoản|là|cả|tổng|lượng|so|với|phần|được|con|bé|em"
    r"|\[\[kid\]\]|đã|rất\snhiều|nhiều|hẳn|khá|một\schút|chút|đáng\skể|rõ\srệt|số|xa|mua"
    r"|chơi|dành\scho|cho)\s+)*"
)


def _ratio_value(m: re.Match[str]) -> float | None:
    if m.group("times"):
        word = m.group("times")
        return _RATIO_WORDS.get(word) or float(word.replace(",", "."))
    if m.group("half") or m.group("most"):
        return 0.5
    if m.group("num"):
        num, den = m.group("num"), m.group("den")
        top = _FRACTION_WORDS.get(num) or float(num)
        bottom = _FRACTION_WORDS.get(den) or float(den)
        return top / bottom if bottom else None
    if m.group("slash"):
        return float(m.group("slash")) / float(m.group("over"))
    if m.group("lan"):
        return float(m.group("lan").replace(",", "."))
    return None


_SUBORDINATE = re.compile(r"(?<!\w)(?:vì|nên|do|bởi\svì|khi|và|nhưng|mà)(?!\w)")


def _subject_before(
    r: Reading, clauses: list[Span], clause: Span, at: int, other: tuple[str | None, str | None]
) -> Mention | None:
    """What a comparison is about: the first metric its clause names before it (the
    subject comes first), else the first of the nearest clause before that names one
    ("Chi tiêu 31.000 đ, gấp đôi tuần trước"); never the thing it is compared with."""
    # "Dòng tiền ròng là -108.000 đ vì con chi nhiều hơn số tiền nhận": after "vì"
    joins = list(_SUBORDINATE.finditer(r.low, clause[0], at))
    own = (joins[-1].end(), at) if joins else (clause[0], at)
    spans = [own, *reversed([c for c in clauses if c[1] <= clause[0]])]
    if joins:
        spans.insert(1, (clause[0], joins[-1].start()))
    for start, end in spans:
        found = [x for x in mentions_in(r, start, end) if x.metric]
        week = _clause_week(r, start, end)
        found = [x for x in found if (x.metric, x.week or week) != other]
        if found:
            return found[0]
    return None


def _clause_week(r: Reading, start: int, end: int) -> str:
    """The week a clause speaks of: the first it names, not one it compares with ("so với
    hai tuần trước" is the comparison's, not the clause's)."""
    for w in week_refs(r.low, start, end):
        if not _COMPARED_WITH.search(r.low, max(start, w.start() - 12), w.start()):
            return w.lastgroup or "now"
    fronted = next((c for c in r.sentences if c[0][0] <= start < c[-1][1]), None)
    if fronted and fronted[0][1] <= start:  # "Hai tuần trước, con không có ngày hoạt động"
        said = _FRONTED_WEEK.match(r.low, fronted[0][0], fronted[0][1])
        if said:
            week = _WEEKS.match(said.group("week"))
            return (week.lastgroup if week else None) or "now"
    return "now"


_FRONTED_WEEK = re.compile(rf"\s*(?:trong\s|vào\s)?(?P<week>{_WEEKS.pattern})")


_COMPARED_WITH = re.compile(r"(?<!\w)(?:so\svới|hơn|với|bằng|như|kém)\s(?:cả\s|mức\s)?$")


def _operand_after(r: Reading, at: int, end: int) -> tuple[Mention | None, str | None, int]:
    """The metric and week named right after `at` ("gấp ba tuần trước", "một nửa thu nhập
    tuần này"), and where they end."""
    skip = _AFTER_FILLER.match(r.labelled or r.low, at, end)  # labels are not fillers
    pos = skip.end() if skip else at
    week = _WEEKS.match(r.low, pos, end)
    if week:
        return None, week.lastgroup, week.end()
    found = mentions_in(r, max(at, pos - 8), end)
    found = [x for x in found if x.start <= pos < x.end or x.start == pos]
    if found:
        return found[0], found[0].week, found[0].end
    return None, None, at


_THE_MONEY = re.compile(
    r"\s(?:số\stiền|tiền)(?:\s(?:con\s)?(?:nhận\sđược|được\scho))?(?!\s\w*\s?(?:chi|tiêu))"
)
_DECREASE = re.compile(r"(?<!\w)giảm(?:\sđi|\sxuống|\scòn)?\s(?:(?:khoảng|gần|hơn)\s)?$")
_COMPARED_WEEK = re.compile(
    r"so\svới\s(?:(?P<prev2>tuần\strước\snữa|(?:hai|2)\stuần\strước)|(?P<prev1>tuần\strước|tuần\srồi)"
    r"|(?P<mean>trung\sbình\shai\stuần(?:\strước)?))"
)
_GOAL_REACHED_BEFORE = re.compile(
    r"mục\stiêu\s(?P<n>\d+)[^.;]*?(?:đạt|hoàn\sthành|được|tiến\sđộ)[^.;]*$"
)


def read_ratios(r: Reading) -> None:
    """ "Chi tiêu gấp ba tuần trước", "để dành một nửa thu nhập", "hơn một nửa chi tiêu là
    đồ ăn vặt": the ratio of the two things named, within the hedge's bounds."""
    if not any(w in r.low for w in ("gấp", "nửa", "phần", "/", "lần")):
        return  # cheaper than the pattern, which tries its hedges at every position
    for m in _RATIO.finditer(r.low):
        clauses, clause = r.locate(m.start())
        first = clauses[0][0]
        ratio = _ratio_value(m)
        if ratio is None or _in_advice(r, clause, m.start()):
            continue
        if m.group("lan") and not re.search(r"(?:gấp|bằng|hơn)\s*$", r.low[: m.start()]):
            continue  # "3 lần" alone is a count of times, not a ratio
        after, after_week, after_end = _operand_after(r, m.end(), clause[1])
        week_here = _clause_week(r, clause[0], m.start())
        other_hint = (after.metric if after else None, after_week or week_here)
        subject = _subject_before(r, clauses, clause, m.start(), other_hint)
        if subject is None and after is not None:  # "hơn một nửa chi tiêu là đồ ăn vặt"
            rest = [
                x
                for x in mentions_in(r, after_end, clause[1])
                if x.metric not in (None, after.metric)
            ]
            subject = rest[0] if rest else None
        if after is None and after_week is None:  # "so với tuần rồi (327k) thì giảm một nửa"
            said_before = _COMPARED_WEEK.search(r.low, clause[0], m.start())
            after_week = said_before.lastgroup if said_before else None
        if after is None and _THE_MONEY.match(r.low, m.end()):  # "phần lớn số tiền"
            after = Mention(m.end(), m.end(), "income_total", None)
        if after is None and subject is not None and (subject.metric or "").startswith("cat:"):
            after = Mention(m.end(), m.end(), "spending_total", None)  # "chiếm phần lớn"
        goal = _GOAL_REACHED_BEFORE.search(r.labelled, first, m.start())
        if after is None and goal:  # "mục tiêu 1 mới đạt 36%, chưa được một nửa"
            subject = Mention(goal.start(), goal.end(), f"progress:{goal.group('n')}", None)
            after = Mention(m.end(), m.end(), "one", None)
        if subject is None or subject.metric is None:
            continue
        week = subject.week or _clause_week(r, clause[0], m.start())
        other_metric = after.metric if after is not None and after.metric else subject.metric
        other_week = after_week or week
        if other_metric == subject.metric and other_week == week:
            continue  # the same thing twice: not a ratio this reader can place
        a = r.facts.value(r.goal_of(subject.metric, m.start()), week)
        b = (
            1.0
            if other_metric == "one"
            else r.facts.value(r.goal_of(other_metric, m.start()), other_week)
        )
        if a is None or b is None:
            continue
        hedge = m.group("hedge2") or m.group("hedge") or ""
        kind = "over" if m.group("most") else _HEDGE_KIND.get(re.sub(r"\s+", " ", hedge), "")
        low, high = _RATIO_BOUNDS[kind]
        said = r.text[m.start() : m.end()]
        actual = a / b if b > 0 else 0.0
        if _DECREASE.search(r.low, max(clause[0], m.start() - 12), m.start()) and ratio < 1:
            actual = 1 - actual  # "giảm gần một nửa": by half, to half of it
        if b <= 0 or not (low * ratio - 1e-9 <= actual <= high * ratio + 1e-9):
            actual = "undefined (the other is 0)" if b <= 0 else f"{a / b:.2f}"
            msg = (
                f"{said!r}: {subject.metric} ({week}) / {other_metric} ({other_week}) "
                f"is {actual}, not {ratio:g}"
            )
            r.flag("wrong_ratio", m.start(), m.end(), msg)
        else:
            r.mark(m.start(), m.end())


# --- two metrics compared -------------------------------------------------------------------

_COMPARATIVE = re.compile(
    r"(?<!\w)(?P<neg>(?:không|chưa|chẳng)\s)?(?:"
    r"(?P<more>nhiều\shơn|cao\shơn|lớn\shơn|vượt(?:\squá)?|hơn)"
    r"|(?P<less>ít\shơn|thấp\shơn|nhỏ\shơn|kém(?:\shơn)?)"
    r"|(?P<about>gần\sbằng|gần\snhư\sbằng|xấp\sxỉ(?:\sbằng)?|suýt\sbằng)"
    r"|(?P<equal>bằng(?:\svới)?|ngang(?:\sbằng)?|tương\sđương(?:\svới)?)"
    r"|(?P<enough>đủ\s(?:để\s)?(?:trang\strải|chi\strả|bù\sđắp|bù)(?:\s(?:toàn\sbộ|hết|cả))?)"
    r")(?:\scả)?(?!\w)"
)


_DIFFERENCE = re.compile(r"\s(?:khoảng\s|gần\s|đúng\s)?(?=-?\d)")


_COMPARATIVE_WORDS = ("hơn", "kém", "bằng", "vượt", "ngang", "tương đương", "xấp xỉ", "đủ")


def read_comparisons(r: Reading) -> None:
    """ "Con chi nhiều hơn nhận", "tiền rút ra ít hơn tiền gửi vào", "chi cho đồ ăn vặt
    nhiều hơn đồ chơi 1.000 đ": the two things' values this week (or the weeks named). A
    comparative with a difference and nothing named after it ("gần bằng thu nhập, chỉ thấp
    hơn 4.000 đ") is about the pair its sentence compared last."""
    if not any(w in r.low for w in _COMPARATIVE_WORDS):
        return
    pairs: dict[int, tuple[Operand, Operand]] = {}  # by sentence: the pair compared last
    for m in _COMPARATIVE.finditer(r.low):
        clauses, clause = r.locate(m.start())
        pair = pairs.get(clauses[0][0])
        if r.is_read(m.start(), m.end()) or _in_advice(r, clause, m.start()):
            continue
        found = _compared(r, clauses, clause, m)
        if found is None and pair is not None and _DIFFERENCE.match(r.low, m.end()):
            found = (*pair, m.end())
        if found is None:
            continue  # "nhiều hơn tuần trước" is a trend; a number is a difference
        subject, other, end = found
        pairs[clauses[0][0]] = (subject, other)
        _check_comparison(r, m, subject, other, end)


@dataclass(frozen=True)
class Operand:
    mention: Mention
    metric: str
    week: str
    value: float


def _compared(
    r: Reading, clauses: list[Span], clause: Span, m: re.Match[str]
) -> tuple[Operand, Operand, int] | None:
    """The two things a comparative compares, with their values, and where the second ends."""
    after, after_week, after_end = _operand_after(r, m.end(), clause[1])
    if after is None:
        return None
    week_here = _clause_week(r, clause[0], m.start())
    subject = _subject_before(
        r, clauses, clause, m.start(), (after.metric, after_week or week_here)
    )
    if subject is None:
        return None
    week = subject.week or week_here
    other_week = after_week or week
    metric = r.goal_of(subject.metric or "", m.start())
    other_metric = r.goal_of(after.metric or "", m.start())
    a, b = r.facts.value(metric, week), r.facts.value(other_metric, other_week)
    if a is None or b is None or (other_metric, other_week) == (metric, week):
        return None
    return Operand(subject, metric, week, a), Operand(after, other_metric, other_week, b), after_end


def _check_comparison(r: Reading, m: re.Match[str], one: Operand, other: Operand, end: int) -> None:
    a, b = one.value, other.value
    said = next(k for k in ("more", "less", "about", "enough", "equal") if m.group(k))
    holds = {
        "more": a > b,
        "less": a < b,
        "equal": abs(a - b) < 0.5,
        "about": abs(a - b) <= 0.1 * max(abs(a), abs(b)),
        "enough": a >= b,
    }[said]
    if m.group("neg"):
        holds = not holds
    span = (min(one.mention.start, m.start()), end)
    difference = _DIFFERENCE.match(r.low, end)
    if difference is not None:  # "nhiều hơn các khoản khác 1.000 đ"
        n = next((n for n in r.stated if n.start == difference.end()), None)
        if n is not None and n.sign == "net-":
            r.mark(m.start(), m.end())  # "chi nhiều hơn nhận 90.000 đ": the net flow's
            return
        if n is None or n.kind != "money":
            return
        holds = holds and abs(abs(a - b) - n.value) <= n.tolerance + 1e-9
        span = (span[0], n.end)
    if holds:
        r.mark(*span)
    else:
        said = r.text[span[0] : span[1]]
        msg = f"{said!r}: {one.metric} is {a:,.0f} and {other.metric} is {b:,.0f}"
        r.flag("wrong_comparison", *span, msg)


# --- what did or did not happen -------------------------------------------------------------

_NEGATION = r"(?:không|chưa|chẳng)(?:\s(?:hề|có|được|đã|phải|hề\scó))*\s"
_EVENT = re.compile(
    rf"(?<!\w)(?P<neg>{_NEGATION})?(?P<verb>"
    r"chi\stiêu|chi\scho|chi|tiêu\stiền|tiêu|mua|nhận(?:\sđược)?|gửi(?:\stiết\skiệm)?|để\sdành"
    r"|tiết\skiệm|rút(?:\stiền)?|đặt(?:\sthêm)?(?=\s(?:một\s|1\s)?mục\stiêu)|hoàn\sthành"
    r"|dùng|mở|vào|đăng\snhập|hoạt\sđộng(?!\stài)"
    r"|có(?=\s(?:khoản|giao\sdịch|thu\snhập|sự\skiện|tiền|ngày\shoạt\sđộng|ngày\snào))"
    r")(?!\w)"
)
# What follows a negated verb that makes it no claim of nothing: "không chi nhiều".
_NOT_NOTHING = re.compile(r"\s(?:nhiều|quá|lắm|hết|nổi|bao\snhiêu|mấy|đáng\skể)(?!\w)")
_VERB_METRIC = {
    "chi": "spending_total",
    "tiêu": "spending_total",
    "mua": "spending_total",
    "nhận": "income_total",
    "gửi": "saving_total",
    "để": "saving_total",
    "tiết": "saving_total",
    "rút": "withdrawal_total",
    "dùng": "active_days",
    "mở": "active_days",
    "vào": "active_days",
    "đăng": "active_days",
    "hoạt": "active_days",
}
_HAS_OBJECT = {
    "ngày hoạt động": "active_days",
    "ngày nào": "active_days",
    "khoản gửi": "saving_total",
    "khoản tiết kiệm": "saving_total",
    "khoản chi": "spending_total",
    "khoản thu": "income_total",
    "thu nhập": "income_total",
    "tiền": "income_total",
    "giao dịch": "txn_count",
    "sự kiện": "event_count",
    "khoản rút": "withdrawal_total",
}
_FUTURE = re.compile(r"(?<!\w)(?:sẽ|tuần\s(?:tới|sau)|nếu|khi\snào|để\scon|mong|hy\svọng)(?!\w)")


def _event_metric(r: Reading, m: re.Match[str], end: int) -> tuple[str | None, int]:
    """The metric a verb of an event is about, and where its object ends."""
    verb = m.group("verb")
    rest = r.low[m.end() : end]
    if verb == "có":
        for word, metric in _HAS_OBJECT.items():
            at = rest.find(word)
            if at >= 0:
                return metric, m.end() + at + len(word)
        return None, m.end()
    if verb.startswith("đặt") or verb == "hoàn thành":
        return ("goal_set" if verb.startswith("đặt") else "goal_done"), m.end()
    metric = _VERB_METRIC.get(verb.split()[0])
    if metric == "spending_total" or verb == "chi cho":
        found = [x for x in mentions_in(r, m.end(), end) if x.metric]
        near = found[0] if found and found[0].start - m.end() <= 24 else None
        if near is not None and near.metric and near.metric.startswith("cat:"):
            return near.metric, near.end
    return metric, m.end()


_GOAL_SET = re.compile(
    r"mục\stiêu\s(?P<n>\d+)[^.,;]*?(?P<neg>chưa\s|không\s)?(?:được\s(?:con\s|bé\s)?|mới\s|vừa\s|đã\s)"
    r"(?:được\s)?đặt(?!\w)"
)
_ACTIVITY = re.compile(r"(?:vào|dùng|mở)\s(?:app|ứng\sdụng)|hoạt\sđộng")
_NOUN_BEFORE = re.compile(r"(?:ngày|độ|số)\s$")  # "số ngày hoạt động": a noun, not a verb


def _goal_set_claims(r: Reading) -> None:
    """ "Mục tiêu 1 được con đặt ngay trong tuần này": that goal was set this week."""
    if "đặt" not in r.labelled:
        return
    goals = {str(g.get("goal")): g for g in r.facts.data.get("savings_goals") or []}
    for m in _GOAL_SET.finditer(r.labelled):
        goal = goals.get(f"mục tiêu {m.group('n')}")
        created = bool(goal and goal.get("created_in_week"))
        if created != bool(m.group("neg")):
            r.mark(m.start(), m.end())
        else:
            said = r.labelled[m.start() : m.end()]
            state = "was set this week" if created else "was not set this week"
            r.flag("wrong_event", m.start(), m.end(), f"{said!r}: mục tiêu {m.group('n')} {state}")


def read_happened(r: Reading) -> None:
    """ "Tuần này con không mua đồ chơi nào" (toys: 0), "chưa rút tiền tiết kiệm"
    (withdrawals: 0), "đã đặt một mục tiêu mới" (a goal set this week)."""
    _goal_set_claims(r)
    skipped: dict[Span, bool] = {}
    for m in _EVENT.finditer(r.low):
        negated = bool(m.group("neg"))
        if (
            not negated
            and not _AFFIRMED.search(r.low, max(0, m.start() - 8), m.start())
            and not _ACTIVITY.match(r.low, m.start())
        ):
            continue  # "con chi 31.000 đ": the figure is what is checked
        if (negated and _NOT_NOTHING.match(r.low, m.end())) or r.is_read(m.start(), m.end()):
            continue
        if _NOUN_BEFORE.search(r.low, max(0, m.start() - 8), m.start()):
            continue
        _clauses, clause = r.locate(m.start())
        if clause not in skipped:
            skipped[clause] = bool(
                _in_advice(r, clause, clause[1]) or _FUTURE.search(r.low, *clause)
            )
        if skipped[clause]:
            continue
        if not negated and any(m.end() <= n.start < clause[1] for n in r.stated):
            continue  # an affirmative with a figure: the figure is what is checked
        _check_event(r, m, clause, negated)


_AFFIRMED = re.compile(r"(?:đã|có|vừa|cũng)\s$")


def _check_event(r: Reading, m: re.Match[str], clause: Span, negated: bool) -> None:
    metric, end = _event_metric(r, m, clause[1])
    if metric is None:
        return
    week = _week_when(r, clause, m.start()) or _clause_week(r, *clause)
    if metric in ("goal_set", "goal_done"):
        key = "created_in_week" if metric == "goal_set" else "completed_in_week"
        goals = r.facts.data.get("savings_goals") or []
        value: float | None = 1.0 if any(g.get(key) for g in goals) else 0.0
    else:
        value = r.facts.value(metric, week)
    if value is None:
        return
    if (value > 0) != negated:
        r.mark(m.start(), end)
        return
    said = r.text[m.start() : end]
    state = f"{metric} is {value:,.0f}" + (f" ({week})" if week != "now" else "")
    r.flag("wrong_event", m.start(), end, f"{said!r}: {state}")


_ADVICE_START = re.compile(r"\s*(?:nên|cần(?!\sthêm)|đừng|tiếp\stục)(?!\w)")


_WHEN = re.compile(r"(?<!\w)(?:khi|lúc|mà)(?!\w)")


def _week_when(r: Reading, clause: Span, at: int) -> str | None:
    """ "hơn tuần rồi khi con không vào ngày nào": the week a "khi" clause speaks of."""
    refs = week_refs(r.low, clause[0], at)
    if refs and _WHEN.search(r.low, refs[-1].end(), at):
        return refs[-1].lastgroup
    return None


def _in_advice(r: Reading, clause: Span, at: int) -> bool:
    if r.advice_field or ADVICE.search(r.low, clause[0], at):
        return True
    first = next((c[0][0] for c in r.sentences if c[0][0] <= at < c[-1][1]), clause[0])
    return bool(_ADVICE_START.match(r.low, first))


# --- ranked categories ----------------------------------------------------------------------

_RANK = re.compile(
    r"(?<!\w)(?:(?P<top>nhiều\snhất|lớn\snhất|cao\snhất|chủ\syếu|đứng\sđầu|dẫn\sđầu|phần\slớn)"
    r"|(?P<least>ít\snhất|thấp\snhất|nhỏ\snhất|cuối\scùng)"
    r"|(?P<second>thứ\s(?:hai|2|nhì)|tiếp\stheo|sau\sđó|đứng\ssau|xếp\ssau|theo\ssau|rồi\stới"
    r"|rồi\sđến)"
    r"|(?P<third>thứ\s(?:ba|3)))(?!\w)"
)
_TOP_K = re.compile(
    r"(?<!\w)(?P<k>\d+)\s(?:khoản|danh\smục|loại|mục)(?:\schi(?:\stiêu)?)?\s(?:lớn|nhiều|cao)\snhất"
)


_IN_ORDER = re.compile(r"theo\sthứ\stự|lần\slượt")


_RANK_WORDS = ("nhất", "chủ yếu", "đầu", "thứ", "tiếp theo", "sau", "cuối", "phần lớn", "rồi")


def read_ranking(r: Reading) -> None:
    """The categories a sentence ranks: the top one, the top k, the second, the least."""
    ranking = r.facts.ranking
    if not any(w in r.low for w in _RANK_WORDS) or not _RANK.search(r.low):
        return
    for clauses in r.sentences:
        first, last = clauses[0][0], clauses[-1][1]
        ranks = [m for m in _RANK.finditer(r.low, first, last) if not r.is_read(*m.span())]
        if not ranks:
            continue
        if any(
            _in_advice(r, c, m.start()) for m in ranks for c in clauses if c[0] <= m.start() < c[1]
        ):
            continue
        named = [x for x in mentions_in(r, first, last) if x.metric and x.metric.startswith("cat:")]
        if not named:
            continue
        groups = [x.metric[4:] for x in named if x.metric]
        top_k = _TOP_K.search(r.low, first, last)
        problem = _rank_problem(ranking, groups, ranks, top_k, r.low)
        span = (first, last)
        if problem is None:
            for m in [*ranks, *([top_k] if top_k else [])]:
                r.mark(*m.span())
        else:
            r.flag("wrong_category", *span, f"{r.text[first:last].strip()!r}: {problem}")


def _rank_problem(
    ranking: tuple[tuple[str, float], ...],
    groups: list[str],
    ranks: list[re.Match[str]],
    top_k: re.Match[str] | None,
    low: str,
) -> str | None:
    amounts = dict(ranking)
    order = ", ".join(f"{g} {a:,.0f}" for g, a in ranking) or "no spending"

    def rank_of(group: str) -> set[int]:  # ties share ranks
        if group not in amounts:
            return set()
        above = sum(1 for _, a in ranking if a > amounts[group])
        same = sum(1 for _, a in ranking if a == amounts[group])
        return set(range(above + 1, above + same + 1))

    kind = ranks[0].lastgroup
    if top_k is not None and kind == "top":
        k = int(top_k.group("k"))
        in_order = not _IN_ORDER.search(low) or all(  # "theo thứ tự", "lần lượt là"
            place in rank_of(g) for place, g in enumerate(groups, start=1)
        )
        if len(groups) == k and in_order and all(rank_of(g) & set(range(1, k + 1)) for g in groups):
            return None
        return f"the {k} largest categories are not {', '.join(groups)} ({order})"
    if kind == "top":
        if 1 not in rank_of(groups[0]):
            return f"{groups[0]} is not the top category ({order})"
        for ahead, behind in itertools.pairwise(groups):
            if amounts.get(behind, -1) > amounts.get(ahead, -1):
                return f"{behind} is not below {ahead} ({order})"
        return None
    if kind == "least":
        if groups[-1] in amounts and amounts[groups[-1]] == min(amounts.values()):
            return None
        return f"{groups[-1]} is not the smallest category ({order})"
    place = 2 if kind == "second" else 3
    if any(place in rank_of(g) for g in groups):
        return None
    return f"none of {', '.join(groups)} is category number {place} ({order})"


# --- "bằng 0": nothing, said without a unit ---------------------------------------------

_ZERO = re.compile(
    r"(?<!\w)(?P<hedge>gần\snhư\s|gần\s|xấp\sxỉ\s|suýt\s)?(?:bằng|là|ở\smức|mức|về|còn|=)\s"
    r"(?P<zero>0)(?!\d|[.,]\d)(?!\s?(?:%|đ|đồng|vnd|ngày|giao|sự|k|nghìn|ngàn|triệu)(?!\w))"
)


def read_zeros(r: Reading) -> None:
    """ "Chi tiêu ổn định ở mức 0", "hai tuần trước đều bằng 0", "tỷ lệ tiết kiệm gần như
    bằng 0": the thing named (this week, or the week named) is nothing."""
    if "0" not in r.low:
        return
    for m in _ZERO.finditer(r.low):
        clauses, clause = r.locate(m.start())
        rate = re.search(r"tỷ\slệ|tỉ\slệ", r.low[clause[0] : m.start()])
        week = _clause_week(r, clause[0], m.start())
        if rate:
            value = r.facts.data.get("savings_rate")
            value = None if value is None else float(value) * 100
            scale = 100.0
        else:
            subject = _subject_before(r, clauses, clause, m.start(), (None, None))
            if subject is None or subject.metric is None:
                continue
            value = r.facts.value(
                subject.metric,
                "mean" if "đều" in r.low[clause[0] : m.start()] and week != "now" else week,
            )
            scale = max(r.facts.value("income_total") or 0.0, 1.0)
        if value is None:
            continue
        near = abs(value) <= 0.01 * scale if m.group("hedge") else value == 0
        if near:
            r.mark(m.start("zero"), m.end("zero"))
        else:
            r.flag("wrong_metric", m.start(), m.end(), f"{m.group()!r}: it is {value:,.2f}")


# --- the sweep --------------------------------------------------------------------------------

_CLAIM_WORDS = re.compile(
    r"(?<!\w)(?:\d+(?:[.,]\d+)*"
    r"|gấp|nửa|phần\s(?:ba|tư|năm|mười)"
    r"|(?:nhiều|ít|cao|thấp|lớn|nhỏ)\s(?:hơn|nhất)|vượt|kém|chủ\syếu|đứng\sđầu"
    r"|tăng(?!\scường)|giảm|ổn\sđịnh|không\sđổi|giữ\snguyên|đi\sngang|mới\sxuất\shiện|lần\sđầu"
    r"|phần\slớn"
    r"|(?:không|chưa|chẳng)(?:\s(?:hề|có|được|đã))*\s(?:chi|tiêu|mua|nhận|gửi|để\sdành|tiết\skiệm"
    r"|rút|đặt|hoàn\sthành|dùng|mở|hoạt\sđộng|có\s(?:khoản|giao\sdịch|thu\snhập|sự\skiện|tiền))"
    r"|tuần\strước|tuần\srồi|hai\stuần|tuần\skia)(?!\w)"
)
# Not claims: a score, an age, a number of weeks, the goal's label, a list's numbering.
_NOT_A_FIGURE = re.compile(r"\s?(?:/\s?10|điểm|tuổi|tuần|tháng|năm|giờ|phút)(?!\w)")
_NOT_A_FIGURE_BEFORE = re.compile(r"(?:tuần|tháng|lớp|năm|thứ|số|bước|/)\s?$")


def sweep(r: Reading) -> None:
    """Every claim-like word that no check read: `unverifiable`, one finding a sentence."""
    flagged: set[int] = set()
    for m in _CLAIM_WORDS.finditer(r.low):
        clauses, clause = r.locate(m.start())
        first, last = clauses[0][0], clauses[-1][1]
        if first in flagged or r.is_read(m.start(), m.end()):
            continue
        word = m.group()
        if word[0].isdigit():
            if _NOT_A_FIGURE.match(r.low, m.end()) or _NOT_A_FIGURE_BEFORE.search(
                r.low, max(0, m.start() - 8), m.start()
            ):
                continue
        elif _in_advice(r, clause, m.start()):
            continue  # "hãy giảm chi tiêu": advice, not a claim
        if word.startswith(("tuần", "hai tuần")) and any(s < last and first < e for s, e in r.read):
            continue  # a week named by a sentence whose claims were read
        sentence = r.text[first:last].strip()
        msg = (
            f"cannot verify {r.text[m.start() : m.end()]!r} in {sentence!r}: say it with "
            "a figure of the data and what it is, or leave it out"
        )
        r.flag("unverifiable", first, last, msg)
        flagged.add(first)
