"""The Batch API as a way of asking (`batches.WeekBatches` does the API's part): collect
what the week's finished batches answered, each line judged like a sync answer and stored a
chunk at a time, then submit the kids still without a report. Nothing is in flight twice.

Memory does not grow with the week. With batches to collect, the pages handed over are
only counted; a chunk of result lines is matched against its own kids' plan (read when the
chunk is), and the kids to submit are the week planned again a page at a time. With none,
the pages handed over are the kids to submit. Either way they stream into the staged
files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import openai

from kidsfin_assets.reports import batches, ledger
from kidsfin_assets.reports.answers import Exchange, ReportError
from kidsfin_assets.reports.asking import AskingParts, grounding_for
from kidsfin_assets.reports.openai_client import ReportSession
from kidsfin_assets.reports.planning import PendingReport, wanted

# The week planned again, a page at a time (not counted by the tally), and the plan of some
# kids: those of them still needing a report, by kid (`WeekReportWriter` provides both).
Replan = Callable[[], Iterator[list[PendingReport]]]
PlanKids = Callable[[list[int]], dict[int, PendingReport]]


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
        replan: Replan,
        plan_kids: PlanKids,
    ) -> None:
        self.parts, self.session, self.max_attempts = parts, session, max_attempts
        self.replan, self.plan_kids = replan, plan_kids
        self.unanswered = 0  # kids found without a report in this run's last pass
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
        with self.parts.engine.connect() as conn:
            collecting = bool(batches.open_batches(conn, self.parts.week.start))
        if collecting:
            for _page in pages:  # planned and counted by the tally; the week is not kept
                if self.parts.cancel.is_set():
                    return []
            self.batches.collect(self._record_lines)
            pages = self.replan()  # what the batches answered is reported now
        # Generators: each kid's prompt is built as its line is written to a file.
        unanswered = self._unanswered_pages(pages)
        lines = (
            (item.kid_id, item.input_hash, self.parts.prompt.messages(item.metrics))
            for page in unanswered
            for item in page
        )
        created = self.batches.submit(lines)
        for _page in unanswered:  # the queue was full: the rest counted, not submitted
            pass
        if created:
            week = self.parts.week.key
            self.parts.log.info(f"week {week}: submitted batches {', '.join(created)}")
        with self.parts.engine.connect() as conn:
            recorded = batches.week_batches(conn, self.parts.week.start)
            held = ledger.pending_in_batches(conn, self.parts.week.start)
        # Held back by the model's queue budget: submitted by a later run, not failed.
        self.parts.tally.waiting_in_batches(recorded, held, max(0, self.unanswered - held))
        return []

    def close(self) -> None:
        self.session.close()

    def _record_lines(self, lines: list[batches.ResultLine]) -> None:
        """A chunk of batch result lines: each judged like a sync answer, then every
        ledger row and report of the chunk stored in one transaction (a batch's answers
        stay in its output file, so a chunk lost to a crash is read again, not lost). The
        chunk's kids are planned now, in one read: never the week's plan in memory."""
        recorder = self.parts.recorder
        items = self.parts.gate.call(lambda: self.plan_kids([line.kid_id for line in lines]))
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

    def _unanswered_pages(
        self, pages: Iterable[list[PendingReport]]
    ) -> Iterator[list[PendingReport]]:
        """Of each page the kids still without a report for their input, within the retry
        budget; those whose attempts are spent fail (their last ungrounded answer, if any,
        is kept)."""
        self.unanswered = 0
        for page in pages:
            if self.parts.cancel.is_set():
                return
            items = {item.kid_id: item for item in page}
            done = self.parts.keeper.reported(items)
            with self.parts.engine.connect() as conn:
                tried = ledger.attempts(conn, self.parts.week.start, wanted(page))
            left = []
            for item in page:
                kid = item.kid_id
                if kid in done:
                    continue
                if tried.get(kid, 0) >= self.max_attempts:
                    failure = ReportError(f"no answer after {tried[kid]} attempts")
                    self.parts.tally.failed(kid, failure)
                    continue
                left.append(item)
            self.unanswered += len(left)
            if left:
                yield left
