"""Readers of forms the first readers (`closed`) do not place, met in the sixth corpus.

- a goal's state said apart from its label ("Mục tiêu 1 ... đang ở mức 0% và chưa đạt"):
  the one goal its sentence names;
- how near a goal is in words ("gần xong", "chỉ còn thiếu chút xíu", "còn xa"): the
  goal its sentence names, at least 75 % and not reached (far: under 50 %);
- one metric's change between two weeks as two levels ("tăng từ 4 lên 8 giao dịch", "giảm
  từ 28 tuần rồi xuống còn 15", "tuần rồi con chỉ có 1 giao dịch, tuần này lên 15"): the
  first is the week named for it (else the one week the sentence compares with), the second
  this week's (or the week named for it).

Each marks what it read in `Reading.read`, or flags it; what none reads is left to `sweep`.
"""

from __future__ import annotations

import re

from kidsfin_assets.reports.grounding.closed import (
    _WEEKS,
    Reading,
    _in_advice,
    mentions_in,
    week_refs,
)
from kidsfin_assets.reports.grounding.vocabulary import GOAL_LABEL, NOT_A_CLAIM
from kidsfin_assets.warehouse.tables import TREND_METRICS

# --- a goal's state said apart from its label ---------------------------------------------

_NOT_REACHED = re.compile(
    r"(?<!\w)(?:chưa|không)\s(?:(?:đã|được|thể)\s)?(?:đạt|hoàn\sthành|xong|đủ\s(?:số\s)?tiền|đủ(?=\s*(?:[.,;!]|$)))"
    r"(?:\sđược)?"
    r"(?!\s*(?:được\s)?(?:khoảng\s|gần\s|hơn\s|tới\s|đến\s|đúng\s)?(?:\d|một\snửa|nửa|mức|\w+\sphần))"
    r"(?!\w)"
)


def _goal_of_claim(
    r: Reading, m: re.Match[str], before: int | None, said_at: int | None = None
) -> str | None:
    """The one goal a claim about a goal is of: the only goal its sentence names (before
    `before`; None: anywhere in it, or the only goal of the data), unless the claim is
    advice or a purpose ("để đạt mục tiêu 1") before `said_at` (default: the claim)."""
    clauses, clause = r.locate(m.start())
    at = m.start() if said_at is None else said_at
    if _in_advice(r, clause, at) or NOT_A_CLAIM.search(r.low, clause[0], at):
        return None
    end = clauses[-1][1] if before is None else before
    named = set(GOAL_LABEL.findall(r.labelled, clauses[0][0], end))
    if not named and before is None and len(r.facts.goals) == 1:
        named = set(r.facts.goals)
    return named.pop() if len(named) == 1 else None


# "Mục tiêu 3 chỉ có 10k nên con đạt rồi": reached, said with no object after it
_REACHED = re.compile(
    r"(?<!\w)(?:(?:\[\[kid\]\]|con|bé)\s)(?:(?:đã|vừa|cũng)\s)?(?:đạt|hoàn\sthành|xong|đủ\stiền)"
    r"(?:\s(?:được|rồi))*(?=\s*(?:[.,;!]|$))"
)


def read_goal_state(r: Reading) -> None:
    """ "Mục tiêu 1 (2.111.000 đ) đang ở mức 0% và chưa đạt": not reached (and "..., nên con
    đạt rồi": reached), of the one goal its sentence names before it (several goals, or
    none: left to the sweep)."""
    if not any(word in r.labelled for word in ("đạt", "hoàn thành", "xong", "đủ")):
        return
    for reached, pattern in ((False, _NOT_REACHED), (True, _REACHED)):
        for m in pattern.finditer(r.labelled):
            if not r.is_read(m.start(), m.end()):
                _goal_state(r, m, reached)
    for m in _ELSE_NOT.finditer(r.labelled):  # "mục tiêu 1 là đạt, mục tiêu 2 thì chưa"
        if not r.is_read(m.start(), m.end()):
            # the label as written (r.text masks it)
            _check_goal(r, m, m.group("n"), False, r.labelled[m.start() : m.end()])


# "Chỉ mục tiêu 1 là đạt, mục tiêu 2 thì chưa": the verb said once, for the goal before
_ELSE_NOT = re.compile(
    r"(?<=[,;]\s)mục\stiêu\s(?P<n>\d+)\s(?:thì|lại|vẫn)\s(?:chưa|không)(?=\s*(?:[.,;!]|$))"
)
_SO = re.compile(r"(?<!\w)(?:nên|vì\svậy|do\sđó)\s$")  # "..., nên con đạt rồi": so, not should


def _goal_state(r: Reading, m: re.Match[str], reached: bool) -> None:
    so = _SO.search(r.low, max(0, m.start() - 8), m.start()) if reached else None
    number = _goal_of_claim(r, m, m.start(), so.start() if so else None)
    if number is not None:
        _check_goal(r, m, number, reached, r.text[m.start() : m.end()])


def _check_goal(r: Reading, m: re.Match[str], number: str, reached: bool, said: str) -> None:
    """That goal `number` is reached (or not), as `m` says: read, or a finding."""
    state = r.facts.goals.get(number)
    if state is None:
        r.flag("wrong_goal", m.start(), m.end(), f"no mục tiêu {number} in the data")
    elif bool(state[0]) != reached:
        is_ = "is reached" if state[0] else "is not reached"
        r.flag("wrong_goal", m.start(), m.end(), f"{said!r}: mục tiêu {number} {is_}")
    else:
        r.mark(m.start(), m.end())


# --- a rate said per 100 đồng (the ninth corpus) ------------------------------------------

_PER_HUNDRED = re.compile(
    r"(?<!\w)cứ\s(?:mỗi\s)?(?P<base>100|1\.?000|10)\s(?:đồng|đ)(?!\w)[^.;]{0,40}?"
    r"(?P<verb>để\sdành|tiết\skiệm|gửi|chi|tiêu)(?:\s(?:tiết\skiệm|tiêu|ra|đi|được|lại))*\s"
    r"(?:(?P<hedge>khoảng|chừng|tầm|gần|cỡ)\s)?(?P<x>\d+)\s(?:đồng|đ)(?!\w)"
)


def read_per_hundred(r: Reading) -> None:
    """ "Cứ 100 đồng nhận được thì để dành chừng 32 đồng": the savings rate (or the share
    of income spent), per 100 đồng, to the đồng (hedged: within one)."""
    if "cứ" not in r.low:
        return
    income = r.facts.value("income_total") or 0.0
    for m in _PER_HUNDRED.finditer(r.low):
        base = float(m.group("base").replace(".", ""))
        saved = m.group("verb") in ("để dành", "tiết kiệm", "gửi")
        if income <= 0:
            share = None
        elif saved:
            share = r.facts.value("savings_rate")
        else:
            share = (r.facts.value("spending_total") or 0.0) / income
        said = float(m.group("x"))
        ok = share is not None and abs(share * base - said) <= (1.0 if m.group("hedge") else 0.5)
        if ok:
            r.mark(m.start(), m.end())
        else:
            what = "the savings rate" if saved else "the share of income spent"
            truth = "no income" if share is None else f"{share * base:.1f} per {base:.0f}"
            r.flag("wrong_ratio", m.start(), m.end(), f"{m.group()!r}: {what} is {truth}")


# --- two bare counts in brackets (the ninth corpus) -----------------------------------------

# "(8 so với 1)", or closing its sentence after a comma: "..., 15 so với 26." (the thirteenth)
_PAIR = re.compile(
    r"(?:\(|(?<=,\s))(?P<a>\d+)\s(?:so\svới|và|với)\s(?P<b>\d+)(?:\)|(?=\s*(?:[.;!]|$)))"
)


def read_bracketed_counts(r: Reading) -> None:
    """ "Số giao dịch gấp 8 lần tuần rồi (8 so với 1)": the count its sentence names, this
    week's, then the week's it names before the bracket."""
    if "(" not in r.low and "so với" not in r.low:
        return
    for m in _PAIR.finditer(r.low):
        clauses, _ = r.locate(m.start())
        first = clauses[0][0]
        counted = [x for x in mentions_in(r, first, m.start()) if x.metric in _COUNTED]
        weeks = [w.lastgroup for w in week_refs(r.low, first, m.start()) if w.lastgroup != "now"]
        if not counted or len(set(weeks)) != 1:
            continue  # which count, or against which week, is not said: left to the sweep
        metric, week = counted[-1].metric or "", weeks[0] or ""
        now, then = r.facts.value(metric, "now"), r.facts.value(metric, week)
        said = (float(m.group("a")), float(m.group("b")))
        if (now, then) == said:
            r.mark(m.start(), m.end())
        else:
            r.flag(
                "wrong_metric", m.start(), m.end(), f"{m.group()!r}: {metric} is {now} and {then}"
            )


# --- a goal still open (the ninth corpus) -------------------------------------------------

_OPEN = re.compile(
    r"(?<!\w)(?P<neg>không\s(?:còn\s)?|đã\sđóng|chưa\s)?(?:vẫn\s)?(?:còn\s)?(?:đang\s)?mở"
    r"(?!\s(?:app|ứng\sdụng|ra|rộng|thêm|một|1))(?!\w)"
)


def read_goal_open(r: Reading) -> None:
    """ "Mục tiêu 1 vẫn còn đang mở": open at the week's end, the one goal its sentence names."""
    if "mở" not in r.labelled or "mục tiêu" not in r.labelled:
        return
    listed = {str(g.get("goal")): g for g in r.facts.data.get("savings_goals") or []}
    for m in _OPEN.finditer(r.labelled):
        if r.is_read(m.start(), m.end()):
            continue
        number = _goal_of_claim(r, m, m.start())
        if number is None:
            continue
        goal = listed.get(f"mục tiêu {number}")
        is_open = bool(goal and goal.get("open_at_week_end"))
        said = r.text[m.start() : m.end()]
        if is_open != (not m.group("neg")):
            state = "open" if is_open else "not open at the week's end" if goal else "absent"
            r.flag("wrong_goal", m.start(), m.end(), f"{said!r}: mục tiêu {number} is {state}")
        else:
            r.mark(m.start(), m.end())


# --- how near a goal is, in words (the eighth corpus) ---------------------------------------

_NEAR_GOAL = re.compile(
    r"(?<!\w)(?:(?P<near>(?:gần|sắp|suýt)\s(?:đạt|xong|hoàn\sthành|chạm|tới\sđích|đến\sđích)"
    r"|còn\s(?:thiếu\s)?(?:một\s)?(?:chút\s?xíu|chút\sít|tí\sxíu|chút)(?:\snữa)?(?![\w\s]*\d))"
    r"|(?P<far>còn\s(?:khá\s|rất\s|hơi\s)?xa))(?!\w)"
)
NEAR_PERCENT = 75  # "gần đạt", "chỉ còn thiếu chút xíu": at least this much, not reached
FAR_PERCENT = 50  # "còn xa": less than this


def read_goal_nearness(r: Reading) -> None:
    """ "Mục tiêu 2 gần xong rồi", "chỉ còn thiếu chút xíu", "mục tiêu 1 còn xa": how far the
    one goal its sentence names (or the only goal) is from its target."""
    if not any(w in r.labelled for w in ("gần", "sắp", "suýt", "chút", "xíu", "xa")):
        return
    goals = r.facts.goals
    for m in _NEAR_GOAL.finditer(r.labelled):
        if r.is_read(m.start(), m.end()) or _COMPARED_GOALS.match(r.labelled, m.end()):
            continue  # "mục tiêu này gần đạt hơn": goals compared, not read here
        number = _goal_of_claim(r, m, None)
        if number is None:
            continue
        said = r.text[m.start() : m.end()]
        state = goals.get(number)
        if state is None:
            r.flag("wrong_goal", m.start(), m.end(), f"{said!r}: no mục tiêu {number} in the data")
            continue
        reached, progress = state
        near = progress is not None and not reached and progress >= NEAR_PERCENT
        far = progress is not None and not reached and progress < FAR_PERCENT
        if near if m.group("near") else far:
            r.mark(m.start(), m.end())
        else:
            where = "reached" if reached else f"at {progress}%"
            r.flag("wrong_goal", m.start(), m.end(), f"{said!r}: mục tiêu {number} is {where}")


_COMPARED_GOALS = re.compile(r"\s*(?:hơn|nhất)(?!\w)")


# --- one metric from one week to another -------------------------------------------------

_COUNTED = ("txn_count", "event_count", "active_days")
_UNIT_OF = {"giao dịch": "txn_count", "sự kiện": "event_count", "ngày": "active_days"}
_WEEK = re.sub(r"\?P<\w+>", "?:", _WEEKS.pattern)  # the weeks, without their groups
_LEVEL_AT = (
    r"(?P<{0}>\d+)(?:\s(?P<{0}u>giao\sdịch|sự\skiện|ngày))?(?![\w%]|[.,]\d)"
    r"(?:\s(?:(?:vào|của|trong|ở)\s)?(?P<{0}w>" + _WEEK + r"))?"
)
# "từ 4 lên 8 giao dịch", "từ 28 tuần rồi xuống còn 15", "từ 1 ngày tuần rồi lên 5 ngày"
_FROM_TO = re.compile(
    r"(?<!\w)từ\s(?:mức\s)?" + _LEVEL_AT.format("a")
    + r"\s(?:(?:lên|xuống|tới|đến)(?:\s(?:còn|thành|mức))?|còn)\s(?:mức\s)?"
    + _LEVEL_AT.format("b")
)  # fmt: skip
# "tuần rồi con chỉ có 1 giao dịch, tuần này lên 15": a week, then the level it came to
_WEEK_TO = re.compile(
    r"(?<!\w)(?P<bw>" + _WEEK + r")\s(?:(?:thì|đã|con|lại)\s)*(?:tăng\s|giảm\s)?"
    r"(?:lên|xuống(?:\scòn)?|còn)\s(?P<b>\d+)(?:\s(?P<bu>giao\sdịch|sự\skiện|ngày))?(?![\w%]|[.,]\d)"
)


_TO_LEVEL = re.compile(r"(?:lên|xuống|còn|tới|đến|thành|mức)\s\d")


def _week(said: str | None) -> str | None:
    week = _WEEKS.match(said) if said else None
    return (week.lastgroup or "now") if week else None


def read_from_to(r: Reading) -> None:
    """A count's levels in two weeks: each must be that week's, exactly."""
    if not _TO_LEVEL.search(r.low):
        return  # cheaper than the patterns; numbers in words are digits by now
    spans = list(_FROM_TO.finditer(r.low)) if "từ" in r.low else []
    weeks = _WEEK_TO.finditer(r.low) if "tuần" in r.low else ()
    for m in weeks:  # not "từ 1 ngày tuần rồi lên 5": the first's week
        if not any(f.start() <= m.start() < f.end() for f in spans):
            spans.append(m)
    for m in spans:
        clauses, clause = r.locate(m.start())
        if _in_advice(r, clause, m.start()):
            continue
        units = [m.group(g) for g in ("au", "bu") if g in m.groupdict() and m.group(g)]
        named = [x.metric for x in mentions_in(r, clauses[0][0], m.start()) if x.metric]
        metric = _UNIT_OF.get(re.sub(r"\s+", " ", units[0])) if units else None
        metric = metric or (named[-1] if named and named[-1] in _COUNTED else None)
        if metric is None:
            continue
        levels = [("b", _week(m.group("bw")) or "now")]
        if "a" in m.groupdict():
            # the week named for it, else the one other week its sentence names
            said = {
                w.lastgroup
                for c in clauses
                for w in _WEEKS.finditer(r.low, *c)
                if w.lastgroup not in (None, "now")
            }
            week_a = _week(m.group("aw")) or (said.pop() if len(said) == 1 else None)
            if week_a is None:
                continue
            levels.insert(0, ("a", week_a))
        values = [(g, week, r.facts.value(metric, week)) for g, week in levels]
        if any(v is None for _g, _w, v in values):
            continue  # a week the data does not hold for it: left to the sweep
        wrong = [f"{metric} ({w}) is {v:g}" for g, w, v in values if v != float(m.group(g))]
        if wrong:
            said = r.text[m.start() : m.end()]
            r.flag("wrong_metric", m.start(), m.end(), f"{said!r}: {', '.join(wrong)}")
        else:
            for g, _w, _v in values:
                r.mark(m.start(g), m.end(g))


# --- a goal said of a week whose data lists none (the twelfth corpus) --------------------------

_A_GOAL = re.compile(r"(?<!\w)mục\stiêu(?!\w)")
_NO_GOAL = re.compile(r"(?<!\w)(?:chưa|không|chẳng)(?!\w)")
_WOULD = re.compile(r"(?<!\w)(?:sẽ|có\sthể)(?!\w)")


def read_goal_absent(r: Reading) -> None:
    """ "Con đang có một mục tiêu tiết kiệm, đạt được 60 %" when the data lists no goal: a
    goal named as the child's is a claim that one exists, unless its clause denies it
    ("chưa có mục tiêu nào") or it is advice or a purpose ("nên đặt một mục tiêu")."""
    if r.advice_field or r.facts.data.get("savings_goals") or "mục tiêu" not in r.labelled:
        return
    for m in _A_GOAL.finditer(r.labelled):
        _clauses, clause = r.locate(m.start())
        if r.is_read(m.start(), m.end()) or _NO_GOAL.search(r.labelled, clause[0], m.start()):
            continue
        if _in_advice(r, clause, m.start()) or NOT_A_CLAIM.search(r.low, clause[0], m.start()):
            continue
        if _WOULD.search(r.low, m.end(), clause[1]):
            continue  # "một mục tiêu rõ ràng sẽ giúp ...": what one would do, not one held
        said = r.text[clause[0] : clause[1]].strip()
        r.flag("wrong_goal", m.start(), m.end(), f"{said!r}: the data lists no savings goal")


# --- "..., hai tuần trước không có": nothing that week, of what the sentence named ----------

_NOTHING_THEN = re.compile(
    rf"\s*(?:(?:trong\skhi|còn|nhưng|mà|và)\s)?(?P<week>{_WEEKS.pattern})(?:\s(?:thì|con|bé|em|lại|đều))*"
    r"\s(?:(?:không|chưa)\scó(?:\sgì)?|trống(?:\strơn)?|không)\s*$"  # "... thì không"
)
_HAS_A_WEEK = ("không có", "chưa có", "trống", "thì không")


def read_nothing_then(r: Reading) -> None:
    """ "Tuần này con có thu nhập, trong khi hai tuần trước không có", "Thu nhập với chi tiêu
    đều là mới, 2 tuần trước trống trơn": a clause that is only a week and "không có" says
    each metric its sentence named before it was 0 that week."""
    if not any(w in r.low for w in _HAS_A_WEEK):
        return
    for clauses in r.sentences:
        for start, end in clauses[1:]:
            m = _NOTHING_THEN.match(r.low, start, end)
            if m is None or r.is_read(m.start(), m.end()):
                continue
            said = _WEEKS.match(r.low, m.start("week"))
            week = said.lastgroup if said else None
            named = {
                x.metric for x in mentions_in(r, clauses[0][0], start) if x.metric in TREND_METRICS
            }
            if week in (None, "now") or not named:
                continue
            held = {metric: r.facts.value(metric, week) for metric in sorted(named)}
            wrong = [f"{metric} {value:,.0f}" for metric, value in held.items() if value]
            if wrong:
                sentence = r.text[clauses[0][0] : end].strip()
                message = f"{sentence!r}: {week} has {', '.join(wrong)}"
                r.flag("wrong_event", m.start(), m.end(), message)
            else:
                r.mark(m.start(), m.end())
