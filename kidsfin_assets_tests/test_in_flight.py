"""Fast by default (issue 20 item 4): `max_concurrent` and `rate_limit_lease_seconds` are
`auto`, sized from the limits and the observed latency (llm/in_flight.py): ~0.9 of a
tier-5 limit needs no hand-set knob, and tier 1 stays gentle."""

from __future__ import annotations

import pytest

from kidsfin_assets.config.settings import SettingsError
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets.llm.in_flight import (
    AUTO_LEASE_SECONDS,
    FIRST_LATENCY_SECONDS,
    MAX_IN_FLIGHT,
    MIN_IN_FLIGHT,
    InFlight,
    auto_lease_seconds,
)
from kidsfin_assets.reports.openai_client import MAX_THREADS, largest_request_tokens
from kidsfin_assets.reports.prompt import load_prompt

# A small model's published tiers: (requests, tokens) a minute.
TIER1 = (500, 200_000)
TIER5 = (30_000, 150_000_000)
ANSWER_TOKENS = 1_000  # a report's request and answer, about


def sized(tier: tuple[int, int], **kw: object) -> InFlight:
    rpm, tpm = tier
    largest = largest_request_tokens(load_prompt(), 800)
    return InFlight(rpm / 60, tpm / 60, largest, **kw)  # type: ignore[arg-type]


def settle(in_flight: InFlight, seconds: float, answers: int = 400) -> None:
    for _ in range(answers):
        in_flight.observe(seconds, ANSWER_TOKENS)


def test_tier5_gets_the_requests_in_flight_its_limit_needs() -> None:
    """30,000 a minute at 3 s an answer is 1,500 in flight (Little's law): the bound
    starts from the limits and follows the observed latency, with headroom, up to 4,096."""
    in_flight = sized(TIER5)
    assert in_flight.rate() == pytest.approx(500)
    start = in_flight.limit()
    assert start >= 500 * FIRST_LATENCY_SECONDS  # from the first request
    settle(in_flight, 3.0)
    assert 1500 / 0.9 <= in_flight.limit() <= 2 * 1500  # >= 0.9 of the limit, not a flood
    settle(in_flight, 30.0)  # a slow model: capped
    assert in_flight.limit() == MAX_IN_FLIGHT


def test_tier1_stays_gentle() -> None:
    """Tier 1's token limit allows ~2 requests a second: a handful in flight, however slow
    the answers, as with the old default of 8."""
    in_flight = sized(TIER1)
    assert in_flight.rate() < 2.5
    assert MIN_IN_FLIGHT <= in_flight.limit() <= 8
    settle(in_flight, 5.0)
    # Tokens counted (~1,000 a request, not the reserved 1,800): a little more is allowed.
    assert in_flight.rate() == pytest.approx(200_000 / 60 / ANSWER_TOKENS, rel=0.05)
    assert in_flight.limit() <= 30


def test_a_set_max_concurrent_is_kept_and_threads_are_capped() -> None:
    in_flight = sized(TIER5, fixed=40)
    settle(in_flight, 3.0)
    assert in_flight.limit() == in_flight.highest(60) == 40
    threads = sized(TIER5, cap=MAX_THREADS)
    assert threads.highest(3.0) == MAX_THREADS


def test_the_bucket_is_leased_by_the_event_loop_and_above_20_requests_a_second() -> None:
    """The event loop always leases (its grants are sent by a deadline or asked again);
    threads lease above 20 requests a second."""
    assert auto_lease_seconds(TIER1[0], 60.0, "threads") == 0.0
    assert auto_lease_seconds(1_200, 60.0, "threads") == 0.0  # 20 a second
    assert auto_lease_seconds(TIER5[0], 60.0, "threads") == AUTO_LEASE_SECONDS
    assert auto_lease_seconds(60, 2.0, "threads") == AUTO_LEASE_SECONDS  # 30 a second
    assert auto_lease_seconds(TIER1[0], 60.0, "async") == AUTO_LEASE_SECONDS
    assert auto_lease_seconds(60, 0.4, "async") == 0.1  # a block well inside a short window


def test_auto_is_the_default_and_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    openai = load_settings().openai
    assert (openai.concurrency, openai.max_concurrent) == ("async", None)
    assert openai.rate_limit_lease_seconds is None
    assert openai.lease_seconds() == AUTO_LEASE_SECONDS  # the event loop leases
    monkeypatch.setenv("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "30000")
    monkeypatch.setenv("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", "150000000")
    openai = load_settings().openai
    assert openai.lease_seconds() == AUTO_LEASE_SECONDS
    assert openai.in_flight(load_prompt()).limit() >= 1000
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_CONCURRENT", "64")
    monkeypatch.setenv("KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS", "0")
    openai = load_settings().openai
    assert (openai.max_concurrent, openai.lease_seconds()) == (64, 0.0)
    assert openai.in_flight(load_prompt()).limit() == 64
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_CONCURRENT", "auto")
    assert load_settings().openai.max_concurrent is None


def test_threads_still_refuse_more_than_256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIDSFIN_OPENAI__CONCURRENCY", "threads")
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_CONCURRENT", "300")
    with pytest.raises(SettingsError, match="300 needs concurrency: async"):
        load_settings()
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_CONCURRENT", "auto")  # sized, at most 256
    openai = load_settings().openai
    assert openai.in_flight(load_prompt()).cap == MAX_THREADS
