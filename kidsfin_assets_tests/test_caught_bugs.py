"""Tests for six realistic bugs the rest of the suite let through (issue 13).

Each test was checked against its bug: put into the code, the test fails. They test
through behaviour only (real materialisations, the test server's recordings, the
warehouse's rows), so they hold however the gold layer is written inside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from kidsfin_assets.warehouse.tables import kid_weekly_analysis, quarantine, raw_transactions
from kidsfin_assets_tests.helpers import (
    SourceDB,
    export_dir,
    fetch,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.test_gold_processes import PROJECT
from kidsfin_assets_tests.test_gold_reports import (
    API_KEY,
    FAST_RETRY,
    SECRET_NAMES,
    W,
    gold_meta,
    reports,
    setup_week,
)
from openai_test_server import (
    FakeOpenAIServer,
    RecordedRequest,
    generate_content,
    running_server,
)

FIRST_MODEL, SECOND_MODEL = "gpt-4o-mini", "gpt-4.1-nano"
# Cached input at a tenth of the input price: pricing it at the full rate shows at once.
PRICES = {
    FIRST_MODEL: {"input": 10.0, "cached_input": 1.0, "output": 20.0},
    SECOND_MODEL: {"input": 4.0, "cached_input": 0.5, "output": 8.0},
}
# Budgets far above what the tests use: only the 429's pause may hold requests back.
NO_BUDGET_LIMITS = {
    "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE": "60000",
    "KIDSFIN_OPENAI__TOKENS_PER_MINUTE": "100000000",
}


@pytest.fixture
def server() -> Any:
    with running_server(api_key=API_KEY, latency=0.02) as srv:
        yield srv


@pytest.fixture
def pricing_file(tmp_path: Path) -> Path:
    """The test's own prices, for both models (the project's file may change)."""
    path = tmp_path / "pricing.yaml"
    path.write_text(yaml.safe_dump({"models": PRICES}))
    return path


def chat_requests(server: FakeOpenAIServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


def user_message(request: RecordedRequest) -> str:
    return next(m["content"] for m in request.body["messages"] if m["role"] == "user")


# 1 -------------------------------------------------------------------------------------


def test_another_model_asks_every_kid_again_once(monkeypatch, pg_url, server, pricing_file) -> None:
    """The model is part of a report's input hash: after openai.model changes, the old
    model's reports are replaced, each kid asked once."""
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        4,
        KIDSFIN_OPENAI__PRICING_FILE=str(pricing_file),
        KIDSFIN_OPENAI__MODEL=FIRST_MODEL,
    )
    assert materialize_week(settings, W, selection="group:gold").success
    assert {r["model"] for r in reports(settings)} == {FIRST_MODEL}
    first_run = len(chat_requests(server))

    switched = use_database(monkeypatch, pg_url, KIDSFIN_OPENAI__MODEL=SECOND_MODEL)
    meta = gold_meta(materialize_week(switched, W, selection="group:gold"))
    asked = chat_requests(server)[first_run:]
    assert len(asked) == len(ids)  # every kid, and no kid twice (prompts differ per kid):
    assert len({user_message(r) for r in asked}) == len(ids)
    assert {r.body["model"] for r in asked} == {SECOND_MODEL}
    assert (meta["reports_written"], meta["reports_reused"]) == (len(ids), 0)
    rows = reports(switched)
    assert sorted(r["kid_id"] for r in rows) == ids
    assert {r["model"] for r in rows} == {SECOND_MODEL}


# 2 -------------------------------------------------------------------------------------


def test_transaction_without_kind_is_quarantined_and_not_counted(monkeypatch, database_url) -> None:
    """A NULL kind (the source column allows it) is an unknown kind: quarantined, counted
    in raw's metadata, and in no silver figure."""
    settings = use_database(monkeypatch, database_url)
    source = SourceDB(settings)
    source.kids((1, "An"), (2, "Bình"))
    source.txns(
        (1, 1, "2026-03-17 09:00", "spending", "snacks", 20000),
        (2, 1, "2026-03-17 10:00", None, "snacks", 999000),  # kid 1's valid week, plus this
        (3, 2, "2026-03-18 10:00", None, None, 5000),  # kid 2's only row
    )
    result = materialize_week(settings, W, selection="group:raw or group:silver")
    assert result.success

    events = result.asset_materializations_for_node("raw__kid_activity")
    meta = {k: v.value for k, v in events[0].metadata.items()}
    assert (meta["rows_read"], meta["rows_valid"], meta["rows_quarantined"]) == (3, 1, 2)
    assert meta["quarantined_unknown_kind"] == 2
    engine = warehouse_engine(settings)
    q = quarantine
    quarantined = fetch(engine, sa.select(q.c.source_id, q.c.reason, q.c.week_start))
    assert sorted((r["source_id"], r["reason"]) for r in quarantined) == [
        (2, "unknown_kind"),
        (3, "unknown_kind"),
    ]
    assert {str(r["week_start"]) for r in quarantined} == {W}
    raw_ids = fetch(engine, sa.select(raw_transactions.c.txn_id))
    assert [r["txn_id"] for r in raw_ids] == [1]

    silver = fetch(engine, sa.select(kid_weekly_analysis))
    assert [r["kid_id"] for r in silver] == [1]  # kid 2 had no valid row at all
    (kid,) = silver
    assert (kid["spending_total"], kid["txn_count"], kid["net_flow"]) == (20000, 1, -20000)
    categories = kid["spending_by_category"]
    categories = json.loads(categories) if isinstance(categories, str) else categories
    assert categories == {"snacks": 20000}


# 3 -------------------------------------------------------------------------------------


def expected_cost(price: dict[str, float], prompt: int, cached: int, completion: int) -> float:
    """USD: uncached prompt tokens at the input rate, cached ones at the cached rate."""
    return (
        (prompt - cached) * price["input"]
        + cached * price["cached_input"]
        + completion * price["output"]
    ) / 1e6


def test_cached_prompt_tokens_are_priced_at_the_cached_rate(
    monkeypatch, pg_url, server, pricing_file
) -> None:
    # The project's prompts (~800 tokens) are below OpenAI's 1,024-token caching floor;
    # the test server caches them anyway, so the cached-price branch really runs.
    server.configure(cache_min_prompt_tokens=0)
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        4,
        KIDSFIN_OPENAI__PRICING_FILE=str(pricing_file),
        KIDSFIN_OPENAI__MODEL=FIRST_MODEL,
        KIDSFIN_OPENAI__MAX_CONCURRENT="1",  # the first request warms the cache
    )
    result = materialize_week(settings, W, selection="group:gold")
    assert result.success
    stats, meta, price = server.stats, gold_meta(result), PRICES[FIRST_MODEL]
    assert stats.cached_tokens > 0
    assert meta["cached_tokens"] == stats.cached_tokens
    rows = reports(settings)
    assert len(rows) == len(ids)
    # The rows' token counts are the server's, and each row's cost is priced from them.
    for key in ("prompt_tokens", "completion_tokens", "cached_tokens"):
        assert sum(r[key] for r in rows) == getattr(stats, key)
    assert sum(r["cached_tokens"] > 0 for r in rows) == len(ids) - 1
    for row in rows:
        cost = expected_cost(
            price, row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"]
        )
        assert row["cost_usd"] == pytest.approx(cost, rel=1e-9)
    total = expected_cost(price, stats.prompt_tokens, stats.cached_tokens, stats.completion_tokens)
    assert meta["cost_usd"] == pytest.approx(total, rel=1e-9)


# 4 -------------------------------------------------------------------------------------


def test_top_category_ties_break_by_byte_order_on_a_locale_collated_database(
    monkeypatch, pg_locale_url
) -> None:
    """DESIGN: ties -> alphabetically first by byte order, whatever the database's
    collation. Each kid's two categories tie; bytes and English order disagree."""
    settings = use_database(monkeypatch, pg_locale_url)
    engine = warehouse_engine(settings)
    with engine.connect() as conn:  # the premise: this database's own order is not bytes
        assert conn.exec_driver_sql("SELECT 'a' < 'B', 'đồ chơi' < 'e'").one() == (True, True)
    ties = {1: ("a", "B"), 2: ("Z", "a"), 3: ("đồ chơi", "e")}  # byte-first: B, Z, e
    source = SourceDB(settings)
    source.kids(*((kid, f"Bé {kid}") for kid in ties))
    source.txns(
        *(
            (10 * kid + i, kid, "2026-03-17 09:00", "spending", category, 15000)
            for kid, pair in ties.items()
            for i, category in enumerate(pair)
        )
    )
    assert materialize_week(settings, W, selection="group:raw or group:silver").success
    silver = fetch(engine, sa.select(kid_weekly_analysis))
    top = {r["kid_id"]: r["top_spending_category"] for r in silver}
    assert top == {kid: min(pair, key=str.encode) for kid, pair in ties.items()}
    assert top == {1: "B", 2: "Z", 3: "e"}


# 5 -------------------------------------------------------------------------------------


def test_placeholder_replaced_in_every_field_lists_included(monkeypatch, pg_url, server) -> None:
    settings, ids = setup_week(monkeypatch, pg_url, server, 2)
    assert materialize_week(settings, W, selection="group:gold or group:exports").success
    # The premise: the answers put the placeholder in the recommendations too.
    answer = json.loads(generate_content(chat_requests(server)[0].body))
    assert answer["recommendations"] and all("[[KID]]" in r for r in answer["recommendations"])

    rows = {r["kid_id"]: r["report"] for r in reports(settings)}
    assert "[[KID]]" not in json.dumps(rows, ensure_ascii=False)
    exported = sorted(export_dir(settings).glob("*.json"))
    assert [p.name for p in exported] == [f"kids_analysis_{W}.json", f"kids_reports_{W}.json"]
    for path in exported:
        assert "[[KID]]" not in path.read_text(encoding="utf-8"), path.name
    for kid, name in zip(ids, SECRET_NAMES, strict=True):
        assert all(name in tip for tip in rows[kid]["recommendations"])


# 6 -------------------------------------------------------------------------------------

RETRY_AFTER_SECONDS = 4.0
# Requests sent by workers granted before the pause was stored may still arrive just
# after the 429; past this, none may arrive until Retry-After is over.
IN_FLIGHT_GRACE_SECONDS = 1.0
WEEK_IN_PROCESS, WEEK_IN_SUBPROCESS = "2026-03-16", "2026-03-09"
# A spending category per week: it is in the prompt, so it says which run sent a request.
WEEK_MARKER = {WEEK_IN_PROCESS: "tuan_mot", WEEK_IN_SUBPROCESS: "tuan_hai"}


def load_two_weeks(source: SourceDB, kids: int) -> None:
    source.kids(*((k, f"Bé {k}") for k in range(1, kids + 1)))
    rows = []
    for w, (week, marker) in enumerate(WEEK_MARKER.items()):
        day = week[:8] + f"{int(week[8:]) + 1:02d}"
        for k in range(1, kids + 1):
            rows.append((10000 * w + 2 * k, k, f"{day} 10:00", "income", None, 50000 + k))
            rows.append((10000 * w + 2 * k + 1, k, f"{day} 11:00", "spending", marker, 1000))
    source.txns(*rows)


def week_of(request: RecordedRequest) -> str:
    text = user_message(request)
    return next(week for week, marker in WEEK_MARKER.items() if marker in text)


def seen_weeks(server: FakeOpenAIServer) -> set[str]:
    return {week_of(r) for r in chat_requests(server)}


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# Answers are slow until both runs send (the first run must not finish while the second
# starts up), then quick (without the pause, many requests would land inside it).
WARM_UP_LATENCY, LATENCY = 1.0, 0.2


class InjectedRateLimit:
    """Once both runs are sending, make the next request a 429 with Retry-After; note
    when it was asked for (the 429 is no earlier) and when it was seen (no later)."""

    def __init__(self, server: FakeOpenAIServer) -> None:
        self.server = server
        self.asked_at = self.seen_at = 0.0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            wait_for(lambda: seen_weeks(self.server) == set(WEEK_MARKER), 120, "both runs")
            self.server.configure(latency=LATENCY)
            self.asked_at = time.time()
            self.server.script(["429"])
            wait_for(lambda: self.server.stats.faults_injected.get("429"), 30, "the 429")
            self.seen_at = time.time()
        except BaseException as exc:  # reported by the test's thread
            self.error = exc


# The other process: a plain Python that materialises one week's gold in process (one
# interpreter start, against the dagster CLI's several: the test stays short).
GOLD_IN_A_SUBPROCESS = """
import sys
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets_tests.helpers import materialize_week
settings = load_settings()
result = materialize_week(settings, sys.argv[1], selection="group:gold", raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def materialize_gold_in_subprocess(week: str, log: Path) -> subprocess.Popen[bytes]:
    """Gold for `week` in another process, configured by this one's environment. Its log
    goes to a file: a pipe nobody reads while this process runs its own week would fill
    up and stall it."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-c", GOLD_IN_A_SUBPROCESS, week],
            cwd=PROJECT,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=output,
        )


@pytest.mark.timeout(240)
def test_a_429_pauses_every_worker_and_process_for_its_retry_after(
    monkeypatch, pg_url, tmp_path
) -> None:
    kids = 40
    settings = use_database(monkeypatch, pg_url)
    load_two_weeks(SourceDB(settings), kids)
    for week in sorted(WEEK_MARKER):  # oldest first: silver reads raw's W-1
        assert materialize_week(settings, week, selection="group:raw or group:silver").success
    with running_server(
        api_key=API_KEY, latency=WARM_UP_LATENCY, fault_retry_after=RETRY_AFTER_SECONDS
    ) as server:
        settings = use_database(
            monkeypatch,
            pg_url,
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=server.base_url,
            KIDSFIN_OPENAI__MAX_CONCURRENT="2",  # another worker in each process
            # The markers are categories: sent by name only when known (else as "khác").
            KIDSFIN_PRIVACY__KNOWN_CATEGORIES=json.dumps(list(WEEK_MARKER.values())),
            **NO_BUDGET_LIMITS,
            **FAST_RETRY,
        )
        log = tmp_path / "other_process.log"
        other = materialize_gold_in_subprocess(WEEK_IN_SUBPROCESS, log)
        try:
            wait_for(lambda: WEEK_IN_SUBPROCESS in seen_weeks(server), 120, "the other process")
            injector = InjectedRateLimit(server)
            injector.thread.start()
            assert materialize_week(settings, WEEK_IN_PROCESS, selection="group:gold").success
            other.wait(timeout=120)
            assert other.returncode == 0, log.read_text(errors="replace")[-2000:]
        finally:
            if other.poll() is None:
                other.kill()
        injector.thread.join(timeout=5)
        assert injector.error is None, injector.error
        requests = chat_requests(server)
        assert server.stats.faults_injected == {"429": 1}

    window = (injector.seen_at + IN_FLIGHT_GRACE_SECONDS, injector.asked_at + RETRY_AFTER_SECONDS)
    assert window[1] - window[0] > 2, f"the 429 took too long to arrive to judge: {window}"
    # (seconds after the 429 was asked for, week) of every request inside the pause
    inside = [
        (round(r.timestamp - injector.asked_at, 3), week_of(r))
        for r in requests
        if window[0] <= r.timestamp < window[1]
    ]
    assert inside == []
    # Both runs were mid-week across the pause: held back, not merely done.
    for week in WEEK_MARKER:
        times = [r.timestamp for r in requests if week_of(r) == week]
        assert min(times) < injector.asked_at < injector.asked_at + RETRY_AFTER_SECONDS < max(times)
    assert sum(1 for r in requests if week_of(r) == WEEK_IN_PROCESS) >= kids
