"""How many requests one step keeps in flight, and how the shared bucket is taken, when
`openai.max_concurrent` and `openai.rate_limit_lease_seconds` are `auto` (their defaults).

Little's law: requests in flight = requests a second x seconds an answer takes. The rate is
what the limits allow (`requests_per_minute`, and `tokens_per_minute` over the tokens a
request uses); the latency is observed, answer by answer. So a tier-5 limit (30,000 a
minute, answers of ~3 s) gets ~1,500 in flight without a hand-set knob, and tier 1 (500 a
minute, 200,000 tokens: ~2 requests a second) a handful. The limits themselves are kept
by the shared bucket (`bucket.py`), never by this count: more in flight than the rate needs
only waits in the bucket's queue, fewer leaves the limit unused.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

# The event loop's ceiling (connections and pages are sized for it).
MAX_IN_FLIGHT = 4096
# Seconds an answer is taken to need before any has come back.
FIRST_LATENCY_SECONDS = 2.0
# In flight above the rate x latency: answers vary, and a slow one must not idle the rate.
HEADROOM = 1.5
# At least this many in flight (one request at a time waits a whole answer between grants).
MIN_IN_FLIGHT = 2
# Weight of each new observation in the moving averages.
SMOOTHING = 0.05
# The bucket is leased in blocks usable this long (one statement a block instead of a
# transaction a grant, which tops out near a few hundred a second across processes).
AUTO_LEASE_SECONDS = 0.25


def auto_lease_seconds(period_seconds: float) -> float:
    """`rate_limit_lease_seconds: auto`: 0.25 s blocks, at every rate. The event loop always
    leases: a leased grant is sent by its deadline or asked for again
    (`Reservation.use_by`), while an unleased one waits for the loop's turn with nothing to
    bound how late it reaches the server, and the refill allows for lateness only under a
    lease."""
    return min(AUTO_LEASE_SECONDS, period_seconds / 4)  # a block well inside the window


@dataclass
class InFlight:
    """The in-flight bound of one step: `fixed` (max_concurrent set) or sized by Little's
    law from the limits and the latency observed so far, between MIN_IN_FLIGHT and `cap`.
    Thread-safe: the loop reads it, answers update it."""

    requests_per_second: float  # the request limit, per second
    tokens_per_second: float  # the token limit, per second
    request_tokens: float  # tokens a request is taken to use until some were counted
    cap: int = MAX_IN_FLIGHT
    fixed: int | None = None
    latency: float = FIRST_LATENCY_SECONDS
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rate(self) -> float:
        """Requests a second the limits allow, as the requests have used tokens so far."""
        by_tokens = self.tokens_per_second / max(1.0, self.request_tokens)
        return min(self.requests_per_second, by_tokens)

    def limit(self) -> int:
        if self.fixed is not None:
            return min(self.fixed, self.cap)
        wanted = math.ceil(self.rate() * self.latency * HEADROOM)
        return max(MIN_IN_FLIGHT, min(self.cap, wanted))

    def highest(self, longest_seconds: float) -> int:
        """The bound it could reach (answers taking `longest_seconds`): what connections,
        pages and thread pools are sized for."""
        if self.fixed is not None:
            return min(self.fixed, self.cap)
        wanted = math.ceil(self.rate() * longest_seconds * HEADROOM)
        return max(MIN_IN_FLIGHT, min(self.cap, wanted))

    def observe(self, seconds: float, tokens: int | None = None) -> None:
        """One answer (or error) came back after `seconds`, having used `tokens`."""
        with self._lock:
            self.latency += SMOOTHING * (max(0.0, seconds) - self.latency)
            if tokens:
                self.request_tokens += SMOOTHING * (tokens - self.request_tokens)
