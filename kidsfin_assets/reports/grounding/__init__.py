"""The grounding gate: is everything a report states true of the week's data?

- `checker`: reads a report's text against the data block (`check_report`, `Finding`);
- `canonical`: the prompt's one form of each sentence, read whole and checked exactly first
  (a report wholly in them, and true, needs no general reading);
- `facts`: what a report may state about one data block, computed once (`Facts`);
- `reading`: a text's sentences, clauses and the numbers it states;
- `vocabulary`: the words it reads (categories, subjects, metrics, directions, units);
- `spelled`: numbers written in words, read as figures;
- `closed`: the closed world: what a sentence claims that no check read is `unverifiable`;
- `forms`: a goal's state said apart from its label, a count from one week's level to another.
"""

from kidsfin_assets.reports.grounding.checker import (
    Finding,
    check_report,
    describe_findings,
    report_texts,
)
from kidsfin_assets.reports.grounding.facts import Facts, build_facts, facts_for

__all__ = [
    "Facts",
    "Finding",
    "build_facts",
    "check_report",
    "describe_findings",
    "facts_for",
    "report_texts",
]
