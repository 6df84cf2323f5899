"""What became of a week's kids, counted once from whichever thread wrote them, and the
log lines that say so (the start line, progress, the closing line)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from kidsfin_assets.reports.answers import Cancelled
from kidsfin_assets.reports.grounding import Finding

# Weeks of up to this many progress groups log every group's line.
GROUP_LINES_ALWAYS = 100


@dataclass
class WeekOutcome:
    silver_rows: int = 0
    written: int = 0
    reused: int = 0
    by_other_runs: int = 0
    failed: int = 0
    superseded: int = 0
    ungrounded: int = 0  # kept for review: every answer stated what the data does not say
    in_batches: int = 0  # waiting in the Batch API's queue
    queued: int = 0  # not submitted: the model's enqueued-token budget was full
    batches: list[dict[str, Any]] = field(default_factory=list)  # the week's, as recorded
    replayed: int = 0
    unstored: int = 0
    fatal: str | None = None
    errors: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    http_transport: str | None = None  # the async client's, as it sent (async_writer)


@dataclass(frozen=True)
class ProgressEvery:
    """How often the run says how far it got (the `openai` resource's settings)."""

    group_size: int  # kids per "Processing kids i-j of n (group k/m)" line (progress_group_size)
    reports: int  # a progress line every this many reports written...
    seconds: float  # ...or every this many seconds


def start_line(week: str, outcome: WeekOutcome, writer: str, model: str, page: int) -> str:
    """What the week holds, before writing. The page size (silver rows read, planned and
    claimed at a time) only when the week needs more than one page."""
    line = f"week {week}: {outcome.silver_rows} kids ({writer}, {model})"
    if outcome.silver_rows > page:
        pages = -(-outcome.silver_rows // page)
        line += f"; read and claimed in {pages} pages of {page:,} kids"
    if outcome.superseded:
        line += (
            f"; {outcome.superseded} reports of kids no longer in silver kept, marked superseded"
        )
    return line


def done_line(week: str, outcome: WeekOutcome, to_write: int) -> str:
    """What the writer did, once done: the kids that needed a report and what became of them."""
    line = (
        f"week {week}: {outcome.reused} of {outcome.silver_rows} kids already had a report "
        f"for their inputs (reused); of the {to_write} that needed one, {outcome.written} "
        f"written, {outcome.by_other_runs} written by another run, {outcome.ungrounded} kept "
        f"for review, {outcome.failed} failed"
    )
    if outcome.in_batches or outcome.queued:
        line += (
            f", {outcome.in_batches} waiting in Batch API batches, {outcome.queued} waiting "
            "for room in the batch queue"
        )
    return line


def progress_line(index: int, size: int, to_write: int) -> str:
    """AI Production Pipeline's "Processing batch i/n" (docs/design.md), which here would
    read as the Batch API: the group of `size` kids the report of `index` starts."""
    kids = max(to_write, index + 1)
    group, groups = index // size + 1, -(-kids // size)
    return (
        f"Processing kids {index + 1}-{min(index + size, kids)} of {kids} (group {group}/{groups})"
    )


class WeekTally:
    """The week's counts (`outcome`) and its progress lines, safe from any thread; and the
    run's stop: a fatal error noted once, and `cancel` set so that nothing new starts."""

    def __init__(
        self,
        log: dg.DagsterLogManager,
        outcome: WeekOutcome,
        cancel: threading.Event,
        every: ProgressEvery,
    ) -> None:
        self.log, self.outcome, self.cancel, self.every = log, outcome, cancel, every
        self.to_write = 0  # kids planned that need a report (grows page by page)
        self._started = 0  # kids handed to a way of asking: the next one's index
        self._lock = threading.Lock()
        self._progress_done, self._progress_at = 0, time.monotonic()
        self._announced_at = -float("inf")

    # --- planning and order -------------------------------------------------------------

    def planned(self, to_write: int, reused: int) -> None:
        with self._lock:
            self.to_write += to_write
            self.outcome.reused += reused

    def next_indices(self, count: int) -> int:
        """The index of the first of `count` kids about to be asked for."""
        with self._lock:
            first = self._started
            self._started += count
            return first

    # --- what became of the kids ------------------------------------------------------

    def by_other_runs(self, count: int) -> None:
        with self._lock:
            self.outcome.by_other_runs += count

    def written(self, kid: int, usage: dict[str, Any]) -> None:
        with self._lock:
            self.outcome.written += 1
            done = self.outcome.written
            if not self._progress_due(done):
                return
        pct = 100 * done // max(1, self.to_write)
        # One line every N reports or T seconds, not one a report: a Dagster log event
        # costs milliseconds of the step's CPU, which at hundreds a second is the limit.
        self.log.info(
            f"[{done}/{self.to_write} {pct}%] kid {kid}: "
            f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens "
            f"({usage['cached_tokens']} cached), ${usage['cost_usd']:.5f}"
        )

    def written_many(self, count: int) -> None:
        """Reports stored together (a page, a chunk of batch lines): no line of their own."""
        with self._lock:
            self.outcome.written += count

    def waiting_in_batches(
        self, batches: list[dict[str, Any]], in_batches: int, queued: int
    ) -> None:
        """The week's Batch API batches as recorded, the kids waiting in them, and those
        waiting for room in the model's batch queue."""
        with self._lock:
            self.outcome.batches = batches
            self.outcome.in_batches, self.outcome.queued = in_batches, queued

    def sent_through(self, transport: str) -> None:
        """The HTTP transport the async client sends through (gold's metadata)."""
        self.outcome.http_transport = transport

    def ungrounded(self, kid: int, findings: list[Finding]) -> None:
        with self._lock:
            self.outcome.ungrounded += 1
        self.log.warning(
            f"kid {kid}: report kept for review, not for the parents: "
            f"{len(findings)} statements the data does not support ({findings[0].message})"
        )

    def failed(self, kid: int, exc: BaseException) -> None:
        """Counted at the end (kids neither written nor waiting); said here."""
        with self._lock:
            if len(self.outcome.errors) < 20 and not isinstance(exc, Cancelled):
                self.outcome.errors.append(f"kid {kid}: {exc}")
        if not isinstance(exc, Cancelled):
            self.log.warning(f"kid {kid}: no report: {exc}")

    def stop(self, reason: str) -> None:
        """The week stops: nothing new is asked for; the first reason is the one kept."""
        if self.outcome.fatal is None:
            self.outcome.fatal = reason
            self.log.error(f"stopping the week: {reason}")
        self.cancel.set()

    # --- lines ------------------------------------------------------------------------

    def announce_group(self, index: int) -> None:
        """A progress line per group of `group_size` kids (`progress_line`). Groups only
        group the log: requests flow continuously, none waits for the slowest of the one
        before."""
        size = self.every.group_size
        if index % size != 0:
            return
        total = -(-max(self.to_write, index + 1) // size)
        number = index // size + 1
        # Every group's line while they are few; past that, at most one line every
        # `every.seconds` (a Dagster log event costs ms of the step's CPU).
        with self._lock:
            now = time.monotonic()
            recent = now - self._announced_at < self.every.seconds
            if total > GROUP_LINES_ALWAYS and recent and number != total:
                return
            self._announced_at = now
        self.log.info(progress_line(index, size, self.to_write))

    def announce_page(self, first: int, count: int, page_kids: int) -> None:
        """One line a page of kids written together (the offline writer): which kids of
        how many, and the page's number among the week's. Until the last page is planned the
        kids to write are counted at most: the silver rows not already reused."""
        with self._lock:
            at_most = max(self.outcome.silver_rows - self.outcome.reused, first + count)
        pages = -(-at_most // page_kids)
        self.log.info(
            f"Processing kids {first + 1}-{first + count} of {at_most} "
            f"(group {first // page_kids + 1}/{pages})"
        )

    def _progress_due(self, done: int) -> bool:
        """Under _lock: whether this report gets a progress line (the last one always)."""
        now = time.monotonic()
        due = (
            done >= self.to_write
            or done - self._progress_done >= self.every.reports
            or now - self._progress_at >= self.every.seconds
        )
        if due:
            self._progress_done, self._progress_at = done, now
        return due
