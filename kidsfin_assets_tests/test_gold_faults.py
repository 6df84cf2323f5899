"""Gold against a server that answers absurdly, slowly or not at all, and a warehouse that
goes away mid-run: real HTTP to the suite's server, real PostgreSQL behind a TCP proxy the
test cuts, real Dagster runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx2
import pytest
import sqlalchemy as sa

from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.llm.pricing import Usage, load_price, load_prices
from kidsfin_assets.reports.prompt import load_prompt
from kidsfin_assets.reports.spool import read_entries
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import (
    create_warehouse_tables,
    kid_weekly_reports,
    rate_limit_buckets,
    report_claims,
    report_ledger,
)
from kidsfin_assets_tests.conftest import TEST_API_KEY
from kidsfin_assets_tests.helpers import fetch, materialize_week, use_database, warehouse_engine
from kidsfin_assets_tests.tcp_proxy import TcpProxy
from kidsfin_assets_tests.test_gold_processes import (
    cli_env,
    materialize_gold_cli,
    wait_for_group_exit,
)
from kidsfin_assets_tests.test_gold_reports import (
    W,
    gold_meta,
    recorded_text,
    reports,
    setup_week,
    step_failure_message,
)
from openai_test_server import ABSURD_PROMPT_TOKENS, FakeOpenAIServer


def ledger(settings) -> list[dict]:
    query = sa.select(report_ledger).order_by(report_ledger.c.received_at)
    return fetch(warehouse_engine(settings), query)


ONE_AT_A_TIME = {"KIDSFIN_OPENAI__MAX_CONCURRENT": "1"}
# A run taking over the claims of a stopped run does so at its first claim, seconds after
# it starts; this is the wait allowed before the test calls it stuck.
TAKE_OVER_SECONDS = 20.0


@contextlib.contextmanager
def bucket_kept_within_one_request(settings) -> Iterator[list[float]]:
    """While the block runs, the shared token bucket stays above minus one request: an
    answer's usage is clamped to the largest request before it is settled. A level below
    that (an absurd usage settled as it came) would hold the run for hours waiting for the
    refill; it is recorded, and the bucket refilled so that the run ends now, not at the
    test's timeout."""
    limiter = settings.openai.limiter(warehouse_engine(settings), load_prompt())
    bucket, engine = rate_limit_buckets, warehouse_engine(settings)
    sunk: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        level = sa.select(bucket.c.level).where(bucket.c.name == limiter.tokens.name)
        refill = bucket.update().where(bucket.c.name == limiter.tokens.name)
        while not stop.wait(0.2):
            try:
                with engine.begin() as conn:
                    found = conn.execute(level).scalar_one_or_none()
                    if found is not None and found < -limiter.max_request_tokens:
                        sunk.append(found)
                        conn.execute(refill.values(level=limiter.tokens.capacity))
            except sa.exc.SQLAlchemyError:
                continue  # the table is not made yet

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield sunk
    finally:
        stop.set()
        thread.join()


def run_with_first_answer(monkeypatch, pg_url, server, fault: str, **env: str):
    """Three kids; the run's first answer is `fault`; the week must still be written, and
    the shared bucket never owes more than one request."""
    server.script([fault])
    settings, ids = setup_week(monkeypatch, pg_url, server, 3, **ONE_AT_A_TIME, **env)
    with bucket_kept_within_one_request(settings) as sunk:
        result = materialize_week(settings, W, selection="group:gold")
    assert not sunk, (
        f"after the {fault} answer the shared token bucket sank to {sunk[0]:,.0f} tokens "
        f"(at most one request below zero is allowed): the run waited for a refill of hours "
        "until the test refilled it. A usage figure must be clamped before it is settled"
    )
    assert result.success
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    return settings, gold_meta(result), ledger(settings)


@pytest.mark.parametrize("fault", ["usage_negative", "usage_missing", "usage_non_numeric"])
def test_odd_usage_keeps_the_answer_and_estimates_its_cost(
    monkeypatch, pg_url, server, fault
) -> None:
    _, meta, answers = run_with_first_answer(monkeypatch, pg_url, server, fault)
    assert len(answers) == 3  # the odd answer became a report: not asked (or paid) again
    odd = answers[0]
    assert odd["outcome"] == "accepted"
    assert "estimated" in odd["usage_note"]
    assert odd["prompt_tokens"] > 0 and odd["cost_usd"] > 0
    assert meta["usage_flagged"] == 1


def test_a_nul_character_in_an_answer_does_not_stop_it_being_stored(
    monkeypatch, pg_url, server
) -> None:
    """PostgreSQL refuses NUL in text and jsonb: stored as it came, the answer failed its
    transaction (and, in the async client, every answer of its group), and its spool
    entry failed again on every replay."""
    settings, _, answers = run_with_first_answer(monkeypatch, pg_url, server, "nul_in_text")
    assert len(answers) == 3 and {a["outcome"] for a in answers} == {"accepted"}
    content = answers[0]["content"]  # as it came, the escape made U+FFFD's
    assert "\\ufffd" in content and "\\u0000" not in content
    stored = json.dumps([r["report"] for r in reports(settings)], ensure_ascii=False)
    assert "\ufffd" in stored and "\\u0000" not in stored
    assert not list(Path(settings.warehouse.spool_dir).glob("*.jsonl"))


def test_absurd_usage_is_flagged_and_moves_the_shared_bucket_by_one_request_at_most(
    monkeypatch, pg_url, server
) -> None:
    settings, meta, answers = run_with_first_answer(monkeypatch, pg_url, server, "usage_absurd")
    # The scripted answer by its usage, not its place: on a loaded machine two answers of
    # one event-loop group can be received within the same clock tick.
    absurd = [a for a in answers if a["prompt_tokens"] == ABSURD_PROMPT_TOKENS]
    assert len(absurd) == 1, [a["prompt_tokens"] for a in answers]  # what the bill will say
    assert "above the largest possible request" in absurd[0]["usage_note"]
    assert meta["usage_flagged"] == 1
    limiter = settings.openai.limiter(warehouse_engine(settings), load_prompt())
    level = limiter.state()["tokens"]["level"]
    assert level > -limiter.max_request_tokens
    started = time.monotonic()
    limiter.acquire(limiter.max_request_tokens // 2)
    assert time.monotonic() - started < 1.0  # not ~85 hours


@pytest.mark.parametrize("lease_seconds", ["0.25", "2"])  # leased blocks, short and long
def test_an_absurd_usage_is_settled_in_the_shared_bucket_as_one_request(
    monkeypatch, pg_url, server, lease_seconds
) -> None:
    """The settlement itself, on one answer: the bucket is charged the largest request a
    report can make, not the 10^9 tokens the answer claims (which the ledger keeps, as the
    bill will say). Unclamped, one such answer made every process wait ~85 hours."""
    server.script(["usage_absurd"])
    settings = use_database(
        monkeypatch,
        pg_url,
        OPENAI_API_KEY=TEST_API_KEY,
        OPENAI_BASE_URL=server.base_url,
        KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS=lease_seconds,
        # a refill of ~55 tokens a second: what the answer was charged still shows a
        # second later
        KIDSFIN_OPENAI__RATE_LIMIT_PERIOD_SECONDS="3600",
    )
    engine = warehouse_engine(settings)
    create_warehouse_tables(engine)
    messages = [{"role": "user", "content": "<data>{}</data>"}]
    with dg.build_resources({"openai": settings.openai}) as built:
        session = built.openai.session(engine, load_prompt(), Usage(), threading.Event())
        # One request as the event loop makes it: reserved, sent, read and settled
        reservation = session.limiter.acquire(session.reserve_tokens(messages))
        body = built.openai.client.post(
            "/chat/completions", cast_to=httpx2.Response, body=session.request_body(messages)
        ).content
        exchange = session.answered("absurd", body, messages, reservation)
        session.close()  # leased: the settlement goes with the last statement
    assert exchange.prompt_tokens == ABSURD_PROMPT_TOKENS  # recorded as the server claims it
    limiter = session.limiter
    tokens = limiter.state()["tokens"]
    charged = tokens["capacity"] - tokens["level"]
    largest = limiter.max_request_tokens
    assert charged <= largest, (
        f"one answer claiming {ABSURD_PROMPT_TOKENS:,} prompt tokens took {charged:,.0f} "
        f"tokens from the shared bucket: its usage was settled unclamped (at most the "
        f"largest request, {largest:,}, may be)"
    )
    assert charged >= largest - 200, (
        f"the answer was charged {charged:,.0f} tokens, less than the largest request "
        f"({largest:,}) its usage is clamped to"
    )


@pytest.mark.parametrize(
    ("fault", "kind"), [("empty_choices", "empty_choices"), ("html_body", "not_json")]
)
def test_a_200_without_a_report_is_its_own_error_and_asked_again(
    monkeypatch, pg_url, server, fault, kind
) -> None:
    _, meta, answers = run_with_first_answer(monkeypatch, pg_url, server, fault)
    assert [a["outcome"] for a in answers] == [kind, "accepted", "accepted", "accepted"]
    assert meta[f"errors_{kind}"] == 1 and meta["retries"] == 1


def test_an_answer_from_another_model_is_priced_as_that_model(monkeypatch, pg_url, server) -> None:
    settings, _, answers = run_with_first_answer(monkeypatch, pg_url, server, "other_model")
    other = answers[0]
    assert (other["outcome"], other["model_answered"]) == ("accepted", "gpt-4o")
    assert "answered by gpt-4o, not gpt-4o-mini" in other["usage_note"]
    price = load_prices(resolve_path(settings.openai.pricing_file))["gpt-4o"]
    expected = other["prompt_tokens"] * price.input + other["completion_tokens"] * price.output
    assert other["cost_usd"] == pytest.approx(expected / 1e6)


def test_a_trickling_answer_is_abandoned_at_the_deadline(monkeypatch, pg_url, server) -> None:
    # Without a total deadline, the first kid's answer (~1.5 kB, a byte every 0.2 s) would
    # hold its request ~5 minutes, twice.
    server.configure(trickle_interval=0.2)
    server.script(["trickle", "trickle"])
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        2,
        **ONE_AT_A_TIME,
        KIDSFIN_OPENAI__TIMEOUT_SECONDS="2",
        KIDSFIN_OPENAI__RETRY_MAX_ATTEMPTS="2",
    )
    started = time.monotonic()
    result = materialize_week(settings, W, selection="group:gold", raise_on_error=False)
    elapsed = time.monotonic() - started
    assert elapsed < 2 * 2 + 20  # deadline × attempts + a margin for a loaded machine
    assert not result.success and "no complete answer within" in step_failure_message(result)
    assert [r["kid_id"] for r in reports(settings)] == ids[1:]
    abandoned = [a for a in ledger(settings) if a["outcome"] == "deadline"]
    assert len(abandoned) == 2 and all("may bill" in a["usage_note"] for a in abandoned)


def test_the_key_echoed_in_altered_form_is_never_recorded(
    monkeypatch, pg_url, server, capfd
) -> None:
    key = "sk-proj-kidsfinSECRETkey0123456789abcdef"
    server.configure(api_key=None)
    server.script(["401_key_echo"])
    settings, _ = setup_week(monkeypatch, pg_url, server, 2, **ONE_AT_A_TIME, OPENAI_API_KEY=key)
    result = materialize_week(settings, W, selection="group:gold", raise_on_error=False)
    assert not result.success
    text = recorded_text(result, capfd)
    text += "".join(p.read_text() for p in Path(settings.file_logger.resolved).parent.glob("*"))
    for start in range(len(key) - 7):
        assert key[start : start + 8] not in text, key[start : start + 8]


# --- the warehouse going away ---------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5432) as tcp:
        yield tcp


def cut_when_answers_arrive(server: FakeOpenAIServer, proxy: TcpProxy, answers: int) -> None:
    def watch() -> None:
        while server.stats.ok < answers:
            time.sleep(0.02)
        proxy.cut()

    threading.Thread(target=watch, daemon=True).start()


def cut_while_answering(server: FakeOpenAIServer, proxy: TcpProxy, requests: int) -> None:
    """Cut the database the moment the server has `requests` requests: the last ones are
    still being answered (the server's latency), so their paid answers arrive mid-outage."""

    def watch() -> None:
        while server.stats.requests_total < requests:
            time.sleep(0.005)
        proxy.cut()

    threading.Thread(target=watch, daemon=True).start()


def through(proxy: TcpProxy, monkeypatch, pg_url: str, **env: str):
    """Settings whose database is reached through the proxy."""
    return use_database(monkeypatch, proxy.url_for(pg_url), **env)


@contextlib.contextmanager
def run_out_claims_taken_over(
    settings, within: float, started: threading.Event | None = None
) -> Iterator[list[str]]:
    """While the block runs (a run that must take over the kids of a run that stopped or
    was cut off), a claim whose lease has run out, on a kid still without its report, is
    taken over within `within` seconds (of `started`, when given: the run's step began).
    One left longer (its run would wait for it for ever) is recorded and deleted, so that
    the waiting run goes on and the test fails now, not at its timeout."""
    engine, claims, gold = warehouse_engine(settings), report_claims, kid_weekly_reports
    left: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        seen: dict[tuple[int, str, float], float] = {}  # a run-out claim -> first seen
        reported = sa.exists().where(
            gold.c.week_start == claims.c.week_start,
            gold.c.kid_id == claims.c.kid_id,
            gold.c.input_hash == claims.c.input_hash,
        )
        query = sa.select(claims.c.kid_id, claims.c.run_id, claims.c.lease_until)
        while not stop.wait(0.5):
            if started is not None and not started.is_set():
                continue
            try:
                with engine.begin() as conn:
                    now = db.clock_epoch(conn)
                    waited_for = query.where(claims.c.lease_until < now, ~reported)
                    run_out = conn.execute(waited_for).all()
                    for kid, run, until in run_out:
                        first = seen.setdefault((kid, run, until), time.monotonic())
                        if time.monotonic() - first <= within:
                            continue
                        left.append(f"kid {kid} of run {run[:8]}, run out {now - until:.0f} s ago")
                        stuck = sa.and_(claims.c.kid_id == kid, claims.c.lease_until == until)
                        conn.execute(claims.delete().where(stuck))
            except sa.exc.SQLAlchemyError:
                continue  # a lock conflict with the run: looked at again next time

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield left
    finally:
        stop.set()
        thread.join()


def assert_taken_over(left: list[str], within: float) -> None:
    assert not left, (
        f"claims whose lease had run out were not taken over within {within:g} s (the run "
        f"waited for them until the test deleted them): {'; '.join(left[:3])}"
    )


@pytest.mark.timeout(240)
def test_a_warehouse_outage_mid_run_loses_and_repays_nothing(
    monkeypatch, pg_url, server, proxy, capfd
) -> None:
    server.configure(latency=0.4)
    kids = 20
    settings, ids = setup_week(monkeypatch, pg_url, server, kids)
    proxied = through(
        proxy,
        monkeypatch,
        pg_url,
        KIDSFIN_OPENAI__MAX_CONCURRENT="3",
        KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS="60",
    )
    cut_when_answers_arrive(server, proxy, 6)
    restorer = threading.Timer(8.0, proxy.restore)
    restorer.start()
    result = materialize_week(proxied, W, selection="group:gold")
    restorer.join()
    assert result.success
    log = capfd.readouterr().err
    assert "warehouse unreachable" in log and "reachable again" in log  # it did go away
    assert server.stats.ok == kids  # answers paid ÷ reports = 1.00
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert len(ledger(settings)) == kids
    meta = gold_meta(result)
    assert meta["answers_paid"] == kids and meta["answers_unstored"] == 0


@pytest.mark.timeout(240)
def test_a_long_outage_keeps_paid_answers_in_the_spool_for_the_next_run(
    monkeypatch, pg_url, server, proxy
) -> None:
    server.configure(latency=0.4)
    kids = 12
    settings, ids = setup_week(monkeypatch, pg_url, server, kids)
    proxied = through(
        proxy,
        monkeypatch,
        pg_url,
        KIDSFIN_OPENAI__MAX_CONCURRENT="3",
        KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS="3",
        KIDSFIN_WAREHOUSE__CLAIM_LEASE_SECONDS="5",
    )
    cut_while_answering(server, proxy, 6)
    failed = materialize_week(proxied, W, selection="group:gold", raise_on_error=False)
    assert not failed.success
    message = step_failure_message(failed)
    assert "unreachable for more than warehouse.outage_wait_seconds=3" in message
    spooled = list(Path(proxied.warehouse.spool_dir).glob("*.jsonl"))
    assert len(spooled) == 1 and str(spooled[0]) in message
    paid_before = server.stats.ok
    stored = len(reports(settings))
    assert paid_before > stored  # answers arrived that the warehouse could not take

    proxy.restore()
    time.sleep(5)  # the dead run's leases run out (same process: its pid is alive)
    # Re-run by another URL to the same database (no proxy): the spool still finds it.
    direct = use_database(
        monkeypatch,
        pg_url,
        KIDSFIN_WAREHOUSE__SPOOL_DIR=str(proxied.warehouse.spool_dir),
    )
    with run_out_claims_taken_over(direct, TAKE_OVER_SECONDS) as left:
        rerun = materialize_week(direct, W, selection="group:gold")
    assert_taken_over(left, TAKE_OVER_SECONDS)
    assert rerun.success
    meta = gold_meta(rerun)
    assert meta["answers_replayed"] == paid_before - stored
    assert server.stats.ok == kids  # answers paid ÷ reports after one re-run = 1.00
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert not list(Path(proxied.warehouse.spool_dir).glob("*"))


@pytest.mark.timeout(240)
def test_ctrl_c_stops_a_run_held_by_a_trickling_server(
    monkeypatch, pg_url, server, tmp_path
) -> None:
    # Before the total deadline, the drain waited for a request that never ended.
    server.configure(fault_rate=1.0, faults=["trickle"], trickle_interval=0.5)
    setup_week(monkeypatch, pg_url, server, 4)
    env = cli_env(
        tmp_path,
        pg_url,
        server.base_url,
        KIDSFIN_OPENAI__TIMEOUT_SECONDS="4",
        KIDSFIN_OPENAI__MAX_CONCURRENT="2",
    )
    run = materialize_gold_cli(W, env)
    deadline = time.monotonic() + 120
    while server.stats.requests_total < 2 and time.monotonic() < deadline:
        assert run.poll() is None
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)
    started = time.monotonic()
    run.wait(timeout=60)
    wait_for_group_exit(run.pid, timeout=60)
    assert time.monotonic() - started < 4 + 15  # one deadline and a margin, not for ever
    assert run.returncode != 0


@pytest.mark.timeout(300)
def test_a_run_cut_off_longer_than_its_lease_does_not_ask_for_kids_another_run_took(
    monkeypatch, pg_url, server, proxy, tmp_path
) -> None:
    """Run A loses the warehouse for longer than its claims' lease; run B, which still
    reaches it, takes A's kids and answers them. When A is back, it must not ask for them
    again: a lease that ran out is not revived. (Before: A renewed every lease it had held
    and paid again for each kid B had answered.)"""
    server.configure(latency=0.4)
    kids = 12
    settings, ids = setup_week(monkeypatch, pg_url, server, kids)
    proxied = through(
        proxy,
        monkeypatch,
        pg_url,
        **ONE_AT_A_TIME,
        KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS="200",
        KIDSFIN_WAREHOUSE__CLAIM_LEASE_SECONDS="5",
    )
    cut_while_answering(server, proxy, 3)  # A's third answer arrives mid-outage
    outcome: dict[str, object] = {}
    run_a = threading.Thread(
        target=lambda: outcome.update(a=materialize_week(proxied, W, selection="group:gold"))
    )
    run_a.start()
    deadline = time.monotonic() + 120
    while server.stats.requests_total < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(8)  # A's leases (5 s) have run out; A is still waiting for its warehouse

    # B, a CLI run, takes A's kids once its gold step has begun (its banner). B left
    # waiting for A's run-out claims is stopped, and A let go, as soon as the watch sees it.
    b_started, b_said = threading.Event(), bytearray()

    def read_b() -> None:
        for line in run_b.stderr:
            b_said.extend(line)
            if "═══ kidsfin reports".encode() in line:
                b_started.set()
        run_b.wait()

    with run_out_claims_taken_over(settings, TAKE_OVER_SECONDS, b_started) as left:
        run_b = materialize_gold_cli(W, cli_env(tmp_path, pg_url, server.base_url))
        reader = threading.Thread(target=read_b)
        reader.start()
        deadline = time.monotonic() + 180
        while reader.is_alive() and not left and time.monotonic() < deadline:
            reader.join(timeout=0.5)
        if reader.is_alive() or left:  # failing: B stopped, A let go (the watch goes on)
            if reader.is_alive():
                os.killpg(run_b.pid, signal.SIGKILL)
                reader.join()
            proxy.restore()
            run_a.join(timeout=200)
    assert_taken_over(left, TAKE_OVER_SECONDS)
    assert run_b.returncode == 0, b_said.decode()[-2000:]
    assert len(reports(settings)) == kids  # B wrote every kid A had not
    paid_by_b = server.stats.ok

    proxy.restore()
    run_a.join(timeout=200)
    assert not run_a.is_alive()
    assert outcome["a"].success
    # A's answer in flight at the cut waited in A's spool, which B (same spool folder, as
    # on one host or a shared volume) stored; nothing was asked after A came back.
    assert server.stats.ok == paid_by_b == kids
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    meta = gold_meta(outcome["a"])
    assert meta["answers_paid"] == 3


# --- a rejected answer paid while the warehouse is away -------------------------------------

# How the server's answers are rejected: (the ledger's outcome, the request whose answer is
# the rejected one to arrive mid-outage). One kid at a time, two attempts a kid.
REJECTIONS = {
    # valid JSON missing the report's fields: paid, rejected, asked again
    "schema": ("invalid_answer", 1),
    # every answer lies: the first kid's second answer, after the re-ask, is rejected too
    # (its retries spent, the report is kept for review)
    "grounding": ("ungrounded", 2),
}
REJECTING = {**ONE_AT_A_TIME, "KIDSFIN_OPENAI__RETRY_MAX_ATTEMPTS": "2"}


def reject_answers(server: FakeOpenAIServer, rejection: str) -> tuple[str, int]:
    if rejection == "schema":
        server.script(["schema_invalid"])
    else:
        server.configure(report_mode="lying", lie_rate=1.0)
    server.configure(latency=0.4)  # the cut lands while the answer is on its way
    return REJECTIONS[rejection]


def cut_at_request_for(
    server: FakeOpenAIServer, proxy: TcpProxy, request: int, seconds: float
) -> dict[str, dt.datetime]:
    """Cut the database when the server has `request` requests, restore it `seconds`
    later; the times of both, to tell which answers arrived mid-outage."""
    times: dict[str, dt.datetime] = {}

    def watch() -> None:
        while server.stats.requests_total < request:
            time.sleep(0.005)
        times["cut"] = dt.datetime.now(dt.UTC)
        proxy.cut()
        time.sleep(seconds)
        times["restored"] = dt.datetime.now(dt.UTC)
        proxy.restore()

    threading.Thread(target=watch, daemon=True).start()
    return times


def failure_meta(result) -> dict[str, Any]:
    """The metadata of the gold step's failure (dg.Failure carries the run's figures)."""
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.event_specific_data.user_failure_data
    assert data is not None, "the gold step failed without its figures"
    return {k: v.value for k, v in data.metadata.items()}


def assert_every_paid_answer_recorded_once(server: FakeOpenAIServer, answers: list[dict]) -> None:
    """The ledger holds every answer the server billed, once: as many rows as 200s, and
    the same tokens to the token."""
    stats = server.stats
    recorded = {
        key: sum(a[f"{key}_tokens"] for a in answers) for key in ("prompt", "completion", "cached")
    }
    billed = {
        "prompt": stats.prompt_tokens,
        "completion": stats.completion_tokens,
        "cached": stats.cached_tokens,
    }
    assert (len(answers), recorded) == (stats.ok, billed), (
        f"the server billed {stats.ok} answers ({billed} tokens); the ledger holds "
        f"{len(answers)} ({recorded}): a paid answer was lost or recorded twice"
    )


def assert_priced(settings, answer: dict, outcome: str) -> None:
    """A rejected answer's row: its outcome, its tokens and what they cost."""
    price = load_price(resolve_path(settings.openai.pricing_file), settings.openai.model)
    tokens = (answer[f"{key}_tokens"] for key in ("prompt", "completion", "cached"))
    cost = sum(price.split_cost(*tokens))
    assert answer["outcome"] == outcome
    assert answer["prompt_tokens"] > 0 and answer["completion_tokens"] > 0
    assert answer["cost_usd"] == pytest.approx(cost) and cost > 0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("rejection", sorted(REJECTIONS))
def test_a_rejected_answer_paid_during_a_short_outage_is_stored_once_and_counted(
    monkeypatch, pg_url, server, proxy, capfd, rejection
) -> None:
    """The answer is rejected (fails the schema, or grounding after its re-ask) and
    arrives while the warehouse is cut: it is paid, so it goes to the spool as an accepted
    one would, and reaches the ledger once the warehouse is back; the run's count of
    answers waiting in the spool ends at 0. (Spooling only accepted answers counted the
    rejected one out of the spool without counting it in: answers_unstored = -1.)"""
    settings, ids = setup_week(monkeypatch, pg_url, server, 2)
    proxied = through(
        proxy, monkeypatch, pg_url, **REJECTING, KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS="60"
    )
    outcome, request = reject_answers(server, rejection)
    outage = cut_at_request_for(server, proxy, request, seconds=3.0)
    result = materialize_week(proxied, W, selection="group:gold")
    assert result.success
    assert "warehouse unreachable" in capfd.readouterr().err  # it did go away
    answers = ledger(settings)
    during = [a for a in answers if outage["cut"] < a["received_at"] < outage["restored"]]
    assert [a["outcome"] for a in during] == [outcome], "no rejected answer arrived mid-outage"
    assert_priced(settings, during[0], outcome)
    assert_every_paid_answer_recorded_once(server, answers)
    meta = gold_meta(result)
    assert meta["answers_unstored"] == 0, (
        f"answers_unstored = {meta['answers_unstored']} after the warehouse came back: the "
        "rejected answer paid mid-outage was not counted into the spool as it was out"
    )
    assert meta["answers_paid"] == server.stats.ok
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert not list(Path(proxied.warehouse.spool_dir).glob("*.jsonl"))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("rejection", sorted(REJECTIONS))
def test_a_rejected_answer_paid_during_a_long_outage_reaches_the_ledger_through_the_spool(
    monkeypatch, pg_url, server, proxy, rejection
) -> None:
    """The rejected answer arrives mid-outage and the warehouse stays away longer than the
    run may wait: the run stops with the answer in its spool (not lost, as it was when only
    accepted answers were spooled), and the next run stores its ledger row, tokens and
    cost, paying for no answer twice."""
    settings, ids = setup_week(monkeypatch, pg_url, server, 2)
    proxied = through(
        proxy,
        monkeypatch,
        pg_url,
        **REJECTING,
        KIDSFIN_WAREHOUSE__OUTAGE_WAIT_SECONDS="3",
        KIDSFIN_WAREHOUSE__CLAIM_LEASE_SECONDS="5",
    )
    outcome, request = reject_answers(server, rejection)
    cut_while_answering(server, proxy, request)
    failed = materialize_week(proxied, W, selection="group:gold", raise_on_error=False)
    assert not failed.success
    assert "unreachable for more than" in step_failure_message(failed)
    spool_dir = Path(proxied.warehouse.spool_dir)
    spooled = [e["ledger"] for path in spool_dir.glob("*.jsonl") for e in read_entries(path)]
    assert [e["outcome"] for e in spooled] == [outcome], (
        f"spooled {[e['outcome'] for e in spooled]}: the {outcome} answer paid while the "
        "warehouse was down is not in the spool, so it is lost"
    )
    unstored = failure_meta(failed)["answers_unstored"]
    assert unstored == 1, f"answers_unstored = {unstored}, with one paid answer in the spool"

    proxy.restore()
    time.sleep(5)  # the stopped run's claims (it could not release them) run out
    direct = use_database(monkeypatch, pg_url)  # the same spool folder, not through the proxy
    rerun = materialize_week(direct, W, selection="group:gold")
    assert rerun.success
    meta = gold_meta(rerun)
    assert (meta["answers_replayed"], meta["answers_unstored"]) == (1, 0)
    answers = {a["answer_id"]: a for a in ledger(settings)}
    kept = spooled[0]
    assert kept["answer_id"] in answers, "the spooled rejected answer never reached the ledger"
    stored = answers[kept["answer_id"]]
    usage = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")
    assert {k: stored[k] for k in usage} == {k: kept[k] for k in usage}
    assert_priced(settings, stored, outcome)
    assert_every_paid_answer_recorded_once(server, list(answers.values()))
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert not list(spool_dir.glob("*"))
