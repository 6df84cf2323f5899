"""The threaded OpenAI client (`openai.concurrency: threads`): a thread a request in
flight, up to `max_concurrent` (auto: sized once from the limits), each report through
`ReportSession.generate` (retries, grounding re-asks, flex fallback, fail-fast) and recorded
exchange by exchange."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from kidsfin_assets.llm.bucket import Reservation
from kidsfin_assets.llm.in_flight import InFlight
from kidsfin_assets.reports.answers import Cancelled
from kidsfin_assets.reports.asking import AskingParts, grounding_for, settle_error
from kidsfin_assets.reports.ledger import ClaimLost
from kidsfin_assets.reports.openai_client import ReportSession
from kidsfin_assets.reports.planning import PendingReport

# Pages of kids whose requests may be in flight at once (memory: two pages at most).
PAGES_IN_FLIGHT = 2
# max_concurrent auto: the answers' latency the pool is sized for (threads cannot follow
# the observed latency as the event loop does).
THREAD_LATENCY_SECONDS = 3.0


def _drain(pool: ThreadPoolExecutor) -> None:
    """Wait for the requests in flight even through repeated interrupts: their answers
    are paid for and must be recorded. Each ends by its deadline (openai.timeout_seconds)."""
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except BaseException:  # a second Ctrl+C / terminate while draining
            continue


class ThreadedAsking:
    """Asks for claimed kids on a pool of threads."""

    api_used = "sync"
    claims_pages = True

    def __init__(self, parts: AskingParts, session: ReportSession, in_flight: InFlight) -> None:
        self.parts, self.session = parts, session
        # A pool's size is fixed: max_concurrent, or (auto) sized once from the limits for
        # answers of THREAD_LATENCY_SECONDS, at most 256.
        threads = in_flight.highest(THREAD_LATENCY_SECONDS)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="report")
        self._lost: list[PendingReport] = []  # not asked: the claim's lease ran out
        self._lock = threading.Lock()
        self._closed = False

    def ask(self, pages: Iterable[list[PendingReport]]) -> list[PendingReport]:
        window: collections.deque[list[Future[None]]] = collections.deque()
        for page in pages:
            window.append(self._submit(page))
            while len(window) > PAGES_IN_FLIGHT:
                wait(window.popleft())
        for futures in window:
            wait(futures)
        with self._lock:
            lost, self._lost = self._lost, []
        return lost

    def close(self) -> None:
        _drain(self.pool)
        if not self._closed:
            self._closed = True
            self.session.close()

    def _submit(self, items: list[PendingReport]) -> list[Future[None]]:
        first = self.parts.tally.next_indices(len(items))
        return [self.pool.submit(self._write_one, first + i, item) for i, item in enumerate(items)]

    def _write_one(self, index: int, item: PendingReport) -> None:
        parts = self.parts
        try:
            if parts.cancel.is_set():
                raise Cancelled("not started: the run is stopping")
            parts.tally.announce_group(index)
            exchange = self.session.generate(
                parts.prompt.messages(item.metrics),
                record=lambda ex: parts.recorder.record(item, ex),
                acquire=self._acquire_while_held(item.kid_id),
                check=grounding_for(item),
            )
            parts.tally.written(item.kid_id, exchange.usage())
        except ClaimLost:
            with self._lock:
                self._lost.append(item)  # claimed again with the kids other runs hold
        except Exception as exc:
            settle_error(parts, item, exc)

    def _acquire_while_held(self, kid: int) -> Callable[[Callable[[], Reservation]], Reservation]:
        """The limiter's grant, then proof that this run still holds the kid: after an
        outage or a stall longer than the lease, another run may have taken the kid and
        paid for it, and asking again would pay twice."""
        parts, session = self.parts, self.session

        def acquire(grant: Callable[[], Reservation]) -> Reservation:
            while True:
                reservation = parts.gate.call(grant)
                if not parts.keeper.still_holds(kid):
                    session.cancel_reservation(reservation)
                    raise ClaimLost(kid)
                if time.monotonic() <= reservation.use_by:
                    return reservation
                # A leased grant kept too long (a slow renewal): the bucket's refill counted
                # on it reaching the server by now, so sending it could exceed the limit.
                session.cancel_reservation(reservation)

        return acquire
