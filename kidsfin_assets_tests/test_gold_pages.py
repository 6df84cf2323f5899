"""Gold reads silver a page of kids at a time (memory flat in the number of kids): every
kid is still planned, claimed, written and paid for once, whichever page it is on and
however many runs share the week. Real PostgreSQL, real HTTP, real Dagster runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kidsfin_assets.reports import report_writer
from kidsfin_assets_tests.helpers import gold_twice_at_once, materialize_week
from kidsfin_assets_tests.test_gold_reports import W, gold_meta, reports, setup_week

PAGE = 10  # max(PAGE_KIDS, 10 x max_concurrent) with PAGE_KIDS 4 and one request in flight


@pytest.fixture
def pages_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Small pages, and the size of every page gold reads."""
    monkeypatch.setattr(report_writer, "PAGE_KIDS", 4)
    sizes: list[int] = []
    read = report_writer.silver_pages

    def counted(*args, **kwargs) -> Iterator[list[dict]]:
        for page in read(*args, **kwargs):
            sizes.append(len(page))
            yield page

    monkeypatch.setattr(report_writer, "silver_pages", counted)
    return sizes


def test_a_week_of_several_pages_is_written_and_paid_once(
    monkeypatch, pg_url, server, pages_read
) -> None:
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        25,
        KIDSFIN_OPENAI__MAX_CONCURRENT="1",
    )
    result = materialize_week(settings, W, selection="group:gold")
    assert result.success
    assert pages_read == [PAGE, PAGE, 5]
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert server.stats.ok == 25
    meta = gold_meta(result)
    assert meta["reports_written"] == 25 and meta["reports_reused"] == 0

    pages_read.clear()
    again = materialize_week(settings, W, selection="group:gold")
    assert again.success and pages_read == [PAGE, PAGE, 5]
    assert gold_meta(again)["reports_reused"] == 25
    assert server.stats.ok == 25  # nothing asked twice


@pytest.mark.timeout(240)
def test_two_runs_of_a_week_of_several_pages_at_once_pay_once(
    monkeypatch, pg_url, server, pages_read
) -> None:
    """Both runs go through the pages in kid order: the later one finds the first pages
    claimed, waits for them and takes pages the first has not reached."""
    server.configure(latency=0.2)
    kids = 40
    settings, ids = setup_week(
        monkeypatch, pg_url, server, kids, KIDSFIN_OPENAI__MAX_CONCURRENT="1"
    )
    results = gold_twice_at_once(settings, W)
    assert server.stats.ok == kids  # answers paid ÷ reports = 1.00
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    metas = [gold_meta(r) for r in results]
    # Each kid written by one run, the other counting it as written by another run.
    assert sum(m["reports_written"] for m in metas) == kids
