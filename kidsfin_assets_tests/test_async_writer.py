"""The async client's own edges (the only client), against real PostgreSQL, real HTTP
to the suite's server and a real Dagster run."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys

import aiohttp
from openai._vendor.httpx_aiohttp import AiohttpTransport

from kidsfin_assets.llm.bucket import Reservation
from kidsfin_assets.reports.async_writer import (
    BUSY_LOOP_GC_THRESHOLD,
    AsyncRun,
    collector_for_a_busy_loop,
)
from kidsfin_assets_tests.helpers import materialize_week
from kidsfin_assets_tests.test_gold_reports import W, gold_meta, reports, setup_week

LEASE = 0.25


def test_a_grant_held_past_its_lease_is_not_sent(monkeypatch, pg_url, server) -> None:
    """A leased grant may reach the server at most 2 x lease_seconds after it left the
    bucket (the refill is spread over that). A task resumed late after its grant (a loop
    backed up by CPU, a slow claim renewal) must not send it then: here the first grants
    wait 2.5 s (> period + 2 x lease) before the request would go, and arrive together
    with the later grants' requests."""
    server.configure(rpm=60, window_seconds=2, latency=0.05)
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        100,
        KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS=str(LEASE),
        KIDSFIN_OPENAI__REQUESTS_PER_MINUTE="60",
        KIDSFIN_OPENAI__RATE_LIMIT_PERIOD_SECONDS="2",
        KIDSFIN_OPENAI__MAX_CONCURRENT="100",
    )
    acquire = AsyncRun._acquire
    delayed: list[int] = []

    async def late_acquire(self: AsyncRun, tokens: int) -> Reservation:
        granted = await acquire(self, tokens)
        if len(delayed) < 30:  # the first grants: their tasks resume late
            delayed.append(1)
            await asyncio.sleep(2.5)
        return granted

    monkeypatch.setattr(AsyncRun, "_acquire", late_acquire)
    assert materialize_week(settings, W, selection="group:gold").success
    assert len(delayed) == 30
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert server.stats.over_limit == 0


def test_every_request_goes_through_aiohttp_with_its_c_extensions(
    monkeypatch, pg_url, server
) -> None:
    """The async client's CPU a request, so tier5's rate, depends on its transport
    (bench/README.md, tier5): aiohttp with its C parser, not the SDK's httpx2 default nor
    aiohttp's pure-Python fallback. Counted where requests are sent, not where the client
    is configured; gold's metadata says which it was."""
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        12,
        KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS=str(LEASE),
    )
    handle = AiohttpTransport.handle_async_request
    sent: list[str] = []

    async def counted(self: AiohttpTransport, request):  # type: ignore[no-untyped-def]
        response = await handle(self, request)
        sent.append(type(self.client).__module__)  # the aiohttp session that sent it
        return response

    monkeypatch.setattr(AiohttpTransport, "handle_async_request", counted)
    result = materialize_week(settings, W, selection="group:gold")
    assert result.success
    assert sorted(r["kid_id"] for r in reports(settings)) == ids
    assert len(sent) == server.stats.ok == len(ids)
    assert set(sent) == {"aiohttp.client"}
    assert gold_meta(result)["http_transport"] == f"aiohttp {aiohttp.__version__}"


def test_aiohttp_without_its_c_extensions_is_said_so() -> None:
    """aiohttp falls back to pure Python silently (here forced by AIOHTTP_NO_EXTENSIONS):
    the transport the async client reports says so, as gold's metadata and log do."""
    code = (
        "import ssl, openai\n"
        "from kidsfin_assets.llm.transport import http_client, http_transport\n"
        "http = http_client(4, 5.0, ssl.create_default_context())\n"
        "client = openai.AsyncOpenAI(api_key='k', base_url='http://127.0.0.1:9/v1', "
        "http_client=http)\n"
        "print(http_transport(client))\n"
    )
    env = {**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"aiohttp {aiohttp.__version__}, pure Python: aiohttp"


def test_the_collector_is_set_for_the_loop_and_restored_after_it_even_on_failure() -> None:
    """While the loop runs, what the process held before is frozen out of the collector's
    scans (27 % of the step's CPU at tier 5 otherwise); after it, even when it failed, the
    process collects as before (a run's cycles are not kept for good)."""
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    try:
        with collector_for_a_busy_loop():
            assert gc.get_threshold() == BUSY_LOOP_GC_THRESHOLD
            assert gc.get_freeze_count() > 0
            raise RuntimeError("the loop failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
