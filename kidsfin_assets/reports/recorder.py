"""Recording what a week paid for: each answer's ledger row and, when accepted, its report,
in one transaction with the kid's claim released; to the spool file first when the warehouse
cannot take them (then waiting for it); and the spool of an earlier run stored again.

Every path (a group on the event loop, a chunk of Batch API lines,
a page of offline reports, a report kept for review) stores through here."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.reports import ledger, spool
from kidsfin_assets.reports.answers import Exchange
from kidsfin_assets.reports.claims_keeper import ClaimsKeeper
from kidsfin_assets.reports.grounding import Finding
from kidsfin_assets.reports.planning import PendingReport
from kidsfin_assets.reports.report_schema import personalise
from kidsfin_assets.reports.rows import FREE_USAGE, RowMaker
from kidsfin_assets.warehouse.outage import WarehouseGate
from kidsfin_assets.warehouse.tables import Sources, nicknames


@dataclass(frozen=True)
class AnswerRows:
    """One exchange as it is stored: its ledger row and, if accepted, its report row."""

    ledger: dict[str, Any]
    report: dict[str, Any] | None
    exchange: Exchange

    @property
    def paid(self) -> bool:
        """Worth the spool: an answer came back (billed), or it is a report."""
        return self.exchange.paid or self.report is not None


class Recorder:
    """Stores one week's answers and reports (`rows` builds them)."""

    def __init__(
        self,
        engine: Engine,
        gate: WarehouseGate,
        keeper: ClaimsKeeper,
        spool_file: spool.Spool,
        rows: RowMaker,
        log: dg.DagsterLogManager,
    ) -> None:
        self.engine, self.gate, self.keeper, self.rows, self.log = engine, gate, keeper, rows, log
        self.spool = spool_file
        self.unstored = 0  # paid answers in this run's spool file, not yet in the warehouse
        self._lock = threading.Lock()

    def answer_rows(self, item: PendingReport, exchange: Exchange) -> AnswerRows:
        ledger_row, report_row = self.rows.rows_of(item, exchange)
        return AnswerRows(ledger_row, report_row, exchange)

    # --- a report kept for review ---------------------------------------------------

    def keep_ungrounded(
        self, item: PendingReport, exchange: Exchange, findings: list[Finding]
    ) -> None:
        """The last answer is stored for review, marked not grounded: paid for, never
        exported to the parents, counted by the one-report-per-row check."""
        row = self.rows.answer_report_row(item, exchange, findings)

        def store() -> None:
            with self.engine.begin() as conn:
                ledger.store_report(conn, row)
                self.keeper.release_in(conn, [item.kid_id])

        self.gate.call(store)

    # --- many at once -----------------------------------------------------------------

    def store_group(self, group: list[AnswerRows]) -> BaseException | None:
        """One transaction for a group of exchanges; the paid ones to the spool first when
        it fails, then stored once the warehouse is back. The error that kept them out of
        the warehouse, if it never took them."""
        store = self._storing(group, grouped=True)
        try:
            store()
            return None
        except Exception as exc:
            paid = [answer for answer in group if answer.paid]
            spooled = self._spool_or_say(paid)
            if not spooled or not self.gate.may_retry(exc):
                return exc
        try:
            self.gate.call(store)
        except Exception as exc:
            return exc
        self._stored_from_spool(len(paid))
        return None

    def store_lines(self, answers: list[AnswerRows]) -> set[str]:
        """A chunk of Batch API lines in one transaction; the answer ids stored now (an
        answer already in the ledger, stored by another run, keeps its report as it is)."""
        rows = [answer.ledger for answer in answers]
        reports = {a.ledger["answer_id"]: a.report for a in answers if a.report is not None}

        def store() -> set[str]:
            with self.engine.begin() as conn:
                stored = ledger.store_exchanges(conn, rows)
                ledger.store_reports(conn, [r for a, r in reports.items() if a in stored])
            return stored

        stored: set[str] = self.gate.call(store)
        return stored & reports.keys()

    def store_offline(
        self, written: list[tuple[PendingReport, dict[str, Any], list[Finding]]]
    ) -> None:
        """A page of offline reports (no answer, no cost): every row in one transaction,
        the kids' claims released in it."""
        model = self.rows.model
        rows = [
            {**self.rows.report_row(item, report, None, model, findings), **FREE_USAGE}
            for item, report, findings in written
        ]

        def store() -> None:
            with self.engine.begin() as conn:
                ledger.store_reports_grouped(conn, rows)
                self.keeper.release_in(conn, [row["kid_id"] for row in rows])

        self.gate.call(store)

    def _storing(self, answers: list[AnswerRows], grouped: bool = False) -> Callable[[], None]:
        """A transaction storing `answers`: ledger rows, the accepted reports, their claims
        released."""
        reports = [answer.report for answer in answers if answer.report is not None]

        def store() -> None:
            with self.engine.begin() as conn:
                if grouped:
                    ledger.store_exchanges_grouped(conn, [answer.ledger for answer in answers])
                    ledger.store_reports_grouped(conn, reports)
                else:
                    for answer in answers:
                        ledger.store_exchange(conn, answer.ledger)
                    for report in reports:
                        ledger.store_report(conn, report)
                self.keeper.release_in(conn, [report["kid_id"] for report in reports])

        return store

    # --- the spool --------------------------------------------------------------------

    def spool_many(self, answers: list[AnswerRows]) -> None:
        """Paid answers to the spool file, one fsync for all of them."""
        lines = []
        for answer in answers:
            entry: dict[str, Any] = {"ledger": answer.ledger}
            if answer.report is not None and answer.exchange.report is not None:
                # As the model wrote it (placeholder, no nickname): named again on replay.
                entry["report"] = {**answer.report, "report": answer.exchange.report.model_dump()}
            lines.append(entry)
        self.spool.append_many(lines)
        with self._lock:
            self.unstored += len(lines)

    def _spool_or_say(self, paid: list[AnswerRows]) -> bool:
        """Paid answers to the spool file before anything else; False if the disk failed
        too (said in the log: those answers are lost)."""
        try:
            self.spool_many(paid)
        except Exception as exc:
            self.log.error(f"{len(paid)} paid answers could not be spooled: {exc}")
            return False
        return True

    def _stored_from_spool(self, count: int) -> None:
        with self._lock:
            self.unstored -= count

    def kept_note(self) -> str:
        if not self.unstored:
            return "Every answer received is stored"
        return (
            f"{self.unstored} paid answers are kept in {self.spool.path}; the next "
            "gold run on this warehouse stores them before asking for anything"
        )

    def finish(self) -> None:
        """Drop the spool file once everything in it reached the warehouse."""
        if self.spool.entries and not self.unstored:
            self.spool.discard()


def replay_spool(
    engine: Engine, src: Sources, spool_dir: Path, warehouse_id: str, log: dg.DagsterLogManager
) -> int:
    """Store the answers earlier runs could not (their spool files), before planning: they
    may be the very reports this run would otherwise pay for again."""
    stored = 0
    for path in spool.pending_files(spool_dir, warehouse_id):
        taken = spool.take(path)
        if taken is None:
            continue
        try:
            stored += _replay_file(engine, src, taken)
        except BaseException:
            taken.rename(path)  # kept for the next run
            raise
        taken.unlink()
    if stored:
        log.info(f"stored {stored} paid answers kept in the spool by an earlier run")
    return stored


def _replay_file(engine: Engine, src: Sources, path: Path) -> int:
    stored = 0
    for entry in spool.read_entries(path):
        with engine.begin() as conn:
            _replay_entry(conn, src, entry)
        stored += 1
    return stored


def _replay_entry(conn: Connection, src: Sources, entry: dict[str, Any]) -> None:
    ledger.store_exchange(conn, _from_spool(entry["ledger"]))
    report = entry.get("report")
    if report:
        report = _from_spool(report)
        names = nicknames(conn, src, [report["kid_id"]])
        report["report"] = personalise(report["report"], names.get(report["kid_id"]))
        ledger.store_report(conn, report, replace=False)


def _from_spool(entry: dict[str, Any]) -> dict[str, Any]:
    """A spooled row with its dates back as dates."""
    row = dict(entry)
    row["week_start"] = dt.date.fromisoformat(row["week_start"])
    for key in ("received_at", "generated_at"):
        if isinstance(row.get(key), str):
            row[key] = dt.datetime.fromisoformat(row[key])
    return row
