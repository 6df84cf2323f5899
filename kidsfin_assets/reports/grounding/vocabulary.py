"""The words the checker reads: categories, subjects, metrics, directions, units, advice."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

try:  # the engine's own parser (CPython 3.11+), read by `led`; without it `led` does nothing
    from re import _constants as _sre
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover
    _sre = _sre_parse = None


class _Unknown(Exception):
    """A pattern `led` cannot tell the first characters of."""


_CLASS_CATEGORIES = {_sre.CATEGORY_DIGIT: r"\d", _sre.CATEGORY_SPACE: r"\s"} if _sre else {}


def _first_characters(items: Sequence[tuple[Any, Any]]) -> tuple[set[str], bool]:
    """The characters (as class items) a match of the parsed sequence can start with, and
    whether it can match nothing at all."""
    chars: set[str] = set()
    for op, av in items:
        if op is _sre.LITERAL:
            return chars | {re.escape(chr(av))}, False
        if op is _sre.IN:
            for item, arg in av:
                if item is _sre.LITERAL:
                    chars.add(re.escape(chr(arg)))
                elif item is _sre.RANGE:
                    chars.add(f"{re.escape(chr(arg[0]))}-{re.escape(chr(arg[1]))}")
                elif item is _sre.CATEGORY and arg in _CLASS_CATEGORIES:
                    chars.add(_CLASS_CATEGORIES[arg])
                else:  # \w, a negated class ...: too many to help
                    raise _Unknown
            return chars, False
        if op is _sre.BRANCH:
            empty = False
            for alternative in av[1]:
                found, nothing = _first_characters(list(alternative))
                chars |= found
                empty |= nothing
        elif op is _sre.SUBPATTERN:
            found, empty = _first_characters(list(av[3]))
            chars |= found
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            found, nothing = _first_characters(list(av[2]))
            chars |= found
            empty = nothing or av[0] == 0
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT, _sre.AT):
            continue  # zero-width: the next item starts the match
        else:
            raise _Unknown
        if not empty:
            return chars, False
    return chars, True


def led(pattern: re.Pattern[str]) -> re.Pattern[str]:
    r"""`pattern`, led by a lookahead of the characters a match of it can start with: the
    same matches and groups, found faster where the pattern starts with a lookbehind
    (``(?<!\w)``), which the engine would otherwise try at every position of the text.
    Unchanged where the engine already skips to a first character (a literal or a class
    first) or where the first characters cannot be told (re.I, \w, a negated class)."""
    if _sre_parse is None or pattern.flags & (re.IGNORECASE | re.VERBOSE):
        return pattern
    try:
        parsed = list(_sre_parse.parse(pattern.pattern, pattern.flags))
        first_op, first_av = parsed[0]
        literals = first_op is _sre.BRANCH and all(
            alt and alt[0][0] is _sre.LITERAL for alt in first_av[1]
        )
        if first_op in (_sre.LITERAL, _sre.IN) or literals:
            return pattern
        chars, empty = _first_characters(parsed)
    except (_Unknown, IndexError, TypeError, AttributeError, ValueError, re.error):
        return pattern  # the parser's shape changed, or a pattern it cannot read ahead
    if empty or not chars:
        return pattern
    try:
        return re.compile(f"(?=[{''.join(sorted(chars))}])(?:{pattern.pattern})", pattern.flags)
    except re.error:  # a global inline flag ("(?i)...") must stay first
        return pattern


def lead_all(namespace: dict[str, Any], *names: str) -> None:
    """Replace each named pattern of a module (its `globals()`) by `led(pattern)`: for the
    patterns a module searches through texts or long spans, whose `.pattern` no other
    pattern is built from."""
    for name in names:
        namespace[name] = led(namespace[name])


# Directions a stated trend may have, for each *_trend value.
AGREES: dict[str, frozenset[str]] = {
    "up": frozenset({"up", "new"}),  # a first amount after two empty weeks went up too
    "down": frozenset({"down"}),
    "flat": frozenset({"flat"}),
    "new": frozenset({"new"}),
}


NOT_AGREES: dict[str, frozenset[str]] = {  # "không tăng", "không giảm"
    "up": frozenset({"down", "flat"}),
    "down": frozenset({"up", "flat", "new"}),
}


EXACT = 1e-6  # days and counts are integers: written as they are


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
    # silver's "other" (spending without a category) is "các khoản khác"; the prompt's
    # "khác" (categories the child named) and "(các danh mục khác)" are "các danh mục khác"
    "other": ("các khoản khác", "khoản khác", "các khoản chi khác", "other"),
    "named_by_child": (
        "các danh mục khác",
        "danh mục khác",
        "các mục khác",
        "khác",
        "(các danh mục khác)",
    ),
}


_GROUP_OF_PHRASE = {p: g for g, phrases in _CATEGORY_PHRASES.items() for p in phrases}


@functools.lru_cache(maxsize=4096)
def group_of(name: str) -> str:
    """A category key of the data block (or a phrase of the text) as its group."""
    key = unicodedata.normalize("NFC", str(name)).strip().lower()
    return _GROUP_OF_PHRASE.get(key, key)


def _alternatives(phrases: Sequence[str]) -> str:
    ordered = sorted(phrases, key=len, reverse=True)
    return "|".join(re.escape(p).replace(r"\ ", r"\s") for p in ordered)


_TEXT_CATEGORY_PHRASES = [p for p in _GROUP_OF_PHRASE if p not in ("khác", "(các danh mục khác)")]


CATEGORIES = re.compile(rf"(?<!\w)(?:{_alternatives(_TEXT_CATEGORY_PHRASES)})(?!\w)")


# What a figure written right after these words is: "thu nhập là 200.000 đ" is income,
# "đồ chơi (60.000 đ)" the toys' amount. Longest first.
SUBJECT_WORDS: dict[str, str] = {
    "số dư tiết kiệm": "balance",
    "số dư": "balance",
    "quỹ tiết kiệm": "balance",
    "tổng tiết kiệm": "balance",
    "tỷ lệ tiết kiệm": "rate",
    "tỉ lệ tiết kiệm": "rate",
    "tỷ lệ để dành": "rate",
    "tỉ lệ để dành": "rate",
    "mục tiêu tiết kiệm": "goal",
    "dòng tiền ròng": "net",
    "dòng tiền": "net",
    # what is left of the income, or missing ("chi ít hơn nhận, còn dư lại chừng 10 nghìn")
    "còn dư lại": "net",
    "còn dư": "net",
    "dư lại": "net",
    "dư ra": "net",
    "dư": "net",  # "chỉ chi 74k, dư tới 321k" ("số dư" is the balance, longer, read first)
    "hụt": "net",
    "lố": "net",  # "xài nhiều hơn số tiền được cho, lố khoảng 8 nghìn"
    "lệch": "net",  # "tiêu nhiều hơn nhận một chút, lệch có 1 nghìn"
    "chênh lệch": "net",
    "chênh": "net",
    "chênh giữa tiền vào và tiền ra": "net",
    "tiền gửi tiết kiệm": "saving",
    "tiền gửi": "saving",
    "bỏ vào tiết kiệm": "saving",
    "bỏ vào heo đất": "saving",
    "bỏ ống heo": "saving",
    "gửi vào tiết kiệm": "saving",
    "gửi tiết kiệm": "saving",
    "gửi vào": "saving",
    "gửi": "saving",
    "tiền để dành": "saving",
    "để dành": "saving",
    # the everyday words for a deposit: "con bỏ heo 40k", "bỏ ống 12.000 đ", "dành dụm 69k"
    "bỏ heo": "saving",
    "bỏ ống": "saving",
    "bỏ vào heo": "saving",
    "bỏ vào ống": "saving",
    "dành dụm": "saving",
    "tích góp": "saving",
    "tích cóp": "saving",
    "tiết kiệm": "saving",
    "rút tiết kiệm": "withdrawal",
    "tỷ lệ": "of_income",
    "tỉ lệ": "of_income",
    "rút khỏi tiết kiệm": "withdrawal",
    "rút khỏi quỹ tiết kiệm": "withdrawal",
    "rút ra khỏi tiết kiệm": "withdrawal",
    "rút từ tiết kiệm": "withdrawal",
    "rút tiền tiết kiệm": "withdrawal",
    "rút ra": "withdrawal",
    "còn thiếu": "lack",
    "thiếu": "lack",
    "cần thêm": "lack",
    "tiền rút": "withdrawal",
    "số tiền rút": "withdrawal",
    "rút": "withdrawal",
    "thu nhập": "income",
    "tiền tiêu vặt": "income",
    "tiền nhận": "income",
    "tiền vào": "income",  # "tiền vô nhiều hơn tiền ra" (vô: vào)
    "số tiền nhận": "income",
    "khoản nhận": "income",
    "khoản thu": "income",
    "mức thu": "income",
    "kiếm được": "income",  # "con kiếm được 22 nghìn"
    "tiền được cho": "income",  # "chi nhiều hơn số tiền được cho"
    "được cho": "income",
    "tiền ra": "spending",
    "nhận": "income",
    "tổng chi tiêu": "total_spending",  # the whole, not a category's
    "tổng chi": "total_spending",
    "chi tiêu": "spending",
    "tiền chi": "spending",
    "tiền chi tiêu": "spending",
    "tiền tiêu": "spending",
    "xài": "spending",
    "khoản chi": "spending",
    "mức chi": "spending",
    "chi": "spending",
    "tiêu": "spending",
}


# Words that may stand between a subject and its figure: "chi tiêu của [[KID]] là".
_FILLER = (
    r"là|đạt|được|có|khoảng|vào|ở|mức|tổng|cộng|hết|tuần|này|trong|của|\[\[kid\]\]|hiện|"
    r"đang|chỉ|tất|cả|gần|với|con|bé|em|đã|vừa|chiếm|tiền|số|ra|còn|lên|tới|đến|vẫn|cũng|lại|"
    r"đều|âm|dương|rơi|ròng|tính|ước|xấp|xỉ|tầm|cỡ|chừng|tích|lũy|luỹ|giờ|bây|thêm"
)


# A subject anywhere: what a sentence is about ("tuần trước, con chi ... 38.000 đ").
SUBJECT_WORDS_RE = re.compile(
    rf"(?<!\w)(?:{_alternatives([*SUBJECT_WORDS, *_TEXT_CATEGORY_PHRASES])})(?!\w)"
)


SUBJECT_BEFORE = re.compile(
    rf"(?<!\w)(?<!mục\s)(?P<subject>{_alternatives([*SUBJECT_WORDS, *_TEXT_CATEGORY_PHRASES])})"
    rf"(?:[\s(:]+(?:{_FILLER}))*[\s(:]*$"
)


# After a figure: "100.000 đ cho đồ ăn vặt" (not "cho đồ ăn vặt và đồ chơi"), "71 % cho
# mục tiêu 1", "25 % số tiền nhận được" (the savings rate).
CATEGORY_AFTER = re.compile(
    rf"\s*(?:cho|vào|là)\s(?P<category>{CATEGORIES.pattern})"  # "còn lại 12k là sách truyện"
    rf"(?!\s*(?:,|và|hoặc|cùng)\s*(?:{CATEGORIES.pattern}))"
)


GOAL_AFTER = re.compile(r"\s*(?:(?:số\stiền\s)?(?:cho|của)\s)?mục\stiêu\s(?P<goal>\d+)(?!\d)")


RATE_AFTER = re.compile(
    r"\s*(?:của\s)?(?:số\stiền\s(?:nhận|được\scho)|thu\snhập|tiền\s(?:nhận|tiêu\svặt))"
)


# A sentence that compares weeks or states a change may state any allowed value; one that
# does not states this week's figures.
COMPARES = re.compile(
    r"(?<!\w)(?:tuần\strước|tuần\srồi|trước\sđó|hai\stuần|2\stuần|trung\sbình|so\svới|hơn|tăng"
    # "gửi thêm 25k", "để dành thêm 8k": the week's deposit, not a change ("tăng thêm 5k"
    # compares by "tăng")
    r"|giảm|chênh|thay\sđổi|kém|vượt|đi\slên|đi\sxuống|lên|xuống|từ"
    r"|(?<!gửi\s)(?<!dành\s)(?<!dụm\s)(?<!bỏ\s)(?<!cất\s)(?<!nạp\s)thêm|bớt|bằng|như"
    r"|gấp|nửa)(?!\w)"
)


_CURRENCY = r"(?:đồng|vnđ|vnd|đ(?!\w)|₫)"


# "160 000 đ": thousands grouped by spaces are one amount when a currency follows
NUMBER = re.compile(
    rf"(?<![\w.,/])(?P<sign>[-−](?=\d))?"
    rf"(?P<num>\d{{1,3}}(?:[ \u00a0\u202f]\d{{3}})+(?=\s?{_CURRENCY})|\d+(?:[.,]\d+)*)(?!\d)"
)


UNIT = re.compile(
    rf"""\s?(?:
      (?P<pct>%|phần\s+trăm)
    | (?P<mil>(?:triệu|tr(?!\w))
        (?:\s?(?P<mil_thou>\d{{1,3}})\s?(?:nghìn|ngàn|k(?!\w)))?(?:\s?{_CURRENCY})?)
    | (?P<bil>(?:tỷ|tỉ)(?!\w)(?:\s?{_CURRENCY})?)
    | (?P<thou>(?:nghìn|ngàn|k(?!\w))(?:\s?{_CURRENCY})?)
    | (?P<cur>{_CURRENCY})
    | (?P<days>(?:/\s?7\s?|\s?trên\s7\s)?ngày)
    | (?P<count>giao\sdịch|sự\skiện|hoạt\sđộng|lượt|lần|danh\smục|loại|khoản|mục\stiêu)(?!\w)
    | (?P<skip>/\s?\d|điểm|tuần|tuổi|tháng|năm|giờ|phút|bài|câu|mục)
    )""",
    re.X,
)


SPELLED = {
    "một": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4, "năm": 5,
    "sáu": 6, "bảy": 7, "bẩy": 7, "tám": 8, "chín": 9, "mười": 10,
}  # fmt: skip


SPELLED_DAYS = re.compile(
    r"(?<!\w)(?P<word>" + "|".join(SPELLED) + r")\s(?P<unit>ngày|giao\sdịch|sự\skiện)(?!\w)"
)


BARE_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?:,\d{3}){2,}")


# Just before an amount: how its sign is said in words.
SIGN_BEFORE = re.compile(
    # "chi nhiều hơn nhận 77.000 đ": the net flow is -77.000
    r"(?P<net>(?:chi|tiêu|chi\stiêu|xài)\s(?:nhiều\shơn|vượt(?:\squá)?)\s"
    r"(?:số\stiền\s|tiền\s)?(?:nhận(?:\sđược|\svào)?|thu\snhập|thu|được\scho)"
    r"(?:\s(?:một\s)?(?:chút(?:\sxíu)?|tí|ít))?\s*"
    # "..., lố khoảng 13 nghìn", "... thu nhập có 3 nghìn thôi", "..., chênh lệch 100.000 đ"
    r"(?:,\s(?:âm|lố|hụt|vượt|thâm\shụt|chênh\slệch|chênh|lệch)\s)?"
    r"(?:là\s|khoảng\s|(?:chỉ\s)?có\s)?$)"
    r"|(?P<neg>(?:(?<!\w)âm|thâm\shụt|thiếu\shụt|hụt)(?:\s(?:tới|đến|mất|hết))?\s*$)"
    r"|(?P<pos>(?:(?<!\w)dương|(?<!số\s)(?<!\w)dư(?:\sra)?|(?:nhận|thu\snhập|thu)\snhiều\shơn\s"
    r"(?:chi\stiêu|chi|tiêu))\s*(?:là\s)?$)"
)


SIGN_OF = {"net": "net-", "neg": "-", "pos": "+"}


# A recommendation's target is not a claim about the week.
TARGET_BEFORE = re.compile(r"mục\stiêu|ít\snhất|tối\sthiểu|tối\sđa|không\squá|dưới|thêm")


PER_AFTER = re.compile(r"\s*(?:mỗi|một)\s(?:ngày|tuần|tháng|lần)")


# Advice and plans, not claims about the week: "hãy", "con nên", "nếu", "tuần tới". Not
# "nên" after a cause ("..., nên dòng tiền ròng âm": therefore), nor "cần thêm" (a lack).
ADVICE = re.compile(
    r"(?<!\w)(?:hãy|cố\sgắng|tìm\scách|khuyến\skhích|thử|có\sthể|nếu|muốn|nhằm|hướng\stới|sẽ|mong"
    r"|hy\svọng|tuần\s(?:tới|sau)|đặt\sra|giúp|mục\stiêu(?=\s(?:giảm|tăng|hạn\schế|bớt)(?!\w))"
    r"|(?:con|bé|em|\[\[kid\]\]|mẹ|bố"
    r"|ba|phụ\shuynh|gia\sđình|cả\snhà|bạn)\s(?:cũng\s|vẫn\s)?(?:nên|cần(?!\sthêm)))(?!\w)"
)


# Sentences end at . ! ? ; : (not inside 160.000) or a line break; clauses at ", ", " - "
# and before a conjunction that starts a new subject. Every boundary starts with one of
# . ! ? ; , : or a space, consumed first as a class (so that the engine skips to those
# characters, not tries each position) and looked back at to tell the boundaries apart:
# (?P<sentence>(?:[.!?;](?=\s|$)|\n)+) | (?P<clause>[,:]\s | \s[-–]\s | \s(?=nhưng ...)
# | (?<!chỉ)...\s(?=còn\s)), in that order. Only the spans and `lastgroup` are read.
BOUNDARIES = re.compile(
    r"[.!?;,:\s](?:"
    r"(?:(?<=[.!?;])(?=\s|$)|(?<=\n))(?P<sentence>(?:[.!?;](?=\s|$)|\n)*)"
    # "Chi tiêu giảm so với hai tuần trước: thấp hơn ...": what follows a colon explains it
    r"|(?P<clause>(?<=[,:])\s|(?<=\s)(?:[-–]\s|(?=(?:nhưng|trong\skhi|tuy\snhiên|song)\s)"
    # "chỉ còn 106k" is no new clause (the lookbehinds after the lookahead: tried less often)
    # nor "số dư còn khoảng 1,1 triệu", "còn âm 30k", "con còn có 16k": "còn" before a
    # figure is its level or "still"
    r"|(?=còn\s(?!(?:có\s)?(?:(?:khoảng|gần|hơn|chừng|tầm|cỡ|đúng|âm|dương)\s)?-?\d))"
    r"(?<!chỉ\s)(?<!vẫn\s)(?<!đã\s)(?<!cũng\s)(?<!hiện\s)))"
    r")"
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
    ("vào app", "active_days"),
    ("vào ứng dụng", "active_days"),
    ("mở app", "active_days"),
    ("mở ứng dụng", "active_days"),
    ("dùng app", "active_days"),
    ("dùng ứng dụng", "active_days"),
    ("số ngày", "active_days"),
    ("gửi vào", "saving_total"),
    ("ngày hoạt động", "active_days"),
    ("mức độ hoạt động", "active_days"),
    ("hoạt động", "active_days"),
    ("số giao dịch", "txn_count"),
    ("giao dịch", "txn_count"),
    ("thu nhập", "income_total"),
    ("tiền tiêu vặt", "income_total"),
    ("số tiền nhận", "income_total"),
    ("tiền nhận", "income_total"),
    ("tiền vào", "income_total"),
    ("tiền ra", "spending_total"),
    ("khoản nhận", "income_total"),
    ("khoản thu", "income_total"),
    ("mức thu", "income_total"),
    ("kiếm được", "income_total"),
    ("tiền được cho", "income_total"),  # "xài nhiều hơn số tiền được cho"
    ("được cho", "income_total"),
    ("xài", "spending_total"),
    ("chi tiêu", "spending_total"),
    ("tiền chi", "spending_total"),
    ("tiền chi tiêu", "spending_total"),
    ("tiền tiêu", "spending_total"),
    ("khoản chi", "spending_total"),
    ("mức chi", "spending_total"),
    ("gửi tiết kiệm", "saving_total"),
    ("tiết kiệm", "saving_total"),
    ("để dành", "saving_total"),
    ("tiền gửi", "saving_total"),
    ("bỏ vào tiết kiệm", "saving_total"),
    ("bỏ vào heo", "saving_total"),
    ("bỏ vào ống", "saving_total"),
    ("bỏ ống heo", "saving_total"),
    ("tích cóp", "saving_total"),
    ("dành dụm", "saving_total"),
    ("bỏ ống", "saving_total"),
    ("bỏ heo", "saving_total"),
    ("tích góp", "saving_total"),
)


# The verbs alone, after every phrase: "[[KID]] chi ít hơn tuần trước" is spending.
_METRIC_VERBS = {
    "chi": "spending_total",
    "tiêu": "spending_total",
    "nhận": "income_total",
    "gửi": "saving_total",
}


METRIC_OF = dict(_METRIC_WORDS) | _METRIC_VERBS


METRICS = re.compile(
    r"(?<!\w)(?:"
    + "|".join(re.escape(w).replace(r"\ ", r"\s") for w, _ in _METRIC_WORDS)
    # not "chi tiết", "mục tiêu", "tiêu cực", "nhận xét", "nhận thấy" ...
    + r"|chi(?!\s(?:tiết|phí))|(?<!mục\s)tiêu(?!\s(?:cực|chí|chuẩn))"
    + r"|nhận(?!\s(?:xét|thấy|ra|thức|biết|định))|gửi"
    + r")(?!\w)"
)


DIRECTIONS = re.compile(
    r"(?<!\w)(?:"
    # not "tương đương" (equal to: "50.000 đ, tương đương 25%"), nor "mới có" (only had)
    r"(?P<flat>không\sđổi|không\sthay\sđổi|giữ\snguyên|ổn\sđịnh|đi\sngang)"
    r"|(?P<new>mới\sxuất\shiện|lần\sđầu|mới\sbắt\sđầu)"
    r"|(?P<neg>(?:không|chưa)\s)?(?:(?P<up>tăng(?!\scường)|đi\slên)|(?P<down>giảm|đi\sxuống)"
    # "nhiều ngày hơn": more of the metric its unit names
    r"|(?P<more>cao\shơn|nhiều\s(?:(?:ngày|giao\sdịch|sự\skiện)\s)?hơn)"
    r"|(?P<less>thấp\shơn|ít\s(?:(?:ngày|giao\sdịch|sự\skiện)\s)?hơn))"
    r")(?!\w)"
)


# A word each direction holds (kept in step with DIRECTIONS): most texts without one are
# passed over at once, where DIRECTIONS tries its lookbehind at each position.
DIRECTION_WORDS = re.compile(r"đổi|nguyên|ổn|ngang|xuất|lần|bắt|tăng|lên|giảm|xuống|hơn")


PAST = re.compile(r"tuần\strước|tuần\srồi|trước\sđó|hai\stuần|2\stuần|hơn\strước(?!\w)")


PREV1_ONLY = re.compile(r"(?<!hai\s)(?<!2\s)(?<!các\s)(?<!những\s)tuần\s(?:trước|rồi)(?!\snữa)")


MEAN_REF = re.compile(r"hai\stuần|2\stuần|trung\sbình|các\stuần|những\stuần")


SPACES = re.compile(r"\s+")


# A clause states a number only if it has a digit or a number word.
MAY_STATE = re.compile(r"\d|(?<!\w)(?:" + "|".join(SPELLED) + r")\s")


METRIC_NAMES = {
    "income_total": "thu nhập",
    "spending_total": "chi tiêu",
    "saving_total": "tiết kiệm",
    "txn_count": "số giao dịch",
    "active_days": "số ngày hoạt động",
    "savings_balance": "số dư tiết kiệm",
}


# "đã đạt mục tiêu 1", "đủ tiền cho mục tiêu 2", "chưa hoàn thành mục tiêu tiết kiệm",
# "mục tiêu 3 đã hoàn thành"; not "đã đạt 71 %" (a progress, checked as a number).
_GOAL_DONE = (
    r"(?:đạt(?:\sđược)?|hoàn\sthành|xong|đủ(?:\s(?:số\s)?tiền)?(?:\scho)?|chạm(?:\stới|\sđến)?)"
)


# a goal as the prompt names it (not "mục tiêu 10.000 đ": an amount after the word)
GOAL_LABEL = re.compile(r"mục\stiêu\s(\d+)(?!\d|[.,]\d)")
GOAL_CLAIMS = re.compile(
    rf"(?<!\w)(?P<neg>(?:chưa|không)\s(?:(?:đã|được)\s)?)?{_GOAL_DONE}\s(?:được\s)?mục\stiêu"
    r"(?:\s(?P<n>\d+)(?!\d|[.,]\d)|(?=\s*(?:$|[.,;!]|\stiết\skiệm|\scủa\s(?:mình|con|bé)|\sđã\sđặt)))"
    # "mục tiêu 2 (864.000 đ) vẫn chưa đạt": not reached, whatever adverb comes first
    rf"|mục\stiêu\s(?P<n2>\d+)(?:\s\([^)]*\))?\s(?:(?:vẫn|hiện|còn|cũng|thì)\s)*"
    r"(?P<neg2>(?:chưa|không)\s)?(?:(?:đã|vừa)\s)?"
    r"(?:được\s)?(?:hoàn\sthành|đạt|đủ|xong)(?!\s*(?:được\s*)?(?:khoảng\s|gần\s|hơn\s|tới\s|đến\s|đúng\s"
    r"|đủ\s|chưa\s)?(?:\d|một\snửa|nửa|phân|một\sphần|\w+\sphần))"
    # "mục tiêu 2 vẫn còn thiếu một ít": not reached
    r"|mục\stiêu\s(?P<n3>\d+)(?:\s\([^)]*\))?\s(?:vẫn\s)?còn\sthiếu\s(?:(?:một|1)\s)?"
    r"(?:ít|chút(?:\sxíu)?|chút\sít|xíu|(?:một\s)?khoản\snhỏ|ít\stiền)(?!\w)"
)


NOT_A_CLAIM = re.compile(
    r"(?<!\w)(?:để(?!\sdành)|cần|muốn|sắp|gần|nhằm|sẽ|có\sthể|nên|hãy|cố\sgắng|giúp|nếu|khi|mong"
    r"|nữa|thiếu)(?!\w)"  # "còn (thiếu) 120.000 đ nữa là đạt mục tiêu 1": what is left
    # "khuyến khích con hoàn thành mục tiêu 1": what to do (not "... vì đã hoàn thành")
    r"|(?:khuyến\skhích|động\sviên|cổ\svũ)(?:\s(?!(?:đã|vì|do|khi)(?!\w))\S+){0,3}\s$"
)


# The patterns searched through whole texts or long spans, led by their first characters
# (`led`): the same matches, found faster. Their `.pattern` is not built on by another.
lead_all(
    globals(),
    "NUMBER",
    "DIRECTIONS",
    "COMPARES",
    "METRICS",
    "ADVICE",
    "SUBJECT_WORDS_RE",
    "SUBJECT_BEFORE",
    "GOAL_CLAIMS",
    "SPELLED_DAYS",
    "SIGN_BEFORE",
    "NOT_A_CLAIM",
    "MAY_STATE",
)
