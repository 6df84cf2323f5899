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

Why one module of ~1,200 lines and one class (`_Checker`) of ~570 (above the engine's ~600
/ ~250): the figure, trend and goal rules share one reading of a field (its clauses, figures,
weeks) and are tuned together with `closed.py` on the written corpora, each tuning measured
once on a corpus it never saw; moving them apart is for a session that re-measures after.
Its interface is one call, `check_report`. It is also the offline writer's cost: ~1.1 ms a
report (1.6 before the pre-filters and `vocabulary.led`; `python -m
bench.grounding_equivalence --time`), nearly all of gold's CPU without an API
(bench/README.md, gold_offline).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from kidsfin_assets.reports.grounding.canonical import canonical_and_true
from kidsfin_assets.reports.grounding.closed import (
    Reading,
    read_comparisons,
    read_happened,
    read_levels,
    read_ranking,
    read_ratios,
    read_zeros,
    sweep,
)
from kidsfin_assets.reports.grounding.facts import MONEY_METRICS, Facts, Values, facts_for, plain
from kidsfin_assets.reports.grounding.forms import (
    read_bracketed_counts,
    read_from_to,
    read_goal_absent,
    read_goal_nearness,
    read_goal_open,
    read_goal_state,
    read_nothing_then,
    read_per_hundred,
)
from kidsfin_assets.reports.grounding.reading import (
    RANGE_SPACE,
    Stated,
    clause_of,
    is_target,
    split_clauses,
    stated_numbers,
)
from kidsfin_assets.reports.grounding.spelled import spell_digits
from kidsfin_assets.reports.grounding.vocabulary import (
    ADVICE,
    AGREES,
    CATEGORIES,
    CATEGORY_AFTER,
    COMPARES,
    DIRECTION_WORDS,
    DIRECTIONS,
    GOAL_AFTER,
    GOAL_CLAIMS,
    GOAL_LABEL,
    MAY_STATE,
    MEAN_REF,
    METRIC_NAMES,
    METRIC_OF,
    METRICS,
    NOT_A_CLAIM,
    NOT_AGREES,
    PAST,
    PREV1_ONLY,
    RATE_AFTER,
    SPACES,
    SUBJECT_BEFORE,
    SUBJECT_WORDS,
    SUBJECT_WORDS_RE,
    group_of,
    lead_all,
)
from kidsfin_assets.reports.report_schema import PLACEHOLDER
from kidsfin_assets.warehouse.tables import TREND_METRICS

TEXT_FIELDS = ("financial_health", "spending_pattern", "savings_behavior", "activity_level")


# A field is a sentence when it has at least this many words (tokens with a letter).
MIN_WORDS = 4


# A recommendation that starts with the change it asks for ("Giảm chi cho trò chơi."): a
# command, not a trend of the data.
_COMMAND = re.compile(r"\s*(?P<verb>giảm|tăng|hạn\schế|bớt)(?!\w)")


@dataclass(frozen=True)
class Finding:
    """One statement of a report that the data does not support."""

    kind: str  # unknown_amount, unknown_percent, unknown_days, unknown_count, wrong_trend,
    # wrong_sign, too_thin
    field: str  # financial_health ... or recommendations[i]
    text: str  # the offending span, as written
    message: str  # one line a human (or the model, when asked again) reads
    sentence: str = ""  # the whole sentence it is in, for a reviewer (numbers as digits)


_SENTENCE_OF_WORDS = re.compile(rf"(?:[^\W\d_]+[\W\d_]+){{{MIN_WORDS - 1}}}[^\W\d_]")


_JSONISH = re.compile(r"[{}\[\]]|\"\s*:")


class _Checker:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.findings: list[Finding] = []
        self._shown = self._masked = ""  # the field being read: as shown, labels masked

    def add(self, kind: str, field: str, span: str, message: str) -> None:
        span = span.strip()
        self.findings.append(Finding(kind, field, span, message, self.sentence_of(span)))

    def sentence_of(self, span: str) -> str:
        """The sentence of the field being read that holds `span` (masked labels shown)."""
        at = self._masked.find(span) if span else -1
        if at < 0:
            return ""
        start = max(self._masked.rfind(end, 0, at) for end in (". ", "! ", "? ", "; "))
        start = start + 2 if start >= 0 else 0
        stops = [i for i in (self._masked.find(e, at + len(span)) for e in ".!?;") if i >= 0]
        return self._shown[start : min(stops) + 1 if stops else len(self._shown)].strip()

    def field(self, field: str, original: str) -> None:
        # Numbers in words are read as digits: "một trăm năm mươi nghìn" is 150 nghìn.
        text = _ranges_as_about(spell_digits(unicodedata.normalize("NFC", original)))
        # The labels ("mục tiêu 1") masked out of `low`, at the same places.
        labelled_low = text.lower()
        # A loose writer's "ko" is "không", "vô" is "vào": read as the words they stand for
        # (looked for first: most texts have none).
        if any(word in labelled_low for word in _CASUAL_WORDS):
            text = _CASUAL.sub(lambda m: _CASUAL_WORDS[m.group().lower()], text)
            labelled_low = text.lower()
        if not _SENTENCE_OF_WORDS.search(text) or _JSONISH.search(text.replace(PLACEHOLDER, "")):
            self.add("too_thin", field, original[:80], f"not a sentence of words: {original!r}")
            return
        self._shown = text
        if self.facts.masks is not None:  # a child or category named "Bin 2015", "Mục tiêu 1"
            text = self.facts.masks.sub(lambda m: " " * len(m.group()), text)
        if _OTHER_DIGITS.search(text):  # "hoạt động ৪ ngày": a Bengali 4 that reads as 8
            self.add("unverifiable", field, original[:80], f"digits other than 0-9: {original!r}")
            return
        self._masked = text
        low = labelled_low if text is self._shown else text.lower()  # no label was masked
        advice_field = field.startswith("recommendations")
        # One pass of each regex over the field; clauses only bound what they found.
        stated = list(stated_numbers(low, not advice_field)) if MAY_STATE.search(low) else []
        directions = list(DIRECTIONS.finditer(low)) if DIRECTION_WORDS.search(low) else []
        sentences = split_clauses(low)
        r = Reading(field, text, low, sentences, self.facts, self.add, advice_field, labelled_low)
        self.r = r
        if advice_field and stated:
            starts = [s for clauses in sentences for s, _ in clauses]
            targets = [n for n in stated if is_target(low, starts, n)]
            for n in targets:  # "ít nhất 20%": a goal the advice sets, not a claim
                r.mark(n.start, n.end)
            stated = [n for n in stated if n not in targets]
        # "gấp 4 lần" is a ratio (read_ratios), not four of something
        stated = [
            n
            for n in stated
            if not (n.unit == "lần" and _RATIO_BEFORE.search(low, max(0, n.start - 24), n.start))
        ]
        r.stated = stated
        read_ratios(r)
        read_comparisons(r)  # before the numbers: "nhiều hơn đồ chơi 1.000 đ" is a difference
        read_ranking(r)  # before the numbers: "2 danh mục chi nhiều nhất" ranks, counts nothing
        read_per_hundred(r)  # before the numbers: "cứ 100 đồng ... 32 đồng" is a rate
        read_bracketed_counts(r)
        for n in stated:
            if (n.kind == "count" and n.unit not in _COUNT_UNITS) or r.is_read(n.start, n.end):
                continue  # "rút 2 lần": the data counts no such thing (unverifiable)
            if n.kind == "count" and _THESE.match(low, n.end):  # "hai khoản này": those named
                r.mark(n.start, n.end)
                continue
            if n.value == 1 and _NOT_ONE_DONG.match(low, n.end):  # "không chi một đồng nào"
                r.mark(n.start, n.end)
                continue
            if _ZERO_DONG.fullmatch(low, n.start, n.end) and _SIDE_OF_ZERO.search(
                low, max(0, n.start - 12), n.start
            ):
                continue  # "số dư dưới 0 đ": a side of zero, read by read_zeros
            before = len(self.findings)
            self.number(field, text[n.start : n.end], n)
            flagged = len(self.findings) > before
            if flagged or self.bound(field, text, low, labelled_low, sentences, n):
                r.mark(n.start, n.end)
        if directions:
            self.trends(field, text, low, sentences, directions, stated)
        self.goal_claims(field, text, labelled_low, sentences)
        read_goal_state(r)
        read_goal_nearness(r)
        read_goal_open(r)
        read_goal_absent(r)
        read_nothing_then(r)
        read_from_to(r)
        read_happened(r)
        read_zeros(r)
        read_levels(r)
        sweep(r)

    # what a figure is said to be

    def bound(
        self,
        field: str,
        text: str,
        low: str,
        labelled_low: str,
        sentences: list[list[tuple[int, int]]],
        n: Stated,
    ) -> bool:
        """A figure said of a subject ("thu nhập là 200.000 đ", "đồ chơi (60.000 đ)", "71 %
        cho mục tiêu 1", "11 sự kiện") must be that subject's, of the week its clause names
        ("tuần trước con chi 38.000 đ" is W-1's); one in a sentence that compares no weeks
        and states no change must be this week's. False: the figure could not be placed."""
        if n.sign in ("net-", "+"):  # "chi nhiều hơn nhận 90.000 đ": checked as net_flow
            return True
        span = text[n.start : n.end]
        clause_start, sentence = clause_of(sentences, n.start)
        said = _said_again(self.r.stated, low, clause_start, sentence, n)
        if said is not None:  # "còn thiếu hơn 1 triệu, khoảng 1,18 triệu": as the first
            n = replace(said, value=n.value, tolerance=n.tolerance, sign=n.sign)
            clause_start, sentence = clause_of(sentences, n.start)
        week = _week_of(low, clause_start, sentence, n)
        now: bool | str = week if week in ("prev1", "prev2", "past") else week == "now"
        subject = self.subject_of(low, labelled_low, clause_start, n)
        paired = _paired_subject(low, sentence, n)
        if paired is not None:  # "đồ ăn vặt gấp 4 lần đi lại (71k so với 18k)": in order
            subject, week, now = paired, "now", True
        versus = _versus(low, n)
        if subject is None and n.sign == "-":
            return True  # "..., nên âm 12k": a signed amount, checked as signed (money)
        if subject == "spending" and not CATEGORIES.search(low, *sentence):
            subject = "total_spending"  # "chi tiêu tuần này 2k": no category named, the total
        if subject is None and n.kind == "money" and _OUT_OF.search(low, clause_start, n.start):
            # "để dành một nửa số tiền nhận, tức 38k trên 76k": what the share is of
            subject = "income" if _OF_INCOME.search(low, sentence[0], n.start) else None
            if subject is None:
                return True
            week, now = "now", True  # the base of this week's share
        if subject is None and (week != "now" or versus):  # "tuần trước, con chi ... 38k"
            subject = _subject_of_sentence(low, sentence[0], n.start, n.kind)
            if versus and subject == "spending":  # "(234k so với 38k)": the total's level
                subject = "total_spending"
        elif subject is None:  # "quà tặng tốn của con khoảng 172k": that category's
            said = _subject_of_sentence(low, clause_start, n.start, n.kind)
            subject = said if said is not None and said.startswith("cat:") else None
        topic = None
        if subject in _SPENT:
            topic = _TOPIC_CATEGORY.search(low, clause_start, n.start) or _CATEGORY_IS.search(
                low, clause_start, n.start
            )
        if topic:  # "Riêng quà tặng con tiêu khoảng 102k", "Trò chơi là khoản chi lớn nhất với
            # 51k": that category's, not any spending
            subject = f"cat:{group_of(topic.group('category'))}"
        if subject is not None and subject.startswith("cat:"):
            if week in ("prev1", "prev2", "past"):
                self.add("unverifiable", field, span, f"{span!r}: no category figure of {week}")
                return True
            values = self.facts.categories.get(subject[4:], ())
            allowed = [amount if n.kind == "money" else share for amount, share in values]
            if not any(abs(v - n.value) <= n.tolerance + 1e-9 for v in allowed):
                said = subject[4:]
                near = ", ".join(plain(v) for v in allowed) or "none in the data"
                msg = f"{span!r} is not what was spent on {said} ({near})"
                self.add("wrong_metric", field, span, msg)
            return True
        if subject is None and now is False:
            return False
        pool = self.facts.pool({"count": "counts"}.get(n.kind, n.kind), subject, now)
        matched = [label for v, label in pool if abs(v - n.value) <= n.tolerance + 1e-9]
        if matched:
            if subject in ("balance", "net") and n.sign != "-":
                self.unsigned(field, span, low, clause_start, n, matched)
            return True
        near = Values.of(pool).nearest(n.value)
        when = {True: " this week", "prev1": " last week", "prev2": " two weeks ago"}.get(now, "")
        if subject is not None:
            msg = f"{span!r} is not {subject}{when} (it is: {near})"
            self.add("wrong_metric", field, span, msg)
        else:
            msg = f"{span!r} is not a figure of{when or ' this week'} (nearest: {near})"
            self.add("not_this_week", field, span, msg)
        return True

    def unsigned(
        self, field: str, span: str, low: str, clause_start: int, n: Stated, labels: list[str]
    ) -> None:
        """ "Số dư tiết kiệm là 77.000 đ" of a balance of -77.000 đ: a negative said as positive."""
        signed = [self.facts.data.get(label) for label in labels if label in _SIGNED]
        below_zero = bool(signed) and all(isinstance(v, int | float) and v < 0 for v in signed)
        if below_zero and not _SAID_NEGATIVE.search(low, clause_start, n.end):
            self.add("wrong_sign", field, span, f"{span!r}: it is negative ({signed[0]:,.0f})")

    def subject_of(self, low: str, labelled_low: str, clause_start: int, n: Stated) -> str | None:
        """What the text says a figure is, from the words right after it or before it."""
        if n.kind in ("count", "days"):  # "11 sự kiện": the unit says whose count it is
            if n.unit == "mục tiêu":  # "3 mục tiêu còn mở", "2 mục tiêu mới"
                return _goal_count_subject(low, clause_start, n)
            return n.unit if n.unit in _COUNT_UNITS else None
        if (
            n.kind == "money"
            and ("thiếu" in low or "cần" in low or "còn" in low)  # each of the four needs one
            and (
                _LACK_BEFORE.search(low, clause_start, n.start)
                or (
                    _LEFT_BEFORE.search(low, clause_start, n.start)
                    and _MORE_AFTER.match(low, n.end)
                )
                or _LACK_BRACKETED.search(low, clause_start, n.start)
                or _LACK_AFTER.match(low, n.end)
            )
        ):
            # "còn thiếu 52.000 đ (để đạt mục tiêu 1)", "còn 52.000 đ nữa là đạt mục tiêu 1":
            # that goal's lack, where the sentence names one goal around it
            return _lack_of(labelled_low, clause_of(self.r.sentences, n.start), n)
        if n.kind == "percent":
            goal = GOAL_AFTER.match(labelled_low, n.end)
            if goal:
                return f"goal:{goal.group('goal')}"
            if _SHARE_IN_BRACKETS.search(low, max(0, n.start - 40), n.start):
                return "of_income"  # "gần một nửa thu nhập (khoảng 46%)"
            named = _GOAL_REACHING.search(labelled_low, _sentence_start(low, n.start), n.start)
            if named:  # "mục tiêu 1 (636.000 đ) ... đã đạt 100%"
                return f"goal:{named.group('goal')}"
            if RATE_AFTER.match(low, n.end):  # "... % số tiền nhận được": of the income
                before = SUBJECT_BEFORE.search(low, clause_start, n.start)
                said = before and SUBJECT_WORDS.get(SPACES.sub(" ", before["subject"]))
                shares = {
                    "spending": "spent_share",
                    "total_spending": "spent_share",
                    "saving": "rate",
                }
                return shares.get(said or "", "of_income")
        if n.kind == "money":
            goal = _TARGET_OF.search(labelled_low, max(0, n.start - 30), n.start)
            if goal:  # "mục tiêu 1 (636.000 đ)": its target
                return f"target:{goal.group('goal')}"
        if n.kind in ("money", "percent"):
            category = CATEGORY_AFTER.match(low, n.end) if n.kind == "money" else None
            if category:
                return f"cat:{group_of(category.group('category'))}"
            if ADVICE.search(low, clause_start, n.start):  # "cần để dành 120.000 đ nữa"
                return None
            before = SUBJECT_BEFORE.search(low, clause_start, n.start)
            if before:
                word = SPACES.sub(" ", before.group("subject"))
                subject = SUBJECT_WORDS.get(word)
                if subject is None:
                    return f"cat:{group_of(word)}"
                if n.kind == "money" and _SHARE_OF_TOTAL.search(low, clause_start, before.start()):
                    # "đồ ăn vặt chiếm hơn một nửa tổng chi: 120k": the total is what a share
                    # is of; the amount is what the clause says the share of
                    return _subject_of_sentence(low, clause_start, n.start, n.kind)
                if n.kind == "money":
                    # "gửi tiết kiệm 194k" is the deposit, not the balance
                    return _MONEY_SUBJECT_OF_WORD.get(word, subject)
                if subject in _PERCENT_SUBJECTS:  # "gần một nửa tổng chi (48%)": a share of it
                    return "spending" if subject == "total_spending" else subject
        after = _SUBJECT_AFTER.match(low, n.end) if n.kind == "money" else None
        if after:  # "với 9.000 đ được gửi vào tiết kiệm"
            return SUBJECT_WORDS.get(SPACES.sub(" ", after.group("subject")))
        return None

    def goal_claims(
        self, field: str, text: str, labelled_low: str, sentences: list[list[tuple[int, int]]]
    ) -> None:
        """ "Đã đạt mục tiêu 1", "chưa đạt mục tiêu 2": as the goal's reached/completed."""
        if "mục" not in labelled_low:
            return  # each claim names "mục tiêu"
        goals = self.facts.goals
        for m in GOAL_CLAIMS.finditer(labelled_low):
            clause_start, _ = clause_of(sentences, m.start())
            if NOT_A_CLAIM.search(labelled_low, clause_start, m.start()):
                continue  # "để đạt mục tiêu 1": a purpose, not a fact
            number = m.group("n") or m.group("n2") or m.group("n3")
            negated = bool(m.group("neg") or m.group("neg2") or m.group("n3"))
            states = [goals[number]] if number in goals else [] if number else [*goals.values()]
            said_done = [done for done, _ in states]
            # "chưa đạt mục tiêu 5" with no goal 5 is no truer than "đã đạt" it; "chưa hoàn
            # thành mục tiêu nào": none of them
            none_of_them = not number and _ANY_GOAL.match(labelled_low, m.end())
            not_done = (
                (not any(said_done) if none_of_them else not all(said_done))
                if states
                else not number
            )
            ok = not_done if negated else any(said_done)
            if ok:
                self.r.mark(m.start(), m.end())
            else:
                which = f"mục tiêu {number}" if number else "no goal"
                state = "reached" if any(said_done) else "not reached" if states else "absent"
                span = text[m.start() : m.end()]
                self.add("wrong_goal", field, span, f"{span!r}: {which} is {state}")

    # numbers

    def number(self, field: str, span: str, n: Stated) -> None:
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

    def money(self, field: str, span: str, n: Stated) -> None:
        f, v, tol = self.facts, n.value, n.tolerance
        if n.sign == "net-":  # "chi nhiều hơn nhận X": net flow is -X
            if abs(f.net_flow + v) <= tol + 1e-9:
                return
            if abs(f.net_flow - v) <= tol + 1e-9:
                msg = f"{span!r}: spending did not exceed income (net_flow = {plain(f.net_flow)})"
                self.add("wrong_sign", field, span, msg)
            else:
                msg = f"{span!r}: net_flow is {plain(f.net_flow)}"
                self.add("unknown_amount", field, span, msg)
            return
        if n.sign in ("-", "+"):
            signed = -v if n.sign == "-" else v
            if _NET_BEFORE.search(self.r.low, max(0, n.start - 40), n.start):
                # "dòng tiền ròng tuần này dương 26.000 đ": the net flow's, nothing else's
                if abs(f.net_flow - signed) > tol + 1e-9:
                    msg = f"{span!r}: net_flow is {plain(f.net_flow)}"
                    self.add(
                        "wrong_sign"
                        if abs(f.net_flow + signed) <= tol + 1e-9
                        else "unknown_amount",
                        field,
                        span,
                        msg,
                    )
                return
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
        stated: list[Stated],
    ) -> None:
        """Check each trend statement: a direction after the metric it is about (in its
        clause, or the clause before in the same sentence: "Chi tiêu 160.000 đ, tăng ...")."""
        shares = "%" in low or "phần" in low or "nửa" in low  # one of which _SHARE_OF needs
        metrics = [
            (m.start(), m.end(), METRIC_OF[_spaced(m.group())])
            for m in METRICS.finditer(low)
            # "gửi 7k, khoảng 5% thu nhập, nhưng vẫn tăng": the share's base, not the subject
            if not (shares and _SHARE_OF.search(low, max(0, m.start() - 16), m.start()))
        ]
        for clauses in sentences:
            first, last = clauses[0][0], clauses[-1][1]
            here = [d for d in directions if first <= d.start() < last]
            command = field.startswith("recommendations") and _COMMAND.match(low, first)
            if command:  # asks for that change: the verb is no trend of the week, the rest is
                here = [d for d in here if d.start() != command.start("verb")]
            if not here:
                continue
            sentence_has_past = any(PAST.search(low, a, b) for a, b in clauses)
            refs = {_reference(low, a, b) for a, b in clauses} - {None}
            sentence_ref = refs.pop() if len(refs) == 1 else None
            context: str | None = None
            for s, e in clauses:
                named = [(end, metric) for start, end, metric in metrics if s <= start < e]
                said = [d for d in here if s <= d.start() < e]
                if said and not ADVICE.search(low, s, e):
                    clause_ref = _reference(low, s, e) or sentence_ref
                    for d in said:
                        # "giảm so với trung bình hai tuần trước và thấp hơn tuần trước 37.000
                        # đ": each direction against the week named right after it
                        ref = _reference_after(low, d.end()) or clause_ref
                        if self.r.is_read(d.start(), d.end()):
                            continue  # "hai tuần trước nhận 280k, nhiều hơn tuần này": compared
                        if self.r.advice_field and _PURPOSE.search(low, s, d.start()):
                            self.r.mark(d.start(), d.end())  # "... để số dư tăng dần": an aim
                            continue
                        before = [metric for end, metric in named if end <= d.start()]
                        metric = before[-1] if before else context
                        unit = _UNIT_IN_DIRECTION.search(low, d.start(), d.end())
                        if unit:  # "vào ứng dụng nhiều ngày hơn": the unit names the metric
                            metric = _UNIT_METRIC[unit.group()]
                            before = [*before, metric]
                        if not before:  # "[[KID]] đã giảm chi tiêu": the metric it moves
                            metric = _object_of(low, d.end(), metrics) or metric
                        elif before[-1] is None:  # "thói quen tiết kiệm ổn định": a habit,
                            self.r.mark(d.start(), d.end())  # not a figure of the data
                            continue
                        if metric is None and _EVERY_METRIC.search(low, s, d.start()):
                            # "Mọi chỉ số tuần này đều mới xuất hiện": every metric's trend
                            direction = d.lastgroup or ""
                            span = text[max(s, d.start() - 40) : d.end()]
                            negated = bool(d.group("neg"))
                            every = [
                                m for m, t in self.facts.trends.items() if t and m in TREND_METRICS
                            ]
                            for each in every:
                                self.trend(field, text, span, d, each, direction, negated, [], ref)
                            self.r.mark(d.start(), d.end())
                            continue
                        if metric is None:
                            if _heads_a_list(low, d, here):  # "Mọi thứ ổn định: X, Y đều ổn định"
                                self.r.mark(d.start(), d.end())
                            continue
                        if (d.group("more") or d.group("less")) and (
                            not sentence_has_past or _METRIC_COMPARED.match(low, d.end())
                        ):
                            continue  # "chi nhiều hơn nhận": metrics compared, not weeks
                        direction = d.lastgroup or ""  # up, down, more ...: the last to close
                        direction = {"more": "up", "less": "down"}.get(direction, direction)
                        if _THIS_WEEK_AFTER.match(low, d.end()) and PAST.search(
                            low, first, d.start()
                        ):
                            # "Tuần rồi con nhận 388k, nhiều hơn tuần này": the other way round
                            direction = {"up": "down", "down": "up"}.get(direction, direction)
                        negated = bool(d.group("neg"))
                        span = text[max(s, d.start() - 40) : d.end()]
                        in_sentence = [n for n in stated if n.start < last]
                        # "thu nhập, chi tiêu và tiết kiệm đều tăng": each of them
                        for each in _listed(low, s, d, before):
                            if each != metric:
                                self.trend(field, text, span, d, each, direction, negated, [], ref)
                        if self.trend(
                            field, text, span, d, metric, direction, negated, in_sentence, ref
                        ):
                            self.r.mark(d.start(), d.end())
                            # "tăng so với tuần trước và so với trung bình hai tuần trước":
                            # against each week it names (its figures are the first's)
                            for also in _more_references(low, d.end()):
                                self.trend(
                                    field, text, span, d, metric, direction, negated, [], also
                                )
                known = [metric for _, metric in named if metric]
                # a clause without a metric speaks of the subject of the clause before, not
                # of an aside ("gửi 5,6 triệu, gần một nửa thu nhập (46%), tăng so với trước")
                if known and not _ASIDE.match(low, s):
                    context = known[0]

    def trend(
        self,
        field: str,
        text: str,
        span: str,
        d: re.Match[str],
        metric: str,
        direction: str,
        negated: bool,
        stated: list[Stated],
        reference: str | None,
    ) -> bool:
        """Whether the direction could be checked (the metric has a trend in the data)."""
        f = self.facts
        name = METRIC_NAMES[metric]
        prev1_only = metric in f.prev1 and reference == "prev1"
        if prev1_only:
            value, prev1 = f.values[metric], f.prev1[metric]
            actual = "up" if value > prev1 else "down" if value < prev1 else "flat"
            if prev1 == 0 and value > 0:
                actual = "new"
            against = f"{metric} {plain(value)} vs prev1 {plain(prev1)}"
            ok = _agrees(direction, negated, actual) or (
                direction == "flat" and f.trends[metric] == "flat"
            )
        else:
            actual = f.trends.get(metric, "")
            against = f"{metric}_trend is {actual}" if metric in f.prev1 else f"{metric} {actual}"
            if not actual:
                return False
            ok = _agrees(direction, negated, actual)
        if not ok:
            said = d.group()
            self.add("wrong_trend", field, span, f"says {name} {said}, but {against}")
            return True
        if negated or direction not in ("up", "down"):
            return True
        # The change it states: the next number of its sentence ("giảm 20.000 đ"), not of
        # the next one ("... giảm. Con đã để dành được 0 % cho mục tiêu 1").
        low = text.lower()
        after = next(
            (
                n
                for n in stated
                if n.start >= d.end()
                and "(" not in text[d.end() : n.start]
                and not _WEEK_SAID.match(low, n.end + 1)
                and not _JOINED.search(low, d.end(), n.start)
                and not _LEVEL_OF_WEEK.search(low, d.end(), n.start)
                # "tăng nhẹ, tỷ lệ tiết kiệm chưa tới 1%": another subject's figure
                and not SUBJECT_WORDS_RE.search(low, d.end(), n.start)
                # "giảm so với hai tuần trước và thấp hơn tuần trước 1.000 đ": the other's
                and not DIRECTIONS.search(low, d.end(), n.start)
                # "từ 2 ngày tuần rồi lên 6 ngày", "với 5 giao dịch": the level, not the change
                and not _TO_LEVEL.search(low, max(0, n.start - 8), n.start)
                # "tăng: con hoạt động 4 ngày": a figure of a metric named after the direction
                and not METRICS.search(low, d.end(), n.start)
            ),
            None,
        )
        if after is not None:
            span = text[after.start : after.end]
            self.change_sign(field, span, metric, direction, after, reference, text)
        return True

    def change_sign(
        self,
        field: str,
        span: str,
        metric: str,
        direction: str,
        n: Stated,
        reference: str | None = None,
        text: str = "",
    ) -> None:
        """A stated change must have the direction's sign ("tăng 20.000 đ" is +20.000) and
        be the change against the week it names ("so với tuần trước" is prev1's); a
        percentage right after the direction is that metric's change, not another's."""
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
            gap = text[: n.start].lower()[-14:]
            right_after = n.kind == "percent" and not _LEVEL_BEFORE.search(gap)
            if right_after and _CHANGE_BEFORE.search(gap):
                name, changes = METRIC_NAMES[metric], _percent_list(candidates)
                msg = f"{span!r} is not {name}'s change (its changes: {changes})"
                self.add("wrong_change", field, span, msg)
                self.r.mark(n.start, n.end)
            return  # a level ("tăng lên 160.000 đ") or an unknown number, checked as such
        self.r.mark(n.start, n.end)
        # The balance's one change is against last week's end: any reference names it.
        against = _AGAINST.get(reference or "", ()) if metric != "savings_balance" else ()
        matching = [c for c, label in close if not against or label.endswith(against)]
        if not matching:
            name, which = METRIC_NAMES[metric], close[0][1].rpartition(" - ")[2]
            msg = f"{span!r} is {name}'s change against {which}, not against {reference}"
            self.add("wrong_change", field, span, msg)
            return
        want = 1 if direction == "up" else -1
        if not any(c * want > 0 for c in matching):
            name = METRIC_NAMES[metric]
            said = "tăng" if direction == "up" else "giảm"
            self.add(
                "wrong_sign",
                field,
                span,
                f"says {name} {said} {span}, but that change has the other sign",
            )


def _sentence_start(low: str, at: int) -> int:
    ends = [low.rfind(p, 0, at) for p in (". ", "! ", "? ", "; ", "\n")]
    return max(ends) + 1 if max(ends) >= 0 else 0


# After "nhiều hơn": another metric, not a week ("thấp hơn nhiều so với số tiền nhận được").
_GOAL_COUNT_WORDS = (  # "open" first: "chưa hoàn thành" is not "hoàn thành"
    ("open", re.compile(r"còn\smở|đang\smở|chưa\shoàn\sthành|chưa\sđạt|đang\stheo")),
    ("created", re.compile(r"mới(?!\s(?:đạt|được|có|tiết|gửi))|(?<!\w)đặt|vừa\sđặt")),
    ("completed", re.compile(r"hoàn\sthành")),
    ("reached", re.compile(r"(?<!chưa\s)(?<!\w)(?:đã\sđạt|đạt\sđược|đủ\stiền)(?!\w)")),
)


_GOAL_COUNT_STOP = re.compile(r"\s(?:và|rồi|nhưng)\s|[,;.(]|$")
_SIGNED = ("net_flow", "savings_balance")
_ZERO_DONG = re.compile(r"0\s?(?:đ|đồng|vnd)")
_SIDE_OF_ZERO = re.compile(r"(?<!\w)(?:trên|dưới|(?:lớn|cao|nhỏ|thấp)\shơn)\s$")
_SPENT = (None, "spending")
# "Riêng quà tặng, con tiêu ...": the category a clause is about, said first
_TOPIC_CATEGORY = re.compile(
    rf"(?<!\w)riêng\s(?:(?:tiền|khoản|mục|phần)\s)?(?:cho\s)?(?P<category>{CATEGORIES.pattern})"
)
_CATEGORY_IS = re.compile(
    rf"(?<!\w)(?P<category>{CATEGORIES.pattern})\slà\s(?:khoản|danh\smục|mục)(?:\schi(?:\stiêu)?)?"
    r"(?:\s\w+){0,3}?\s(?:với|ở\smức|khoảng|là|tới|đến)(?:\s(?:khoảng|gần|hơn|tầm))?\s$"
)
_THESE = re.compile(r"\s(?:này|đó|ấy|kia)(?!\w)")
_NOT_ONE_DONG = re.compile(r"\s?(?:đ|đồng)?\s(?:nào|cả)(?!\w)")
_ANY_GOAL = re.compile(r"(?:\s(?:tiết\skiệm|của\scon|của\sbé))*\snào(?!\w)")
_MONEY_SUBJECT_OF_WORD = {
    "tiền gửi tiết kiệm": "deposit",
    "gửi vào tiết kiệm": "deposit",
    "gửi tiết kiệm": "deposit",
    "gửi vào": "deposit",
    "gửi": "deposit",
}
_PERCENT_SUBJECTS = ("rate", "saving", "spending", "total_spending", "income")
_SAID_NEGATIVE = re.compile(r"(?<!\w)(?:âm|hụt|thâm\shụt|thiếu|bị\strừ|lỗ|lố)(?!\w)")
_LACK_GOAL_STOP = re.compile(r"[,()]|\svà\s|\scòn\s")


def _lack_of(labelled_low: str, clause: tuple[int, tuple[int, int]], n: Stated) -> str:
    """Whose lack a figure is: the goal its clause names after it ("còn thiếu 52.000 đ để đạt
    mục tiêu 1"), else the one its sentence named last before it; any goal's if none."""
    _, (sentence_start, sentence_end) = clause
    stop = _LACK_GOAL_STOP.search(labelled_low, n.end, sentence_end)  # "(..., còn thiếu X) và"
    after = GOAL_LABEL.search(labelled_low, n.end, stop.start() if stop else sentence_end)
    before = GOAL_LABEL.findall(labelled_low, sentence_start, n.start)
    if "lần lượt" in labelled_low[sentence_start : n.start]:  # "... lần lượt còn thiếu X và Y"
        return "lack"
    goal = after.group(1) if after else before[-1] if before else None
    return f"lack:{goal}" if goal else "lack"


def _goal_count_subject(low: str, clause_start: int, n: Stated) -> str:
    """ "3 mục tiêu còn mở" counts the open goals, "2 mục tiêu mới" those set this week."""
    after = low[n.end : min(len(low), n.end + 48)]  # "3 mục tiêu tiết kiệm của [[kid]] đều còn mở"
    after = after[: _GOAL_COUNT_STOP.search(after).start()]  # not "... và đặt mục tiêu mới"
    for what, words in _GOAL_COUNT_WORDS:
        if words.search(after):
            return f"goals {what}"
    # else the word nearest before it: "đã hoàn thành hai mục tiêu"
    said = [
        (m.end(), m.end() - m.start(), what)  # "chưa hoàn thành" over its "hoàn thành"
        for what, words in _GOAL_COUNT_WORDS
        for m in words.finditer(low, clause_start, n.start)
    ]
    return f"goals {max(said)[2]}" if said else "goals"


# "tăng so với tuần rồi chỉ có 1 ngày": that week's level, not the change
_LEVEL_OF_WEEK = re.compile(
    r"(?:tuần\strước|tuần\srồi|hai\stuần\strước|tuần\strước\snữa)\s(?:khi\s|con\s|chỉ\s|mới\s)*"
    r"(?:có|là|ở\smức|mức|đạt|\()"
)
_ASIDE = re.compile(r"\s*(?:gần|khoảng|hơn|tức|tức\slà|bằng|chiếm|chưa\sđến|\d|một\snửa|nửa|\()")
_JOINED = re.compile(r"(?<!\w)(?:vì|nên|do|khi|dù|mà|nhưng|còn)(?!\w)")  # another sub-clause
_METRIC_COMPARED = re.compile(
    r"\s(?:(?:nhiều|hẳn|rất\snhiều|so\svới|cả|số\stiền|tiền|khoản|con|mức)\s)*"
    r"(?:thu\snhập|nhận|chi\stiêu|chi|tiêu|tiết\skiệm|để\sdành|gửi|rút|số\sdư|tiền\stiêu\svặt)(?!\w)"
)
_FRONTED = re.compile(
    r"\s*(?:trong\s|vào\s)?(?:(?P<prev2>tuần\strước\snữa|(?:hai|2)\stuần\strước)|(?P<prev1>tuần\strước"
    r"|tuần\srồi|tuần\svừa\srồi))\s*,\s*$"
)
_THIS_WEEK_AFTER = re.compile(r"\s(?:(?:so\svới|hơn|hẳn|nhiều|rất\snhiều|khá\snhiều)\s)*tuần\snày")
# "còn thiếu hơn 1 triệu, khoảng 1,18 triệu": a clause that only says a figure again
_RESTATED = re.compile(r"\s*(?:khoảng|tức|tức\slà|cỡ|chừng|tương\sđương)\s")


def _said_again(
    stated: list[Stated], low: str, clause_start: int, sentence: tuple[int, int], n: Stated
) -> Stated | None:
    """The figure a clause of nothing but "khoảng" and a figure says again, rounded: the
    last figure of its kind before it in its sentence. None for any other figure."""
    if not _RESTATED.fullmatch(low, clause_start, n.start):
        return None
    before = [
        m for m in stated if m.kind == n.kind and sentence[0] <= m.start and m.end <= clause_start
    ]
    # the clause before ends with it: "thiếu hơn 1 triệu, khoảng ...", not "vẫn tốt, khoảng ..."
    if not before or low[before[-1].end : clause_start].strip(" ,;:)"):
        return None
    return before[-1]


_SHARE_IN_BRACKETS = re.compile(
    r"(?:thu\snhập|số\stiền\s(?:con\s)?nhận\sđược|tiền\snhận)\s\((?:tỷ\slệ\s|tỉ\slệ\s)?(?:khoảng\s|gần\s)?$"
)
_RANGE = re.compile(
    r"(?<![\d.,])(?P<a>\d+(?:[.,]\d+)?)\s?[-–]\s?(?P<b>\d+(?:[.,]\d+)?)"
    r"(?=\s?(?:k|nghìn|ngàn|triệu|%|đ|ngày|giao\sdịch|sự\skiện)(?!\w))"
)


def _ranges_as_about(text: str) -> str:
    """ "64-65k" is about 64,5k: a range is read as its middle, hedged (as wide as the
    range's own ends allow, not as a fair rounding of 64,5k)."""

    def middle(m: re.Match[str]) -> str:
        a, b = (float(m.group(g).replace(",", ".")) for g in ("a", "b"))
        return "khoảng" + RANGE_SPACE + f"{(a + b) / 2:g}".replace(".", ",")

    return _RANGE.sub(middle, text) if "-" in text or "–" in text else text


_UNIT_IN_DIRECTION = re.compile(r"ngày|giao\sdịch|sự\skiện")
_UNIT_METRIC = {"ngày": "active_days", "giao dịch": "txn_count", "sự kiện": "event_count"}
_RATIO_BEFORE = re.compile(r"(?:gấp|bằng|hơn)\s(?:khoảng\s|tầm\s|cỡ\s|chừng\s|gần\s|hơn\s)?$")
_GOAL_REACHING = re.compile(
    r"mục\stiêu\s(?P<goal>\d+)(?:\s\([^)]*\))?(?:(?!mục\stiêu\s\d)(?:[^.;]|\.(?=\d)))*?(?:đạt|hoàn\sthành|tiến\sđộ|được)"
    r"(?:\s(?:được|khoảng|tầm|cỡ|chừng|gần|hơn|tới|đến|đúng|đủ|chưa|mới|chỉ))*(?:(?:(?!mục\stiêu\s\d)(?:[^.;]|\.(?=\d)))*"
    # "..., khoảng 55 %", "... hơn một nửa (55 %)": the same progress again, in figures
    r"(?:,\s(?:khoảng|tức|tức\slà|tương\sđương|cỡ|chừng)|\s?\()(?:\s?(?:khoảng|gần|hơn))?)?\s*$"
)
_TARGET_OF = re.compile(
    r"mục\stiêu\s(?P<goal>\d+)\s?(?:\(|,\s|là\s|trị\sgiá\s|có\sgiá\s|với\ssố\stiền\s|(?:có\s)?số\stiền\s|cần\s|)"
    r"(?:(?:khoảng|tầm|cỡ|chừng|hơn|gần|trên|dưới|chưa\sđến)\s)?$"
)
_SUBJECT_AFTER = re.compile(
    r"\s*(?:(?:đã|được|đều|là|con|\[\[kid\]\])\s)*(?P<subject>gửi\stiết\skiệm|gửi\svào|gửi|để\sdành"
    r"|tiết\skiệm|chi\stiêu|chi|tiêu|nhận|rút)(?!\w)"
)
_CHANGE_BEFORE = re.compile(
    r"(?:tăng|giảm|xuống|lên)\s(?:khoảng\s|tầm\s|cỡ\s|chừng\s|gần\s|hơn\s)?$"
)
_LEVEL_BEFORE = re.compile(
    r"(?:lên|xuống|còn|đến|tới|mức)\s(?:khoảng\s|tầm\s|cỡ\s|chừng\s|gần\s|hơn\s)?$"
)


def _percent_list(candidates: list[tuple[float, str]]) -> str:
    return ", ".join(f"{c:+.0f} % against {label.rpartition(' - ')[2]}" for c, label in candidates)


_COUNT_UNITS = frozenset(
    {"giao dịch", "sự kiện", "lượt", "ngày", "danh mục", "loại", "khoản", "mục tiêu"}
)
_HEDGES = r"hơn|trên|dưới|chưa\sđến|chưa\stới|xấp\sxỉ|tầm|cỡ"  # "còn thiếu hơn 1 triệu"
_LACK_WORDS = r"còn\sthiếu|thiếu|cần\sthêm|còn\scần"
_LACK_BEFORE = re.compile(
    rf"(?<!\w)(?:{_LACK_WORDS}|cần\scó\sthêm|cần)(?:\s(?:khoảng|đúng|chừng|gần|thêm|{_HEDGES}))?\s*$"
)
_LEFT_BEFORE = re.compile(rf"(?<!\w)(?:chỉ\s)?còn(?:\s(?:khoảng|đúng|chừng|gần|{_HEDGES}))?\s*$")
_MORE_AFTER = re.compile(r"\s*nữa(?!\w)")
# "60.000 đ còn thiếu cho mục tiêu 2"
_LACK_AFTER = re.compile(r"\s(?:đ|đồng|vnd|k|nghìn|ngàn)?\s?(?:còn\s)?thiếu(?!\w)")
# "còn thiếu hơn 1 triệu (1.065.000 đ)": the bracket gives the lack exactly
_LACK_BRACKETED = re.compile(
    rf"(?<!\w)(?:{_LACK_WORDS})\s(?:(?:khoảng|gần|{_HEDGES})\s)?"
    r"\d[\d.,]*\s?(?:đ|đồng|vnd|k|nghìn|ngàn|triệu)?\s*\(\s*$"
)
# A sentence comparing weeks names them without its figures being theirs.
_COMPARING = re.compile(
    r"(?<!\w)(?:so\svới|hơn|tăng|giảm|chênh|thay\sđổi|kém|vượt|gấp|lên|xuống|bằng|từ|thêm|bớt"
    r"|như|nửa)(?!\w)"
)
_OUT_OF = re.compile(r"\d[\d.,]*\s?(?:k|nghìn|ngàn|đ|đồng)?\s(?:trên|/|so\svới\stổng)\s*$")
_OF_INCOME = re.compile(r"(?<!\w)(?:số\stiền\s)?(?:nhận|thu\snhập|thu)(?!\w)")
# "Cùng con đặt một mục tiêu để số dư tăng dần": what advice aims at, not a trend
_PURPOSE = re.compile(r"(?<!\w)để\s(?!dành)")
# A digit of another script (or full-width): read by int() as its value, not as a parent
# reads it
_OTHER_DIGITS = re.compile(r"(?![0-9])\d")
_CASUAL_WORDS = {
    "ko": "không",
    "k0": "không",
    "hông": "không",
    "hổng": "không",
    "hok": "không",
    "chả": "chẳng",  # "con chả tiêu đồng nào" (not the dish: "chả giò")
    "vô": "vào",
}
# "vô" only where it means "into" ("tiền vô", "gửi vô tiết kiệm", "vô app"), not in "vô cùng"
_CASUAL = re.compile(
    r"(?<!\w)(?:ko|k0|hông|hổng|hok|chả(?!\s(?:giò|cá|lụa|quế|chìa))"
    r"|(?:(?<=tiền\s)|(?<=gửi\s)|(?<=dành\s)|(?<=kiệm\s)|(?<=nạp\s)|(?<=thêm\s)|(?<=cất\s))vô"
    r"|vô(?=\s(?:app|ứng\sdụng|tiết\skiệm|heo|quỹ|tài\skhoản)(?!\w)))(?!\w)",
    re.IGNORECASE,
)
_NET_BEFORE = re.compile(r"(?:dòng\stiền|ròng|(?<!số\s)(?<!\w)dư(?:\sra|\slại)?\s*$)[^.;:]*$")
# "tuần trước chi hơn 13 triệu": a bound on the figure, not two things compared
_BOUND = re.compile(
    r"(?<!nhiều\s)(?<!ít\s)(?<!cao\s)(?<!lớn\s)(?<!thấp\s)(?<!nhỏ\s)hơn\s(?:cả\s)?\d"
)
_SHARE_OF = re.compile(r"(?:%|phần\străm|nửa|phần\s(?:ba|tư|năm))\s(?:(?:của|số|tổng)\s)*$")
_TO_LEVEL = re.compile(r"(?<!\w)(?:lên|xuống|còn|thành|với)\s(?:(?:khoảng|gần)\s)?$")
_IN_WEEK = re.compile(r"\s?(?:(?:vào|trong|của|ở)\s)?")
_WEEK_SAID = re.compile(
    r"(?<!\w)(?:(?P<prev2>tuần\strước\snữa|tuần\skia|(?:hai|2)\stuần\strước|tuần\strước\sđó)"
    r"|(?P<prev1>tuần\strước|tuần\srồi|tuần\svừa\srồi)|(?P<now>tuần\snày))(?!\w)"
)


def _spaced(words: str) -> str:
    """`words` with each run of spaces one space; the same string when it is already so."""
    return words if words in METRIC_OF else SPACES.sub(" ", words)


def _week_of(low: str, clause_start: int, sentence: tuple[int, int], n: Stated) -> str:
    """The week a figure is said of: "now" (a sentence that compares no weeks), "prev1" or
    "prev2" (a clause about that week: "tuần trước con chi 38.000 đ", or a figure in
    brackets after it: "so với tuần trước (13.000 đ)"), else "any" (a comparison)."""
    weeks = "tuần" in low  # what every week _WEEK_SAID and _FRONTED read holds
    # "5.000 đ vào tuần trước", "13k tuần rồi"
    named_after = _WEEK_SAID.match(low, _IN_WEEK.match(low, n.end).end()) if weeks else None
    if named_after and named_after.lastgroup:  # "giảm so với 13k tuần rồi và 11k hai tuần trước"
        return named_after.lastgroup
    opened = low.rfind("(", sentence[0], n.start)
    if _versus(low, n):
        return "now"  # "gấp đôi tuần rồi (24k so với 12k)": this week's, then that week's
    if weeks and opened >= 0 and low.find(")", opened, n.start) < 0:  # "tuần trước (13.000 đ"
        said = list(_WEEK_SAID.finditer(low, max(sentence[0], opened - 40), opened))
        # right before the bracket: "nhiều hơn 44 nghìn (khoảng 15%)" is the change's
        if said and said[-1].lastgroup != "now" and not low[said[-1].end() : opened].strip(" :"):
            versus = low.endswith("so với ", opened, n.start)  # "(24k so với 12k)": that week's
            return said[-1].lastgroup if versus and said[-1].lastgroup else "past"
    clause_end = low.find(",", n.end)
    clause_end = sentence[1] if clause_end < 0 or clause_end > sentence[1] else clause_end
    said = list(_WEEK_SAID.finditer(low, clause_start, clause_end)) if weeks else []
    if weeks and not said and clause_start > sentence[0]:  # "Tuần trước, [[KID]] chi tiêu ..."
        fronted = _FRONTED.match(low, sentence[0], clause_start)
        said = [fronted] if fronted else []
    comparing = (
        m
        for m in _COMPARING.finditer(low, clause_start, clause_end)
        if not _BOUND.match(low, m.start())
    )
    if said and next(comparing, None) is None:
        # "tuần trước chi 17.000 đ và hai tuần trước là 14.000 đ": the week said last before it
        before = [m for m in said if m.end() <= n.start]
        return (before or said)[-1 if before else 0].lastgroup or "any"
    return "any" if _sentence_compares(low, *sentence) else "now"


@functools.lru_cache(maxsize=256)
def _sentence_compares(low: str, start: int, end: int) -> bool:
    """Whether low[start:end] compares two things (not "..., hơn 2,8 triệu": a hedge); asked
    for each figure of a sentence, so remembered."""
    compares = (
        m for m in COMPARES.finditer(low, start, end) if not _HEDGE_OVER.match(low, m.start())
    )
    return next(compares, None) is not None


# "..., hơn 2,8 triệu": a figure's hedge (a bound on it), not a comparison of two things
_HEDGE_OVER = re.compile(r"(?<=[,(]\s)hơn\s\d|(?<=^)hơn\s\d")
_SUBJECTS_OF_KIND = {
    "money": frozenset(
        {
            "income",
            "spending",
            "total_spending",
            "saving",
            "deposit",
            "withdrawal",
            "balance",
            "net",
        }
    ),
    "percent": frozenset({"rate", "of_income", "spending", "total_spending", "saving", "income"}),
}
_KINDS_OF_CATEGORY = ("money", "percent")  # a category's amount, or its share of spending


_ALL_OF_THEM = re.compile(r"(?<!\w)(?:đều|cùng|cả\s(?:hai|ba|bốn))(?:\s(?:đã|vẫn|khá|rất))?\s*$")


_EVERY_METRIC = re.compile(
    r"(?<!\w)(?:(?:mọi|tất\scả(?:\scác)?)\s(?:chỉ\ssố|con\ssố|số\sliệu|khoản)|các\s(?:chỉ\ssố|con\ssố|số\sliệu)|mọi\sthứ)[^,;:]*?\sđều\s(?:\w+\s)?$"
)


def _listed(low: str, start: int, d: re.Match[str], before: list[str | None]) -> list[str]:
    """The metrics a direction said with "đều" moves: every one its clause names before it."""
    if not _ALL_OF_THEM.search(low, start, d.start()):
        return []
    return list(dict.fromkeys(m for m in before if m is not None))


def _heads_a_list(low: str, d: re.Match[str], here: list[re.Match[str]]) -> bool:
    """ "Mọi thứ ổn định: thu nhập, chi tiêu đều ổn định": a direction with no metric, before
    a colon and the list it is said of with "đều" (each of which is checked)."""
    if not low[d.end() :].lstrip().startswith(":"):
        return False
    return any(
        later.start() > d.end()
        and later.lastgroup == d.lastgroup
        and _ALL_OF_THEM.search(low, d.end(), later.start())
        for later in here
    )


# A share of the total right before it names it: "chiếm hơn chín phần mười tổng chi",
# "hơn một nửa tổng chi", "(45 %) tổng chi".
_SHARE_OF_TOTAL = re.compile(
    r"(?<!\w)(?:chiếm|nửa|phần\s(?:hai|ba|tư|bốn|năm|mười|\d+)|phần\slớn|%)"
    r"(?:\s(?:của|trong|số|tiền))*\s*$"
)


def _subject_of_sentence(low: str, start: int, at: int, kind: str) -> str | None:
    """The last subject of a figure of `kind` named before `at` in its sentence ("Tuần
    trước, con chi ... 38.000 đ"; "tỷ lệ ..., ít hơn tuần rồi (15k)" is not the rate's)."""
    allowed = _SUBJECTS_OF_KIND.get(kind, frozenset())
    words = [
        SPACES.sub(" ", m.group())
        for m in SUBJECT_WORDS_RE.finditer(low, start, at)
        # "hơn một nửa tổng chi": the total a share is of, not what is said of it
        if not _SHARE_OF_TOTAL.search(low, start, m.start())
    ]
    said = [SUBJECT_WORDS.get(word, f"cat:{group_of(word)}") for word in words]
    if kind == "percent" and "income" in said:  # "để dành một nửa thu nhập, tức 51%"
        share = {"saving": "rate", "spending": "spent_share"}
        of_income = next((share[s] for s in said if s in share), None)
        if of_income:
            return of_income
    for subject in reversed(said):
        if subject in allowed or (subject.startswith("cat:") and kind in _KINDS_OF_CATEGORY):
            return subject
    return None


# The changes a reference names: "tuần trước" is prev1's; "hai tuần trước" the mean's (as
# the prompt uses it) or W-2's.
_AGAINST = {"prev1": ("- prev1",), "mean": ("- mean", "- prev2"), "average": ("- mean",)}


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
            return metric if low[at:start].strip() in ("", "được", "có") else None
    return None


# "thấp hơn tuần trước", "cao hơn 22.000 đ so với tuần trước", "cao hơn 187.000 đ so với mức
# 10.000 đ của tuần trước"
_AFTER_DIRECTION = re.compile(
    r"\s(?:(?:hẳn|nhiều|một\schút|chút|khá)\s)?"
    r"(?:(?:khoảng\s|gần\s)?\d[\d.,]*\s?(?:đ|đồng|k|nghìn|ngàn|triệu|%)?\s)?(?:so\svới\s|với\s)?"
    r"(?:(?:mức\s)?(?:khoảng\s|gần\s)?\d[\d.,]*\s?(?:đ|đồng|k|nghìn|ngàn|triệu)?\s(?:của\s|ở\s|vào\s)?)?"
)


def _reference_after(low: str, at: int) -> str | None:
    pos = _AFTER_DIRECTION.match(low, at)
    at = pos.end() if pos else at
    said = MEAN_REF.match(low, at)
    if said:  # "trung bình hai tuần trước" is the mean only
        return "average" if said.group().startswith("trung") else "mean"
    return "prev1" if PREV1_ONLY.match(low, at) else None


_REF_PHRASE = re.compile(
    r"(?:mức\s)?(?:trung\sbình\s(?:của\s)?)?(?:(?:hai|2)\stuần|các\stuần|những\stuần|tuần)"
    r"(?:\s(?:trước|rồi|qua|gần\sđây|vừa\srồi))?(?:\s(?:nữa|đó))?(?!\w)"
)
_AND_REF = re.compile(r"\s?(?:,\s?)?(?:và|lẫn|cũng\snhư|hay|hoặc)\s(?:cả\s)?(?:so\svới\s|với\s)?")


def _more_references(low: str, at: int) -> list[str]:
    """The weeks named after the first one a direction is against ("tăng so với tuần trước và
    so với trung bình hai tuần trước": the mean's)."""
    pos = _AFTER_DIRECTION.match(low, at)
    said = _REF_PHRASE.match(low, pos.end() if pos else at)
    more: list[str] = []
    while said and said.group().startswith(("mức", "trung", "hai", "2", "các", "những", "tuần")):
        joined = _AND_REF.match(low, said.end())
        said = _REF_PHRASE.match(low, joined.end()) if joined else None
        ref = _reference(said.group(), 0, len(said.group())) if said else None
        if ref is None:
            break
        more.append(ref)
    return more


def _reference(text: str, start: int, end: int) -> str | None:
    """What a comparison is against: "tuần trước" is prev1, "hai tuần trước" their mean."""
    said = MEAN_REF.search(text, start, end)
    if said:
        return "average" if said.group().startswith("trung") else "mean"
    return "prev1" if PREV1_ONLY.search(text, start, end) else None


def _agrees(direction: str, negated: bool, actual: str) -> bool:
    if negated:
        return actual in NOT_AGREES.get(direction, frozenset({actual}))
    return actual in AGREES.get(direction, frozenset())


def report_texts(report: Mapping[str, Any] | BaseModel) -> list[tuple[str, str]]:
    """(field, text) of every text field and every recommendation."""
    data = report.model_dump() if isinstance(report, BaseModel) else report
    texts = [(name, str(data.get(name) or "")) for name in TEXT_FIELDS]
    recommendations = data.get("recommendations") or []
    texts += [(f"recommendations[{i}]", str(r)) for i, r in enumerate(recommendations)]
    return texts


def check_report(
    report: Mapping[str, Any] | BaseModel,
    data: Mapping[str, Any] | Facts,
    canonical: bool = True,
) -> list[Finding]:
    """Every statement of `report` that `data` (what the model was given) does not support.
    A report wholly in the canonical forms, and true, needs no general reading
    (`canonical=False` reads it anyway: the tests compare the two)."""
    facts = facts_for(data)
    texts = report_texts(report)
    if canonical and canonical_and_true(texts, facts):
        return []
    checker = _Checker(facts)
    for field, text in texts:
        checker.field(field, text)
    return checker.findings


def describe_findings(findings: Sequence[Finding], limit: int = 6) -> str:
    """A few lines for a re-ask message or a reviewer: what is wrong, where."""
    lines = [f"- {f.field}: {f.message}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"- and {len(findings) - limit} more")
    return "\n".join(lines)


_VERSUS_AFTER = re.compile(r"\s?so\svới\s\d[\d.,]*\s?(?:k|nghìn|ngàn|triệu|đ|đồng)?\)")


# "39k so với (chỉ) có 2k"
_PAIR_NEXT = re.compile(r"\s?(?:so\svới)\s?(?:(?:chỉ\s)?có\s)?\d")
_PAIR_PREVIOUS = re.compile(
    r"\d[\d.,]*\s?(?:k|nghìn|ngàn|triệu|tr|đ|đồng)?\s?so\svới\s?(?:(?:chỉ\s)?có\s)?$"
)
# "Ăn uống với đồ ăn vặt gần bằng nhau (85k và 84k)", "(243k với 117k)": a pair in brackets,
# in the order the two were named
_PAIR_AND_NEXT = re.compile(r"\s?(?:và|với)\s?\d[\d.,]*\s?(?:k|nghìn|ngàn|triệu|tr|đ|đồng)?\)")
_PAIR_AND_PREVIOUS = re.compile(r"\(\d[\d.,]*\s?(?:k|nghìn|ngàn|triệu|tr|đ|đồng)?\s?(?:và|với)\s?$")


def _paired_subject(low: str, sentence: tuple[int, int], n: Stated) -> str | None:
    """ "Chi tiêu hơn gấp đôi thu nhập, 167k so với 63k": after a sentence names two things,
    a pair of amounts "A so với B" is the first thing's, then the second's (a pair after
    one thing is two weeks of it: `_versus`)."""
    if n.kind != "money":
        return None
    previous = _PAIR_PREVIOUS.search(low, sentence[0], n.start) or _PAIR_AND_PREVIOUS.search(
        low, max(sentence[0], n.start - 24), n.start
    )
    first = low[n.start - 1 : n.start] == "(" and _PAIR_AND_NEXT.match(low, n.end)
    if previous is None and not first and not _PAIR_NEXT.match(low, n.end):
        return None
    second = previous is not None
    upto = previous.start() if previous is not None else n.start
    words = [SPACES.sub(" ", m.group()) for m in SUBJECT_WORDS_RE.finditer(low, sentence[0], upto)]
    named = list(dict.fromkeys(SUBJECT_WORDS.get(w, f"cat:{group_of(w)}") for w in words))
    named = [x for x in named if x in _SUBJECTS_OF_KIND["money"] or x.startswith("cat:")]
    if len(named) != 2:
        return None
    return named[1] if second else named[0]


def _versus(low: str, n: Stated) -> bool:
    """ "(24k so với 12k)": two levels in brackets, this week's first."""
    return (
        n.kind == "money"
        and low[n.start - 1 : n.start] == "("
        and bool(_VERSUS_AFTER.match(low, n.end))
    )


# The patterns searched through texts or spans, led by their first characters
# (`vocabulary.led`): the same matches, found faster.
lead_all(
    globals(),
    "_WEEK_SAID",
    "_COMPARING",
    "_SAID_NEGATIVE",
    "_JOINED",
    "_LACK_BEFORE",
    "_LEFT_BEFORE",
    "_LACK_BRACKETED",
    "_TO_LEVEL",
)
