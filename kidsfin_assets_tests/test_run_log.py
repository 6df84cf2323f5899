"""The run log says what happened, in words a reader takes at face value: checked on the
messages a real run leaves in its event log (what the UI's run log shows)."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from kidsfin_assets.reports.report_writer import WeekOutcome, start_line
from kidsfin_assets_tests.helpers import SourceDB, materialize_week, use_database

W = "2026-03-16"


def messages(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """The run's log lines (not Dagster's own events)."""
    return [e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None]


def only(lines: list[str], pattern: str) -> str:
    (line,) = [m for m in lines if re.search(pattern, m)]
    return line


@pytest.fixture
def ten_kids(monkeypatch: pytest.MonkeyPatch, sqlite_url: str):
    settings = use_database(monkeypatch, sqlite_url)
    source = SourceDB(settings)
    source.kids(*((k, f"kid {k}") for k in range(1, 11)))
    source.txns(
        *((k, k, "2026-03-17 10:00", "income", None, 50000) for k in range(1, 11)),
        (11, 99, "2026-03-17 11:00", "income", None, 1000),  # no such kid
        (12, 1, "2026-03-17 12:00", "refund", None, 1000),  # unknown kind
        (13, 1, None, "income", None, 1000),  # no time: no week's
    )
    source.events((1, 1, "2026-03-18 08:00", "login"))
    return settings


def test_a_small_week_logs_its_own_counts_in_plain_lines(ten_kids) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_week(ten_kids, W, instance=instance)
        assert result.success
        lines = messages(instance, result)
        again = materialize_week(ten_kids, W, selection="group:gold", instance=instance)
        rerun = messages(instance, again)

    # Raw: a readable line, no Python dict or Counter.
    raw = only(lines, rf"^week {W}: \d+ rows read")
    assert raw == (
        f"week {W}: 13 rows read, 11 valid (10 transactions, 1 app events), "
        "2 quarantined (orphan_kid 1, unknown_kind 1)"
    )
    assert not any(re.search(r"[{}]|Counter\(", m) for m in lines if "rows read" in m)
    assert only(lines, "rows without a time").startswith(
        "rows without a time, in no week, quarantined as missing_time: transactions 1"
    )
    # Gold: no page size for a week of one page, progress in groups of kids (not
    # "batches", which read as the Batch API), and what was written, once it was.
    start = only(lines, rf"^week {W}: 10 kids")
    assert start == f"week {W}: 10 kids (offline, offline-rules)"
    assert not any("at a time" in m or "5000" in m or "5,000" in m for m in lines)
    assert "Processing kids 1-10 of 10 (group 1/1)" in lines
    assert not any("Processing batch" in m for m in lines)
    assert only(lines, "already had a report") == (
        f"week {W}: 0 of 10 kids already had a report for their inputs (reused); of the 10 "
        "that needed one, 10 written, 0 written by another run, 0 kept for review, 0 failed"
    )
    assert only(rerun, "already had a report") == (
        f"week {W}: 10 of 10 kids already had a report for their inputs (reused); of the 0 "
        "that needed one, 0 written, 0 written by another run, 0 kept for review, 0 failed"
    )
    assert not any("needed writing" in m for m in lines + rerun)


def test_a_week_of_several_pages_says_its_page_size(monkeypatch: pytest.MonkeyPatch) -> None:

    line = start_line(W, WeekOutcome(silver_rows=12_001), "openai", "gpt-4o-mini", 5000)
    assert (
        line
        == f"week {W}: 12001 kids (openai, gpt-4o-mini); read and claimed in 3 pages of 5,000 kids"
    )
