"""The rows a week's answers become: a ledger row for every exchange, a report row for an
accepted answer (or one kept for review), as the warehouse stores them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from kidsfin_assets.reports.answers import ACCEPTED, Exchange
from kidsfin_assets.reports.grounding import Finding
from kidsfin_assets.reports.planning import PendingReport
from kidsfin_assets.reports.report_schema import personalise

FREE_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}


@dataclass(frozen=True)
class RowMaker:
    """Builds one week's rows; every row of a run carries the same week, run and writer."""

    week_start: dt.date
    run_id: str
    model_requested: str  # the configured model (what the ledger says was asked for)
    model: str  # what a report without an answer's own model names: offline-rules or it
    prompt_version: str
    writer_name: str  # each row's `writer`: openai or offline

    def ledger_row(self, item: PendingReport, exchange: Exchange) -> dict[str, Any]:
        return {
            "answer_id": exchange.answer_id,
            "week_start": self.week_start,
            "kid_id": item.kid_id,
            "input_hash": item.input_hash,
            "run_id": self.run_id,
            "outcome": exchange.outcome,
            "model_requested": self.model_requested,
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

    def report_row(
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
            "week_start": self.week_start,
            "kid_id": item.kid_id,
            "report": report,
            "model": model,
            "prompt_version": self.prompt_version,
            "input_hash": item.input_hash,
            "writer": self.writer_name,
            "generated_at": dt.datetime.now(dt.UTC),
            "answer_id": answer_id,
        }

    def answer_report_row(
        self, item: PendingReport, exchange: Exchange, findings: list[Finding] | None = None
    ) -> dict[str, Any]:
        """The report row of an answer's report, named (the nickname filled in)."""
        assert exchange.report is not None
        named = personalise(exchange.report, item.name)
        model = exchange.model_answered or self.model
        return self.report_row(item, named, exchange.answer_id, model, findings)

    def rows_of(
        self, item: PendingReport, exchange: Exchange
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The exchange's ledger row, and its report row if it was accepted."""
        report = None
        if exchange.report is not None and exchange.outcome == ACCEPTED:
            report = self.answer_report_row(item, exchange)
        return self.ledger_row(item, exchange), report
