"""Writes one week's reports: the orchestrator. It plans the week a page of silver rows at a
time, picks the way of asking (offline rules, the event-loop client, the Batch
API: `asking.WayOfAsking`), claims each page before handing it over (`ClaimsKeeper`), waits
for kids other runs hold, and says what became of every kid (`WeekTally`). What it pays for
is recorded by the `Recorder`, the moment it is known; nothing paid is ever deleted."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import openai
from sqlalchemy.engine import Engine

from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
from kidsfin_assets.config.weeks import Week
from kidsfin_assets.llm.in_flight import InFlight
from kidsfin_assets.llm.pricing import ModelPrice, Usage
from kidsfin_assets.llm.transport import ApiAccess
from kidsfin_assets.reports import batches, ledger, spool
from kidsfin_assets.reports.asking import AskingParts, WayOfAsking
from kidsfin_assets.reports.async_writer import AsyncAsking
from kidsfin_assets.reports.batch_asking import BatchAsking
from kidsfin_assets.reports.claims_keeper import ClaimsKeeper
from kidsfin_assets.reports.ledger import Claims
from kidsfin_assets.reports.offline_asking import OfflineAsking
from kidsfin_assets.reports.offline_writer import OFFLINE_MODEL
from kidsfin_assets.reports.openai_client import ReportSession
from kidsfin_assets.reports.planning import (
    WRITER_OFFLINE,
    WRITER_OPENAI,
    PendingReport,
    plan_week,
    silver_count,
    silver_kids,
    silver_pages,
    silver_rows_of,
)
from kidsfin_assets.reports.prompt import Prompt
from kidsfin_assets.reports.recorder import Recorder, replay_spool
from kidsfin_assets.reports.rows import RowMaker
from kidsfin_assets.reports.tally import (
    ProgressEvery,
    WeekOutcome,
    WeekTally,
    done_line,
    start_line,
)
from kidsfin_assets.warehouse.outage import WarehouseGate, WarehouseUnavailable
from kidsfin_assets.warehouse.tables import Sources, nicknames

__all__ = [  # what callers import from here (the week's names live in their own modules)
    "WRITER_OFFLINE",
    "WRITER_OPENAI",
    "PendingReport",
    "ReportsApi",
    "StorageSettings",
    "WeekOutcome",
    "WeekReportWriter",
    "WriterSettings",
    "silver_pages",
    "start_line",
]

# How often a run waiting for another run's kids looks again, and says so in the log.
AWAIT_POLL_SECONDS = 1.0
AWAIT_LOG_SECONDS = 30.0
# The answers' latency a page is sized for (10 x the requests in flight it allows).
PAGE_LATENCY_SECONDS = 3.0
PAGE_KIDS = 5000  # silver rows planned and claimed at a time (at least 10 x in flight)
# Worker processes of the offline writer at most: each holds ~85 MiB of imports, and a page
# of 5,000 kids is 20 tasks, so more would mostly cost memory.
OFFLINE_WORKERS = 4


@dataclass(frozen=True)
class StorageSettings:
    """Where and how the gold step stores what it pays for: its run, the warehouse's id,
    the claims' lease, the outage wait and the spool (the `warehouse` resource's)."""

    run_id: str
    outage_wait_seconds: float
    claim_lease_seconds: float
    spool_dir: Path
    warehouse_id: str


@dataclass(frozen=True)
class WriterSettings:
    """What the engine reads of the `openai` resource, as plain values (gold.py maps them)."""

    offline: bool  # no API key: the offline rules writer
    model: str
    api: str  # openai.api: sync, batch or auto
    in_flight: InFlight  # max_concurrent, or sized by Little's law (llm/in_flight.py)
    batch_min_reports: int
    retry_max_attempts: int
    price: ModelPrice
    progress: ProgressEvery
    access: ApiAccess

    def uses_batches(self, pending: int) -> bool:
        """Whether a week with `pending` reports to write goes through the Batch API."""
        return self.api == "batch" or (self.api == "auto" and pending >= self.batch_min_reports)


class ReportsApi(Protocol):
    """What the engine asks of the OpenAI resource besides plain values: a session (the
    shared limiter, retries, answers read and priced) and the SDK client for batches."""

    def session(
        self, engine: Engine, prompt: Prompt, usage: Usage, cancel: threading.Event
    ) -> ReportSession: ...

    @property
    def client(self) -> openai.OpenAI: ...


class WeekReportWriter:
    """Runs one week: plans it, picks a way of asking, claims and waits, and counts."""

    def __init__(
        self,
        log: dg.DagsterLogManager,
        engine: Engine,
        src: Sources,
        settings: WriterSettings,
        api: ReportsApi,
        prompt: Prompt,
        week: Week,
        storage: StorageSettings,
        pseudonymize: bool = True,
        known_categories: tuple[str, ...] = DEFAULT_KNOWN_CATEGORIES,
    ) -> None:
        self.log, self.engine, self.src, self.settings, self.api = log, engine, src, settings, api
        self.prompt, self.week, self.storage = prompt, week, storage
        self.pseudonymize, self.known_categories = pseudonymize, known_categories
        self.writer_name = WRITER_OFFLINE if settings.offline else WRITER_OPENAI  # rows' `writer`
        self.model = OFFLINE_MODEL if settings.offline else settings.model
        # The API this week's reports went through (gold's `mode` metadata).
        self.api_used = "offline" if settings.offline else "sync"
        self.usage = Usage(price=settings.price)
        self.cancel = threading.Event()
        self.outcome = WeekOutcome()
        self.tally = WeekTally(log, self.outcome, self.cancel, settings.progress)
        gate = WarehouseGate(engine, storage.outage_wait_seconds, self.cancel.is_set, log.warning)
        claims = Claims(engine, week.start, storage.run_id, storage.claim_lease_seconds)
        self.keeper = ClaimsKeeper(claims, gate, log)
        token = claims.owner.rsplit(":", 1)[-1]
        rows = RowMaker(
            week.start, storage.run_id, settings.model, self.model, prompt.version, self.writer_name
        )
        spool_file = spool.Spool(storage.spool_dir, storage.warehouse_id, token)
        self.recorder = Recorder(engine, gate, self.keeper, spool_file, rows, log)
        self.parts = AskingParts(
            week, prompt, engine, gate, self.keeper, self.recorder, self.tally, self.cancel, log
        )

    # --- the week ---------------------------------------------------------------------

    def run(self) -> WeekOutcome:
        started = time.monotonic()
        storage = self.storage
        self.outcome.replayed = replay_spool(
            self.engine, self.src, storage.spool_dir, storage.warehouse_id, self.log
        )
        with self.engine.begin() as conn:
            self.outcome.silver_rows = silver_count(conn, self.week)
            self.outcome.superseded = ledger.supersede_missing(
                conn, self.week.start, silver_kids(self.week)
            )
        self.log.info(
            start_line(self.week.key, self.outcome, self.writer_name, self.model, self._page_size())
        )
        self._write(self._planned_pages())
        # Every pending kid is written here, by another run, in a batch, or not at all.
        out = self.outcome
        done = out.written + out.ungrounded + out.by_other_runs
        waiting = out.in_batches + out.queued
        out.failed = self.tally.to_write - done - waiting if not self.settings.offline else 0
        out.unstored = self.recorder.unstored
        self.log.info(done_line(self.week.key, out, self.tally.to_write))
        out.wall_seconds = time.monotonic() - started
        return out

    def _page_size(self) -> int:
        """Kids planned, claimed and handed to the way of asking at a time; through the API
        enough that the async client's thousands in flight rarely wait for the next page."""
        if self.settings.offline:
            return PAGE_KIDS
        return max(PAGE_KIDS, 10 * self.settings.in_flight.highest(PAGE_LATENCY_SECONDS))

    def _planned_pages(self) -> Iterator[list[PendingReport]]:
        """Each page of silver rows planned: the kids still without a report for their
        inputs (the tally counts them as pages are read, and the rest as reused)."""
        gate = self.parts.gate
        for rows in silver_pages(self.engine, self.week, self._page_size(), gate.call):
            if self.cancel.is_set():  # the run stopped: plan (and claim) nothing more
                return
            pending, reused = gate.call(lambda rows=rows: self._plan(rows))
            self.tally.planned(len(pending), reused)
            if pending:
                yield pending

    def _plan(
        self, rows: list[dict[str, Any]], scattered: bool = False
    ) -> tuple[list[PendingReport], int]:
        with self.engine.connect() as conn:
            names = nicknames(conn, self.src, [row["kid_id"] for row in rows])
            return plan_week(
                conn,
                self.week,
                rows,
                self.settings.model,
                self.prompt,
                self.settings.offline,
                names,
                self.pseudonymize,
                self.known_categories,
                scattered,
            )

    # --- asking -----------------------------------------------------------------------

    def _write(self, pages: Iterator[list[PendingReport]]) -> None:
        way, pages = self._choose(pages)
        if way is None:
            return
        self.api_used = way.api_used
        try:
            if way.claims_pages:
                self._ask_claimed(way, pages)
            else:
                way.ask(pages)
        except WarehouseUnavailable as exc:
            if way.api_used != "sync":
                raise  # offline and batch: the step fails and its retry starts again
            self.cancel.set()  # start nothing new; the answers in flight go to the spool
            way.close()
            self.tally.stop(f"{exc}. {self.recorder.kept_note()}")
        except BaseException:
            # Run terminated (Ctrl+C, UI "terminate"): start nothing new, let the requests in
            # flight finish (each by its deadline) and record their (paid) answers, then stop.
            self.cancel.set()
            raise
        finally:
            way.close()
            self.cancel.set()  # ends the claims' heartbeat
            self.keeper.finish()
            self.recorder.finish()

    def _choose(
        self, pages: Iterator[list[PendingReport]]
    ) -> tuple[WayOfAsking | None, Iterable[list[PendingReport]]]:
        """The way of asking for this week, and its pages. No session (nor limiter) is
        opened for a week with nothing to write."""
        if self.settings.offline:
            return OfflineAsking(self.parts, self._page_size(), self._offline_workers()), pages
        if self.settings.api == "sync" and not self._has_open_batches():
            first = next(pages, None)  # page by page: memory flat in the number of kids
            if first is None:
                return None, ()
            return self._sync_way(), itertools.chain([first], pages)
        if self.settings.api == "batch" or self._has_open_batches():
            return self._batch_way(), pages  # it plans the week again itself, a page at a time
        # auto: the Batch API once the week has batch_min_reports to write; only as many
        # pages are read ahead as it takes to know (a week below it is small).
        ahead: list[list[PendingReport]] = []
        count = 0
        for page in pages:
            ahead.append(page)
            count += len(page)
            if self.settings.uses_batches(count):
                return self._batch_way(), itertools.chain(_handed_over(ahead), pages)
        return (self._sync_way(), ahead) if ahead else (None, ())

    def _offline_workers(self) -> int:
        """Processes for the offline rules: one a CPU this process may use, at most
        OFFLINE_WORKERS, once the week has more than one page (a week of one page is
        written here, without starting any)."""
        if self.outcome.silver_rows <= self._page_size():
            return 1
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        cpus = len(usable) if usable else os.cpu_count() or 1
        return min(cpus, OFFLINE_WORKERS)

    def _sync_way(self) -> WayOfAsking:
        session = self.api.session(self.engine, self.prompt, self.usage, self.cancel)
        return AsyncAsking(self.parts, session, self.settings.access, self.settings.in_flight)

    def _batch_way(self) -> WayOfAsking:
        session = self.api.session(self.engine, self.prompt, self.usage, self.cancel)
        storage = self.storage
        return BatchAsking(
            self.parts,
            session,
            self.api.client,
            storage.run_id,
            storage.warehouse_id,
            self.settings.retry_max_attempts,
            self._replanned_pages,
            self._plan_kids,
        )

    def _replanned_pages(self) -> Iterator[list[PendingReport]]:
        """The week planned again a page at a time, not counted (the Batch API's pass over
        the kids still to submit, after its finished batches were collected)."""
        gate = self.parts.gate
        for rows in silver_pages(self.engine, self.week, self._page_size(), gate.call):
            pending, _reused = gate.call(lambda rows=rows: self._plan(rows))
            if pending:
                yield pending

    def _plan_kids(self, kids: list[int]) -> dict[int, PendingReport]:
        """Of `kids`, those still needing a report (in silver, no report for their
        inputs), planned from their silver rows read in one query."""
        with self.engine.connect() as conn:
            rows = silver_rows_of(conn, self.week, kids)
        pending, _reused = self._plan(rows, scattered=True)
        return {item.kid_id: item for item in pending}

    def _has_open_batches(self) -> bool:
        with self.engine.connect() as conn:
            return bool(batches.open_batches(conn, self.week.start))

    def _ask_claimed(self, way: WayOfAsking, pages: Iterable[list[PendingReport]]) -> None:
        """Each page claimed, then handed to `way`; the kids other runs hold (or whose lease
        ran out here) are waited for, and asked for here if they come free."""
        held: dict[int, PendingReport] = {}  # kids another run held when they were met
        waiting: dict[int, str] = {}  # of those, the ones not yet written by anyone

        def claimed_pages() -> Iterator[list[PendingReport]]:
            for page in pages:
                items = {item.kid_id: item for item in page}
                claimed = self.keeper.claim(items)
                self.tally.by_other_runs(len(claimed.done))
                waiting.update(claimed.elsewhere)
                held.update({kid: items[kid] for kid in claimed.elsewhere})
                yield [items[kid] for kid in sorted(claimed.mine)]

        self.keeper.start_heartbeat(self.cancel)
        lost = way.ask(claimed_pages())
        said_at = time.monotonic()
        while True:
            # Kids whose lease ran out: written by another run by now, held by one, or free
            # again, as the kids another run held from the start.
            held.update({item.kid_id: item for item in lost})
            waiting.update({item.kid_id: "" for item in lost})
            if not waiting or self.cancel.wait(AWAIT_POLL_SECONDS):
                return
            claimed = self.keeper.claim({kid: held[kid] for kid in waiting}, say=False)
            self.tally.by_other_runs(len(claimed.done))
            waiting = dict(claimed.elsewhere)
            mine = [held[kid] for kid in sorted(claimed.mine)]
            lost = way.ask([mine]) if mine else []
            if waiting and time.monotonic() - said_at > AWAIT_LOG_SECONDS:
                said_at = time.monotonic()
                self.log.info(f"still waiting for {len(waiting)} kids held by another run")


def _handed_over(pages: list[list[PendingReport]]) -> Iterator[list[PendingReport]]:
    """The pages read ahead, each let go of as it is handed over."""
    pages.reverse()
    while pages:
        yield pages.pop()
