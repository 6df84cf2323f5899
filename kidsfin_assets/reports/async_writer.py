"""The sync path (Chat Completions) at every tier: the requests in flight on one event loop.

At 30,000 requests a minute and 2-5 s an answer, ~1,500 requests are in flight; threads
could not carry that (each report's CPU is spent under the GIL, and 256 threads was their
cap; the threaded client was removed in stop 27), so the requests run as tasks of one
asyncio loop (openai.AsyncOpenAI over aiohttp), in a thread of its own so that a terminated
run still waits for the answers in flight.

Each request goes through the claims, the grounding gate, the one attempt policy
(llm/attempts.py: retries, re-asks, flex fallback, back-off, fail-fast), the total deadline
of one request, and every exchange is recorded in `report_ledger` before the task goes on
(the next attempt, the count). Recording is grouped: a writer thread stores what arrived within
GROUP_SECONDS (at most GROUP_ROWS) in one transaction, and each task waits for its own
group's commit; if the warehouse cannot take a group, its paid answers go to the spool
file first (one fsync a group), then the writer waits for the warehouse (the gate), and
no new request is granted meanwhile (the lease goes through the same gate).

`AsyncRun` is ~280 lines (above the engine's ~250): the loop's tasks, its leaser, its
clients and its stop share the one in-flight bound and the cancel event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import queue
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
from openai._constants import RAW_RESPONSE_HEADER

from kidsfin_assets.llm.bucket import Reservation
from kidsfin_assets.llm.in_flight import InFlight
from kidsfin_assets.llm.transport import ApiAccess, http_client, http_transport
from kidsfin_assets.reports import ledger
from kidsfin_assets.reports.answers import (
    MAX_BODY_BYTES,
    Cancelled,
    DeadlineExceeded,
    Exchange,
    InvalidAnswer,
)
from kidsfin_assets.reports.asking import AskingParts, grounding_for, settle_error
from kidsfin_assets.reports.openai_client import ReportSession
from kidsfin_assets.reports.planning import PendingReport
from kidsfin_assets.reports.recorder import AnswerRows, Recorder

# A group of records: whatever arrived within this long, at most this many rows.
GROUP_SECONDS = 0.05
GROUP_ROWS = 300
# Connections per client. Chosen with httpx2's own pool, which looks at every connection
# it holds (a getpeername and a select each) whenever a request ends, so one pool of 2,000
# cost O(n) a request; kept with the aiohttp transport (not measured again without it).
CONNECTIONS_PER_CLIENT = 16
# The answer streamed as the raw response (the SDK reads nothing), as `with_streaming_response`.
_STREAMED = {RAW_RESPONSE_HEADER: "stream", "Content-Type": "application/json"}


@dataclass
class _Record:
    """One exchange to store, and the task waiting for its commit."""

    answer: AnswerRows
    done: Callable[[BaseException | None], None]


@dataclass
class _Waiter:
    tokens: int
    future: asyncio.Future[Reservation]


@dataclass
class AsyncRun:
    """One pass of the event loop over a list of claimed kids."""

    parts: AskingParts
    session: ReportSession
    access: ApiAccess
    in_flight: InFlight  # the bound on requests in flight (fixed, or sized as answers come)
    pages: Iterator[list[PendingReport]]  # claimed kids, a page at a time (may block)
    records: queue.Queue[_Record | None] = field(default_factory=queue.Queue)
    waiters: collections.deque[_Waiter] = field(default_factory=collections.deque)
    lost: list[PendingReport] = field(default_factory=list)  # lease ran out: not asked

    # --- the loop ---------------------------------------------------------------------

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        cancel = self.parts.cancel
        self.tls = ssl.create_default_context()  # one for every client: each costs ~20 ms
        self.clients: list[Any] = []
        self._add_clients()
        self._say_transport(http_transport(self.clients[0]))
        self.next_client = 0
        leaser = asyncio.create_task(self._leaser())
        room = asyncio.Event()  # set when a request ends: one more may start
        tasks: set[asyncio.Task[None]] = set()
        try:
            try:
                # One loop (and one set of clients) for the week: the next page is read and
                # claimed in a thread while the requests of the last one are in flight.
                async for item in self._claimed_items():
                    while len(tasks) >= self.in_flight.limit() and not cancel.is_set():
                        room.clear()
                        await room.wait()
                    if cancel.is_set():
                        break
                    self._add_clients()
                    index = self.parts.tally.next_indices(1)
                    task = asyncio.create_task(self._write_one(index, item))
                    tasks.add(task)
                    task.add_done_callback(lambda t: (tasks.discard(t), room.set()))
            except BaseException:
                # A page that could not be read or claimed (the warehouse gone for longer
                # than outage_wait): start nothing new, but the requests in flight are paid
                # for and their answers are recorded before the error goes on.
                cancel.set()
                self._fail_waiters(Cancelled("the run is stopping"))
                raise
            finally:
                if tasks:
                    await asyncio.wait(set(tasks))
        finally:
            leaser.cancel()
            self._fail_waiters(Cancelled("the run is stopping"))
            for client in self.clients:
                await client.close()

    def _per_client(self) -> int:
        """Connections a client holds: CONNECTIONS_PER_CLIENT, or fewer for a small fixed
        bound (its requests spread evenly over its clients)."""
        if self.in_flight.fixed is None:
            return CONNECTIONS_PER_CLIENT
        bound = self.in_flight.limit()
        return -(-bound // max(1, -(-bound // CONNECTIONS_PER_CLIENT)))

    def _add_clients(self) -> None:
        """Clients enough for the bound in flight now (it grows as latency is observed)."""
        per_client = self._per_client()
        wanted = max(1, -(-self.in_flight.limit() // per_client))
        timeout = self.access.timeout_seconds
        while len(self.clients) < wanted:
            client = self.access.async_client(http_client(per_client, timeout, self.tls))
            self.clients.append(client)

    def _say_transport(self, transport: str) -> None:
        """Kept in the outcome (gold's `http_transport` metadata) and logged; a warning when
        it is not aiohttp with its C extensions, which the CPU a request depends on."""
        self.parts.tally.sent_through(transport)
        clients, connections = len(self.clients), self._per_client()
        line = f"async client: {clients} clients of {connections} connections over {transport}"
        if self.in_flight.fixed is None:
            line += (
                f"; {self.in_flight.limit()} requests in flight to start with, sized as "
                "answers come back (max_concurrent: auto)"
            )
        if transport.startswith("aiohttp") and "pure Python" not in transport:
            self.parts.log.info(line)
        else:
            self.parts.log.warning(
                f"{line}: not aiohttp with its C extensions, so each request costs the step "
                "more CPU (install openai[aiohttp] with wheels for this Python; unset "
                "AIOHTTP_NO_EXTENSIONS and the like)"
            )

    async def _claimed_items(self) -> AsyncIterator[PendingReport]:
        while (page := await asyncio.to_thread(next, self.pages, None)) is not None:
            for item in page:
                yield item

    async def _write_one(self, index: int, item: PendingReport) -> None:
        """What became of the kid, counted once."""
        parts = self.parts
        try:
            if parts.cancel.is_set():
                raise Cancelled("not started: the run is stopping")
            parts.tally.announce_group(index)
            exchange = await self._generate(item)
            parts.tally.written(item.kid_id, exchange.usage())
        except ledger.ClaimLost:
            self.lost.append(item)
        except Exception as exc:  # stores an ungrounded answer for review: off the loop
            await asyncio.to_thread(settle_error, parts, item, exc)

    async def _generate(self, item: PendingReport) -> Exchange:
        """A kid's report under the one attempt policy (retries, re-asks with the grounding
        gate's findings, flex fallback, back-off): every exchange stored before the next step."""
        s = self.session
        check = grounding_for(item)
        attempts = s.policy.attempts(self.parts.prompt.messages(item.metrics))
        while True:
            exchange = await self._attempt(attempts.messages, attempts.tier, item.kid_id)
            exchange = s.judge(exchange, check)
            await self._store(item, exchange)
            step = s.next_step(attempts, exchange)
            if step.action == "accept":
                return exchange
            assert exchange.error is not None
            if not step.retry:
                raise exchange.error
            s.usage.record_retry()
            await self._nap(step.wait_seconds)

    async def _nap(self, seconds: float) -> None:
        """Sleep, waking early (Cancelled) when the run stops."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.parts.cancel.is_set():
                raise Cancelled("run stopped by another report's fatal error")
            await asyncio.sleep(min(0.25, left))

    async def _attempt(self, messages: list[dict[str, str]], tier: str, kid: int) -> Exchange:
        s, keeper = self.session, self.parts.keeper
        while True:
            reservation = await self._acquire(s.reserve_tokens(messages))
            # Never asked unless the kid's claim surely holds (see still_holds).
            if not keeper.holds(kid) and not await asyncio.to_thread(keeper.still_holds, kid):
                s.cancel_reservation(reservation)
                raise ledger.ClaimLost(kid)
            if self.parts.cancel.is_set():
                s.cancel_reservation(reservation)
                raise Cancelled("run stopped before the request was sent")
            if time.monotonic() <= reservation.use_by:
                break
            # Resumed too late (a busy loop, a slow renewal): the refill counted on this grant
            # reaching the server by now, so sending it could exceed the limit. Ask again.
            s.cancel_reservation(reservation)
        answer_id = uuid.uuid4().hex
        sent = time.monotonic()
        try:
            body = await self._post(messages, tier)
        except Exception as exc:
            return s.no_answer(answer_id, exc, reservation)
        exchange = s.answered(answer_id, body, messages, reservation)
        used = exchange.prompt_tokens + exchange.completion_tokens
        self.in_flight.observe(time.monotonic() - sent, used)
        return exchange

    async def _post(self, messages: list[dict[str, str]], tier: str) -> bytes:
        """The answer's body within one deadline for connect, send and the whole body."""
        timeout = self.access.timeout_seconds
        flex = {"service_tier": "flex"} if tier == "flex" else {}
        received = bytearray()
        client = self.clients[self.next_client % len(self.clients)]
        self.next_client += 1

        async def read() -> bytes:
            body = {**self.session.request_body(messages), **flex}
            # The body as bytes through the SDK's own `post` (its auth, headers, errors and
            # timeout): `chat.completions.create` walks its typed parameters and serialises
            # them again on every call, ~0.3 of the ~1.8 ms of client CPU a request on the
            # HTTP path (bench/http_path.py, --call typed against the default); the body is
            # what the API takes.
            response = await client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                content=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                options={"timeout": timeout, "headers": _STREAMED},
            )
            try:
                async for chunk in response.aiter_bytes():
                    received.extend(chunk)
                    if len(received) > MAX_BODY_BYTES:
                        raise InvalidAnswer("the answer is larger than any report", "not_json")
                return bytes(received)
            finally:
                await response.aclose()

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"no complete answer within openai.timeout_seconds={timeout:g} "
                f"({len(received)} bytes received)"
            ) from exc

    # --- the shared bucket ------------------------------------------------------------

    async def _acquire(self, tokens: int) -> Reservation:
        limiter = self.session.limiter  # always leased (openai.rate_limit_lease_seconds > 0)
        if not self.waiters:
            taken = limiter.take_leased(tokens)
            if taken is not None:
                return taken
        future: asyncio.Future[Reservation] = self.loop.create_future()
        self.waiters.append(_Waiter(tokens, future))
        self.wake.set()
        return await future

    async def _leaser(self) -> None:
        """Hands the leased block to the waiting tasks in arrival order; leases a block for
        all of them (one statement, in a thread, through the warehouse gate) when it is
        spent, and sleeps the deficit when the bucket has none."""
        limiter = self.session.limiter
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.waiters:
                self._serve_from_block()
                if not self.waiters:
                    break
                if self.parts.cancel.is_set():
                    self._fail_waiters(Cancelled("run stopped while waiting for the rate limit"))
                    break
                wanted = len(self.waiters)
                tokens = sum(w.tokens for w in self.waiters)
                head = self.waiters[0].tokens
                try:
                    lease = await asyncio.to_thread(
                        self.parts.gate.call,
                        lambda n=wanted, t=tokens, h=head: limiter.lease(n, t, h),
                    )
                except Exception as exc:  # the warehouse stayed down: every waiter fails
                    self._fail_waiters(exc)
                    break
                if not lease.requests:
                    await asyncio.sleep(min(5.0, lease.wait_seconds))

    def _serve_from_block(self) -> None:
        limiter = self.session.limiter
        while self.waiters:
            head = self.waiters[0]
            if head.future.done():
                self.waiters.popleft()
                continue
            taken = limiter.take_leased(head.tokens)
            if taken is None:
                return
            self.waiters.popleft()
            head.future.set_result(taken)

    def _fail_waiters(self, exc: BaseException) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(exc)

    # --- recording ----------------------------------------------------------------------

    async def _store(self, item: PendingReport, exchange: Exchange) -> None:
        """Handed to the group writer's thread; returns once its group is committed (or
        spooled and then stored after an outage); raises WarehouseUnavailable if it never was."""
        future: asyncio.Future[None] = self.loop.create_future()

        def done(exc: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if exc is None:
                    future.set_result(None)
                else:
                    future.set_exception(exc)

            self.loop.call_soon_threadsafe(settle)

        self.records.put(_Record(self.parts.recorder.answer_rows(item, exchange), done))
        await future


class GroupWriter:
    """The thread that stores records in groups (one transaction a group, `Recorder`)."""

    def __init__(self, recorder: Recorder, records: queue.Queue[_Record | None]) -> None:
        self.recorder, self.records = recorder, records
        self.thread = threading.Thread(target=self._run, daemon=True, name="report-groups")
        self.groups = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.records.put(None)
        self.thread.join()

    def _run(self) -> None:
        ending = False
        while not ending:
            first = self.records.get()
            if first is None:
                return
            group = [first]
            until = time.monotonic() + GROUP_SECONDS
            while len(group) < GROUP_ROWS:
                try:
                    more = self.records.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    ending = True
                    break
                group.append(more)
            self._store(group)

    def _store(self, group: list[_Record]) -> None:
        error = self.recorder.store_group([record.answer for record in group])
        self.groups += 1
        for record in group:
            record.done(error)


def run_async(
    parts: AskingParts,
    session: ReportSession,
    access: ApiAccess,
    in_flight: InFlight,
    pages: Iterable[list[PendingReport]],
) -> list[PendingReport]:
    """One pass over `pages` on an event loop in its own thread; this thread waits for it
    even through interrupts (the answers in flight are paid for and must be recorded).
    Returns the kids not asked because their claim's lease ran out."""
    run = AsyncRun(parts, session, access, in_flight, iter(pages))
    groups = GroupWriter(parts.recorder, run.records)
    groups.start()
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            with collector_for_a_busy_loop():
                asyncio.run(run.main())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=loop, name="report-loop")
    thread.start()
    interrupted: BaseException | None = None
    while thread.is_alive():
        try:
            thread.join()
        except BaseException as exc:  # Ctrl+C / terminate: start nothing new, drain
            parts.cancel.set()
            interrupted = interrupted or exc
    groups.stop()
    if interrupted is not None:
        raise interrupted
    if failure:
        raise failure[0]
    return run.lost


# The young generation's threshold while the loop runs (Python's default is 700).
BUSY_LOOP_GC_THRESHOLD = (50_000, 50, 100)


@contextlib.contextmanager
def collector_for_a_busy_loop() -> Iterator[None]:
    """Python's cyclic garbage collector, set for a loop with thousands of requests in
    flight: what the process held before (Dagster, the definitions, the imports) is frozen
    out of its scans, and the young generation is collected less often. At tier 5 it spent
    17 of a 63 s run scanning, 27 % of the step (bench/README.md section 1); frozen, 6 of 53.
    Restored afterwards: a run's cycles are collected as usual once it ends."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BUSY_LOOP_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


class AsyncAsking:
    """The async client as a way of asking: each call of `ask` one pass of the loop."""

    api_used = "sync"
    claims_pages = True

    def __init__(
        self, parts: AskingParts, session: ReportSession, access: ApiAccess, in_flight: InFlight
    ) -> None:
        self.parts, self.session, self.access = parts, session, access
        self.in_flight = in_flight
        self._closed = False

    def ask(self, pages: Iterable[list[PendingReport]]) -> list[PendingReport]:
        return run_async(self.parts, self.session, self.access, self.in_flight, pages)

    def close(self) -> None:
        """Each pass waited for its requests; the session's gathered use goes to the bucket."""
        if not self._closed:
            self._closed = True
            self.session.close()
