"""The ways of asking for a week's reports, behind one interface: the offline rules, the
OpenAI client (an event loop) and the Batch API. The week's orchestrator
(`report_writer.WeekReportWriter`) hands each way its pages of kids and never looks inside;
each way works through the parts it is given (`AskingParts`), by their public methods."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import dagster as dg
from sqlalchemy.engine import Engine

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.reports.answers import FatalApiError, UngroundedAnswer
from kidsfin_assets.reports.claims_keeper import ClaimsKeeper
from kidsfin_assets.reports.grounded import Grounding, grounding_of_metrics
from kidsfin_assets.reports.planning import PendingReport
from kidsfin_assets.reports.prompt import Prompt
from kidsfin_assets.reports.recorder import Recorder
from kidsfin_assets.reports.tally import WeekTally
from kidsfin_assets.warehouse.outage import WarehouseGate, WarehouseUnavailable


class WayOfAsking(Protocol):
    """How a week's kids are asked for."""

    # The API the week's reports went through (gold's `mode` metadata): offline, sync or batch.
    api_used: str
    # Whether the orchestrator claims each page before handing it over. The Batch API
    # claims its kids itself, for its batch (26 h), not for this run.
    claims_pages: bool

    def ask(self, pages: Iterable[list[PendingReport]]) -> list[PendingReport]:
        """Ask for every kid of `pages` (claimed, if `claims_pages`), counting what became
        of each in the tally; returns the kids not asked because their claim's lease ran
        out (the orchestrator claims them again)."""
        ...

    def close(self) -> None:
        """Wait for what is in flight (paid answers are recorded), then let go of clients.
        Called once asking is over, and again safely."""
        ...


@dataclass(frozen=True)
class AskingParts:
    """What every way of asking is given: one week's parts, shared with the orchestrator."""

    week: Week
    prompt: Prompt
    engine: Engine
    gate: WarehouseGate
    keeper: ClaimsKeeper
    recorder: Recorder
    tally: WeekTally
    cancel: threading.Event  # set: the run is stopping, nothing new starts
    log: dg.DagsterLogManager


def grounding_for(item: PendingReport) -> Grounding:
    """The grounding gate for `item`: its report against exactly the data the model was given."""
    return grounding_of_metrics(item.metrics)


def settle_error(parts: AskingParts, item: PendingReport, exc: Exception) -> None:
    """What becomes of a kid whose asking ended in an error (the event loop)."""
    if isinstance(exc, UngroundedAnswer):  # retries spent, every answer ungrounded
        _keep_ungrounded(parts, item, exc)
        return
    parts.tally.failed(item.kid_id, exc)  # retries spent, or a bug: the week goes on
    if isinstance(exc, FatalApiError):
        parts.tally.stop(str(exc))
    elif isinstance(exc, WarehouseUnavailable):
        parts.tally.stop(f"{exc}. {parts.recorder.kept_note()}")


def _keep_ungrounded(parts: AskingParts, item: PendingReport, exc: UngroundedAnswer) -> None:
    exchange = exc.exchange
    if exchange is None or exchange.report is None:
        parts.tally.failed(item.kid_id, exc)
        return
    parts.recorder.keep_ungrounded(item, exchange, exc.findings)
    parts.tally.ungrounded(item.kid_id, exc.findings)
