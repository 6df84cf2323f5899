"""The offline writer as a way of asking: each report from rules (`offline_writer`), held
to the same grounding gate as a model's, at no cost."""

from __future__ import annotations

from collections.abc import Iterable

from kidsfin_assets.reports.asking import AskingParts, grounding_for
from kidsfin_assets.reports.offline_writer import offline_report
from kidsfin_assets.reports.planning import PendingReport
from kidsfin_assets.reports.report_schema import personalise
from kidsfin_assets.reports.rows import FREE_USAGE


class OfflineAsking:
    """Writes every kid's report by rules."""

    api_used = "offline"
    claims_pages = False

    def __init__(self, parts: AskingParts) -> None:
        self.parts = parts

    def ask(self, pages: Iterable[list[PendingReport]]) -> list[PendingReport]:
        for page in pages:
            first = self.parts.tally.next_indices(len(page))
            for index, item in enumerate(page, first):
                self.parts.tally.announce_group(index)
                self._write(item)
        return []

    def close(self) -> None:
        """Nothing in flight."""

    def _write(self, item: PendingReport) -> None:
        report = offline_report(item.metrics)
        findings = grounding_for(item)(report)  # the rules are held to the same standard
        self.parts.recorder.store_offline(item, personalise(report, item.name), findings)
        if findings:
            self.parts.tally.ungrounded(item.kid_id, findings)
        else:
            self.parts.tally.written(item.kid_id, FREE_USAGE)
