"""The Batch API as a way of asking (`batches.WeekBatches` does the API's part): collect
what the week's finished batches answered, each line judged like a sync answer and stored a
chunk at a time, then submit the kids still without a report. Nothing is in flight twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import openai

from kidsfin_assets.reports import batches, ledger
from kidsfin_assets.reports.answers import Exchange, ReportError
from kidsfin_assets.reports.asking import AskingParts, grounding_for
from kidsfin_assets.reports.openai_client import ReportSession
from kidsfin_assets.reports.planning import PendingReport, wanted


class BatchAsking:
    """Collects and submits one week's batches."""

    api_used = "batch"
    claims_pages = False  # a batch claims its own kids, for as long as it is open

    def __init__(
        self,
        parts: AskingParts,
        session: ReportSession,
        client: openai.OpenAI,
        run_id: str,
        warehouse_id: str,
        max_attempts: int,
    ) -> None:
        self.parts, self.session, self.max_attempts = parts, session, max_attempts
        week = parts.week
        self.batches = batches.WeekBatches(
            client,
            session,
            parts.engine,
            week.key,
            week.start,
            run_id,
            parts.log,
            parts.keeper.owner,
            warehouse_id,
        )

    def ask(self, pages: Iterable[list[PendingReport]]) -> list[PendingReport]:
        items = {item.kid_id: item for page in pages for item in page}  # a batch takes the week
        self.batches.collect(lambda lines: self._record_lines(items, lines))
        unanswered = self._unanswered(items)
        if unanswered:
            # A generator: each kid's prompt is built as its line is written to a file.
            lines = (
                (kid, item.input_hash, self.parts.prompt.messages(item.metrics))
                for kid, item in unanswered.items()
            )
            created = self.batches.submit(lines)
            if created:
                self.parts.log.info(
                    f"week {self.parts.week.key}: submitted batches {', '.join(created)}"
                )
        with self.parts.engine.connect() as conn:
            recorded = batches.week_batches(conn, self.parts.week.start)
            held = ledger.claimed_by_batches(conn, self.parts.week.start)
        # Held back by the model's queue budget: submitted by a later run, not failed.
        self.parts.tally.waiting_in_batches(
            recorded, len(set(held) & set(items)), len(set(unanswered) - set(held))
        )
        return []

    def close(self) -> None:
        self.session.close()

    def _record_lines(
        self, items: dict[int, PendingReport], lines: list[batches.ResultLine]
    ) -> None:
        """A chunk of batch result lines: each judged like a sync answer, then every
        ledger row and report of the chunk stored in one transaction (a batch's answers
        stay in its output file, so a chunk lost to a crash is read again, not lost)."""
        recorder = self.parts.recorder
        judged = [self._judge_line(items, line) for line in lines]
        stored = recorder.store_lines([recorder.answer_rows(*pair) for pair in judged])
        self.parts.tally.written_many(len(stored))

    def _judge_line(
        self, items: dict[int, PendingReport], line: batches.ResultLine
    ) -> tuple[PendingReport, Exchange]:
        item = items.get(line.kid_id)
        if item is None or item.input_hash != line.input_hash:
            # Answered for inputs that changed since (or a kid already reported): paid for,
            # so recorded, but it is not this week's report.
            stale = PendingReport(line.kid_id, item.metrics if item else {}, line.input_hash)
            return stale, dataclasses.replace(line.exchange, report=None)
        return item, self.session.judge(line.exchange, grounding_for(item))

    def _unanswered(self, items: dict[int, PendingReport]) -> dict[int, PendingReport]:
        """Kids still without a report for their input, within the retry budget; those
        whose attempts are spent fail (their last ungrounded answer, if any, is kept)."""
        done = self.parts.keeper.reported(items)
        with self.parts.engine.connect() as conn:
            tried = ledger.attempts(conn, self.parts.week.start, wanted(items.values()))
        left = {}
        for kid, item in items.items():
            if kid in done:
                continue
            if tried.get(kid, 0) >= self.max_attempts:
                failure = ReportError(f"no answer after {tried[kid]} attempts")
                self.parts.tally.failed(kid, failure)
                continue
            left[kid] = item
        return left
