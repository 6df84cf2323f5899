"""The export files' formats, written as their rows are read, a page at a time.

- `json` (the default): AI Production Pipeline's document, `{<header fields>, <list>: [...]}`,
  byte for byte what `json.dump(document, ensure_ascii=False, indent=2, default=str)` wrote
  when the whole document was built in memory: the header (its count included) first, then
  each item of the list rendered alone and indented to its place in the document.
- `jsonl`: the same items, one a line (compact), and nothing else: the week is in the
  file's name, the count in the materialisation's metadata.

Memory holds one page of items and its text, whatever the number of kids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kidsfin_assets.exports.export_store import Sink

EXTENSIONS = {"json": ".json", "jsonl": ".jsonl"}
# The list of the json document is the document's second level: its items sit 4 spaces in.
ITEM_INDENT = "\n    "

Item = dict[str, Any]


def check_export_format(value: str) -> str:
    if value not in EXTENSIONS:
        raise ValueError(f"{value!r} is not an export format (json or jsonl)")
    return value


class ExportChangedError(RuntimeError):
    """The rows counted for a document's header are not the rows read for its list."""


@dataclass(frozen=True)
class Listing:
    """A document to stream: its header fields in order (the count among them), the name of
    its list, how many items the list will have, and the list's items a page at a time."""

    header: dict[str, Any]
    key: str
    total: int
    pages: Iterable[list[Item]]


# json's own string encoder for ensure_ascii=False (its C function when there is one).
_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_FLOAT_SPECIALS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _float(value: float) -> str:
    """As json writes a float (allow_nan: NaN, Infinity)."""
    text = float.__repr__(value)
    return _FLOAT_SPECIALS[text] if text[-1] in "nf" else text


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _null(value: None) -> str:
    return "null"


# Exact types written without a recursive call (subclasses take pretty_json's own path).
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: _encode_str,
    int: int.__repr__,
    float: _float,
    bool: _bool,
    type(None): _null,
}


def _key(key: Any) -> str:
    """A dict key as json writes it: a string, or a number, boolean or null as a string."""
    if isinstance(key, str):
        return _encode_str(key)
    if isinstance(key, float):
        return _encode_str(_float(key))
    if key is True or key is False or key is None:
        return _encode_str(json.dumps(key))
    if isinstance(key, int):
        return _encode_str(int.__repr__(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def pretty_json(value: Any, indent: str = "\n") -> str:
    """`json.dumps(value, ensure_ascii=False, indent=2, default=str)`, the same text, with
    its lines starting `indent` (a newline and the spaces before the value's own level).
    json's indenting encoder is pure Python, a generator a token; this one writes a
    scalar with one call to json's own C string encoder or the number's repr."""
    if isinstance(value, str):
        return _encode_str(value)
    if value is None or value is True or value is False:
        return _SCALARS[type(value)](value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        inner = indent + "  "
        scalar = _SCALARS.get
        items = [w(v) if (w := scalar(type(v))) else pretty_json(v, inner) for v in value]
        return "[" + inner + ("," + inner).join(items) + indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        scalar = _SCALARS.get
        fields = [
            (_encode_str(k) if type(k) is str else _key(k))
            + ": "
            + (w(v) if (w := scalar(type(v))) else pretty_json(v, inner))
            for k, v in value.items()
        ]
        return "{" + inner + ("," + inner).join(fields) + indent + "}"
    return _encode_str(str(value))  # default=str: a date, a Decimal


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def write_json_document(sink: Sink, listing: Listing) -> int:
    """The document, as json.dump(..., indent=2) writes it: an empty list stays `[]`."""
    opening = pretty_json({**listing.header, listing.key: []})
    head, tail = opening.rsplit("[]", 1)  # the list is the last field
    sink.write((head + "[").encode())
    written = 0
    for page in listing.pages:
        text = "".join(
            ("," if written + i else "") + ITEM_INDENT + pretty_json(item, ITEM_INDENT)
            for i, item in enumerate(page)
        )
        sink.write(text.encode())
        written += len(page)
        del page, text  # not held while the next page is read
    if written != listing.total:
        # The header's count would be wrong: the file is not completed.
        raise ExportChangedError(
            f"{listing.total} {listing.key} counted but {written} read: the week changed "
            "while it was exported; run the export again"
        )
    sink.write((("\n  ]" if written else "]") + tail).encode())
    return written


def write_json_lines(sink: Sink, listing: Listing) -> int:
    """One item a line."""
    written = 0
    for page in listing.pages:
        sink.write("".join(_compact(item) + "\n" for item in page).encode())
        written += len(page)
        del page  # not held while the next page is read
    return written


WRITERS: dict[str, Callable[[Sink, Listing], int]] = {
    "json": write_json_document,
    "jsonl": write_json_lines,
}


def write_listing(sink: Sink, export_format: str, listing: Listing) -> int:
    """Write `listing` in `export_format`; the number of items written."""
    return WRITERS[export_format](sink, listing)
