"""The grounding gate, and the offline writer's reports put through it a chunk at a time.

Kept free of the database and of Dagster's objects: `offline_chunk` is what the offline
writer's worker processes run (`offline_asking.py`), and a worker should import no more
than the rules, the checker and the prompt's data block."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kidsfin_assets.reports.grounding import Finding, check_report
from kidsfin_assets.reports.grounding.facts import build_facts
from kidsfin_assets.reports.offline_writer import report_of_data
from kidsfin_assets.reports.prompt import prompt_data
from kidsfin_assets.reports.report_schema import KidWeeklyReport, personalise

Grounding = Callable[[KidWeeklyReport], list[Finding]]


def grounding_of_metrics(metrics: dict[str, Any]) -> Grounding:
    """A report against exactly the data the model was given (`asking.grounding_for` is the
    gate every way of asking holds a kid's report to)."""
    return grounding_of_data(prompt_data(metrics))


def grounding_of_data(data: dict[str, Any]) -> Grounding:
    """`grounding_of_metrics` of the data block itself (`prompt_data(metrics)`)."""
    facts = build_facts(data)  # once a kid, not once a check
    return lambda report: check_report(report, facts)


def offline_chunk(
    kids: list[tuple[dict[str, Any], str | None]],
) -> list[tuple[dict[str, Any], list[Finding]]]:
    """For each (metrics, nickname): the offline writer's report, named, and what the
    grounding gate found in it (the rules are held to the same standard as a model)."""
    written = []
    for metrics, name in kids:
        data = prompt_data(metrics)  # once a kid: the rules and the gate read the same block
        report = report_of_data(data)
        findings = grounding_of_data(data)(report)
        written.append((personalise(report, name), findings))
    return written
