"""Writes one week's reports: claims each kid-week before paying for it, records every
answer as it arrives, rides out warehouse outages, and never deletes a paid report."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
from kidsfin_assets.config.weeks import Week
from kidsfin_assets.llm.bucket import Reservation
from kidsfin_assets.llm.pricing import Usage
from kidsfin_assets.reports import batches, ledger, spool
from kidsfin_assets.reports.grounding import Finding, check_report
from kidsfin_assets.reports.ledger import ClaimLost, Claims
from kidsfin_assets.reports.offline_writer import OFFLINE_MODEL, offline_report
from kidsfin_assets.reports.openai_client import (
    ACCEPTED,
    Cancelled,
    Exchange,
    FatalApiError,
    OpenAIReportsResource,
    ReportError,
    ReportSession,
    UngroundedAnswer,
)
from kidsfin_assets.reports.prompt import Prompt, input_hash, prompt_data
from kidsfin_assets.reports.report_schema import PLACEHOLDER, KidWeeklyReport, personalise
from kidsfin_assets.warehouse.outage import WarehouseGate, WarehouseUnavailable
from kidsfin_assets.warehouse.tables import (
    Sources,
    kid_weekly_analysis,
    kid_weekly_reports,
    nicknames,
)

WRITER_OPENAI = "openai"
WRITER_OFFLINE = "offline"
FREE_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}
# How often a run waiting for another run's kids looks again, and says so in the log.
AWAIT_POLL_SECONDS = 1.0
PAGE_KIDS = 5000  # silver rows planned and claimed at a time (at least 10 x max_concurrent)
AWAIT_LOG_SECONDS = 30.0
# Weeks of up to this many progress batches log every batch's line.
BATCH_LINES_ALWAYS = 100


@dataclass(frozen=True)
class PendingReport:
    kid_id: int
    metrics: dict[str, Any]
    input_hash: str
    name: str | None = None  # the nickname, filled into the report, never sent


@dataclass(frozen=True)
class StorageSettings:
    """Where and how the gold step stores what it pays for: its run, the warehouse's id,
    the claims' lease, the outage wait and the spool (the `warehouse` resource's)."""

    run_id: str
    outage_wait_seconds: float
    claim_lease_seconds: float
    spool_dir: Path
    warehouse_id: str


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


def silver_count(conn: Connection, week: Week) -> int:
    silver = kid_weekly_analysis
    query = sa.select(sa.func.count()).where(silver.c.week_start == week.start)
    return int(conn.execute(query).scalar_one())


def silver_kids(week: Week) -> sa.Select[Any]:
    silver = kid_weekly_analysis
    return sa.select(silver.c.kid_id).where(silver.c.week_start == week.start)


def silver_pages(
    engine: Engine, week: Week, size: int, call: Callable[[Callable[[], Any]], Any]
) -> Iterator[list[dict[str, Any]]]:
    """The week's silver rows, `size` kids at a time in kid order (memory flat in the
    number of kids), each page read in a transaction of its own through `call` (the
    warehouse gate: a page read mid-run rides out an outage like any other call)."""
    silver = kid_weekly_analysis
    after: int | None = None
    while True:
        query = sa.select(silver).where(silver.c.week_start == week.start)
        if after is not None:
            query = query.where(silver.c.kid_id > after)

        def read(query: sa.Select[Any] = query) -> list[dict[str, Any]]:
            with engine.connect() as conn:
                page = conn.execute(query.order_by(silver.c.kid_id).limit(size))
                return [dict(r._mapping) for r in page]

        rows = call(read)
        if not rows:
            return
        yield rows
        after = rows[-1]["kid_id"]


def plan_week(
    conn: Connection,
    week: Week,
    rows: list[dict[str, Any]],
    api_model: str,
    prompt: Prompt,
    offline: bool,
    names: dict[int, str],
    pseudonymize: bool,
    known_categories: tuple[str, ...],
) -> tuple[list[PendingReport], int]:
    """Of the week's silver rows, those that still need a report (no row with the same
    input hash), and how many were reused.

    Offline, an AI report for the same metrics counts as done: losing the API key for a
    run must not throw away reports that were paid for."""
    if not rows:
        return [], 0
    gold = kid_weekly_reports
    existing = dict(
        conn.execute(
            sa.select(gold.c.kid_id, gold.c.input_hash).where(
                gold.c.week_start == week.start,
                gold.c.kid_id.between(rows[0]["kid_id"], rows[-1]["kid_id"]),
            )
        ).all()
    )
    pending = []
    for row in rows:
        name = names.get(row["kid_id"])
        # How the prompt names the child: a placeholder, unless pseudonymisation is off.
        row["child"] = PLACEHOLDER if pseudonymize else name or PLACEHOLDER
        row["known_categories"] = known_categories  # the others are sent as "khác"
        paid = input_hash(row, api_model, prompt.version, WRITER_OPENAI)
        digest = input_hash(row, OFFLINE_MODEL, prompt.version, WRITER_OFFLINE) if offline else paid
        if existing.get(row["kid_id"]) not in (digest, paid):
            pending.append(PendingReport(row["kid_id"], row, digest, name))
    return pending, len(rows) - len(pending)


def _drain(pool: ThreadPoolExecutor) -> None:
    """Wait for the requests in flight even through repeated interrupts: their answers
    are paid for and must be recorded. Each ends by its deadline (openai.timeout_seconds)."""
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except BaseException:  # a second Ctrl+C / terminate while draining
            continue


def _from_spool(entry: dict[str, Any]) -> dict[str, Any]:
    """A spooled row with its dates back as dates."""
    row = dict(entry)
    row["week_start"] = dt.date.fromisoformat(row["week_start"])
    for key in ("received_at", "generated_at"):
        if isinstance(row.get(key), str):
            row[key] = dt.datetime.fromisoformat(row[key])
    return row


# The event-loop path (async_writer.run_async), handed in by whoever builds the writer: it
# uses the writer, so the writer does not import it and the dependency runs one way.
RunAsync = Callable[
    ["WeekReportWriter", ReportSession, Iterable[list[PendingReport]]], list[PendingReport]
]


class WeekReportWriter:
    """Runs one week: offline by rules, or through the API with bounded concurrency."""

    def __init__(
        self,
        log: dg.DagsterLogManager,
        engine: Engine,
        src: Sources,
        api: OpenAIReportsResource,
        prompt: Prompt,
        week: Week,
        storage: StorageSettings,
        pseudonymize: bool = True,
        known_categories: tuple[str, ...] = DEFAULT_KNOWN_CATEGORIES,
        *,
        run_async: RunAsync,
    ) -> None:
        self.log, self.engine, self.src, self.api = log, engine, src, api
        self.run_async = run_async
        self.prompt, self.week, self.pseudonymize = prompt, week, pseudonymize
        self.known_categories = known_categories
        self.storage = storage
        self._total = 0
        self.writer_name = WRITER_OFFLINE if api.offline else WRITER_OPENAI  # each row's `writer`
        self.model = OFFLINE_MODEL if api.offline else api.model
        self.usage = Usage(price=api.price())
        self.cancel = threading.Event()
        self.outcome = WeekOutcome()
        self._lock = threading.Lock()
        self.claims = Claims(engine, week.start, storage.run_id, storage.claim_lease_seconds)
        self.spool = spool.Spool(
            storage.spool_dir, storage.warehouse_id, self.claims.owner.rsplit(":", 1)[-1]
        )
        self.gate = WarehouseGate(
            engine, storage.outage_wait_seconds, self.cancel.is_set, self.log.warning
        )
        self._submitted = 0
        self._lost: list[PendingReport] = []  # not asked: the claim's lease ran out
        self._progress_done, self._progress_at = 0, time.monotonic()
        self._announced_at = -float("inf")
        # The API this week's reports went through (gold's `mode` metadata).
        self.api_used = "offline" if api.offline else "sync"

    # --- the week ---------------------------------------------------------------------

    def run(self) -> WeekOutcome:
        started = time.monotonic()
        self.outcome.replayed = self.replay_spool()
        with self.engine.begin() as conn:
            self.outcome.silver_rows = silver_count(conn, self.week)
            self.outcome.superseded = ledger.supersede_missing(
                conn, self.week.start, silver_kids(self.week)
            )
        self.log.info(
            start_line(self.week.key, self.outcome, self.writer_name, self.model, self._page_size())
        )
        pages = self._planned_pages()
        if self.api.offline:
            for page in pages:
                for item in page:
                    self._announce_batch(self._next_index())
                    self._write_offline(item)
        elif self.api.api == "sync" and not self._has_open_batches():
            self._write_with_api(pages)  # page by page: memory flat in the number of kids
        else:
            pending = [item for page in pages for item in page]  # a batch takes the week
            if pending or self.api.api != "sync":
                if self.api.uses_batches(len(pending)) or self._has_open_batches():
                    self.api_used = "batch"
                    self._write_with_batches(pending)
                else:
                    self._write_with_api([pending])
        # Every pending kid is written here, by another run, in a batch, or not at all.
        done = self.outcome.written + self.outcome.ungrounded + self.outcome.by_other_runs
        waiting = self.outcome.in_batches + self.outcome.queued
        self.outcome.failed = self._total - done - waiting if not self.api.offline else 0
        self.log.info(done_line(self.week.key, self.outcome, self._total))
        self.outcome.wall_seconds = time.monotonic() - started
        return self.outcome

    def _page_size(self) -> int:
        """Kids planned, claimed and handed to the writer at a time: enough that the async
        client's thousands in flight rarely wait for the next page."""
        return max(PAGE_KIDS, 10 * self.api.max_concurrent)

    def _planned_pages(self) -> Iterator[list[PendingReport]]:
        """Each page of silver rows planned: the kids still without a report for their
        inputs (`_total` counts them as pages are read, `outcome.reused` the rest)."""
        for rows in silver_pages(self.engine, self.week, self._page_size(), self.gate.call):
            if self.cancel.is_set():  # the run stopped: plan (and claim) nothing more
                return
            pending, reused = self.gate.call(lambda rows=rows: self._plan(rows))
            self.outcome.reused += reused
            self._total += len(pending)
            if pending:
                yield pending

    def _plan(self, rows: list[dict[str, Any]]) -> tuple[list[PendingReport], int]:
        with self.engine.connect() as conn:
            names = nicknames(conn, self.src, [row["kid_id"] for row in rows])
            return plan_week(
                conn,
                self.week,
                rows,
                self.api.model,
                self.prompt,
                self.api.offline,
                names,
                self.pseudonymize,
                self.known_categories,
            )

    def _next_index(self) -> int:
        with self._lock:
            self._submitted += 1
            return self._submitted - 1

    def _write_offline(self, item: PendingReport) -> None:
        report = offline_report(item.metrics)
        findings = self._check(item)(report)  # the rules are held to the same standard
        named = personalise(report, item.name)
        row = self._report_row(item, named, None, self.model, findings)
        with self.engine.begin() as conn:
            ledger.store_report(conn, {**row, **FREE_USAGE})
        if findings:
            self._count_ungrounded(item, findings)
        else:
            self._count_written(item, FREE_USAGE)

    def _check(self, item: PendingReport) -> Callable[[KidWeeklyReport], list[Finding]]:
        """The grounding gate: the report against exactly the data the model was given."""
        data = prompt_data(item.metrics)
        return lambda report: check_report(report, data)

    # --- through the API --------------------------------------------------------------

    def _write_with_api(self, pages: Iterable[list[PendingReport]]) -> None:
        """Page by page: claimed, then asked for; kids other runs hold are waited for at
        the end. No session (nor limiter) is opened for a week with nothing to write."""
        pages = iter(pages)
        first = next(pages, None)
        if first is None:
            return
        pages = itertools.chain([first], pages)
        if self.api.concurrency == "async":
            self._write_with_async(pages)
            return
        session = self.api.session(self.engine, self.prompt, self.usage, self.cancel)
        pool = ThreadPoolExecutor(self.api.max_concurrent, thread_name_prefix="report")
        heartbeat = threading.Thread(target=self._renew_claims, daemon=True, name="claims")
        held: dict[int, PendingReport] = {}  # kids another run holds
        elsewhere: dict[int, str] = {}
        window: collections.deque[list[Future[None]]] = collections.deque()
        try:
            heartbeat.start()
            for page in pages:
                items = {item.kid_id: item for item in page}
                claimed = self._claim_page(items)
                held.update({kid: items[kid] for kid in claimed.elsewhere})
                elsewhere.update(claimed.elsewhere)
                window.append(self._submit(pool, session, [items[k] for k in sorted(claimed.mine)]))
                while len(window) > 2:  # two pages of kids in memory at most
                    wait(window.popleft())
            futures = [future for page in window for future in page]
            while True:
                self._await_other_runs(pool, session, held, elsewhere, futures)
                wait(futures)
                with self._lock:
                    lost, self._lost = self._lost, []
                if not lost or self.cancel.is_set():
                    break
                # Kids whose lease ran out: written by another run by now, held by one, or
                # free again, as the kids another run held from the start.
                held.update({item.kid_id: item for item in lost})
                elsewhere = {item.kid_id: "" for item in lost}
        except WarehouseUnavailable as exc:
            self.cancel.set()  # start nothing new; the answers in flight go to the spool
            _drain(pool)
            self._stop(f"{exc}. {self._kept_note()}")
        except BaseException:
            # Run terminated (Ctrl+C, UI "terminate"): start nothing new, let the requests in
            # flight finish (each by its deadline) and record their (paid) answers, then stop.
            self.cancel.set()
            raise
        finally:
            _drain(pool)
            self.cancel.set()  # ends the heartbeat
            session.close()
            self._finish_claims()

    def _write_with_async(self, pages: Iterable[list[PendingReport]]) -> None:
        """The same claims and waiting for other runs, the requests on an event loop
        (async_writer: thousands in flight, records stored in groups), one loop for the
        week's pages."""
        session = self.api.session(self.engine, self.prompt, self.usage, self.cancel)
        heartbeat = threading.Thread(target=self._renew_claims, daemon=True, name="claims")
        # Kids another run holds, and kids whose lease ran out (taken by another run, or
        # free again): claimed again after the pages until written here or elsewhere.
        held: dict[int, PendingReport] = {}
        waiting: dict[int, str] = {}

        def claimed_pages() -> Iterator[list[PendingReport]]:
            # Runs in the loop's worker threads, a page at a time.
            for page in pages:
                items = {item.kid_id: item for item in page}
                claimed = self._claim_page(items)
                waiting.update(claimed.elsewhere)
                held.update({kid: items[kid] for kid in claimed.elsewhere})
                yield [items[k] for k in sorted(claimed.mine)]

        try:
            heartbeat.start()
            lost = self.run_async(self, session, claimed_pages())
            while True:
                held.update({item.kid_id: item for item in lost})
                waiting.update({item.kid_id: "" for item in lost})
                if not waiting or self.cancel.wait(AWAIT_POLL_SECONDS):
                    break
                wanted = self._wanted({k: held[k] for k in waiting})
                claimed = self.gate.call(lambda w=wanted: self.claims.claim(w))
                self.outcome.by_other_runs += len(claimed.done)
                waiting = dict(claimed.elsewhere)
                mine = [held[k] for k in sorted(claimed.mine)]
                lost = self.run_async(self, session, [mine]) if mine else []
        except WarehouseUnavailable as exc:  # run_async has recorded what was in flight
            self._stop(f"{exc}. {self._kept_note()}")
        except BaseException:
            self.cancel.set()
            raise
        finally:
            self.cancel.set()  # ends the heartbeat
            session.close()
            self._finish_claims()

    # --- through the Batch API ----------------------------------------------------------

    def _has_open_batches(self) -> bool:
        with self.engine.connect() as conn:
            return bool(batches.open_batches(conn, self.week.start))

    def _write_with_batches(self, pending: list[PendingReport]) -> None:
        """Collect what finished, then submit what must be: nothing in flight twice."""
        items = {item.kid_id: item for item in pending}
        session = self.api.session(self.engine, self.prompt, self.usage, self.cancel)
        week = batches.WeekBatches(
            self.api.client,
            session,
            self.engine,
            self.week.key,
            self.week.start,
            self.storage.run_id,
            self.log,
            self.claims.owner,
            self.storage.warehouse_id,
        )
        week.collect(lambda lines: self._record_lines(session, items, lines))
        unanswered = self._unanswered(items)
        if unanswered:
            # A generator: each kid's prompt is built as its line is written to a file.
            wanted = (
                (kid, item.input_hash, self.prompt.messages(item.metrics))
                for kid, item in unanswered.items()
            )
            created = week.submit(wanted)
            if created:
                self.log.info(f"week {self.week.key}: submitted batches {', '.join(created)}")
        with self.engine.connect() as conn:
            self.outcome.batches = batches.week_batches(conn, self.week.start)
            held = ledger.claimed_by_batches(conn, self.week.start)
        self.outcome.in_batches = len(set(held) & set(items))
        # Held back by the model's queue budget: submitted by a later run, not failed.
        self.outcome.queued = len(set(unanswered) - set(held))
        self._finish_claims()

    def _record_lines(
        self,
        session: ReportSession,
        items: dict[int, PendingReport],
        lines: list[batches.ResultLine],
    ) -> None:
        """A chunk of batch result lines: each judged like a sync answer, then every
        ledger row and report of the chunk stored in one transaction (a batch's answers
        stay in its output file, so a chunk lost to a crash is read again, not lost)."""
        judged = [self._judge_line(session, items, line) for line in lines]
        rows = [self._ledger_row(item, exchange) for item, exchange in judged]
        reports = {
            exchange.answer_id: (item, self._accepted_row(item, exchange))
            for item, exchange in judged
            if exchange.report is not None and exchange.outcome == ACCEPTED
        }

        def store() -> set[str]:
            with self.engine.begin() as conn:
                stored = ledger.store_exchanges(conn, rows)
                # Only answers stored now: one stored meanwhile by another run has its report.
                ledger.store_reports(conn, [r for a, (_, r) in reports.items() if a in stored])
            return stored

        stored = self.gate.call(store)
        with self._lock:
            self.outcome.written += sum(1 for answer_id in reports if answer_id in stored)

    def _judge_line(
        self, session: ReportSession, items: dict[int, PendingReport], line: batches.ResultLine
    ) -> tuple[PendingReport, Exchange]:
        item = items.get(line.kid_id)
        if item is None or item.input_hash != line.input_hash:
            # Answered for inputs that changed since (or a kid already reported): paid for,
            # so recorded, but it is not this week's report.
            stale = PendingReport(line.kid_id, item.metrics if item else {}, line.input_hash)
            return stale, dataclasses.replace(line.exchange, report=None)
        return item, session.judge(line.exchange, self._check(item))

    def _accepted_row(self, item: PendingReport, exchange: Exchange) -> dict[str, Any]:
        assert exchange.report is not None
        named = personalise(exchange.report, item.name)
        return self._report_row(
            item, named, exchange.answer_id, exchange.model_answered or self.model
        )

    def _unanswered(self, items: dict[int, PendingReport]) -> dict[int, PendingReport]:
        """Kids still without a report for their input, within the retry budget; those
        whose attempts are spent fail (their last ungrounded answer, if any, is kept)."""
        wanted = {kid: item.input_hash for kid, item in items.items()}
        done = self.claims.reported(wanted)
        with self.engine.connect() as conn:
            tried = ledger.attempts(conn, self.week.start, wanted)
        left = {}
        for kid, item in items.items():
            if kid in done:
                continue
            if tried.get(kid, 0) >= self.api.retry_max_attempts:
                self._fail(item, ReportError(f"no answer after {tried[kid]} attempts"))
                continue
            left[kid] = item
        return left

    def _wanted(self, items: dict[int, PendingReport]) -> dict[int, str]:
        return {kid: item.input_hash for kid, item in items.items()}

    def _claim_page(self, items: dict[int, PendingReport]) -> ledger.ClaimResult:
        wanted = self._wanted(items)
        claimed = self.gate.call(lambda: self.claims.claim(wanted))
        self._note_claim_result(claimed)
        return claimed

    def _note_claim_result(self, claimed: ledger.ClaimResult) -> None:
        self.outcome.by_other_runs += len(claimed.done)
        if claimed.elsewhere:
            runs = sorted(set(claimed.elsewhere.values()))
            self.log.info(
                f"{len(claimed.elsewhere)} kids are being asked for by another run "
                f"({', '.join(r[:8] for r in runs)}): this run waits for their answers "
                "instead of paying for them again"
            )

    def _submit(
        self, pool: ThreadPoolExecutor, session: ReportSession, items: list[PendingReport]
    ) -> list[Future[None]]:
        with self._lock:
            first = self._submitted
            self._submitted += len(items)
        return [
            pool.submit(self._write_one, session, first + i, item) for i, item in enumerate(items)
        ]

    def _await_other_runs(
        self,
        pool: ThreadPoolExecutor,
        session: ReportSession,
        items: dict[int, PendingReport],
        elsewhere: dict[int, str],
        futures: list[Future[None]],
    ) -> None:
        """Kids another run holds: wait for their reports; take over any it gives up or
        whose lease runs out (that run died)."""
        waiting, last_log = dict(elsewhere), time.monotonic()
        while waiting and not self.cancel.wait(AWAIT_POLL_SECONDS):
            wanted = self._wanted({k: items[k] for k in waiting})
            claimed = self.gate.call(lambda w=wanted: self.claims.claim(w))
            self.outcome.by_other_runs += len(claimed.done)
            futures += self._submit(pool, session, [items[k] for k in sorted(claimed.mine)])
            waiting = claimed.elsewhere
            if waiting and time.monotonic() - last_log > AWAIT_LOG_SECONDS:
                last_log = time.monotonic()
                self.log.info(f"still waiting for {len(waiting)} kids held by another run")

    def _renew_interval(self) -> float:
        return min(10.0, self.storage.claim_lease_seconds / 4)

    def _renew_claims(self) -> None:
        while not self.cancel.wait(self._renew_interval()):
            try:
                self.claims.renew()
            except Exception:  # an outage: the gate handles it; the lease has slack
                continue

    def _finish_claims(self) -> None:
        """Give back every claim not turned into a report (failed, cancelled), and drop
        the spool file once everything in it reached the warehouse."""
        try:
            self.claims.release_all()
        except Exception as exc:  # they expire with their lease
            self.log.warning(f"claims not released ({exc}); they expire with their lease")
        if self.spool.entries and not self.outcome.unstored:
            self.spool.discard()

    def _stop(self, reason: str) -> None:
        if self.outcome.fatal is None:
            self.outcome.fatal = reason
            self.log.error(f"stopping the week: {reason}")
        self.cancel.set()

    def _announce_batch(self, index: int) -> None:
        """A progress line per group of `progress_group_size` kids (`progress_line`). Groups only
        group the log: requests flow continuously, none waits for the slowest of the one
        before."""
        size = self.api.progress_group_size
        if index % size != 0:
            return
        total = -(-max(self._total, index + 1) // size)
        number = index // size + 1
        # Every batch's line while they are few; past that, at most one line every
        # progress_every_seconds (a Dagster log event costs ms of the step's CPU).
        seconds = self.api.progress_every_seconds
        with self._lock:
            now = time.monotonic()
            recent = now - self._announced_at < seconds
            if total > BATCH_LINES_ALWAYS and recent and number != total:
                return
            self._announced_at = now
        self.log.info(progress_line(index, size, self._total))

    def _write_one(self, session: ReportSession, index: int, item: PendingReport) -> None:
        try:
            if self.cancel.is_set():
                raise Cancelled("not started: the run is stopping")
            self._announce_batch(index)
            exchange = session.generate(
                self.prompt.messages(item.metrics),
                record=lambda ex: self._record(item, ex),
                acquire=self._acquire_while_held(session, item.kid_id),
                check=self._check(item),
            )
            self._count_written(item, exchange.usage())
        except ClaimLost:
            with self._lock:
                self._lost.append(item)  # claimed again with the kids other runs hold
        except Exception as exc:
            self._after_error(item, exc)

    def _after_error(self, item: PendingReport, exc: Exception) -> None:
        """What becomes of a kid whose asking ended in an error (threads and event loop)."""
        if isinstance(exc, UngroundedAnswer):  # retries spent, every answer ungrounded
            self._keep_ungrounded(item, exc)
            return
        self._fail(item, exc)  # retries spent, or a bug: the week goes on
        if isinstance(exc, FatalApiError):
            self._stop(str(exc))
        elif isinstance(exc, WarehouseUnavailable):
            self._stop(f"{exc}. {self._kept_note()}")

    def _acquire_while_held(
        self, session: ReportSession, kid: int
    ) -> Callable[[Callable[[], Reservation]], Reservation]:
        """The limiter's grant, then proof that this run still holds the kid: after an
        outage or a stall longer than the lease, another run may have taken the kid and
        paid for it, and asking again would pay twice."""

        def acquire(grant: Callable[[], Reservation]) -> Reservation:
            while True:
                reservation = self.gate.call(grant)
                if not self.still_holds(kid):
                    session.cancel_reservation(reservation)
                    raise ClaimLost(kid)
                if time.monotonic() <= reservation.use_by:
                    return reservation
                # A leased grant kept too long (a slow renewal): the bucket's refill counted
                # on it reaching the server by now, so sending it could exceed the limit.
                session.cancel_reservation(reservation)

        return acquire

    def still_holds(self, kid: int) -> bool:
        """Whether this run's claim on `kid` surely lasts through a request; if the lease
        looks stale, renewed first (a lease that ran out is not revived: it stays lost)."""
        margin = self._renew_interval()
        if self.claims.holds(kid, margin):
            return True
        self.gate.call(self.claims.renew)
        return self.claims.holds(kid, margin)

    def _keep_ungrounded(self, item: PendingReport, exc: UngroundedAnswer) -> None:
        """The last answer is stored for review, marked not grounded: paid for, never
        exported to the parents, counted by the one-report-per-row check."""
        exchange = exc.exchange
        if exchange is None or exchange.report is None:
            self._fail(item, exc)
            return
        named = personalise(exchange.report, item.name)
        row = self._report_row(
            item, named, exchange.answer_id, exchange.model_answered or self.model, exc.findings
        )

        def store() -> None:
            with self.engine.begin() as conn:
                ledger.store_report(conn, row)
                self.claims.delete_in(conn, [item.kid_id])

        self.gate.call(store)
        self._count_ungrounded(item, exc.findings)

    def _kept_note(self) -> str:
        if not self.outcome.unstored:
            return "Every answer received is stored"
        return (
            f"{self.outcome.unstored} paid answers are kept in {self.spool.path}; the next "
            "gold run on this warehouse stores them before asking for anything"
        )

    # --- recording --------------------------------------------------------------------

    def _record(self, item: PendingReport, exchange: Exchange) -> None:
        """Store the exchange (and, if accepted, its report) the moment it is known. If
        the warehouse cannot take it, it goes to the spool file first, then waits here
        for the warehouse (no new request is sent meanwhile)."""
        row, report = self._rows_of(item, exchange)

        def store() -> None:
            with self.engine.begin() as conn:
                ledger.store_exchange(conn, row)
                if report is not None:
                    ledger.store_report(conn, report)
                    self.claims.delete_in(conn, [item.kid_id])

        try:
            store()
            return
        except Exception as exc:
            if exchange.paid or report is not None:
                self._spool(row, exchange, report)
            if not self.gate.may_retry(exc):
                raise
        self.gate.call(store)
        if exchange.paid or report is not None:
            with self._lock:
                self.outcome.unstored -= 1

    def _rows_of(
        self, item: PendingReport, exchange: Exchange
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The exchange's ledger row, and its report row if it was accepted."""
        row = self._ledger_row(item, exchange)
        report = None
        if exchange.report is not None and exchange.outcome == ACCEPTED:
            report = self._report_row(
                item,
                personalise(exchange.report, item.name),
                exchange.answer_id,
                exchange.model_answered or self.model,
            )
        return row, report

    def _spool(
        self, row: dict[str, Any], exchange: Exchange, report: dict[str, Any] | None
    ) -> None:
        self._spool_many([(row, exchange, report)])

    def _spool_many(
        self, entries: list[tuple[dict[str, Any], Exchange, dict[str, Any] | None]]
    ) -> None:
        """Paid answers to the spool file, one fsync for all of them."""
        lines = []
        for row, exchange, report in entries:
            entry: dict[str, Any] = {"ledger": row}
            if report is not None and exchange.report is not None:
                # As the model wrote it (placeholder, no nickname): named again on replay.
                entry["report"] = {**report, "report": exchange.report.model_dump()}
            lines.append(entry)
        self.spool.append_many(lines)
        with self._lock:
            self.outcome.unstored += len(lines)

    def _ledger_row(self, item: PendingReport, exchange: Exchange) -> dict[str, Any]:
        return {
            "answer_id": exchange.answer_id,
            "week_start": self.week.start,
            "kid_id": item.kid_id,
            "input_hash": item.input_hash,
            "run_id": self.storage.run_id,
            "outcome": exchange.outcome,
            "model_requested": self.api.model,
            "model_answered": exchange.model_answered,
            "tier": exchange.tier,
            "prompt_tokens": exchange.prompt_tokens,
            "completion_tokens": exchange.completion_tokens,
            "cached_tokens": exchange.cached_tokens,
            "input_cost_usd": exchange.input_cost_usd,
            "output_cost_usd": exchange.output_cost_usd,
            "cost_usd": exchange.cost_usd,
            "usage_note": exchange.usage_note,
            "content": exchange.content,
            "findings": [dataclasses.asdict(f) for f in exchange.findings] or None,
            "received_at": dt.datetime.now(dt.UTC),
        }

    def _report_row(
        self,
        item: PendingReport,
        report: dict[str, Any],
        answer_id: str | None,
        model: str,
        findings: list[Finding] | None = None,
    ) -> dict[str, Any]:
        return {
            "grounded": not findings,
            "findings": [dataclasses.asdict(f) for f in findings] if findings else None,
            "week_start": self.week.start,
            "kid_id": item.kid_id,
            "report": report,
            "model": model,
            "prompt_version": self.prompt.version,
            "input_hash": item.input_hash,
            "writer": self.writer_name,
            "generated_at": dt.datetime.now(dt.UTC),
            "answer_id": answer_id,
        }

    def replay_spool(self) -> int:
        """Store the answers an earlier run could not (its spool files), before planning:
        they may be the very reports this run would otherwise pay for again."""
        stored = 0
        for path in spool.pending_files(self.storage.spool_dir, self.storage.warehouse_id):
            taken = spool.take(path)
            if taken is None:
                continue
            try:
                stored += self._replay_file(taken)
            except BaseException:
                taken.rename(path)  # kept for the next run
                raise
            taken.unlink()
        if stored:
            self.log.info(f"stored {stored} paid answers kept in the spool by an earlier run")
        return stored

    def _replay_file(self, path: Path) -> int:
        stored = 0
        for entry in spool.read_entries(path):
            row = _from_spool(entry["ledger"])
            with self.engine.begin() as conn:
                ledger.store_exchange(conn, row)
                report = entry.get("report")
                if report:
                    report = _from_spool(report)
                    names = nicknames(conn, self.src, [report["kid_id"]])
                    report["report"] = personalise(report["report"], names.get(report["kid_id"]))
                    ledger.store_report(conn, report, replace=False)
            stored += 1
        return stored

    # --- counting ---------------------------------------------------------------------

    def _fail(self, item: PendingReport, exc: BaseException) -> None:
        with self._lock:
            if len(self.outcome.errors) < 20 and not isinstance(exc, Cancelled):
                self.outcome.errors.append(f"kid {item.kid_id}: {exc}")
        if not isinstance(exc, Cancelled):
            self.log.warning(f"kid {item.kid_id}: no report: {exc}")

    def _count_ungrounded(self, item: PendingReport, findings: list[Finding]) -> None:
        with self._lock:
            self.outcome.ungrounded += 1
        self.log.warning(
            f"kid {item.kid_id}: report kept for review, not for the parents: "
            f"{len(findings)} statements the data does not support ({findings[0].message})"
        )

    def _count_written(self, item: PendingReport, usage: dict[str, Any]) -> None:
        with self._lock:
            self.outcome.written += 1
            done = self.outcome.written
            if not self._progress_due(done):
                return
        pct = 100 * done // max(1, self._total)
        # One line every N reports or T seconds, not one a report: a Dagster log event
        # costs milliseconds of the step's CPU, which at hundreds a second is the limit.
        self.log.info(
            f"[{done}/{self._total} {pct}%] kid {item.kid_id}: "
            f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens "
            f"({usage['cached_tokens']} cached), ${usage['cost_usd']:.5f}"
        )

    def _progress_due(self, done: int) -> bool:
        """Under _lock: whether this report gets a progress line (the last one always)."""
        now = time.monotonic()
        every = self.api.progress_every_reports
        seconds = self.api.progress_every_seconds
        due = (
            done >= self._total
            or done - self._progress_done >= every
            or now - self._progress_at >= seconds
        )
        if due:
            self._progress_done, self._progress_at = done, now
        return due
