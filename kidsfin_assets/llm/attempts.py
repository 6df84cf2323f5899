"""The one attempt policy: how a request is tried again. Pure decisions from plain data;
the client (the event loop) drives it and does the waiting and the asking itself.

- retry: an error the policy may retry (a 429, a timeout, a 5xx, an invalid or rejected
  answer) is tried again until `max_attempts`, unless the run is stopping;
- re-ask: an answer rejected with a correction (the grounding gate's findings) is asked
  again with that correction after the original messages (the latest correction only);
- flex fallback: after `FLEX_REFUSALS_BEFORE_FALLBACK` flex refusals a request goes at the
  default tier, if `flex_fallback`;
- back-off: the server's Retry-After (plus up to a second of jitter), else capped
  exponential back-off with jitter;
- fail-fast (`FailFast`, one per run): the run's first attempts all failing the same way
  that no retry cures stop it with the server's words.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

FLEX_UNAVAILABLE = "flex_unavailable"
# Flex refusals of one request after which it is sent at the default tier (flex_fallback).
FLEX_REFUSALS_BEFORE_FALLBACK = 2
# Error kinds that a new request may not meet again (a 429, a timeout): never fail-fast.
TRANSIENT_KINDS = frozenset(
    {"rate_limited", "timeout", "connection", "deadline", "http_408", FLEX_UNAVAILABLE}
)
Message = dict[str, str]
Draw = Callable[[float, float], float]  # random.uniform, or a fixed draw in a test


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, as the policy reads it."""

    kind: str | None  # None: accepted; else the error's kind (rate_limited, ungrounded...)
    retryable: bool = True
    retry_after: float | None = None  # the server's Retry-After, in seconds
    correction: Message | None = None  # what to tell the model when asking again


@dataclass(frozen=True)
class Step:
    """What to do after an attempt: accept it, give up, or wait and try again."""

    action: str  # "accept", "give_up" or "retry"
    wait_seconds: float = 0.0

    @property
    def retry(self) -> bool:
        return self.action == "retry"


ACCEPT, GIVE_UP = Step("accept"), Step("give_up")


@dataclass(frozen=True)
class AttemptPolicy:
    """The retry settings (`retry:` and `openai.service_tier` / `flex_fallback`)."""

    max_attempts: int
    initial_wait_seconds: float
    max_wait_seconds: float
    jitter_seconds: float
    service_tier: str = "default"
    flex_fallback: bool = True

    def backoff(
        self, attempt: int, retry_after: float | None, draw: Draw = random.uniform
    ) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return retry_after + draw(0.0, min(self.jitter_seconds, 1.0))
        wait = self.initial_wait_seconds * 2 ** (attempt - 1) + draw(0.0, self.jitter_seconds)
        return max(0.0, min(self.max_wait_seconds, wait))

    def attempts(self, messages: list[Message], draw: Draw = random.uniform) -> Attempts:
        return Attempts(self, messages, draw)


class Attempts:
    """One request's attempts under a policy: what to send next, and what to do after each."""

    def __init__(self, policy: AttemptPolicy, messages: list[Message], draw: Draw) -> None:
        self.policy, self.draw = policy, draw
        self.original = messages
        self.messages = messages  # what the next attempt sends
        self.tier = policy.service_tier  # the tier the next attempt asks for
        self.number = 1  # the next attempt's number
        self._flex_refusals = 0

    def after(self, outcome: Outcome, stopping: bool = False) -> Step:
        """The step after the attempt just made (`stopping`: the run is stopping)."""
        if outcome.kind is None:
            return ACCEPT
        if outcome.kind == FLEX_UNAVAILABLE:
            self._flex_refusals += 1
            if self.policy.flex_fallback and self._flex_refusals >= FLEX_REFUSALS_BEFORE_FALLBACK:
                self.tier = "default"  # flex is short of capacity: pay the default price
        if outcome.correction is not None:
            self.messages = [*self.original, outcome.correction]
        made = self.number
        if not outcome.retryable or stopping or made >= self.policy.max_attempts:
            return GIVE_UP
        self.number += 1
        return Step("retry", self.policy.backoff(made, outcome.retry_after, self.draw))


class FailFast:
    """Stops a run whose first attempts all fail the same non-transient way (a server
    that refuses every request alike), instead of spending every kid's retries on it."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.seen: list[str] = []
        self.succeeded = False
        self._lock = threading.Lock()

    def observe(self, kind: str | None, message: str = "", cancelled: bool = False) -> str | None:
        """One attempt's outcome (`kind` None: accepted); the reason to stop the run, once
        the first `after` attempts have all failed alike."""
        with self._lock:
            if self.succeeded or self.after <= 0:
                return None
            if kind is None:
                self.succeeded = True
                return None
            if kind in TRANSIENT_KINDS or cancelled:
                return None
            self.seen.append(f"{kind}: {message}")
            if len(self.seen) < self.after or len(set(self.seen)) != 1:
                return None
            return (
                f"the first {self.after} requests of this run all failed the same way, so "
                f"retrying every kid would only pay for it again: {self.seen[0]}"
            )
