"""Fast by default (issue 20 item 4): `max_concurrent` and `rate_limit_lease_seconds` are
`auto`, sized from the limits and the observed latency (llm/in_flight.py): ~0.9 of a
tier-5 limit needs no hand-set knob, and tier 1 stays gentle."""

from __future__ import annotations

import pytest

from kidsfin_assets.config.settings import RetiredSettingWarning, SettingsError
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets.llm.in_flight import (
    AUTO_LEASE_SECONDS,
    FIRST_LATENCY_SECONDS,
    MAX_IN_FLIGHT,
    MIN_IN_FLIGHT,
    InFlight,
    auto_lease_seconds,
)
from kidsfin_assets.reports.openai_client import largest_request_tokens
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


def test_a_set_max_concurrent_is_kept_and_the_cap_holds() -> None:
    in_flight = sized(TIER5, fixed=40)
    settle(in_flight, 3.0)
    assert in_flight.limit() == in_flight.highest(60) == 40
    assert sized(TIER5, fixed=10_000).limit() == MAX_IN_FLIGHT
    assert sized(TIER5).highest(3600.0) == MAX_IN_FLIGHT


def test_the_bucket_is_leased_at_every_rate() -> None:
    """The event loop always leases (its grants are sent by a deadline or asked again), in
    blocks well inside the limit's window."""
    assert auto_lease_seconds(60.0) == AUTO_LEASE_SECONDS
    assert auto_lease_seconds(2.0) == AUTO_LEASE_SECONDS
    assert auto_lease_seconds(0.4) == 0.1


def test_auto_is_the_default_and_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    openai = load_settings().openai
    assert openai.max_concurrent is None
    assert openai.rate_limit_lease_seconds is None
    assert openai.lease_seconds() == AUTO_LEASE_SECONDS  # the event loop leases
    monkeypatch.setenv("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "30000")
    monkeypatch.setenv("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", "150000000")
    openai = load_settings().openai
    assert openai.lease_seconds() == AUTO_LEASE_SECONDS
    assert openai.in_flight(load_prompt()).limit() >= 1000
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_CONCURRENT", "64")
    monkeypatch.setenv("KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS", "1")
    openai = load_settings().openai
    assert (openai.max_concurrent, openai.lease_seconds()) == (64, 1.0)
    assert openai.in_flight(load_prompt()).limit() == 64
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_CONCURRENT", "auto")
    assert load_settings().openai.max_concurrent is None


def test_an_unleased_bucket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """0 (a transaction a grant) was the threaded client's: on the event loop a grant is
    sent when its task next runs, and unleased it reached the suite's server over the limit
    (bench.llm_throughput's cases at 600 a minute, 1-4 requests over, stop 27)."""
    monkeypatch.setenv("KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS", "0")
    with pytest.raises(SettingsError, match="must be auto or more than 0, got 0"):
        load_settings()


def test_the_threaded_client_is_refused_saying_it_was_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`openai.concurrency: threads` (or the older `openai.client`) names a client that no
    longer exists: refused, saying so; `async`, the one value that still means what it did,
    is accepted with a warning to delete it."""
    for variable in ("KIDSFIN_OPENAI__CONCURRENCY", "KIDSFIN_OPENAI__CLIENT"):
        monkeypatch.setenv(variable, "threads")
        with pytest.raises(SettingsError, match="the threaded client was removed"):
            load_settings()
        monkeypatch.setenv(variable, "async")
        with pytest.warns(RetiredSettingWarning, match="delete the setting"):
            assert load_settings().openai.in_flight(load_prompt()).cap == MAX_IN_FLIGHT
        monkeypatch.delenv(variable)
