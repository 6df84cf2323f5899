"""A local file of paid answers the warehouse could not take during a run.

An answer is appended here (and flushed to disk) the moment storing it fails, so that
neither a long outage nor a killed process loses what was paid for; the next gold run on
the same warehouse stores every entry (idempotently: the answer id is the ledger's key)
and removes the file. The file holds the ledger row and the report as the model wrote it
(with the [[KID]] placeholder): no nickname, unless pseudonymisation is off.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPOOL_SUFFIX = ".jsonl"


class Spool:
    """One writer's spool file: `<spool_dir>/<warehouse id>-<owner token>.jsonl`, the
    warehouse id being the one stored in the warehouse (ledger.warehouse_id)."""

    def __init__(self, directory: Path, warehouse: str, token: str) -> None:
        self.directory = directory
        self.path = directory / f"{warehouse}-{token}{SPOOL_SUFFIX}"
        self.entries = 0
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        self.append_many([entry])

    def append_many(self, entries: list[dict[str, Any]]) -> None:
        """The entries, then one fsync: on disk before this returns."""
        if not entries:
            return
        data = "".join(
            json.dumps(entry, ensure_ascii=False, default=_json_default) + "\n" for entry in entries
        ).encode()
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                view = memoryview(data)
                while view:  # a short write (a full pipe, a signal) goes on where it stopped
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.entries += len(entries)

    def discard(self) -> None:
        """Every entry reached the warehouse: the file is no longer needed."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            self.entries = 0


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot spool {type(value).__name__}")


def pending_files(directory: Path, warehouse: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{warehouse}-*{SPOOL_SUFFIX}"))


def take(path: Path) -> Path | None:
    """Rename the file so that no other run replays it at the same time; None if another
    run took it first."""
    taken = path.with_suffix(f".replaying-{os.getpid()}")
    try:
        path.rename(taken)
    except FileNotFoundError:
        return None
    return taken


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """The file's entries; a line cut short by a kill is skipped (it was never stored)."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue
