"""Writes one week's reports: skips what is already paid for, stores each as it arrives."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets import db
from kidsfin_assets.openai_client import (
    Cancelled,
    FatalApiError,
    OpenAIReportsResource,
    ReportSession,
)
from kidsfin_assets.pricing import Usage
from kidsfin_assets.reports import (
    OFFLINE_MODEL,
    PLACEHOLDER,
    Prompt,
    input_hash,
    offline_report,
    personalise,
)
from kidsfin_assets.warehouse import (
    Sources,
    kid_weekly_analysis,
    kid_weekly_reports,
    nicknames,
)
from kidsfin_assets.weeks import Week

WRITER_OPENAI = "openai"
WRITER_OFFLINE = "offline"
FREE_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}


@dataclass(frozen=True)
class PendingReport:
    kid_id: int
    metrics: dict[str, Any]
    input_hash: str


@dataclass
class WeekOutcome:
    silver_rows: int = 0
    written: int = 0
    reused: int = 0
    failed: int = 0
    fatal: str | None = None
    errors: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def silver_rows(conn: Connection, week: Week) -> list[dict[str, Any]]:
    silver = kid_weekly_analysis
    query = sa.select(silver).where(silver.c.week_start == week.start).order_by(silver.c.kid_id)
    return [dict(r._mapping) for r in conn.execute(query)]


def plan_week(
    conn: Connection,
    week: Week,
    rows: list[dict[str, Any]],
    api_model: str,
    prompt: Prompt,
    offline: bool,
    child: Callable[[int], str],
) -> tuple[list[PendingReport], int]:
    """Of the week's silver rows, those that still need a report (no row with the same
    input hash), and how many were reused. Reports of kids no longer in silver are removed.

    Offline, an AI report for the same metrics counts as done: losing the API key for a
    run must not throw away reports that were paid for."""
    gold = kid_weekly_reports
    existing = dict(
        conn.execute(
            sa.select(gold.c.kid_id, gold.c.input_hash).where(gold.c.week_start == week.start)
        ).all()
    )
    kids = [r["kid_id"] for r in rows]
    stale = set(existing) - set(kids)
    if stale:
        conn.execute(
            sa.delete(gold).where(gold.c.week_start == week.start, gold.c.kid_id.in_(stale))
        )
    pending = []
    for row in rows:
        row["child"] = child(row["kid_id"])
        paid = input_hash(row, api_model, prompt.version, WRITER_OPENAI)
        digest = input_hash(row, OFFLINE_MODEL, prompt.version, WRITER_OFFLINE) if offline else paid
        if existing.get(row["kid_id"]) not in (digest, paid):
            pending.append(PendingReport(row["kid_id"], row, digest))
    return pending, len(rows) - len(pending)


def store_report(
    engine: Engine,
    week: Week,
    item: PendingReport,
    report: dict[str, Any],
    usage: dict[str, Any],
) -> None:
    """One report, committed on its own: a crash later loses nothing already paid for."""
    row = {
        "week_start": week.start,
        "kid_id": item.kid_id,
        "report": report,
        "input_hash": item.input_hash,
        "generated_at": dt.datetime.now(dt.UTC),
        **usage,
    }
    with engine.begin() as conn:
        db.upsert(conn, kid_weekly_reports, row, ["week_start", "kid_id"])


def _drain(pool: ThreadPoolExecutor) -> None:
    """Wait for the requests in flight even through repeated interrupts: their answers
    are paid for and must be stored. Each is bounded by the request timeout."""
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except BaseException:  # a second Ctrl+C / terminate while draining
            continue


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
        pseudonymize: bool = True,
    ) -> None:
        self.log, self.engine, self.src, self.api = log, engine, src, api
        self.prompt, self.week, self.pseudonymize = prompt, week, pseudonymize
        self._total = 0
        self.writer = WRITER_OFFLINE if api.offline else WRITER_OPENAI
        self.model = OFFLINE_MODEL if api.offline else api.model
        self.usage = Usage(price=api.price())
        self.cancel = threading.Event()
        self.outcome = WeekOutcome()
        self._lock = threading.Lock()

    def run(self) -> WeekOutcome:
        started = time.monotonic()
        with self.engine.begin() as conn:
            rows = silver_rows(conn, self.week)
            names = nicknames(conn, self.src, [row["kid_id"] for row in rows])
            pending, self.outcome.reused = plan_week(
                conn,
                self.week,
                rows,
                self.api.model,
                self.prompt,
                self.api.offline,
                self._child(names),
            )
        self.outcome.silver_rows = len(pending) + self.outcome.reused
        self.log.info(
            f"week {self.week.key}: {self.outcome.silver_rows} kids, "
            f"{self.outcome.reused} reports already written, {len(pending)} to write "
            f"({self.writer}, {self.model})"
        )
        self._total = len(pending)
        if self.api.offline:
            for index, item in enumerate(pending):
                self._announce_batch(index)
                self._write_offline(item, names.get(item.kid_id))
        elif pending:
            self._write_with_api(pending, names)
        self.outcome.wall_seconds = time.monotonic() - started
        return self.outcome

    def _child(self, names: dict[int, str]) -> Callable[[int], str]:
        """How the prompt names the child: a placeholder, unless pseudonymisation is off."""
        if self.pseudonymize:
            return lambda _kid_id: PLACEHOLDER
        return lambda kid_id: names.get(kid_id) or PLACEHOLDER

    def _write_offline(self, item: PendingReport, nickname: str | None) -> None:
        report = personalise(offline_report(item.metrics), nickname)
        self._store(item, report, FREE_USAGE)

    def _write_with_api(self, pending: list[PendingReport], names: dict[int, str]) -> None:
        session = self.api.session(self.engine, self.prompt, self.usage, self.cancel)
        pool = ThreadPoolExecutor(self.api.max_concurrent, thread_name_prefix="report")
        try:
            futures = [
                pool.submit(self._write_one, session, index, item, names.get(item.kid_id))
                for index, item in enumerate(pending)
            ]
            wait(futures)
        except BaseException:
            # Run terminated (Ctrl+C, UI "terminate"): start nothing new, let the requests in
            # flight finish and store their (paid) reports, then stop.
            self.cancel.set()
            raise
        finally:
            _drain(pool)

    def _announce_batch(self, index: int) -> None:
        """The earlier system's "Processing batch i/n" lines (batches only group the log:
        requests flow continuously, so no batch waits for the slowest of the one before)."""
        size = self.api.batch_size
        if index % size == 0:
            total = -(-self._total // size)
            self.log.info(f"Processing batch {index // size + 1}/{total}")

    def _write_one(
        self, session: ReportSession, index: int, item: PendingReport, nickname: str | None
    ) -> None:
        try:
            if self.cancel.is_set():
                raise Cancelled("not started: the run is stopping")
            self._announce_batch(index)
            result = session.generate(self.prompt.messages(item.metrics))
            self._store(item, personalise(result.report, nickname), result.usage)
        except FatalApiError as exc:
            self._fail(item, exc)
            if not self.cancel.is_set():
                self.outcome.fatal = str(exc)
                self.log.error(f"stopping the week: {exc}")
                self.cancel.set()
        except Exception as exc:  # retries spent, a bug or a database error: keep going
            self._fail(item, exc)

    def _fail(self, item: PendingReport, exc: BaseException) -> None:
        with self._lock:
            self.outcome.failed += 1
            if len(self.outcome.errors) < 20 and not isinstance(exc, Cancelled):
                self.outcome.errors.append(f"kid {item.kid_id}: {exc}")
        if not isinstance(exc, Cancelled):
            self.log.warning(f"kid {item.kid_id}: no report: {exc}")

    def _store(self, item: PendingReport, report: dict[str, Any], usage: dict[str, Any]) -> None:
        columns = {
            "model": self.model,
            "prompt_version": self.prompt.version,
            "writer": self.writer,
            **usage,
        }
        store_report(self.engine, self.week, item, report, columns)
        with self._lock:
            self.outcome.written += 1
            done = self.outcome.written
        pct = 100 * done // max(1, self._total)
        self.log.info(
            f"[{done}/{self._total} {pct}%] kid {item.kid_id}: "
            f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens "
            f"({usage['cached_tokens']} cached), ${usage['cost_usd']:.5f}"
        )
