"""Exports streamed a page at a time: the JSON document is what it always was, JSON Lines is
an option, a file is whole or absent, and each week of a ranged run is its own file with its
own metadata (real Dagster runs on PostgreSQL; object stores: test_exports_s3.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import random
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from kidsfin_assets.config.settings import SettingsError
from kidsfin_assets.definitions import build_definitions
from kidsfin_assets.defs.assets import exports
from kidsfin_assets.defs.resources import Settings, load_settings
from kidsfin_assets.exports.export_formats import Listing, pretty_json, write_json_document
from kidsfin_assets.warehouse import db
from kidsfin_assets_tests.helpers import export_dir, materialize_week, use_database
from kidsfin_demo import DemoSpec, generate

END = dt.date(2026, 3, 16)
# The demo's first three weeks: a kid starts in the third, so the weeks' kids differ.
WEEKS = [(END - dt.timedelta(weeks=i)).isoformat() for i in (4, 3, 2)]
W = WEEKS[-1]
ANALYSIS = "exports/kids_analysis_json"
ANALYSIS_NODE = "exports__kids_analysis_json"
UPSTREAM = "group:raw or group:silver"


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Settings:
    """12 kids over five weeks, raw and silver materialised for the first three."""
    settings = use_database(monkeypatch, pg_url)
    engine = db.create_engine(settings.warehouse.database_url)
    generate(engine, settings.sources, DemoSpec(kids=12, weeks=5, end_week=END, seed=7))
    engine.dispose()
    result = run_range(settings, UPSTREAM, WEEKS[0], WEEKS[-1])
    assert result.success
    return settings


def run_range(settings: Settings, selection: str, first: str, last: str) -> Any:
    """One run over a partition range, as a backfill launches a single-run asset."""
    job = dg.define_asset_job("range_run", selection=selection)
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("range_run").execute_in_process(
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
    )


def metadata_by_week(result: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in result.asset_materializations_for_node(ANALYSIS_NODE):
        assert event.partition not in found, "one materialisation per week"
        found[event.partition] = {k: v.value for k, v in event.metadata.items()}
    return found


def analysis_file(settings: Settings, week: str, ext: str = "json") -> Path:
    return export_dir(settings) / f"kids_analysis_{week}.{ext}"


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "generated_at"}


@pytest.mark.parametrize("sizes", [[], [0], [1], [2, 0, 3], [5]])
def test_the_streamed_document_is_byte_for_byte_json_dump(sizes: list[int]) -> None:
    """Pages (empty ones too) written as they come: the text json.dump wrote from the whole
    document, which the exports built in memory before."""
    item = {
        "kid_id": 7,
        "nickname": 'Bông "bé" [] {}',
        "spending_by_category": {"ăn vặt": 12000.5, "đồ chơi": 0},
        "savings_goals": [{"title": "xe đạp", "progress_percent": 40}, {}],
        "empty": [],
        "savings_rate": None,
        "when": dt.date(2026, 3, 16),
    }
    pages = [[{**item, "kid_id": i} for i in range(n)] for n in sizes]
    total = sum(sizes)
    header = {"generated_at": "2026-03-23T01:02:03+00:00", "week_start": W, "total_kids": total}
    expected = io.StringIO()
    whole = {**header, "kids": [kid for page in pages for kid in page]}
    json.dump(whole, expected, ensure_ascii=False, indent=2, default=str)
    sink = io.BytesIO()
    assert write_json_document(sink, Listing(header, "kids", total, pages)) == total
    assert sink.getvalue().decode() == expected.getvalue()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    leaves = [
        lambda: rng.choice(["", "Bông", 'a "quoted" \\ line\n\t', "\x00\x1f\u2028 ✓", "[]"]),
        lambda: rng.randint(-(10**20), 10**20),
        lambda: rng.choice([0.1, -2.5e-07, 1e22, 3.0, float("nan"), float("inf"), -0.0]),
        lambda: rng.choice([None, True, False]),
        lambda: rng.choice(
            [dt.date(2026, 3, 16), decimal.Decimal("1.20"), dt.datetime(2026, 1, 1)]
        ),
    ]
    if depth > 3 or rng.random() < 0.5:
        return rng.choice(leaves)()
    if rng.random() < 0.5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["kid_id", "ăn vặt", "", "a b", 'q"k', 1, 2.5, True, None]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def test_the_fast_encoder_writes_what_json_dumps_writes() -> None:
    """pretty_json replaces json's pure-Python indenting encoder (a generator a token, most
    of an export's time): the same text for any value an export can hold, and more."""
    rng = random.Random(20261207)
    for _ in range(3000):
        value = _random_value(rng)
        expected = json.dumps(value, ensure_ascii=False, indent=2, default=str)
        assert pretty_json(value) == expected, value
        assert pretty_json(value, "\n    ") == expected.replace("\n", "\n    ")
    with pytest.raises(TypeError):
        pretty_json({(1, 2): 3})


def test_a_ranged_run_writes_each_week_with_its_own_metadata(demo: Settings) -> None:
    """Issue 21: the range's run recorded one result on every week (the file of its last
    week). Each week now has its file, and the metadata its single-week run records."""
    ranged = run_range(demo, ANALYSIS, WEEKS[0], WEEKS[-1])
    assert ranged.success
    by_week = metadata_by_week(ranged)
    assert sorted(by_week) == WEEKS
    documents = {w: json.loads(analysis_file(demo, w).read_text()) for w in WEEKS}
    for week in WEEKS:
        assert by_week[week]["path"] == str(analysis_file(demo, week))
        assert documents[week]["week_start"] == week
        assert by_week[week]["dagster/row_count"] == documents[week]["total_kids"]
    assert len({m["dagster/row_count"] for m in by_week.values()}) > 1  # the weeks differ
    for week in WEEKS:
        single = materialize_week(demo, week, selection=ANALYSIS)
        assert metadata_by_week(single) == {week: by_week[week]}
        again = json.loads(analysis_file(demo, week).read_text())
        assert without_time(again) == without_time(documents[week])


def test_pages_make_the_same_file_as_one_read(
    demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kids read 5 at a time (three pages, the last one short) give the file read in one
    page; its text is the document's own json.dump (nothing else on the way)."""
    assert materialize_week(demo, W, selection=ANALYSIS).success
    whole = json.loads(analysis_file(demo, W).read_text())
    monkeypatch.setattr(exports, "PAGE_KIDS", 5)
    assert materialize_week(demo, W, selection=ANALYSIS).success
    text = analysis_file(demo, W).read_text()
    paged = json.loads(text)
    assert without_time(paged) == without_time(whole)
    assert paged["total_kids"] == len(paged["kids"]) > 10
    assert [k["kid_id"] for k in paged["kids"]] == sorted(k["kid_id"] for k in paged["kids"])
    assert text == json.dumps(paged, ensure_ascii=False, indent=2)


def test_json_lines_hold_the_documents_kids_one_a_line(demo: Settings) -> None:
    """`exports.format: jsonl` (a launchpad override): `.jsonl`, a kid a line, the same
    objects as the document's list; the row count in the metadata."""
    assert materialize_week(demo, W, selection=ANALYSIS).success
    document = json.loads(analysis_file(demo, W).read_text())
    config = {"export_dir": str(export_dir(demo)), "format": "jsonl"}
    override = {"resources": {"exports": {"config": config}}}
    result = materialize_week(demo, W, selection=ANALYSIS, run_config=override)
    assert result.success
    lines = analysis_file(demo, W, "jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == document["kids"]
    assert all("\n" not in line and line.startswith('{"kid_id":') for line in lines)
    meta = metadata_by_week(result)[W]
    assert meta["format"] == "jsonl" and meta["dagster/row_count"] == len(lines)
    assert meta["path"] == str(analysis_file(demo, W, "jsonl"))


def test_a_failure_mid_stream_leaves_the_old_file_whole(
    demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the row stream after a page was written: the run fails, the old file is
    untouched and no temporary file is left beside it."""
    assert materialize_week(demo, W, selection=ANALYSIS).success
    before = analysis_file(demo, W).read_bytes()
    monkeypatch.setattr(exports, "PAGE_KIDS", 4)
    pages_read = []
    real = exports._analysis_items

    def failing(*args: Any) -> Any:
        pages_read.append(1)
        if len(pages_read) == 3:
            raise RuntimeError("injected: the warehouse went away mid-export")
        return real(*args)

    monkeypatch.setattr(exports, "_analysis_items", failing)
    result = materialize_week(demo, W, selection=ANALYSIS, raise_on_error=False)
    assert not result.success
    assert len(pages_read) == 3
    assert analysis_file(demo, W).read_bytes() == before
    assert sorted(p.name for p in export_dir(demo).iterdir()) == [f"kids_analysis_{W}.json"]


def test_a_count_that_disagrees_with_the_rows_writes_no_file(
    demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header's count comes first; should the rows read differ from it, the document
    would lie, so it is not completed (the week's old file stays)."""
    monkeypatch.setattr(exports, "count_rows", lambda *args: 999)
    result = materialize_week(demo, W, selection=ANALYSIS, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "999 kids counted but" in str(failure.event_specific_data)
    assert not export_dir(demo).exists() or not list(export_dir(demo).iterdir())


def test_an_override_of_the_format_alone_keeps_the_configured_folder(demo: Settings) -> None:
    """The folder a run's config leaves out is the configured one (its launchpad default),
    not the class's: a bucket's files never go to the project's disk instead. (It was
    refused before, when Dagster filled it from the class.)"""
    override = {"resources": {"exports": {"config": {"format": "jsonl"}}}}
    result = materialize_week(demo, W, selection=ANALYSIS, run_config=override)
    assert result.success
    assert [p.name for p in export_dir(demo).iterdir()] == [f"kids_analysis_{W}.jsonl"]
    assert metadata_by_week(result)[W]["path"] == str(analysis_file(demo, W, "jsonl"))


def test_a_bad_format_fails_the_run_naming_it(demo: Settings) -> None:
    config = {"export_dir": str(export_dir(demo)), "format": "xml"}
    override = {"resources": {"exports": {"config": config}}}
    result = materialize_week(
        demo, W, selection=ANALYSIS, run_config=override, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert "exports.format: 'xml' is not an export format (json or jsonl)" in str(
        failure.event_specific_data
    )


def test_the_format_setting_is_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIDSFIN_EXPORTS__FORMAT", "xml")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        "exports.format: 'xml' is not an export format (json or jsonl) "
        "(from environment variable KIDSFIN_EXPORTS__FORMAT)"
    )
    monkeypatch.setenv("KIDSFIN_EXPORTS__FORMAT", "jsonl")
    assert load_settings().exports.format == "jsonl"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://files.example/exports", "ftp:// is not a supported store"),
        ("s3://AKIAEXAMPLE:wJalr-s3cret@bucket/exports", "must not hold credentials"),
        ("s3://bucket/exports?secret_key=wJalr-s3cret", "takes no options"),
        ("s3:///exports", "names no bucket"),
    ],
)
def test_an_unusable_export_url_stops_start_up_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("KIDSFIN_EXPORTS__EXPORT_DIR", value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "export_dir" in str(error.value) and says in str(error.value)
    assert "s3cret" not in str(error.value)


def test_an_export_url_is_kept_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL is not a path under the project: the resource gets it as it is."""
    monkeypatch.setenv("KIDSFIN_EXPORTS__EXPORT_DIR", "s3://kidsfin-exports/weekly")
    settings = load_settings()
    assert settings.exports.export_dir == "s3://kidsfin-exports/weekly"
    exports = build_definitions(settings).resources["exports"]
    assert exports.data == {"export_dir": "s3://kidsfin-exports/weekly"}  # format: its default
