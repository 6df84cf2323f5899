"""Gold through OpenAI's Batch API (and flex processing), against the suite's server's
Files and Batches APIs over real HTTP, with real Dagster runs on PostgreSQL."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
import sqlalchemy as sa

from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.definitions import run_resources
from kidsfin_assets.defs.batch_sensor import openai_batch_sensor
from kidsfin_assets.llm.pricing import load_prices
from kidsfin_assets.reports import batches, ledger
from kidsfin_assets.reports.batches import WeekBatches
from kidsfin_assets.reports.prompt import load_prompt
from kidsfin_assets.warehouse.tables import openai_batches, report_ledger
from kidsfin_assets_tests.helpers import (
    fetch,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.tcp_proxy import TcpProxy
from kidsfin_assets_tests.test_gold_reports import (
    API_KEY,
    SECRET_NAMES,
    W,
    gold_meta,
    reports,
    setup_week,
)
from openai_test_server import FakeOpenAIServer, running_server

BATCH = {"KIDSFIN_OPENAI__API": "batch"}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with running_server(api_key=API_KEY, latency=0.01, batch_seconds_per_line=0.02) as srv:
        yield srv


def batch_rows(settings) -> list[dict]:
    return fetch(warehouse_engine(settings), sa.select(openai_batches))


def wait_for_batches(server: FakeOpenAIServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {b["status"] for b in server.batches.batches()}
        if states <= {"completed", "failed", "expired", "cancelled"}:
            return
        time.sleep(0.1)
    raise AssertionError(f"batches still open: {server.batches.batches()}")


def expire_preparing(settings) -> None:
    """The submitting run's lease on its batch runs out, as when that run died elsewhere."""
    with warehouse_engine(settings).begin() as conn:
        conn.execute(openai_batches.update().values(preparing_until=0.0))


def gold(settings, **kwargs):
    return materialize_week(settings, W, selection="group:gold", **kwargs)


def materialised(result) -> bool:
    return bool(result.asset_materializations_for_node("gold__kid_weekly_reports"))


def until_done(settings, server: FakeOpenAIServer, runs: int = 6):
    """Materialise the week again as a deployment would, until it is materialised."""
    for _ in range(runs):
        wait_for_batches(server)
        result = gold(settings)
        if materialised(result):
            return result
    raise AssertionError("the week did not converge")


def test_a_week_in_batch_mode_submits_returns_and_is_collected_at_half_price(
    monkeypatch, pg_url, server
) -> None:
    settings, ids = setup_week(monkeypatch, pg_url, server, 6, **BATCH)
    first = gold(settings)
    assert first.success and not materialised(first)  # submitted, nothing to show yet
    observed = first.asset_observations_for_node("gold__kid_weekly_reports")
    assert observed and "batches" in observed[0].metadata
    assert server.stats.batches_created == 1 and server.stats.ok == 0
    uploaded = server.batches.file_content(batch_rows(settings)[0]["input_file_id"]).decode()
    for secret in SECRET_NAMES:  # custom_id and prompts name no child
        assert secret not in uploaded
    done = until_done(settings, server)
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    meta = gold_meta(done)
    assert meta["mode"] == "batch" and meta["reports_written"] == 6
    answers = fetch(warehouse_engine(settings), sa.select(report_ledger))
    assert {a["tier"] for a in answers} == {"batch"}
    price = load_prices(resolve_path(settings.openai.pricing_file))[settings.openai.model]
    half = price.batch
    assert half is not None
    for a in answers:
        expected = (a["prompt_tokens"] * half.input + a["completion_tokens"] * half.output) / 1e6
        assert a["cost_usd"] == pytest.approx(expected)
    assert meta["saving_vs_sync_usd"] == pytest.approx(meta["cost_usd"], abs=1e-6)  # 0.50
    again = gold(settings)
    assert materialised(again) and server.stats.batches_created == 1  # nothing resubmitted
    assert server.stats.batch_lines_answered_again == 0


def test_a_batch_submitted_before_kids_were_pseudonymised_is_still_collected(
    monkeypatch, pg_url, server
) -> None:
    """An upgrade with a batch open: its lines name kids by id (the earlier custom_id);
    each is still matched to its kid, so no paid answer is dropped as 'for no kid'."""
    settings, ids = setup_week(monkeypatch, pg_url, server, 4, **BATCH)
    with monkeypatch.context() as earlier:
        earlier.setattr(batches, "kid_pseudonym", lambda _key, _week, kid: str(kid))
        assert gold(settings).success
    uploaded = server.batches.file_content(batch_rows(settings)[0]["input_file_id"]).decode()
    assert f":{ids[0]}:" in uploaded  # the earlier form, as an open batch would hold it
    until_done(settings, server)
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert server.stats.batches_created == 1 and server.stats.ok == 0  # nothing asked again


def test_repeating_the_run_while_batches_are_open_submits_nothing_twice(
    monkeypatch, pg_url, server
) -> None:
    server.configure(batch_seconds_per_line=2.0)  # open for ~10 s: margin on a loaded machine
    settings, _ = setup_week(monkeypatch, pg_url, server, 5, **BATCH)
    for _ in range(3):
        assert not materialised(gold(settings))
    assert server.stats.batches_created == 1
    until_done(settings, server)
    assert len(reports(settings)) == 5 and server.stats.batch_lines_answered_again == 0


@pytest.mark.parametrize(
    ("faults", "paid_twice"),
    [
        ({"batch_line_fault_rate": 0.4}, 0),  # failed lines
        ({"batch_expire_after_lines": 3}, 0),  # expired after part of the lines
        # completed without an output file: the provider answered (and billed) lines it
        # never returned, so asking again is the only way to a report
        ({"batch_lose_output_rate": 1.0}, 6),
    ],
)
def test_lines_without_an_answer_are_asked_again_until_the_week_is_done(
    monkeypatch, pg_url, server, faults, paid_twice
) -> None:
    server.configure(**faults)
    settings, ids = setup_week(monkeypatch, pg_url, server, 6, **BATCH)
    gold(settings)
    wait_for_batches(server)
    server.configure(
        batch_line_fault_rate=0.0, batch_expire_after_lines=None, batch_lose_output_rate=0.0
    )
    until_done(settings, server)
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert server.stats.batches_created >= 2  # the unanswered ones went again
    assert server.stats.batch_lines_answered_again == paid_twice


def test_a_run_killed_between_upload_and_batch_creation_pays_once(
    monkeypatch, pg_url, server
) -> None:
    settings, _ = setup_week(monkeypatch, pg_url, server, 4, **BATCH)

    def killed(self, row):  # the process dies right after the upload was recorded
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(WeekBatches, "_create", killed)
        with pytest.raises(SystemExit):
            gold(settings)
    (row,) = batch_rows(settings)
    assert row["input_file_id"] and row["batch_id"] is None
    assert server.stats.batches_created == 0
    assert not materialised(gold(settings))  # its submitter may still be at work: left alone
    assert server.stats.batches_created == 0
    expire_preparing(settings)  # ... until its lease runs out (a dead process: at once)
    until_done(settings, server)  # the next run creates the batch from the kept file
    assert server.stats.batches_created == 1
    assert len(reports(settings)) == 4


def test_a_run_killed_after_creating_its_batch_adopts_it(monkeypatch, pg_url, server) -> None:
    server.configure(batch_seconds_per_line=0.2)
    settings, _ = setup_week(monkeypatch, pg_url, server, 4, **BATCH)
    gold(settings)
    with warehouse_engine(settings).begin() as conn:  # the id never reached the database
        conn.execute(openai_batches.update().values(batch_id=None))
    expire_preparing(settings)
    until_done(settings, server)
    assert server.stats.batches_created == 1 and len(reports(settings)) == 4


def interrupt_the_second_chunk(monkeypatch, how: str, proxy: TcpProxy) -> list[int]:
    """Interrupt ingest inside the second chunk's transaction, after its ledger rows were
    written: the process dies (SystemExit, its transaction rolled back, as with a SIGKILL)
    or the warehouse is cut (the run waits outage_wait_seconds, then fails)."""
    original, calls = ledger.store_exchanges, []

    def store_exchanges(conn, rows):
        calls.append(len(rows))
        if len(calls) == 2 and how == "warehouse cut":
            proxy.cut()
        stored = original(conn, rows)
        if len(calls) == 2 and how == "killed":
            raise SystemExit("killed mid-chunk")
        return stored

    monkeypatch.setattr(ledger, "store_exchanges", store_exchanges)
    return calls


@pytest.mark.parametrize("how", ["killed", "warehouse cut"])
def test_an_ingest_interrupted_mid_chunk_stores_and_pays_each_line_once(
    monkeypatch, pg_url, server, how
) -> None:
    kids, chunk = 10, 3
    monkeypatch.setattr(batches, "INGEST_CHUNK_LINES", chunk)
    settings, ids = setup_week(monkeypatch, pg_url, server, kids, **BATCH)
    with TcpProxy("127.0.0.1", 5432) as proxy:
        proxied = use_database(
            monkeypatch, proxy.url_for(pg_url), KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS="1"
        )
        assert not materialised(gold(proxied))  # submitted
        wait_for_batches(server)
        with monkeypatch.context() as patch:
            calls = interrupt_the_second_chunk(patch, how, proxy)
            if how == "killed":
                with pytest.raises(SystemExit):
                    gold(proxied)
            else:
                assert not gold(proxied, raise_on_error=False).success
        assert calls[:2] == [chunk, chunk]
        proxy.restore()
        engine = warehouse_engine(settings)
        # Half-way: the first chunk is stored, the interrupted one is not, nothing else is.
        assert len(fetch(engine, sa.select(report_ledger))) == chunk
        assert len(reports(settings)) == chunk
        until_done(proxied, server)
    answers = fetch(engine, sa.select(report_ledger))
    per_kid = {kid: [a for a in answers if a["kid_id"] == kid] for kid in ids}
    assert all(len(paid) == 1 for paid in per_kid.values()), {k: len(v) for k, v in per_kid.items()}
    stored = {r["kid_id"]: r for r in reports(settings)}
    assert sorted(stored) == ids  # no report lost
    for kid, (answer,) in per_kid.items():  # each report costs its one answer
        assert stored[kid]["answer_id"] == answer["answer_id"]
        assert stored[kid]["cost_usd"] == pytest.approx(answer["cost_usd"])
    # The rest of the file was read again, not asked again.
    assert server.stats.batches_created == 1 and server.stats.batch_lines_answered_again == 0


def test_two_batch_runs_of_one_week_at_once_put_each_kid_in_one_batch(
    monkeypatch, pg_url, server
) -> None:
    settings, _ = setup_week(monkeypatch, pg_url, server, 12, **BATCH)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: gold(settings), range(2)))
    assert all(r.success for r in results)
    rows = batch_rows(settings)
    assert sum(r["lines"] for r in rows) == 12, [
        (r["status"], r["lines"], r["run_id"][:6]) for r in rows
    ]
    until_done(settings, server)
    assert len(reports(settings)) == 12 and server.stats.batch_lines_answered_again == 0


def test_the_sensor_requests_the_week_once_its_batches_have_finished(
    monkeypatch, pg_url, server
) -> None:
    server.configure(batch_seconds_per_line=2.5)  # open for ~10 s: margin on a loaded machine
    settings, _ = setup_week(monkeypatch, pg_url, server, 4, **BATCH)
    gold(settings)
    sensor = openai_batch_sensor
    resources = run_resources(settings)
    with dg.build_sensor_context(resources=resources) as context:
        assert isinstance(sensor(context), dg.SkipReason)  # still in progress
    wait_for_batches(server)
    with dg.build_sensor_context(resources=resources) as context:
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == [W]


def test_cancelling_a_week_keeps_what_was_answered(monkeypatch, pg_url, server) -> None:
    server.configure(batch_seconds_per_line=1.5, batch_cancel_after_lines=2)
    settings, ids = setup_week(monkeypatch, pg_url, server, 8, **BATCH)
    gold(settings)
    from kidsfin_assets.defs.batch_sensor import cancel_openai_batches

    cancelled = cancel_openai_batches.execute_in_process(
        run_config={"ops": {"cancel_week_batches": {"config": {"week": W}}}},
        resources=run_resources(settings),
    )
    assert cancelled.success
    wait_for_batches(server)
    assert {b["status"] for b in server.batches.batches()} == {"cancelled"}
    server.configure(batch_seconds_per_line=0.01)
    until_done(settings, server)
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert server.stats.batch_lines_answered_again == 0


def test_the_enqueued_token_budget_holds_back_what_does_not_fit(
    monkeypatch, pg_url, server
) -> None:
    settings, _ = setup_week(monkeypatch, pg_url, server, 6, **BATCH)
    resource = settings.openai
    one_line = resource.max_tokens + 3000  # a prompt's estimate is below 3,000 tokens
    budget = str(2 * one_line)
    monkeypatch.setenv("KIDSFIN_OPENAI__BATCH_QUEUE_TOKENS", budget)
    monkeypatch.setenv("KIDSFIN_OPENAI__BATCH_MAX_REQUESTS", "2")
    from kidsfin_assets.defs.resources import load_settings

    limited = load_settings()
    first = gold(limited)
    rows = batch_rows(limited)
    assert sum(r["estimated_tokens"] for r in rows) <= int(budget)
    submitted = sum(r["lines"] for r in rows)
    assert submitted < 6  # the rest waits for a later run
    observed = first.asset_observations_for_node("gold__kid_weekly_reports")[0].metadata
    assert observed["reports_in_batches"].value == submitted
    assert observed["reports_queued"].value == 6 - submitted  # waiting, not failed
    assert load_prompt()  # the prompt the estimate was made from


def test_flex_answers_are_priced_as_flex_and_refusals_fall_back(
    monkeypatch, pg_url, server
) -> None:
    settings, _ = setup_week(monkeypatch, pg_url, server, 3, KIDSFIN_OPENAI__SERVICE_TIER="flex")
    assert gold(settings).success
    tiers = {a["tier"] for a in fetch(warehouse_engine(settings), sa.select(report_ledger))}
    assert tiers == {"flex"} and server.stats.flex_ok == 3


def test_flex_without_capacity_is_not_paid_and_falls_back_to_the_default_tier(
    monkeypatch, pg_url, server
) -> None:
    server.configure(flex_unavailable_rate=1.0)
    settings, _ = setup_week(monkeypatch, pg_url, server, 2, KIDSFIN_OPENAI__SERVICE_TIER="flex")
    result = gold(settings)
    assert result.success
    answers = fetch(warehouse_engine(settings), sa.select(report_ledger))
    refused = [a for a in answers if a["outcome"] == "flex_unavailable"]
    assert len(refused) == 4 and all(a["cost_usd"] == 0 for a in refused)  # 2 a kid
    assert {a["tier"] for a in answers if a["outcome"] == "accepted"} == {"default"}
    assert gold_meta(result)["rate_limited"] == 0
    limiter = settings.openai.limiter(warehouse_engine(settings), load_prompt())
    assert limiter.state()["paused_for_seconds"] == 0  # flex's capacity is not our limit


def test_the_batch_path_holds_a_page_of_kids_not_the_week(monkeypatch, pg_url, server) -> None:
    """Memory flat in the number of kids: the PendingReports (a kid's silver row, ~4 KiB)
    alive at once, through submitting, collecting and the queue budget, stay within two
    pages and a chunk of result lines, for a week of eight pages. A week-sized structure
    (a dict of the week's kids) coming back holds every kid at once and fails here."""
    from kidsfin_assets.reports import batch_asking, planning, report_writer

    page, chunk, kids = 10, 10, 80
    monkeypatch.setattr(report_writer.WeekReportWriter, "_page_size", lambda self: page)
    monkeypatch.setattr(batches, "INGEST_CHUNK_LINES", chunk)
    alive, peak = [0], [0]

    def gone() -> None:
        alive[0] -= 1

    class Counted(planning.PendingReport):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
            weakref.finalize(self, gone)

    monkeypatch.setattr(planning, "PendingReport", Counted)
    monkeypatch.setattr(batch_asking, "PendingReport", Counted)
    settings, ids = setup_week(monkeypatch, pg_url, server, kids, **BATCH)
    first = gold(settings)
    assert first.success and not materialised(first)
    observed = {
        k: v.value
        for k, v in first.asset_observations_for_node("gold__kid_weekly_reports")[
            0
        ].metadata.items()
    }
    assert observed["reports_in_batches"] == kids and observed["reports_queued"] == 0
    done = until_done(settings, server)
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert gold_meta(done)["reports_written"] == kids
    assert server.stats.batch_lines_answered_again == 0
    assert 0 < peak[0] <= 2 * page + chunk, f"{peak[0]} PendingReports alive at once"


@pytest.mark.parametrize(("least", "api"), [(15, "batch"), (100, "sync")])
def test_auto_reads_ahead_only_until_the_week_is_big_enough_for_a_batch(
    monkeypatch, pg_url, server, least, api
) -> None:
    """openai.api auto: the Batch API once batch_min_reports kids need a report (known
    after reading two of the week's five pages), the sync path for a smaller week; either
    way every kid is written once."""
    from kidsfin_assets.reports import report_writer

    monkeypatch.setattr(report_writer.WeekReportWriter, "_page_size", lambda self: 10)
    auto = {"KIDSFIN_OPENAI__API": "auto", "KIDSFIN_OPENAI__BATCH_MIN_REPORTS": str(least)}
    settings, ids = setup_week(monkeypatch, pg_url, server, 50, **auto)
    done = until_done(settings, server)
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert gold_meta(done)["mode"] == api and server.stats.batch_lines_answered_again == 0
    assert server.stats.batches_created == (1 if api == "batch" else 0)


def test_lines_for_inputs_changed_since_are_recorded_not_reported(
    monkeypatch, pg_url, server
) -> None:
    """The prompt changed while a batch was open: its lines (answered for the old inputs)
    are paid for, so each is in the ledger, but none becomes a report; the kids are asked
    again for their new inputs, and nothing is paid for twice."""
    from kidsfin_assets.reports import planning

    settings, ids = setup_week(monkeypatch, pg_url, server, 6, **BATCH)
    assert gold(settings).success and server.stats.batches_created == 1
    old_hashes = planning.input_hashes
    monkeypatch.setattr(
        planning, "input_hashes", lambda *args: [h[::-1] for h in old_hashes(*args)]
    )
    until_done(settings, server)
    stored = reports(settings)
    assert sorted(r["kid_id"] for r in stored) == ids
    answers = fetch(warehouse_engine(settings), sa.select(report_ledger))
    assert len(answers) == 12 and server.stats.batches_created == 2  # old lines kept
    for report in stored:  # one answer for the old inputs, one for the new: reported
        digests = {a["input_hash"] for a in answers if a["kid_id"] == report["kid_id"]}
        assert len(digests) == 2 and report["input_hash"] in digests
    assert server.stats.batch_lines_answered_again == 0
