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

from kidsfin_assets.export_store import Sink

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


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def write_json_document(sink: Sink, listing: Listing) -> int:
    """The document, as json.dump(..., indent=2) writes it: an empty list stays `[]`."""
    opening = _pretty({**listing.header, listing.key: []})
    head, tail = opening.rsplit("[]", 1)  # the list is the last field
    sink.write((head + "[").encode())
    written = 0
    for page in listing.pages:
        text = "".join(
            ("," if written + i else "") + ITEM_INDENT + _pretty(item).replace("\n", ITEM_INDENT)
            for i, item in enumerate(page)
        )
        sink.write(text.encode())
        written += len(page)
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
    return written


WRITERS: dict[str, Callable[[Sink, Listing], int]] = {
    "json": write_json_document,
    "jsonl": write_json_lines,
}


def write_listing(sink: Sink, export_format: str, listing: Listing) -> int:
    """Write `listing` in `export_format`; the number of items written."""
    return WRITERS[export_format](sink, listing)
