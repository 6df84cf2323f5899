"""The offline writer as a way of asking: each report from rules (`offline_writer`), held
to the same grounding gate as a model's, at no cost, at the speed of its rules.

A page at a time, as the event loop's answers are stored: the page is claimed (by the
orchestrator), its reports written and grounded, then stored in one transaction that also
releases its claims, with one log line for the page. The rules and the checker are
CPU-bound Python, so a week of more than one page spreads them over worker processes
(`grounded.offline_chunk`, a chunk of kids a task) while this process stores the page
before and plans and claims the next."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from kidsfin_assets.reports.asking import AskingParts
from kidsfin_assets.reports.grounded import offline_chunk
from kidsfin_assets.reports.grounding import Finding
from kidsfin_assets.reports.planning import PendingReport

# Kids a worker writes and grounds per task: small enough to spread a page over the workers,
# large enough that handing them over costs little against ~1 ms of checking a kid.
CHUNK_KIDS = 250

Written = list[tuple[dict[str, Any], list[Finding]]]  # each kid's named report, findings


@dataclass(frozen=True)
class _Page:
    items: list[PendingReport]
    first: int  # the index of its first kid among the week's kids to write
    chunks: list[Future[Written]]


class OfflineAsking:
    """Writes every kid's report by rules, a claimed page at a time."""

    api_used = "offline"
    claims_pages = True

    def __init__(self, parts: AskingParts, page_kids: int, workers: int) -> None:
        """`workers` > 1: that many processes write and ground the reports (a spawned
        process costs ~1-2 s to start: worth it from a second page on)."""
        self.parts, self.page_kids, self.workers = parts, page_kids, workers
        self._pool: ProcessPoolExecutor | None = None

    def ask(self, pages: Iterable[list[PendingReport]]) -> list[PendingReport]:
        # Each page is handed to the workers, then the one before is stored: while they
        # write, this process stores and goes on to plan and claim the next page.
        started: _Page | None = None
        for page in pages:
            if not page or self.parts.cancel.is_set():
                continue
            page_in_work = self._start(page)
            if started is not None:
                self._store(started)
            started = page_in_work
        if started is not None:
            self._store(started)
        return []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _start(self, items: list[PendingReport]) -> _Page:
        first = self.parts.tally.next_indices(len(items))
        self.parts.tally.announce_page(first, len(items), self.page_kids)
        kids = [(item.metrics, item.name) for item in items]
        chunks = [kids[i : i + CHUNK_KIDS] for i in range(0, len(kids), CHUNK_KIDS)]
        if self.workers <= 1:
            return _Page(items, first, [_done(offline_chunk(chunk)) for chunk in chunks])
        pool = self._workers()
        return _Page(items, first, [pool.submit(offline_chunk, chunk) for chunk in chunks])

    def _store(self, page: _Page) -> None:
        written = [kid for chunk in page.chunks for kid in chunk.result()]
        rows = [
            (item, report, findings)
            for item, (report, findings) in zip(page.items, written, strict=True)
        ]
        self.parts.recorder.store_offline(rows)
        tally = self.parts.tally
        tally.written_many(sum(1 for _, _, findings in rows if not findings))
        for item, _, findings in rows:
            if findings:
                tally.ungrounded(item.kid_id, findings)

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: this process has threads (the claims' heartbeat, Dagster's)
            # and open database connections that a forked child must not inherit.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool


def _done(written: Written) -> Future[Written]:
    future: Future[Written] = Future()
    future.set_result(written)
    return future
