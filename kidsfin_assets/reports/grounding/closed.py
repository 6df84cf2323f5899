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

Why one module of ~1,500 lines (above the engine's ~600): its readers share one reading of
a sentence and are tuned together on the written corpora (bench/corpus: each tuning is
measured once, on a corpus it never saw); their order is part of the rules (a difference
is read before its figure, a ranking before a count). Splitting them is a move for a
session that re-measures the corpora after it; the interface is one call, `check_report`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kidsfin_assets.reports.grounding.facts import Facts
from kidsfin_assets.reports.grounding.reading import Stated
from kidsfin_assets.reports.grounding.vocabulary import (
    ADVICE,
    CATEGORIES,
    GOAL_LABEL,
    group_of,
    lead_all,
)

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
        for clauses in self.sentences:  # loops, not generators: asked for each word read
            if at < clauses[-1][1]:
                for clause in clauses:
                    if clause[0] <= at < clause[1]:
                        return clauses, clause
                return clauses, clauses[0]
        return self.sentences[-1], self.sentences[-1][-1]

    def mark(self, start: int, end: int) -> None:
        self.read.append((start, end))

    def is_read(self, start: int, end: int) -> bool:
        # a loop, not any() over a generator: called for each word of each reader
        for s, e in self.read:  # noqa: SIM110
            if s < end and start < e:
                return True
        return False

    def goal_of(self, metric: str, at: int) -> str:
        """ "mục tiêu" without a number is the goal its sentence named last."""
        if metric != "target:":
            return metric
        start = max((c[0][0] for c in self.sentences if c[0][0] <= at), default=0)
        named = GOAL_LABEL.findall(self.labelled, start, at)
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
    ("rút khỏi quỹ tiết kiệm", "withdrawal_total"),
    ("rút khỏi tiết kiệm", "withdrawal_total"),
    ("rút ra khỏi tiết kiệm", "withdrawal_total"),
    ("rút từ tiết kiệm", "withdrawal_total"),
    ("rút tiết kiệm", "withdrawal_total"),
    ("số tiền rút", "withdrawal_total"),
    ("tiền rút", "withdrawal_total"),
    ("rút ra", "withdrawal_total"),
    ("rút", "withdrawal_total"),
    ("tiền gửi tiết kiệm", "saving_total"),
    ("bỏ vào tiết kiệm", "saving_total"),  # "tiền rút ra nhiều hơn tiền bỏ vào heo"
    ("bỏ vào heo đất", "saving_total"),
    ("bỏ vào heo", "saving_total"),
    ("bỏ ống heo", "saving_total"),
    ("bỏ heo", "saving_total"),
    ("bỏ ống", "saving_total"),
    ("dành dụm", "saving_total"),
    ("gửi tiết kiệm", "saving_total"),
    ("gửi vào tiết kiệm", "saving_total"),
    ("gửi vào", "saving_total"),
    ("bỏ vào ống", "saving_total"),
    ("tích góp", "saving_total"),
    ("tích cóp", "saving_total"),
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
    ("tiền vào", "income_total"),  # "tiền vô nhiều hơn tiền ra" (vô: vào)
    ("tiền ra", "spending_total"),
    ("khoản nhận", "income_total"),
    ("tiền được cho", "income_total"),  # "xài nhiều hơn số tiền được cho"
    ("được cho", "income_total"),
    ("kiếm được", "income_total"),
    ("khoản thu", "income_total"),
    ("mức thu", "income_total"),
    ("thu", "income_total"),  # "chi nhiều hơn thu"
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
    ("xài", "spending_total"),
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
    + r")(?!\w)(?<!chi(?=\stiết))(?<!thu(?=\s(?:hút|thập|xếp|gọn|dọn|hoạch)))"
    + r"(?<!nhận(?=\s(?:xét|thấy|ra|thức|biết|định)))"
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
        week = _week_right_after(low, m.end()) if m.end() < end else None
        found.append(Mention(m.start(), m.end(), metric, week.lastgroup if week else None))
    for m in _GOAL_TARGET.finditer(labelled, start, end) if labelled else ():
        found.append(Mention(m.start(), m.end(), f"target:{m.group('n') or ''}", None))
    return sorted(found, key=lambda x: x.start)


def _week_right_after(low: str, at: int) -> re.Match[str] | None:
    """The week named right after a metric: "chi tiêu tuần trước", "thu nhập của tuần trước"."""
    at += 1
    if low.startswith("của ", at):
        at += 4
    return _WEEKS.match(low, at)


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
    r"ít\shơn|thấp\shơn|nhỏ\shơn|nhiều\shơn|hơn\scả|hơn|gần\snhư|gần|khoảng|xấp\sxỉ|tầm|cỡ|chừng|trên|chưa\s(?:đến|tới|bằng|được|đạt)|dưới"
    r"|không\s(?:tới|đến|bằng)|chỉ\sbằng|chỉ|ít\snhất|bằng|đúng"
)
_RATIO = re.compile(
    rf"(?<!\w)(?:(?P<hedge>{_HEDGE})\s)?(?:"
    rf"gấp\s(?:(?P<hedge2>{_HEDGE})\s)?(?:(?P<times>đôi|rưỡi|ba|bốn|năm|\d+(?:[.,]\d+)?)"
    r"(?:\slần(?P<and_half>\srưỡi)?)?)"  # "gấp 4 lần rưỡi": 4.5
    r"|(?P<half>(?:một\s|phân\s)?nửa)(?!\s(?:triệu|nghìn|ngàn))|(?P<most>phần\slớn)"
    r"|(?P<num>một|hai|ba|bốn|năm|sáu|bảy|tám|chín|\d+)\sphần\s"
    r"(?P<den>hai|ba|tư|bốn|năm|mười|\d+)(?!\s?trăm)"
    r"|(?P<slash>\d+)\s?/\s?(?P<over>[2-9]|10)(?!\d|\s?ngày)"
    r"|(?P<lan>\d+(?:[.,]\d+)?)\slần(?P<lan_half>\srưỡi)?"
    r")(?!\w)"
)
# How far a hedged ratio may be from the truth, as shares of the ratio said.
_RATIO_BOUNDS = {
    "": (0.95, 1.05),  # "gấp đôi" is 1.9 to 2.1 times; 1.84 is "gần gấp đôi"
    "about": (0.85, 1.15),
    "near": (0.8, 1.02),
    "over": (1.000001, float("inf")),  # "hơn một nửa": not exactly half
    "just_over": (1.000001, 1.5),
    "least": (1.0, float("inf")),
    "under": (0.0, 0.999999),
}
_ONLY_BEFORE = re.compile(r"(?<!\w)(?:mới|chỉ)(?:\s(?:được|đạt|có))?\s$")
_HEDGE_KIND = {
    "hơn": "over",
    "nhiều hơn": "over",
    "ít hơn": "under",  # "chi tiêu ít hơn một nửa thu nhập"
    "thấp hơn": "under",
    "nhỏ hơn": "under",
    "hơn cả": "over",
    "trên": "over",
    "ít nhất": "least",
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
_ROUGHLY_AFTER = re.compile(
    r"[^.;!?]*?,\s(?:(?:khoảng|cỡ|tầm|chừng)\s(?:vậy|đó|như\svậy)|đại\skhái)(?!\w)"
)
_AFTER_FILLER = re.compile(
    r"\s*(?:(?:so\svới|của|số\stiền|tiền|mức|khoản|là|cả|tổng|lượng|so|với|phần|được|con|bé|em"
    r"|\[\[kid\]\]|đã|rất\snhiều|nhiều|hẳn|khá|một\schút|chút|đáng\skể|rõ\srệt|số|xa|mua"
    r"|chơi|dành\scho|cho|đúng)\s+)*"
)


def _ratio_value(m: re.Match[str]) -> float | None:
    if m.group("times"):
        word = m.group("times")
        half = 0.5 if m.group("and_half") else 0.0
        return (_RATIO_WORDS.get(word) or float(word.replace(",", "."))) + half
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
        return float(m.group("lan").replace(",", ".")) + (0.5 if m.group("lan_half") else 0.0)
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
            # "..., trò chơi (55k) và sách truyện (52k), bằng với đồ dùng học tập": a clause
            # that opens with the comparison is said of the category named last before it
            opens = start != own[0] and not r.low[own[0] : at].strip()
            last = found[-1]
            if (
                opens
                and (last.metric or "").startswith("cat:")
                and _AND_BEFORE.search(r.low, start, last.start)
            ):
                return last
            return found[0]
    return None


_AND_BEFORE = re.compile(r"\)\s(?:và|với)\s")


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
    # "gấp đôi mức 42.000 đ của tuần trước": that week's (its figure is read with the others)
    figure = _FIGURE_OF.match(r.low, pos, end)
    week = _WEEKS.match(r.low, figure.end() if figure else pos, end)
    if week:
        return None, week.lastgroup, week.end()
    found = mentions_in(r, max(at, pos - 8), end)
    found = [x for x in found if x.start <= pos < x.end or x.start == pos]
    if found:
        return found[0], found[0].week, found[0].end
    return None, None, at


_FIGURE_OF = re.compile(
    r"(?:khoảng\s|gần\s)?\d[\d.,]*\s?(?:đ|đồng|k|nghìn|ngàn|triệu)\s(?:của\s|vào\s|trong\s)?(?=tuần)"
)
_THE_MONEY = re.compile(
    r"\s(?:số\stiền|tiền)(?:\s(?:con\s)?(?:nhận\sđược|được\scho))?(?!\s\w*\s?(?:chi|tiêu))"
)
_DECREASE = re.compile(r"(?<!\w)giảm(?:\sđi|\sxuống|\scòn)?\s(?:(?:khoảng|gần|hơn)\s)?$")
_COMPARED_WEEK = re.compile(
    r"so\svới\s(?:(?P<prev2>tuần\strước\snữa|(?:hai|2)\stuần\strước)|(?P<prev1>tuần\strước|tuần\srồi)"
    r"|(?P<mean>trung\sbình\shai\stuần(?:\strước)?))"
)
# a clause that only restates its sentence's comparison: "..., tức là hơn gấp đôi", ", gần gấp đôi"
_RESTATES = re.compile(
    r"\s*(?:tức\slà|tức|nghĩa\slà|hay|tương\sđương|gần|khoảng|hơn|xấp\sxỉ|gấp|bằng)(?!\w)"
)
_RATE_SAID = re.compile(r"(?<!\w)t[ỷỉ]\slệ\s(?:tiết\skiệm|để\sdành)(?!\w)")
# the last goal named before it: "mục tiêu 1 đủ tiền rồi, mục tiêu 2 được khoảng hai phần ba"
_GOAL_REACHED_BEFORE = re.compile(
    r"mục\stiêu\s(?P<n>\d+)(?:(?!mục\stiêu\s\d)[^.;])*?(?:đạt|hoàn\sthành|được|tiến\sđộ)"
    r"(?:(?!mục\stiêu\s\d)[^.;])*$"
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
        contrasted = _weeks_contrasted(r, clauses, clause, m.start())
        if after is None and after_week is None and contrasted and subject is not None:
            subject = Mention(subject.start, subject.end, subject.metric, contrasted[0])
            after_week = contrasted[1]  # "tuần rồi con chỉ chi 42k, tuần này thì gấp đôi"
        if after is None and after_week is None:  # "so với tuần rồi (327k) thì giảm một nửa"
            # "so với trung bình hai tuần trước, tức là hơn gấp đôi": its sentence's
            since = first if _RESTATES.match(r.low, clause[0]) else clause[0]
            said = list(_COMPARED_WEEK.finditer(r.low, since, m.start()))
            after_week = said[-1].lastgroup if said else None
            if after_week is None and since == first:  # "tăng từ 1 ngày tuần rồi lên 5
                # ngày, gấp 5 lần": the one other week its sentence names
                weeks = {w.lastgroup for w in week_refs(r.low, first, m.start())} - {"now"}
                after_week = weeks.pop() if len(weeks) == 1 else None
        if after is None and _THE_MONEY.match(r.low, m.end()):  # "phần lớn số tiền"
            after = Mention(m.end(), m.end(), "income_total", None)
        if after is None and subject is not None and (subject.metric or "").startswith("cat:"):
            after = Mention(m.end(), m.end(), "spending_total", None)  # "chiếm phần lớn"
        rate = _RATE_SAID.search(r.low, first, m.start()) if subject is None else None
        if rate and (after is None or after.metric == "income_total"):
            # "tỷ lệ tiết kiệm khoảng 33%, tức là một phần ba (thu nhập)": saving / income
            subject = Mention(rate.start(), rate.end(), "saving_total", None)
            after = Mention(m.end(), after_end, "income_total", None)
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
        summed = _summed(r, subject, m.start(), week)
        a = summed[0] if summed else r.facts.value(r.goal_of(subject.metric, m.start()), week)
        named = summed[1] if summed else subject.metric
        b = (
            1.0
            if other_metric == "one"
            else r.facts.value(r.goal_of(other_metric, m.start()), other_week)
        )
        if a is None or b is None:
            continue
        hedge = m.group("hedge2") or m.group("hedge") or ""
        kind = "over" if m.group("most") else _HEDGE_KIND.get(re.sub(r"\s+", " ", hedge), "")
        if kind == "over" and _ONLY_BEFORE.search(r.low, max(clause[0], m.start() - 16), m.start()):
            kind = "just_over"  # "mục tiêu 1 mới được hơn một nửa thôi": not 100 %
        if not kind and _ROUGHLY_AFTER.match(r.low, m.end()):
            kind = "about"  # "tiền rút ra gấp đôi tiền gửi vào, khoảng vậy"
        low, high = _RATIO_BOUNDS[kind]
        said = r.text[m.start() : m.end()]
        actual = a / b if b > 0 else 0.0
        if _DECREASE.search(r.low, max(clause[0], m.start() - 12), m.start()) and ratio < 1:
            actual = 1 - actual  # "giảm gần một nửa": by half, to half of it
        if b <= 0 or not (low * ratio - 1e-9 <= actual <= high * ratio + 1e-9):
            actual = "undefined (the other is 0)" if b <= 0 else f"{a / b:.2f}"
            msg = (
                f"{said!r}: {named} ({week}) / {other_metric} ({other_week}) "
                f"is {actual}, not {ratio:g}"
            )
            r.flag("wrong_ratio", m.start(), m.end(), msg)
        else:
            r.mark(m.start(), m.end())


_ADDED_UP = re.compile(r"(?<!\w)(?:cộng\slại|gộp\slại|cộng\schung|tổng\scộng)(?!\w)")


def _summed(r: Reading, subject: Mention, at: int, week: str) -> tuple[float, str] | None:
    """ "Ăn vặt với ăn uống cộng lại chiếm gần một nửa": the categories named, added up
    (their sum, and their names joined by "+")."""
    added = _ADDED_UP.search(r.low, subject.end, at)
    if added is None or not (subject.metric or "").startswith("cat:"):
        return None
    named = {x.metric for x in mentions_in(r, subject.start, added.start()) if x.metric}
    if len(named) < 2 or not all(metric.startswith("cat:") for metric in named):
        return None
    values = [r.facts.value(metric, week) for metric in sorted(named)]
    if None in values:
        return None
    return sum(v or 0.0 for v in values), "+".join(sorted(named))


# --- two metrics compared -------------------------------------------------------------------

_COMPARATIVE = re.compile(
    r"(?<!\w)(?P<neg>(?:không|chưa|chẳng)\s)?(?:"
    r"(?P<more>nhiều\shơn|cao\shơn|lớn\shơn|nhỉnh\shơn|vượt(?:\squá)?|nhiều\s(?:tiền(?:\stiết\skiệm)?"
    r"|ngày|giao\sdịch|sự\skiện)\shơn|hơn)"
    r"|(?P<less>ít\shơn|thấp\shơn|nhỏ\shơn|kém(?:\shơn)?|ít\s(?:tiền(?:\stiết\skiệm)?|ngày|giao\sdịch"
    r"|sự\skiện)\shơn)"
    r"|(?P<about>gần\sbằng|gần\snhư\sbằng|xấp\sxỉ(?:\sbằng)?|suýt\sbằng"
    r"|gần(?:\snhư)?\s(?:y\snhư|giống(?:\snhư)?))"
    r"|(?P<equal>bằng(?:\svới)?|ngang(?:\sbằng)?|tương\sđương(?:\svới)?|y\s(?:như|hệt)(?:\snhư)?"
    r"|giống(?:\shệt)?(?:\snhư)?)"
    r"|(?P<enough>đủ\s(?:để\s)?(?:trang\strải|chi\strả|bù\sđắp|bù)(?:\s(?:toàn\sbộ|hết|cả))?)"
    r")(?:\scả)?(?!\w)"
)


# "nhiều hơn tiền nhận (tới) 71k": the difference after the comparison
_DIFFERENCE = re.compile(
    r"\s(?:được\s)?(?:khoảng\s|gần\s|đúng\s|chừng\s|tới\s|đến\s|cỡ\s|tầm\s)?(?=-?\d)"
)


_COMPARATIVE_WORDS = (
    "hơn", "kém", "bằng", "vượt", "ngang", "tương đương", "xấp xỉ", "đủ", "y như", "y hệt", "giống"
)  # fmt: skip


_NUMBER_NEXT = re.compile(r"\s\d")


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
        hedge = m.group("more") == "hơn" and not m.group("neg")  # "hơn 10,3 triệu": a bound
        if hedge and _NUMBER_NEXT.match(r.low, m.end()):
            continue  # "số dư hơn 1 triệu": the figure's bound, read with the figure
        found = _compared(r, clauses, clause, m)
        if found is None and pair is not None and not hedge and _DIFFERENCE.match(r.low, m.end()):
            found = (*pair, m.end())
        if found is None:
            continue  # "nhiều hơn tuần trước" is a trend; a number is a difference
        subject, other, end = found
        pairs[clauses[0][0]] = (subject, other)
        _check_comparison(r, m, subject, other, end)
        for each, against in _each_of_them(r, clause, m, subject, other):
            _check_comparison(r, m, each, against, end)


_EACH = re.compile(r"(?<!\w)(?:đều|cùng|cả\s(?:hai|ba))(?:\s(?:đã|vẫn|khá|rất))?\s*$")


def _each_of_them(
    r: Reading, clause: Span, m: re.Match[str], subject: Operand, other: Operand
) -> list[tuple[Operand, Operand]]:
    """ "Số giao dịch và số ngày hoạt động đều bằng tuần trước": each metric its clause names
    before "đều", against itself in the other week (one metric across two weeks only)."""
    if other.metric != subject.metric or other.week == subject.week:
        return []
    if not _EACH.search(r.low, clause[0], m.start()):
        return []
    pairs = []
    for x in mentions_in(r, clause[0], m.start()):
        if not x.metric or x.metric == subject.metric or x.metric.startswith(("cat:", "target:")):
            continue
        mine, theirs = r.facts.value(x.metric, subject.week), r.facts.value(x.metric, other.week)
        if mine is not None and theirs is not None:
            pairs.append(
                (
                    Operand(x, x.metric, subject.week, mine),
                    Operand(other.mention, x.metric, other.week, theirs),
                )
            )
    return pairs


@dataclass(frozen=True)
class Operand:
    mention: Mention
    metric: str
    week: str
    value: float


def _weeks_contrasted(
    r: Reading, clauses: list[Span], clause: Span, at: int
) -> tuple[str, str] | None:
    """ "tuần rồi con chi 122k còn tuần này thì ít hơn": the week its own clause names, and
    the other one an earlier clause of its sentence named."""
    own = week_refs(r.low, clause[0], at)
    earlier = [w for c in clauses if c[1] <= clause[0] for w in week_refs(r.low, *c)]
    if not own or not earlier:
        return None
    mine, theirs = own[-1].lastgroup, earlier[-1].lastgroup
    if (
        not mine
        or not theirs
        or mine == theirs
        or _COMPARED_WITH.search(r.low, max(0, earlier[-1].start() - 12), earlier[-1].start())
    ):
        return None
    return mine, theirs


def _compared(
    r: Reading, clauses: list[Span], clause: Span, m: re.Match[str]
) -> tuple[Operand, Operand, int] | None:
    """The two things a comparative compares, with their values, and where the second ends."""
    after, after_week, after_end = _operand_after(r, m.end(), clause[1])
    contrasted = _weeks_contrasted(r, clauses, clause, m.start()) if after is None else None
    if contrasted and after_week is None:
        return _contrasted(r, clauses, clause, m, contrasted, after_end)
    # "bằng (đúng) tuần trước", "hai tuần trước con nhận 280k, nhiều hơn tuần này": the
    # same metric, that week ("nhiều hơn tuần trước" of this week is a trend)
    equal = bool(m.group("equal") or m.group("about"))
    of_past = after_week == "now" and _clause_week(r, clauses[0][0], m.start()) != "now"
    same_metric = after is None and after_week is not None and (equal or of_past)
    goal = GOAL_LABEL.findall(r.labelled, clauses[0][0], m.start()) if after is None else []
    if after is None and not same_metric and not goal:
        return None
    week_here = _clause_week(r, clause[0], m.start())
    subject = _subject_before(
        r, clauses, clause, m.start(), (after.metric if after else None, after_week or week_here)
    )
    if subject is None:
        return None
    if after is None and goal and not same_metric:
        if subject.metric != "savings_balance":  # "mục tiêu 1 ... 379k, số dư đã vượt"
            return None
        after = Mention(m.end(), after_end, f"target:{goal[-1]}", None)
    if after is None:
        after = Mention(m.end(), after_end, subject.metric, after_week)
    week = subject.week or week_here
    other_week = after_week or week
    metric = r.goal_of(subject.metric or "", m.start())
    other_metric = r.goal_of(after.metric or "", m.start())
    a, b = r.facts.value(metric, week), r.facts.value(other_metric, other_week)
    if a is None or b is None or (other_metric, other_week) == (metric, week):
        return None
    return Operand(subject, metric, week, a), Operand(after, other_metric, other_week, b), after_end


def _contrasted(
    r: Reading,
    clauses: list[Span],
    clause: Span,
    m: re.Match[str],
    weeks: tuple[str, str],
    end: int,
) -> tuple[Operand, Operand, int] | None:
    subject = _subject_before(r, clauses, clause, m.start(), (None, None))
    if subject is None or subject.metric is None:
        return None
    a, b = r.facts.value(subject.metric, weeks[0]), r.facts.value(subject.metric, weeks[1])
    if a is None or b is None:
        return None
    other = Mention(m.end(), end, subject.metric, weeks[1])
    return (
        Operand(subject, subject.metric, weeks[0], a),
        Operand(other, subject.metric, weeks[1], b),
        end,
    )


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
        # "nhiều hơn chi tiêu 31k": the difference, or the other's own figure
        as_difference = abs(abs(a - b) - n.value) <= n.tolerance + 1e-9
        holds = holds and (as_difference or abs(n.value - abs(b)) <= n.tolerance + 1e-9)
        span = (span[0], n.end)
    if holds:
        # the two things and the comparative, not a figure between them that was not checked
        # ("hai tuần trước con nhận được 185k, nhiều hơn tuần này": 185k is read as a figure)
        r.mark(one.mention.start, one.mention.end)
        r.mark(m.start(), span[1])
        _mark_own_figure(r, one, m.start())
    else:
        said = r.text[span[0] : span[1]]
        msg = f"{said!r}: {one.metric} is {a:,.0f} and {other.metric} is {b:,.0f}"
        r.flag("wrong_comparison", *span, msg)


def _mark_own_figure(r: Reading, one: Operand, at: int) -> None:
    """ "Con có 4 giao dịch, bằng tuần rồi": the subject's figure is its own week's."""
    _clauses, clause = r.locate(min(one.mention.start, at))
    for n in r.stated:
        if clause[0] <= n.start < at and abs(n.value - abs(one.value)) <= n.tolerance + 1e-9:
            r.mark(n.start, n.end)
    # "Số giao dịch là 5, bằng tuần trước": a bare count, exactly the subject's
    for m in _BARE.finditer(r.low, one.mention.end, at):
        if float(m.group()) == abs(one.value) and not any(n.start == m.start() for n in r.stated):
            r.mark(m.start(), m.end())


_BARE = re.compile(r"(?<![\w.,])\d+(?![\w%]|[.,]\d)")


# --- what did or did not happen -------------------------------------------------------------

_NEGATION = r"(?:không|chưa|chẳng)(?:\s(?:hề|có|được|đã|phải|bị|hề\scó))*\s"
_EVENT = re.compile(
    rf"(?<!\w)(?P<neg>{_NEGATION})?(?P<verb>"
    r"chi\stiêu|chi\scho|chi|tiêu\stiền|tiêu|mua|nhận(?:\sđược)?|gửi(?:\stiết\skiệm)?|để\sdành"
    r"|tiết\skiệm|rút(?:\stiền)?|tốn(?:\stiền)?|xài|sắm|dành\sdụm|tích\s(?:góp|cóp)|kiếm(?:\sđược)?"
    r"|lấy(?=(?:\sra)?(?:\s(?:một\sít|một\schút|chút|ít|một\sphần|bớt))?\s(?:(?:từ|trong)\s)?(?:tiền\s)?"
    r"(?:tiết\skiệm|heo|quỹ))"
    r"|(?:bỏ|nạp|cất|chuyển)(?=(?:\s(?:thêm|một|ít|chút|phần|khoản|nhỏ|số|tiền|đồng|xu|nào|lại))*"
    r"\svào\s(?:tiết\skiệm|heo|ống|quỹ))"
    # "không đụng tới / động đến tiền tiết kiệm": withdrew nothing
    r"|(?:đụng|động)(?=\s(?:tới|đến|vào)\s(?:(?:tiền|khoản|số\stiền)\s)?(?:tiết\skiệm|heo|quỹ))"
    r"|bỏ(?=\s(?:ống|heo))|đặt(?:\sthêm)?(?=\s(?:một\s|1\s)?mục\stiêu)|hoàn\sthành"
    r"|(?:dùng|mở|vào)(?=\s(?:app|ứng\sdụng))|đăng\snhập|hoạt\sđộng(?!\stài)"
    r"|có(?=(?:\s(?:một\sít|một\schút|chút\sít|chút|ít|đồng))?\s(?:khoản|giao\sdịch|thu\snhập|sự\skiện|tiền|ngày\shoạt\sđộng|ngày\snào))"
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
    "lấy": "withdrawal_total",  # "lấy một ít tiền tiết kiệm ra xài"
    "tốn": "spending_total",  # "không tốn đồng nào cho trò chơi"
    # the everyday words for the same events: "xài" is spend, "dành dụm" and "tích góp" save,
    # "kiếm được" earn
    "xài": "spending_total",
    "sắm": "spending_total",
    "dành": "saving_total",
    "tích": "saving_total",
    "kiếm": "income_total",
    "bỏ": "saving_total",  # "bỏ thêm tiền vào tiết kiệm"
    "nạp": "saving_total",
    "cất": "saving_total",
    "chuyển": "saving_total",  # "chuyển một phần tiền vào tiết kiệm"
    "đụng": "withdrawal_total",  # "không đụng tới tiền tiết kiệm"
    "động": "withdrawal_total",  # "không hề động đến tiền tiết kiệm"
    "dùng": "active_days",
    "mở": "active_days",
    "vào": "active_days",
    "đăng": "active_days",
    "hoạt": "active_days",
}
_HAS_OBJECT = {
    "ngày hoạt động": "active_days",
    "ngày nào hoạt động": "active_days",  # "không có ngày nào hoạt động trên ứng dụng"
    "ngày nào": "active_days",
    "khoản gửi": "saving_total",
    "khoản tiết kiệm": "saving_total",
    "khoản chi": "spending_total",
    "khoản thu": "income_total",
    "thu nhập": "income_total",
    "tiền gửi": "saving_total",  # "không có tiền gửi tiết kiệm": no deposit
    "tiền rút": "withdrawal_total",
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
        said = _ANY_OF_THEM.match(r.low, m.end())
        if said:  # "thu nhập và chi tiêu ... vì hai tuần trước con không có khoản nào"
            return "named", said.end()
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
    r"mục\stiêu\s(?P<n>\d+)(?:(?!mục\stiêu\s\d)(?:[^.,;!?]|(?<=\d)[.,](?=\d)))*?"
    r"(?P<neg>chưa\s|không\s)?(?:được\s(?:con\s|bé\s)?|mới\s|vừa\s|đã\s)"
    r"(?:được\s)?đặt(?!\w)(?!(?:\sthêm)?(?:\smột)?\smục\stiêu)"  # "vừa xong mục tiêu 1 vừa đặt
    r"(?!\s(?:nó\s)?từ\s(?:trước|lâu|mấy|vài|hai|ba|\d|tuần))"  # thêm mục tiêu 2": the other
)  # goal's; "đã đặt từ mấy tuần trước": before this week (_SET_BEFORE)
# "Mục tiêu 1 khoảng 456k thì con đã đặt từ mấy tuần trước rồi": not set this week
_SET_BEFORE = re.compile(
    r"mục\stiêu\s(?P<n>\d+)(?:(?!mục\stiêu\s\d)(?:[^.,;!?]|(?<=\d)[.,](?=\d)))*?"
    r"(?<!\w)đặt\s(?:nó\s)?từ\s(?:trước|lâu|(?:mấy|vài|hai|ba|\d+)\stuần\strước|tuần\strước)(?!\w)"
)
# "..., nên đặt mục tiêu", "cùng con đặt một mục tiêu mới": advice, not an event
_SHOULD = re.compile(r"(?<!\w)(?:nên|cần|hãy|để|muốn|cùng\s(?:con|bé|em|\[\[kid\]\]))\s$")
_SETS_GOAL = re.compile(
    r"(?<!\w)(?P<neg>(?:chưa|không)\s)?(?:(?:đã|vừa|mới|có)\s)?đặt(?:\sthêm)?\smục\stiêu\s(?P<n>\d+)"
    r"(?!\d)"
)
_ACTIVITY = re.compile(r"(?:vào|dùng|mở)\s(?:app|ứng\sdụng)|hoạt\sđộng")
_NOUN_BEFORE = re.compile(r"(?:ngày|độ|số)\s$")  # "số ngày hoạt động": a noun, not a verb


def _goal_set_claims(r: Reading) -> None:
    """ "Mục tiêu 1 được con đặt ngay trong tuần này": that goal was set this week."""
    if "đặt" not in r.labelled:
        return
    goals = {str(g.get("goal")): g for g in r.facts.data.get("savings_goals") or []}
    for m in _SET_BEFORE.finditer(r.labelled):
        goal = goals.get(f"mục tiêu {m.group('n')}")
        if goal is not None and not goal.get("created_in_week"):
            r.mark(m.start(), m.end())
        else:
            said = r.labelled[m.start() : m.end()]
            state = "was set this week" if goal else "is not in the data"
            r.flag("wrong_event", m.start(), m.end(), f"{said!r}: mục tiêu {m.group('n')} {state}")
    for m in [*_GOAL_SET.finditer(r.labelled), *_SETS_GOAL.finditer(r.labelled)]:
        if m.re is _SETS_GOAL:  # "con đặt thêm mục tiêu 2": set this week, unless advice
            clauses, clause = r.locate(m.start())  # or another week is named
            weeks = {w.lastgroup for w in week_refs(r.low, clauses[0][0], clauses[-1][1])}
            advice = _in_advice(r, clause, m.start()) or _SHOULD.search(r.low, 0, m.start())
            if r.advice_field or advice or weeks - {"now"}:
                continue
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
    if r.advice_field:
        return  # each event below would be skipped as advice
    for m in _ALL_FOR.finditer(r.low):
        _check_all_for(r, m)
    future: dict[Span, bool] = {}
    for m in _EVENT.finditer(r.low):
        negated = bool(m.group("neg"))
        by_kid = not negated and m.group("verb").split()[0] in _KID_DID and _done_by_kid(r, m)
        if (
            not negated
            and not by_kid
            and not _AFFIRMED.search(r.low, max(0, m.start() - 16), m.start())
            and not (
                m.group("verb").split()[0] in _SPEND_VERBS
                and _PAID_WITH.search(r.low, max(0, m.start() - 24), m.start())
            )
            and not _ACTIVITY.match(r.low, m.start())
            # "con đặt một mục tiêu mới" holds no figure to check instead ("nên đặt": advice)
            and not (m.group("verb").startswith("đặt") and not _SHOULD.search(r.low, 0, m.start()))
            and not (r.low.endswith("phải ", 0, m.start()) and _said_of_a_week(r, m))
        ):
            continue  # "con chi 31.000 đ": the figure is what is checked
        if (negated and _NOT_NOTHING.match(r.low, m.end())) or r.is_read(m.start(), m.end()):
            continue
        if _NOUN_BEFORE.search(r.low, max(0, m.start() - 8), m.start()):
            continue
        _clauses, clause = r.locate(m.start())
        if clause not in future:
            future[clause] = bool(_FUTURE.search(r.low, *clause))
        # advice before the verb ("nên gửi"), not after ("đã gửi ... để hướng tới mục tiêu 2")
        if future[clause] or _in_advice(r, clause, m.start()):
            continue
        if by_kid and _COMPARED_AFTER.search(r.low, m.end(), clause[1]):
            continue
        if not negated and any(
            m.end() <= n.start < clause[1] and not (n.value == 1 and n.unit in ("khoản", "lần", ""))
            for n in r.stated
        ):
            continue  # an affirmative with a figure: the figure is what is checked
        _check_event(r, m, clause, negated)


_AFFIRMED = re.compile(r"(?<!\w)(?:đã|có|vừa|cũng|vẫn|còn|đều|chỉ|lại|duy\strì(?:\sviệc)?)\s$")
# "lấy tiền ra mua đồ ăn vặt", "dùng một ít tiền mua ...": bought (a spending verb only:
# "lấy một ít tiền tiết kiệm" is a withdrawal)
_PAID_WITH = re.compile(
    r"(?<!\w)(?:lấy|dùng)(?:\s(?:một\sít|một\sphần|chút|hết))?\stiền(?:\sra)?\s$"
)
_SPEND_VERBS = frozenset({"mua", "chi", "tiêu", "xài", "sắm"})
# "[[KID]] rút tiền tiết kiệm", "con lấy tiền tiết kiệm ra": the kid did it this week (not
# "cùng con gửi ...", "giúp con ...": the kid as another verb's object, advice)
_BY_THE_KID = re.compile(
    r"(?:\[\[kid\]\]|(?<!\w)(?<!cùng\s)(?<!giúp\s)(?<!cho\s)(?<!để\s)(?<!dạy\s)(?<!với\s)"
    r"(?<!khích\s)(?<!viên\s)(?<!nhắc\s)(?<!hỏi\s)(?<!bảo\s)(?:con|bé))(?:\sphải)?\s$"
)
# The verbs whose event the kid as their subject claims: moving money, not judged habits
# ("con chi tiêu hợp lý", "con tiết kiệm giỏi" say how, not that it happened this week)
_KID_DID = frozenset(
    {"rút", "lấy", "gửi", "nạp", "bỏ", "cất", "chuyển", "nhận", "đụng", "động", "tốn"}
)
# What before a verb makes it a noun, a reason or a condition, not the kid's act this week:
# "tiền gửi vào", "tiền tiêu vặt nhận được", "mỗi lần rút tiền", "thói quen gửi", "khen con
# vì vẫn gửi", "nếu gửi"
_NOT_AN_ACT = re.compile(
    r"(?<!\w)(?:(?:tiền|khoản|số\stiền)(?:\s(?:tiêu\svặt|tiết\skiệm|\w+))?|lần|việc|thói\squen"
    r"|động\slực|mục\stiêu|được|vì|khi|nếu|cần|trước\skhi|sẽ|để|rằng)"
    r"(?:\s(?:vẫn|đã|có|cũng|đều\sđặn|thêm))*\s$"
)


def _done_by_kid(r: Reading, m: re.Match[str]) -> bool:
    """A verb that moves money, said outright, is the kid's act this week: "[[KID]] rút tiền
    tiết kiệm", and with the subject left out, "vẫn đều đặn gửi một khoản vào tiết kiệm"."""
    if _BY_THE_KID.search(r.low, max(0, m.start() - 14), m.start()):
        return True
    if _NOT_AN_ACT.search(r.low, max(0, m.start() - 24), m.start()):
        return False
    # "21.000 đ gửi tiết kiệm": the figure before it is what is checked
    return not any(n.kind == "money" and 0 <= m.start() - n.end <= 3 for n in r.stated)


# "con chi ít hơn tuần trước": a comparison, checked as one, not as the verb's event
# ("gửi tiết kiệm ổn định": the deposit as a trend's subject, no act of its own)
_COMPARED_AFTER = re.compile(
    r"(?<!\w)(?:hơn|so\svới|bằng|gấp|tăng|giảm|nhất|ổn\sđịnh|không\sđổi|giữ\snguyên|đi\sngang"
    r"|mới\sxuất\shiện)(?!\w)"
)
# "Tuần này con phải rút tiền tiết kiệm": an event of the week named, not advice
_MODAL = re.compile(r"(?<!\w)(?:(?:đã|cũng|lại)\s)?phải\s$")


def _said_of_a_week(r: Reading, m: re.Match[str]) -> bool:
    if not _MODAL.search(r.low, max(0, m.start() - 12), m.start()):
        return False
    clauses, _clause = r.locate(m.start())
    return bool(week_refs(r.low, clauses[0][0], m.start()))


def _check_event(r: Reading, m: re.Match[str], clause: Span, negated: bool) -> None:
    metric, end = _event_metric(r, m, clause[1])
    if metric is None:
        return
    if metric == "named":
        _check_named(r, m, clause, end, negated)
        return
    other = _NO_OTHER.match(r.low, m.end()) if negated and metric == "spending_total" else None
    if other:  # "chỉ chi cho ăn uống, không tiêu vào danh mục nào khác"
        _check_only(r, m, other.end())
        return
    week = _week_when(r, clause, m.start()) or _event_week(r, clause, m.start())
    if metric.startswith("cat:") and week == "now" and r.low.endswith("chỉ ", 0, m.start()):
        _check_only_these(r, m, clause)  # "con chỉ tiêu một ít cho đồ ăn vặt"
        return
    if metric in ("goal_set", "goal_done"):
        key = "created_in_week" if metric == "goal_set" else "completed_in_week"
        goals = r.facts.data.get("savings_goals") or []
        value: float | None = 1.0 if any(g.get(key) for g in goals) else 0.0
    else:  # "Cả tuần trước lẫn hai tuần trước, con đều không có ...": each week named
        weeks = _both_weeks(r, m.start()) or (week,)
        values = [r.facts.value(metric, each) for each in weeks]
        value = None if None in values else (max if negated else min)(v or 0.0 for v in values)
        week = "/".join(weeks)
    if value is None:
        return
    if negated and value > 0 and _ALMOST.search(r.low, max(0, m.start() - 12), m.start()):
        # "con gần như không tiêu gì, chỉ 10k cả tuần": almost none, as much as its
        # sentence says after it; without that figure, asked again
        sentence_end = r.locate(m.start())[0][-1][1]
        if any(
            m.end() <= n.start < sentence_end and abs(n.value - value) <= n.tolerance + 1e-9
            for n in r.stated
            if n.kind == "money"
        ):
            r.mark(m.start(), end)
        return
    if (value > 0) != negated:
        r.mark(m.start(), end)
        return
    said = r.text[m.start() : end]
    state = f"{metric} is {value:,.0f}" + (f" ({week})" if week != "now" else "")
    r.flag("wrong_event", m.start(), end, f"{said!r}: {state}")


_ALMOST = re.compile(r"(?<!\w)(?:gần\snhư|hầu\snhư)\s$")
_ANY_OF_THEM = re.compile(r"\s(?:khoản|đồng)\s(?:nào|gì)(?!\w)")


def _check_named(r: Reading, m: re.Match[str], clause: Span, end: int, negated: bool) -> None:
    """The metrics its sentence named before it, each none (or some) in the week said."""
    clauses, _clause = r.locate(m.start())
    named = {
        x.metric
        for x in mentions_in(r, clauses[0][0], m.start())
        if x.metric and not x.metric.startswith(("cat:", "target:"))
    }
    week = _event_week(r, clause, m.start())
    values = {metric: r.facts.value(metric, week) for metric in named}
    if not values or None in values.values():
        return
    amounts = [v or 0.0 for v in values.values()]
    if all(v == 0 for v in amounts) if negated else all(v > 0 for v in amounts):
        r.mark(m.start(), end)
        return
    said = r.text[m.start() : end]
    state = ", ".join(f"{k} is {v:,.0f}" for k, v in values.items())
    r.flag("wrong_event", m.start(), end, f"{said!r}: {state} ({week})")


_NO_OTHER = re.compile(
    r"\s(?:tiền\s)?(?:vào|cho)\s(?:danh\smục|khoản|mục|thứ|loại)(?:\s(?:chi|gì))?\s(?:nào\s)?khác"
)


def _check_only(r: Reading, m: re.Match[str], end: int) -> None:
    """No spending on any category but those its sentence names before."""
    clauses, _clause = r.locate(m.start())
    named = {
        x.metric[4:]
        for x in mentions_in(r, clauses[0][0], m.start())
        if x.metric and x.metric.startswith("cat:")
    }
    spent = {group for group, amount in r.facts.ranking if amount > 0}
    if named and spent <= named:
        r.mark(m.start(), end)
    else:
        said = r.text[m.start() : end]
        r.flag("wrong_event", m.start(), end, f"{said!r}: spent on {', '.join(sorted(spent))}")


# "con tiêu 7.000 đ, toàn bộ cho đồ ăn vặt": all of the week's spending went there
_ALL_FOR = re.compile(
    r"(?<!\w)(?:toàn\sbộ|tất\scả)(?:\s(?:số\stiền|tiền|chi\stiêu|khoản\schi|đều))*"
    r"(?:\s(?:là|đã))?\s(?:dành\s)?(?:cho|vào)\s"
)


def _check_all_for(r: Reading, m: re.Match[str]) -> None:
    """ "Toàn bộ cho X (và Y)": the categories its clause names after it, and no other."""
    _clauses, clause = r.locate(m.start())
    if _in_advice(r, clause, m.start()):
        return
    found = [
        x for x in mentions_in(r, m.end(), clause[1]) if x.metric and x.metric.startswith("cat:")
    ]
    if not found or found[0].start > m.end() + 2:
        return  # "tất cả cho mục tiêu 1": no category follows
    named = {x.metric[4:] for x in found if x.metric}
    spent = {group for group, amount in r.facts.ranking if amount > 0}
    if named == spent:
        r.mark(m.start(), found[-1].end)
        return
    said = r.text[m.start() : found[-1].end]
    r.flag(
        "wrong_event", m.start(), found[-1].end, f"{said!r}: spent on {', '.join(sorted(spent))}"
    )


def _check_only_these(r: Reading, m: re.Match[str], clause: Span) -> None:
    """ "Chỉ chi cho X (và Y)": spending on those its clause names after the verb, no other."""
    end = r.locate(m.start())[0][-1][1]  # "chỉ chi cho đồ chơi, ăn vặt và đi lại": a list
    found = [x for x in mentions_in(r, m.end(), end) if x.metric and x.metric.startswith("cat:")]
    named = {x.metric[4:] for x in found if x.metric}
    spent = {group for group, amount in r.facts.ranking if amount > 0}
    if named and named == spent:
        r.mark(m.start(), found[-1].end)  # the verb and its categories, nothing after them
        return
    said = r.text[m.start() : end]
    r.flag("wrong_event", m.start(), end, f"{said!r}: spent on {', '.join(sorted(spent))}")


_ADVICE_START = re.compile(r"\s*(?:nên|cần(?!\sthêm)|đừng|tiếp\stục)(?!\w)")


# "so với hai tuần trước, khi (đó) con chưa chi gì": the week said before
_THEN = re.compile(r"\s*(?:khi|lúc|hồi)(?:\s(?:đó|ấy))?(?!\w)")
_WHEN = re.compile(r"(?<!\w)(?:khi|lúc|mà)(?!\w)")


_A_WEEK = re.sub(r"\?P<\w+>", "?:", _WEEKS.pattern)  # any week, its groups unnamed
_BOTH_WEEKS = re.compile(rf"(?<!\w)cả\s(?P<a>{_A_WEEK})\s(?:lẫn|và|với)\s(?P<b>{_A_WEEK})")


def _both_weeks(r: Reading, at: int) -> tuple[str, ...] | None:
    first = r.locate(at)[0][0][0]  # its sentence's start
    both = _BOTH_WEEKS.search(r.low, first, at)
    if both is None or "đều" not in r.low[both.end() : at]:
        return None
    said = [_WEEKS.match(both.group(g)) for g in ("a", "b")]
    weeks = tuple(w.lastgroup for w in said if w is not None and w.lastgroup)
    return weeks if len(weeks) == 2 else None


def _event_week(r: Reading, clause: Span, at: int) -> str:
    """The week an event is said of: the one named last before its verb ("mới xuất hiện tuần
    này vì hai tuần trước con không chi gì" is W-2's), else the first after it, short of
    another clause ("dùng app là mới vì hai tuần trước ..." is this week's)."""
    before = [
        w
        for w in week_refs(r.low, clause[0], at)
        if not _COMPARED_WITH.search(r.low, max(clause[0], w.start() - 12), w.start())
    ]
    if before:
        return before[-1].lastgroup or "now"
    join = _SUBORDINATE.search(r.low, at, clause[1])
    return _clause_week(r, at, join.start()) if join else _clause_week(r, *clause)


def _week_when(r: Reading, clause: Span, at: int) -> str | None:
    """ "hơn tuần rồi khi con không vào ngày nào": the week a "khi" clause speaks of; "so
    với hai tuần trước, khi đó con không chi gì": the week its sentence named last."""
    if _THEN.match(r.low, clause[0]):
        first = next((c[0][0] for c in r.sentences if c[0][0] <= at < c[-1][1]), clause[0])
        named = week_refs(r.low, first, clause[0])
        return named[-1].lastgroup if named else None
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
    r"(?<!\w)(?:(?P<top>nhiều\s(?:tiền\s)?nhất|lớn\snhất|cao\snhất|chủ\syếu|đứng\sđầu|dẫn\sđầu"
    r"|phần\slớn|tốn(?:\snhiều)?(?:\stiền|\ském)?\snhất"
    r"|mạnh(?:\stay)?\snhất|đậm\snhất|nặng\snhất|(?:xếp|đứng)\snhất"  # "chi mạnh tay nhất"
    r"|\d+\s(?:khoản|danh\smục|loại)(?:\schi(?:\stiêu)?)?\slần\slượt\slà"  # the k largest, listed
    r"|top\s\d+\s(?:khoản|danh\smục|loại)(?:\schi(?:\stiêu)?)?\slà)"
    r"|(?P<only>duy\snhất)"  # "X là danh mục chi duy nhất": the one category spent on
    r"|(?P<least>ít\snhất|thấp\snhất|nhỏ\snhất|cuối\scùng)"
    r"|(?P<second>thứ\s(?:hai|2|nhì)|tiếp\stheo|sau\sđó|đứng\ssau|xếp\ssau|theo\ssau|rồi\stới"
    r"|rồi\sđến)"
    r"|(?P<third>thứ\s(?:ba|3))"
    r"|(?P<listed>(?:xếp\s)?theo\sthứ\stự|từ\slớn\s(?:tới|đến)\snhỏ))(?!\w)"
)
_TOP_K = re.compile(
    r"(?<!\w)(?P<top>top\s)?(?P<k>\d+)\s(?:khoản|danh\smục|loại|mục)(?:\schi(?:\stiêu)?)?\s"
    r"(?:(?:lớn|nhiều|cao)\snhất"
    r"|tốn(?:\snhiều)?(?:\stiền|\ském)?\snhất"
    r"|(?:xếp\s)?theo\sthứ\stự|từ\slớn\s(?:tới|đến)\snhỏ|lần\slượt\slà"
    r"|(?(top)là|(?!)))"  # "Top 3 khoản chi là X, Y, Z": the three largest
)


_RANK_WORDS = (
    "nhất",
    "thứ tự",
    "từ lớn",
    "chủ yếu",
    "đầu",
    "thứ",
    "tiếp theo",
    "sau",
    "cuối",
    "phần lớn",
    "rồi",
    "lần lượt",
    "top",
)


# Any of _RANK_WORDS, as one literal pattern the engine skips through (cheaper than 12 "in")
_RANK_WORD = re.compile("|".join(map(re.escape, _RANK_WORDS)))


def read_ranking(r: Reading) -> None:
    """The categories a sentence ranks: the top one, the top k, the second, the least."""
    ranking = r.facts.ranking
    if not _RANK_WORD.search(r.low) or not _RANK.search(r.low):
        return
    before: Span = (0, 0)  # the sentence before: its categories, read when needed
    for clauses in r.sentences:
        first, last = clauses[0][0], clauses[-1][1]
        previous, before = before, (first, last)
        ranks = [m for m in _RANK.finditer(r.low, first, last) if not r.is_read(*m.span())]
        if not ranks:
            continue
        in_advice = any(
            _in_advice(r, c, m.start()) for m in ranks for c in clauses if c[0] <= m.start() < c[1]
        )
        if in_advice and not _TOP_K.search(r.low, first, last):
            continue  # "hãy chi ít nhất cho đồ ăn vặt"; "..., 2 khoản chi lớn nhất" still claims
        named = [x for x in mentions_in(r, first, last) if x.metric and x.metric.startswith("cat:")]
        if not named:
            _no_top_category(r, ranks, first, last)
            continue
        among = _AMONG.search(r.low, first, ranks[0].start())
        if among:  # "chi cho ăn uống 43k và trò chơi 39k, trong đó ăn uống là khoản lớn nhất"
            named = [x for x in named if x.start >= among.end()] or named
        among_after = _AMONG.search(r.low, ranks[-1].end(), last)
        if among_after:  # "3 khoản lớn nhất là X, Y và Z, trong đó X chiếm 54 %": X, Y, Z
            named = [x for x in named if x.start < among_after.start()] or named
        top_k = _TOP_K.search(r.low, first, last)
        if top_k is None:
            named = _named_again(named, clauses, ranks[0].start())
        groups = [x.metric[4:] for x in named if x.metric]
        said = ranks  # "duy nhất" is checked on its own, the other ranks as before
        problem = _only_problem(ranking, groups) if _has_only(ranks) else None
        ranks = [m for m in ranks if m.lastgroup != "only"]
        then = next((m for m in ranks if _comes_next(m, r.low)), None)
        if problem is None and ranks and then is not None:  # "X và Y ...; tiếp theo là Z và W"
            above = [x.metric[4:] for x in named if x.metric and x.end <= then.start()]
            below = [x.metric[4:] for x in named if x.metric and x.start >= then.end()]
            opens = not r.low[first : then.start()].strip()  # "...; tiếp theo là Z"
            said_before = [
                x.metric[4:]
                for x in mentions_in(r, *previous)
                if x.metric and x.metric.startswith("cat:")
            ]
            above = above or (said_before if opens else [])
            problem = _next_problem(ranking, above, below)
            if problem is None and top_k is not None and top_k.start() < then.start():
                k = int(top_k.group("k"))  # "3 khoản lớn nhất là X, Y rồi tới Z": all three
                listed = [*above, *below] if k == len(above) + len(below) else above
                problem = _rank_problem(ranking, listed, ranks, top_k, r.low)
        elif problem is None and ranks:
            problem = _ordinal_problem(ranking, named, ranks, clauses, r.low) or _rank_problem(
                ranking, groups, ranks, top_k, r.low
            )
        span = (first, last)
        if problem is None:
            for m in [*said, *([top_k] if top_k else [])]:
                r.mark(*m.span())
        else:
            r.flag("wrong_category", *span, f"{r.text[first:last].strip()!r}: {problem}")


def _named_again(named: list[Mention], clauses: list[Span], at: int) -> list[Mention]:
    """ "Con chi cho X 21.000 đ và Y 19.000 đ, X là nhiều nhất": the rank's clause names
    again a category the sentence listed before, as its subject; only its own count."""
    clause = next((c for c in clauses if c[0] <= at < c[1]), None)
    if clause is None:
        return named
    own = [x for x in named if clause[0] <= x.start < at]
    earlier = {x.metric for x in named if x.start < clause[0]}
    return own if own and all(x.metric in earlier for x in own) else named


_AMONG = re.compile(r"(?<!\w)trong\s(?:đó|số\sđó|các\skhoản\sđó)(?!\w)")
# "không có khoản chi nào nên không có danh mục chi nhiều nhất": no category ranks first
_NO_TOP = re.compile(r"(?<!\w)không\scó\s(?:danh\smục|khoản|mục|loại)(?:\s\w+){0,3}\s$")


def _no_top_category(r: Reading, ranks: list[re.Match[str]], first: int, last: int) -> None:
    top = ranks[0]
    if top.lastgroup != "top" or not _NO_TOP.search(
        r.low, max(first, top.start() - 40), top.start()
    ):
        return
    if r.facts.ranking:
        said = r.text[first:last].strip()
        r.flag("wrong_category", first, last, f"{said!r}: spending has a top category")
    else:
        r.mark(*top.span())


_THEN_RANK = ("tiếp theo", "sau đó", "rồi tới", "rồi đến", "theo sau")


def _has_only(ranks: list[re.Match[str]]) -> bool:
    return any(m.lastgroup == "only" for m in ranks)


def _only_problem(ranking: tuple[tuple[str, float], ...], groups: list[str]) -> str | None:
    """ "X là danh mục chi duy nhất": X, and nothing else, was spent on."""
    spent = {g for g, a in ranking if a > 0}
    if set(groups) == spent:
        return None
    order = ", ".join(f"{g} {a:,.0f}" for g, a in ranking) or "no spending"
    return f"{', '.join(groups)} is not the only category spent on ({order})"


def _comes_next(m: re.Match[str], low: str) -> bool:
    """ "tiếp theo là Z", and "xếp sau là Z" ("Z xếp sau Y" is an ordinal, Z's place)."""
    return m.group() in _THEN_RANK or (
        m.group() in ("xếp sau", "đứng sau") and low.startswith(" là ", m.end())
    )


def _next_problem(
    ranking: tuple[tuple[str, float], ...], above: list[str], below: list[str]
) -> str | None:
    """The categories named after "tiếp theo" come next, in order, after those named before."""
    order = ", ".join(f"{g} {a:,.0f}" for g, a in ranking)
    amounts = dict(ranking)
    if not above or not below or any(g not in amounts for g in [*above, *below]):
        return f"{', '.join(below) or 'nothing'} does not come next ({order})"
    floor = min(amounts[g] for g in above)
    rest = sorted((a for g, a in ranking if g not in above), reverse=True)
    if any(a > floor for a in rest):  # those above are not the largest
        return f"{', '.join(above)} are not the largest ({order})"
    said = [amounts[g] for g in below]
    if said != rest[: len(said)]:
        return f"{', '.join(below)} do not come next, in that order ({order})"
    return None


_AFTER_WHICH = re.compile(r"(?<!\w)(?:chỉ\s)?sau\s$")


def _ordinal_problem(
    ranking: tuple[tuple[str, float], ...],
    named: list[Mention],
    ranks: list[re.Match[str]],
    clauses: list[Span],
    low: str,
) -> str | None:
    """ "Sách truyện là danh mục lớn thứ ba", "..., ăn vặt đứng thứ hai": each ordinal is
    the place of the category its clause names nearest before it (else right after it)."""
    places = [g for g, _ in ranking]
    for m in ranks:
        place = {"hai": 2, "2": 2, "nhì": 2, "ba": 3, "3": 3}.get(m.group().split()[-1])
        if not m.group().startswith("thứ") or place is None:
            continue
        clause = next((c for c in clauses if c[0] <= m.start() < c[1]), None)
        if clause is None:
            continue
        # "đứng thứ hai sau quà tặng": the category after "sau" is the one above it
        own = [x for x in named if x.metric and not _AFTER_WHICH.search(low, 0, x.start)]
        inside = [x.metric[4:] for x in own if clause[0] <= x.start < clause[1]]
        before = [x.metric[4:] for x in own if clause[0] <= x.start < m.start()]
        earlier = [x.metric[4:] for x in own if x.start < clause[0]]  # "X tốn 106k, đứng thứ hai"
        subject = (before[-1:] or inside[:1] or earlier[-1:] or [None])[0]
        amounts = dict(ranking)
        if subject is None:
            continue
        if subject not in amounts:
            return f"nothing was spent on {subject} ({', '.join(places) or 'no spending'})"
        tied = {g for g, a in ranking if a == amounts[subject]}
        if place > len(places) or places[place - 1] not in tied:
            return f"{subject} is not category number {place} ({', '.join(places)})"
    return None


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
        # A list of the k largest is read in order, said so ("theo thứ tự") or not: "ba
        # khoản lớn nhất là X, Y và Z" names the first, the second, the third.
        in_order = all(place in rank_of(g) for place, g in enumerate(groups, start=1))
        if len(groups) == k and in_order and all(rank_of(g) & set(range(1, k + 1)) for g in groups):
            return None
        # "3 khoản lớn nhất: X, Y, rồi Z và W cùng 41.000 đ": the third is a tie, both named
        down = sorted(amounts.values(), reverse=True)
        if (
            in_order
            and k < len(groups) == len(set(groups))
            and len(down) >= k
            and set(groups) == {g for g, a in ranking if a >= down[k - 1]}
        ):
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
    if kind == "listed":  # "hai khoản chi, theo thứ tự, là X và Y": from the largest down
        if all(place in rank_of(g) for place, g in enumerate(groups, start=1)):
            return None
        return f"{', '.join(groups)} are not the largest categories in that order ({order})"
    place = 2 if kind == "second" else 3
    if any(place in rank_of(g) for g in groups):
        return None
    return f"none of {', '.join(groups)} is category number {place} ({order})"


# --- "bằng 0": nothing, said without a unit ---------------------------------------------

_ZERO = re.compile(
    r"(?<!\w)(?P<hedge>gần\snhư\s|gần\s|xấp\sxỉ\s|suýt\s)?"
    r"(?:(?:(?:bằng|là|ở\smức|mức|về|còn|xuống|lên|lại)\s)?(?P<side>(?P<above>trên|lớn\shơn|cao\shơn)"
    r"|dưới|nhỏ\shơn|thấp\shơn)\s|(?:bằng|là|ở\smức|mức|về|còn|=|xuống|thành)\s)"
    # "số dư dưới 0 đ", "đưa số dư về lại trên 0 đ": with a side, zero may name its unit
    r"(?P<zero>0(?!\d|[.,]\d)(?(side)(?:\s?(?:đ|đồng|vnd)(?!\w))?)"
    r"(?!\s?(?:%|đ|đồng|vnd|ngày|giao|sự|k|nghìn|ngàn|triệu)(?!\w))"
    r"|(?<=bằng\s)không(?=\s*(?:$|[.,;!)])))"  # "hai tuần trước đều bằng không"
)


# What _ZERO's zero needs: a lone 0 after a space, or "bằng không".
_MAY_BE_ZERO = re.compile(r"\s0(?!\d|[.,]\d)|bằng\skhông")
_TOWARDS = re.compile(r"(?<!\w)(?:đưa|kéo|trở\slại|trở\svề|quay\slại|để)(?!\w)")


def read_zeros(r: Reading) -> None:
    """ "Chi tiêu ổn định ở mức 0", "hai tuần trước đều bằng 0", "tỷ lệ tiết kiệm gần như
    bằng 0": the thing named (this week, or the week named) is nothing."""
    if "0" not in r.low and "bằng không" not in r.low:
        return
    if not _MAY_BE_ZERO.search(r.low):
        return  # "160.000 đ" holds a "0" but no zero _ZERO could read
    for m in _ZERO.finditer(r.low):
        clauses, clause = r.locate(m.start())
        if _in_advice(r, clause, m.start()) or (
            m.group("side") and _TOWARDS.search(r.low, clause[0], m.start())
        ):  # "đặt mục tiêu đưa về 0", "để số dư trở lại trên 0": a goal, not a state
            r.mark(m.start("zero"), m.end("zero"))
            continue
        rate = re.search(r"tỷ\slệ|tỉ\slệ", r.low[clause[0] : m.start()])
        # "giảm từ 3k ở tuần trước xuống 0": the level it came to, this week
        fell_to = m.group().lstrip().startswith(("xuống", "thành"))
        week = "now" if fell_to else _clause_week(r, clause[0], m.start())
        if rate:
            value = r.facts.data.get("savings_rate")
            value = None if value is None else float(value) * 100
            scale = 100.0
        else:
            subject = _subject_before(r, clauses, clause, m.start(), (None, None))
            if subject is None or subject.metric is None:
                continue
            each = "đều" in r.low[clause[0] : m.start()]
            when = "mean" if each and week != "now" else week
            value = r.facts.value(subject.metric, when)
            if each and value is not None:  # "thu nhập, chi tiêu và tiết kiệm ... đều bằng 0"
                named = {
                    x.metric
                    for x in mentions_in(r, clauses[0][0], m.start())
                    if x.metric and not x.metric.startswith(("cat:", "target:"))
                }
                values = [r.facts.value(metric, when) for metric in named]
                value = None if None in values else max((abs(v or 0.0) for v in values), default=0)
            scale = max(r.facts.value("income_total") or 0.0, 1.0)
        if value is None:
            continue
        if m.group("side"):  # "số dư dưới 0": its sign
            near = value > 0 if m.group("above") else value < 0
        else:
            near = abs(value) <= 0.01 * scale if m.group("hedge") else value == 0
        if near:
            r.mark(m.start("zero"), m.end("zero"))
        else:
            r.flag("wrong_metric", m.start(), m.end(), f"{m.group()!r}: it is {value:,.2f}")


# "Số giao dịch giảm xuống còn 7": the level a count came to, this week's (a figure with a
# unit is read with the others; "giảm 7" is a change)
_LEVEL = re.compile(
    r"(?<!\w)(?:(?:tăng|giảm)(?:\s(?:lên|xuống))?(?:,)?\s(?:chỉ\s)?(?:còn|tới|đến|thành)|tăng\slên"
    r"|giảm\sxuống)"
    r"\s(?:khoảng\s)?(?P<n>\d+)(?!\d|[.,]\d|\s?%|\s?(?!so\svới)\w)"
)
# "ít hơn tuần rồi (26)", "trong khi tuần rồi là 23", "26 giao dịch, tuần này 14"
_WEEK_BRACKET = re.compile(
    rf"(?P<week>{_WEEKS.pattern})(?:\s?\(|\s(?:con\s)?(?:là|có|chỉ|chỉ\scó|được)\s|\s)(?P<n>\d+)"
    r"(?!\d|[.,]\d|\s?%|\s?\w)"
)
# "chỉ còn 7 so với 12 tuần rồi": the figure, then the week it is of
_WEEK_AFTER = re.compile(
    rf"(?<!\w)so\svới\s(?:mức\s)?(?P<n>\d+)(?![\w%]|[.,]\d|(?<=\s2)\stuần\strước)"
    rf"\s(?:của\s|ở\s|vào\s)?(?P<week>{_WEEKS.pattern})"  # "so với 2 tuần trước": W-2
)
# "Số giao dịch là 14", "giao dịch 6, ổn định": a count's level said with no unit after it,
# of the week its sentence names (none: this week)
_IS_LEVEL = re.compile(
    r"(?:(?<!\w)là|:|(?<!\w)(?:giao\sdịch|sự\skiện|ngày\shoạt\sđộng))\s(?P<n>\d+)"
    r"(?!\d|[.,]\d|\s?%|\s?(?!so\svới)\w)"
)
_COUNTED = ("txn_count", "event_count", "active_days")
# The end of `(?P<n>\d+)` in _LEVEL and _WEEK_BRACKET: a digit no unit follows.
_BARE_FIGURE = re.compile(r"\d(?!\d|[.,]\d|\s?%|\s?(?!so\svới)\w)")


def read_levels(r: Reading) -> None:
    """Bare counts: the level a count came to, or a week's in brackets ("ít hơn tuần rồi (26)")."""
    found = [*_WEEK_AFTER.finditer(r.low)] if "so với" in r.low else []
    if _BARE_FIGURE.search(r.low):  # both patterns end in a figure with no unit after it
        found += [*_LEVEL.finditer(r.low), *_WEEK_BRACKET.finditer(r.low)]
        found += [*_IS_LEVEL.finditer(r.low)]  # last: a week's bracket reads its "là" first
    for m in found:
        if r.is_read(m.start("n"), m.end("n")):
            continue
        clauses, _clause = r.locate(m.start())
        upto = m.start("n") if m.re is _IS_LEVEL else m.start()  # "giao dịch 6": its own name
        named = [x.metric for x in mentions_in(r, clauses[0][0], upto) if x.metric]
        if not named or named[-1] not in _COUNTED:
            continue
        if m.re is _IS_LEVEL and any(
            w.lastgroup != "now" for w in week_refs(r.low, clauses[0][0], m.start())
        ):
            continue  # "tuần trước, số giao dịch là 26": left to the sweep
        if m.re is _IS_LEVEL and r.low.endswith("đều ", 0, m.start()):
            named = [metric for metric in dict.fromkeys(named) if metric in _COUNTED]
            values = {r.facts.value(metric, "now") for metric in named}
            if values == {int(m.group("n"))}:  # "số giao dịch và số sự kiện đều là 12": each
                r.mark(m.start("n"), m.end("n"))
            else:
                r.flag("wrong_metric", m.start(), m.end(), f"{m.group()!r}: {', '.join(named)}")
            continue
        week = _WEEKS.match(m.group("week")) if "week" in m.groupdict() else None
        value = r.facts.value(named[-1], (week.lastgroup if week else None) or "now")
        if value == int(m.group("n")):
            r.mark(m.start("n"), m.end("n"))
        else:
            r.flag("wrong_metric", m.start(), m.end(), f"{m.group()!r}: {named[-1]} is {value}")


# --- the sweep --------------------------------------------------------------------------------

_CLAIM_WORDS = re.compile(
    r"(?<!\w)(?:\d+(?:[.,]\d+)*"
    r"|gấp|nửa|phần\s(?:ba|tư|năm|mười)"
    r"|(?:nhiều|ít|cao|thấp|lớn|nhỏ)\shơn|vượt|kém|chủ\syếu|đứng\sđầu"
    # any superlative ("chi mạnh tay nhất", "duy nhất"): read as a ranking or asked again
    r"|(?<=\w\s)(?<!thống\s)(?<!hợp\s)(?<!đồng\s)(?<!duy\s)nhất(?!\s(?:định|là))|duy\snhất"
    r"|(?:nhiều|ít)\s\w+(?:\s\w+)?\shơn"  # "nhiều ngày hơn": a comparison, read or asked again
    r"|tăng(?!\scường)|giảm|ổn\sđịnh|không\sđổi|giữ\snguyên|đi\sngang|mới\sxuất\shiện|lần\sđầu"
    r"|phần\slớn"
    r"|(?:không|chưa|chẳng)(?:\s(?:hề|có|được|đã|bị))*\s(?:chi|tiêu|mua|nhận|gửi|để\sdành|tiết\skiệm"
    r"|xài|sắm|tốn|lấy|dành\sdụm|tích\s(?:góp|cóp)|kiếm|nạp|bỏ\s(?:ống|heo)"
    r"|rút|đặt|hoàn\sthành|dùng|mở|hoạt\sđộng|có\s(?:khoản|giao\sdịch|thu\snhập|sự\skiện|tiền)"
    # "mục tiêu 2 ... chưa đạt": whether a goal is reached, read or asked again
    r"|đạt|xong|đủ\s(?:số\s)?tiền)"
    r"|tuần\strước|tuần\srồi|hai\stuần|tuần\skia)(?!\w)"
)
_DIGIT = re.compile(r"\d")
# Not claims: a score, an age, a number of weeks, the goal's label, a list's numbering.
_NOT_A_FIGURE = re.compile(r"\s?(?:/\s?10|điểm|tuổi|tuần|tháng|năm|giờ|phút)(?!\w)")
_GOAL_LIST = re.compile(r"mục\stiêu\s\d+(?:\s?(?:,|và|hoặc|hay)\s?\d+)*\s?(?:,|và|hoặc|hay)\s?$")
_NOT_A_FIGURE_BEFORE = re.compile(r"(?:tuần|tháng|lớp|năm|thứ|số|bước|/)\s?$")


def sweep(r: Reading) -> None:
    """Every claim-like word that no check read: `unverifiable`, one finding a sentence."""
    if r.advice_field and not _DIGIT.search(r.low):
        return  # in advice only a figure is flagged; any other word is skipped as advice
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
            if _GOAL_LIST.search(r.labelled or r.low, max(0, m.start() - 24), m.start()):
                continue  # "mục tiêu 2 và 3 đã xong": goals' labels
        elif _in_advice(r, clause, m.start()):
            continue  # "hãy giảm chi tiêu": advice, not a claim
        if word.startswith(("tuần", "hai tuần")) and any(s < last and first < e for s, e in r.read):
            continue  # a week named by a sentence whose claims were read
        sentence = r.text[first:last].strip()
        start = r.low.rfind(" ", first, m.start() - 1) + 1 if word == "nhất" else m.start()
        msg = (
            f"cannot verify {r.text[max(start, first) : m.end()]!r} in {sentence!r}: say it with "
            "a figure of the data and what it is, or leave it out"
        )
        r.flag("unverifiable", first, last, msg)
        flagged.add(first)


# The patterns the readers search through texts or spans, led by their first characters
# (`vocabulary.led`): the same matches, found faster.
lead_all(
    globals(),
    "_MENTIONS",
    "_CLAIM_WORDS",
    "_EVENT",
    "_RANK",
    "_ZERO",
    "_LEVEL",
    "_WEEK_BRACKET",
    "_COMPARATIVE",
    "_RATIO",
    "_SUBORDINATE",
    "_COMPARED_WITH",
    "_FUTURE",
    "_AFFIRMED",
    "_TOP_K",
    "_GOAL_TARGET",
    "_DECREASE",
    "_RATE_SAID",
    "_MODAL",
    "_ALMOST",
    "_BARE",
)
