"""The one attempt policy (llm/attempts.py), on its own: pure decisions, no I/O, no clock.
The event loop drives it (and the Batch API its retries), so these are the retry, re-ask, flex
fallback, back-off and fail-fast rules of every request."""

from __future__ import annotations

import pytest

from kidsfin_assets.llm.attempts import (
    FLEX_UNAVAILABLE,
    AttemptPolicy,
    FailFast,
    Outcome,
)

POLICY = AttemptPolicy(
    max_attempts=4, initial_wait_seconds=2.0, max_wait_seconds=10.0, jitter_seconds=1.0
)
ASKED = [{"role": "user", "content": "the week"}]


def no_jitter(low: float, high: float) -> float:
    return low


def all_jitter(low: float, high: float) -> float:
    return high


def test_an_accepted_answer_ends_the_attempts() -> None:
    attempts = POLICY.attempts(ASKED)
    assert attempts.after(Outcome(None)).action == "accept"


def test_a_retryable_error_is_tried_until_max_attempts_with_capped_exponential_waits() -> None:
    attempts = POLICY.attempts(ASKED, draw=no_jitter)
    steps = [attempts.after(Outcome("timeout")) for _ in range(4)]
    assert [s.action for s in steps] == ["retry", "retry", "retry", "give_up"]
    assert [s.wait_seconds for s in steps[:3]] == [2.0, 4.0, 8.0]
    assert attempts.number == 4  # the last attempt made was the 4th
    late = AttemptPolicy(9, 2.0, 10.0, 1.0).attempts(ASKED, draw=all_jitter)
    waits = [late.after(Outcome("http_503")).wait_seconds for _ in range(5)]
    assert waits == [3.0, 5.0, 9.0, 10.0, 10.0]  # jitter added, then capped


def test_the_servers_retry_after_wins_with_at_most_a_second_of_jitter() -> None:
    step = POLICY.attempts(ASKED, draw=all_jitter).after(Outcome("rate_limited", retry_after=30))
    assert step.wait_seconds == 31.0  # above max_wait: the server said so
    small = AttemptPolicy(4, 2.0, 10.0, jitter_seconds=0.25).attempts(ASKED, draw=all_jitter)
    assert small.after(Outcome("rate_limited", retry_after=0.5)).wait_seconds == 0.75


@pytest.mark.parametrize(
    ("outcome", "stopping"),
    [(Outcome("fatal", retryable=False), False), (Outcome("timeout"), True)],
)
def test_no_retry_of_what_cannot_be_cured_nor_while_the_run_stops(outcome, stopping) -> None:
    assert POLICY.attempts(ASKED).after(outcome, stopping=stopping).action == "give_up"


def test_a_rejected_answer_is_asked_again_with_the_latest_correction_only() -> None:
    attempts = POLICY.attempts(ASKED)
    first = {"role": "user", "content": "sentence 1 is wrong"}
    second = {"role": "user", "content": "sentence 2 is wrong"}
    assert attempts.messages == ASKED
    attempts.after(Outcome("ungrounded", correction=first))
    assert attempts.messages == [*ASKED, first]
    attempts.after(Outcome("ungrounded", correction=second))
    assert attempts.messages == [*ASKED, second]
    attempts.after(Outcome("timeout"))  # no correction: the last one stands
    assert attempts.messages == [*ASKED, second]


@pytest.mark.parametrize(("fallback", "tiers"), [(True, ["flex", "default"]), (False, ["flex"])])
def test_flex_falls_back_to_the_default_tier_after_two_refusals(fallback, tiers) -> None:
    policy = AttemptPolicy(9, 0.1, 1.0, 0.1, service_tier="flex", flex_fallback=fallback)
    attempts = policy.attempts(ASKED)
    seen = [attempts.tier]
    attempts.after(Outcome(FLEX_UNAVAILABLE))
    assert attempts.tier == "flex"  # one refusal: flex again
    attempts.after(Outcome(FLEX_UNAVAILABLE))
    seen.append(attempts.tier)
    assert sorted(set(seen), key=seen.index) == tiers


def test_fail_fast_stops_a_run_whose_first_attempts_all_fail_alike() -> None:
    fail_fast = FailFast(3)
    said = [fail_fast.observe("http_400", "bad request") for _ in range(3)]
    assert said[:2] == [None, None]
    assert said[2] is not None and "the first 3 requests" in said[2] and "bad request" in said[2]


@pytest.mark.parametrize(
    "kinds",
    [
        [None, "http_400", "http_400", "http_400"],  # one success first: never
        ["rate_limited", "timeout", "deadline", "connection"],  # transient: never counted
        ["http_400", "refusal", "http_400"],  # not alike
    ],
)
def test_fail_fast_leaves_runs_that_succeed_or_fail_differently(kinds) -> None:
    fail_fast = FailFast(3)
    assert all(fail_fast.observe(kind, "same words") is None for kind in kinds)


def test_fail_fast_off_and_cancelled_attempts_count_for_nothing() -> None:
    assert all(FailFast(0).observe("http_400", "x") is None for _ in range(9))
    fail_fast = FailFast(2)
    assert fail_fast.observe("cancelled", "x", cancelled=True) is None
    assert fail_fast.observe("cancelled", "x", cancelled=True) is None
    assert fail_fast.seen == []
