"""Numbers written in words, read as the figures they are.

"một trăm năm mươi nghìn đồng" is 150 nghìn đồng, "hai mươi giao dịch" 20 giao dịch, "một
triệu rưỡi" 1,5 triệu: `spell_digits` rewrites such words as digits in the forms the checker
reads, so that a figure in words is checked as one in digits is, never passed unread.

A lone small number word is a figure only before a unit ("năm ngày", "ba giao dịch"): "ba
mẹ", "năm nay" and "một cách" are not numbers. Ratios and fractions ("gấp đôi", "một nửa",
"hai phần ba") are left to the closed world's ratio reader (`closed.read_ratios`).
"""

from __future__ import annotations

import re

_DIGITS = {
    "một": 1, "mốt": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4, "năm": 5, "lăm": 5,
    "sáu": 6, "bảy": 7, "bẩy": 7, "tám": 8, "chín": 9,
}  # fmt: skip
# Words that only follow a ten ("hai mươi mốt", "mười lăm", "ba mươi tư").
_AFTER_TEN_ONLY = frozenset({"mốt", "lăm", "tư"})
_MAGNITUDES = {"nghìn": 1_000, "ngàn": 1_000, "triệu": 1_000_000, "tỷ": 10**9, "tỉ": 10**9}
_WORDS = (
    *_DIGITS,
    "không",
    "mười",
    "mươi",
    "chục",
    "trăm",
    "lẻ",
    "linh",
    "rưỡi",
    "nửa",
    *_MAGNITUDES,
)
_RUN = re.compile(
    r"(?<!\w)(?:" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")"
    r"(?:\s(?:" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r"))*(?!\w)",
    re.I,
)
# What a lone small number word must stand before to be a figure.
_UNIT_AFTER = re.compile(
    r"\s(?:đồng|đ(?!\w)|vnd|giao\sdịch|sự\skiện|ngày|lần|lượt|danh\smục|mục\stiêu|khoản|loại"
    r"|phần\străm|%|hoạt\sđộng)",
    re.I,
)


_ARTICLE_AFTER = re.compile(r"\s(?:khoản|loại|lần|lượt|mục\stiêu|danh\smục)", re.I)
# What any number `spell_digits` rewrites holds, in the lower-cased text: two number words
# in a row, or one (not a magnitude alone) before a unit's first word. One alternative a
# word, without lookarounds or re.I: the engine skips to the words' first letters, and most
# texts are passed over at once.
_ANY_WORD = "|".join(sorted(_WORDS, key=len, reverse=True))
_UNIT_WORD = "đồng|đ|vnd|giao|sự|ngày|lần|lượt|danh|mục|khoản|loại|phần|%|hoạt"
_MAY_BE_SPELLED = re.compile(
    "|".join(
        rf"{word}\s(?:{_ANY_WORD})"
        if word in _MAGNITUDES
        else rf"{word}\s(?:{_ANY_WORD}|{_UNIT_WORD})"
        for word in sorted(_WORDS, key=len, reverse=True)
    )
)


def _value(words: list[str]) -> tuple[float, bool] | None:
    """The number a run of number words says, and whether it has a magnitude (nghìn...);
    None when the words do not make one number ("không", a run of digits "một hai")."""
    total, group, pending = 0.0, 0.0, None
    last_scale = 1.0  # what "rưỡi" halves: the last hundred, thousand or million
    seen_ten = has_magnitude = False
    for word in words:
        if word in _DIGITS:
            if pending is not None or (word in _AFTER_TEN_ONLY and not seen_ten):
                return None
            pending = _DIGITS[word]
        elif word == "mười":
            group, seen_ten = group + 10, True
        elif word in ("mươi", "chục"):
            group, pending, seen_ten = group + (pending or 1) * 10, None, True
        elif word == "trăm":
            group, pending, last_scale = group + (pending or 1) * 100, None, 100.0
            seen_ten = False
        elif word in ("lẻ", "linh"):
            continue
        elif word == "rưỡi":
            group += pending or 0
            if last_scale == 100:  # "hai trăm rưỡi": 250
                group += 50
            elif last_scale > 100:  # "một triệu rưỡi": half a million more
                total += last_scale / 2
            pending = None
        elif word == "nửa":
            if pending is not None or group:
                return None
            group = 0.5
        elif word in _MAGNITUDES:
            scale = _MAGNITUDES[word]
            group += pending or 0
            total += (group or 1) * scale
            group, pending, last_scale, seen_ten, has_magnitude = 0.0, None, scale, False, True
        else:  # "không"
            return None
    total += group + (pending or 0)
    return (total, has_magnitude) if total > 0 else None


def _digits(value: float, has_magnitude: bool) -> str:
    """The figure in the form the checker reads at the precision the words have."""
    if value >= 1_000_000 and has_magnitude:
        millions, rest = divmod(value, 1_000_000)
        if rest and rest % 1000 == 0:  # "một triệu hai trăm nghìn": to the thousand
            return f"{millions:g} triệu {rest / 1000:g} nghìn"
        return f"{value / 1_000_000:g}".replace(".", ",") + " triệu"
    if value >= 1_000 and has_magnitude:
        return f"{value / 1000:g}".replace(".", ",") + " nghìn"
    return f"{value:g}".replace(".", ",")


def spell_digits(text: str) -> str:
    """`text` with every number written in words as digits ("hai mươi ngày" → "20 ngày")."""
    low = text.lower()
    # "ı", "ſ", "İ": letters re.I matches to a number word's "i" or "s", str.lower() does not
    if not _MAY_BE_SPELLED.search(low) and "ı" not in text and "ſ" not in text and "İ" not in text:
        return text  # no run below would be rewritten
    if not any(word in low for word in _WORDS) or not _RUN.search(text):
        return text
    out: list[str] = []
    at = 0
    for m in _RUN.finditer(text):
        words = m.group().lower().split()
        end = m.end()
        if len(words) > 1 and words[-1] == "một" and not _UNIT_AFTER.match(text, end):
            words, end = words[:-1], end - len(" một")  # "hơn một triệu một chút"
        if all(w in _MAGNITUDES for w in words):  # "tỷ lệ", "hàng nghìn": no number
            continue
        # A lone small word is a figure only before a unit ("một khoản" is "an item"); a
        # fraction is the ratio reader's.
        if len(words) == 1 and (
            not _UNIT_AFTER.match(text, m.end())
            or (words[0] == "một" and _ARTICLE_AFTER.match(text, m.end()))
        ):
            continue
        if "nửa" in words and not any(w in _MAGNITUDES for w in words[words.index("nửa") :]):
            continue
        read = _value(words)
        if read is None:
            continue
        out.append(text[at : m.start()])
        out.append(_digits(*read))
        at = end
    out.append(text[at:])
    return "".join(out)
