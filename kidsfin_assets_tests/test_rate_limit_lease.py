"""The shared rate limiter's leased blocks (lease_seconds > 0), against real PostgreSQL.

A leased grant leaves the bucket when its block is leased but is used up to lease_seconds
later and may reach the server up to lease_seconds after that. The tests use each grant as
late as the contract allows (a random delay up to lease_seconds after acquire() returned),
so a refill that forgot the lease time, or a block used past its time, shows as a window
over the limit. The period is shortened to PERIOD seconds, as in test_rate_limit.py.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.pool import Pool
from typing import Any

import pytest
import sqlalchemy as sa

from kidsfin_assets.llm.bucket import SharedRateLimiter
from kidsfin_assets.warehouse.db import create_engine
from kidsfin_assets.warehouse.tables import rate_limit_buckets

from .test_rate_limit import _max_window

PERIOD = 1.5
LEASE = 0.3  # large against the period, so that forgetting it would show
LIMITS: dict[str, Any] = {
    "requests_per_minute": 300,  # capacity 3, refill 297 per 2.1 s
    "tokens_per_minute": 1_000_000,
    "max_request_tokens": 1000,
    "period_seconds": PERIOD,
    "lease_seconds": LEASE,
}


def _hammer(
    url: str, limits: dict[str, Any], threads: int, start_at: float, stop_at: float, seed: int
) -> list[float]:
    """Acquire in a loop from `threads` threads; each grant "reaches the server" a random
    time up to LEASE after acquire() returned. Returns those arrival times (epoch)."""
    engine = create_engine(url)
    limiter = SharedRateLimiter(engine, **limits)
    arrivals: list[float] = []
    errors: list[BaseException] = []

    def loop(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        try:
            time.sleep(max(0.0, start_at - time.time()))
            while time.time() < stop_at:
                limiter.acquire(rng.randint(1, 100))
                arrivals.append(time.time() + rng.uniform(0, LEASE))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    limiter.close()
    engine.dispose()
    if errors:
        raise errors[0]
    return arrivals


def _lease_and_die(url: str, limits: dict[str, Any], ready: Any) -> None:
    """Lease a block as large as the bucket allows, use every grant of it at the last
    moment its lease allows (arrivals written to `ready`), then wait to be killed."""
    engine = create_engine(url)
    limiter = SharedRateLimiter(engine, **limits)
    limiter.flush()  # connected and the rows made: the lease below is one quick statement
    limiter.state()
    lease = limiter.lease(10_000, 10_000, 1)
    used = []
    time.sleep(LEASE * 0.6)
    while limiter.take_leased(1) is not None:
        used.append(time.time() + LEASE)
    ready.put((lease.requests, used))
    time.sleep(600)


def _warm_up(_: int) -> None:
    time.sleep(0.3)


@pytest.fixture(scope="module")
def spawn_pool() -> Iterator[Pool]:
    pool = multiprocessing.get_context("spawn").Pool(8)
    try:
        pool.map(_warm_up, range(8), chunksize=1)
        yield pool
    finally:
        # Closed, not terminated: terminate() first takes the task queue's read lock
        # (CPython's Pool._help_stuff_finish), which an idle worker holds while it waits
        # for a task; here that wait lasted the whole test timeout. Closed, idle workers
        # get their sentinel and exit.
        pool.close()
        pool.join()


def test_eight_processes_never_exceed_the_limit_and_use_it(pg_url: str, spawn_pool: Pool) -> None:
    start = time.time() + 0.5
    stop = start + 3 * PERIOD + 0.5
    args = [(pg_url, LIMITS, 4, start, stop, seed) for seed in range(8)]
    per_process = spawn_pool.starmap(_hammer, args, chunksize=1)
    arrivals = [t for times in per_process for t in times]
    assert sum(1 for times in per_process if times) >= 6, "the processes shared the budget"
    assert _max_window([(t, 1) for t in arrivals], PERIOD) <= LIMITS["requests_per_minute"]
    # Busy: the leased blocks are not wasted (the ceiling is (300 - 3) / 2.1 s per period).
    first = min(arrivals)
    measured = [t for t in arrivals if first + 0.5 <= t < first + 0.5 + 2 * PERIOD]
    ceiling = (300 - 3) / (PERIOD + 2 * LEASE) * 2 * PERIOD
    assert len(measured) >= 0.8 * ceiling, f"{len(measured)} grants of a ceiling of {ceiling}"


def test_a_process_killed_holding_a_block_lets_nobody_exceed(pg_url: str) -> None:
    limits = {**LIMITS, "requests_per_minute": 3000}  # capacity 30: the killed block is large
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    victim = ctx.Process(target=_lease_and_die, args=(pg_url, limits, ready))
    victim.start()
    try:
        leased, used = ready.get(timeout=60)
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        victim.join(30)
    assert leased == 30, "the victim held the whole bucket"
    assert len(used) == leased
    start = time.time()
    others = _hammer(pg_url, limits, 8, start, start + PERIOD + 0.3, 1)
    assert others, "the others got grants"
    window = _max_window([(t, 1) for t in [*used, *others]], PERIOD)
    assert window <= limits["requests_per_minute"]


def test_expired_blocks_and_settlements_go_back_in_one_statement(pg_url: str) -> None:
    # A long period: the refill (16 requests and 16 tokens a second) explains little.
    limits = {
        **LIMITS,
        "requests_per_minute": 1000,
        "tokens_per_minute": 2000,
        "period_seconds": 60.0,
    }
    engine = create_engine(pg_url)
    limiter = SharedRateLimiter(engine, **limits)
    limiter.flush()  # connected: the lease below is one quick statement
    lease = limiter.lease(10, 5000, 100)
    assert (lease.requests, lease.tokens) == (10, 1000)  # tokens: the bucket's capacity
    reservation = limiter.take_leased(100)
    assert reservation is not None
    limiter.settle(reservation, 40)  # 60 tokens to give back, not sent yet
    assert limiter.state()["tokens"]["level"] < 100
    time.sleep(LEASE + 0.05)
    assert limiter.take_leased(1) is None  # its time is up: never used late
    limiter.flush()  # 9 requests and 900 + 60 tokens back (the refill alone: ~7 of each)
    state = limiter.state()
    assert state["requests"]["level"] == pytest.approx(10, abs=1e-6)  # capped at capacity
    assert 960 <= state["tokens"]["level"] <= 1000
    limiter.close()
    engine.dispose()


def test_a_pause_stops_this_process_using_its_block(pg_url: str) -> None:
    engine = create_engine(pg_url)
    limiter = SharedRateLimiter(engine, **{**LIMITS, "requests_per_minute": 3000})
    assert limiter.lease(10, 100, 1).requests == 10
    limiter.pause(1.0)
    assert limiter.take_leased(1) is None
    asked = time.time()
    reservation = limiter.acquire(1)
    assert time.time() - asked >= 0.9
    assert reservation.granted_at >= limiter.state()["paused_until"] - 1e-6
    limiter.close()
    engine.dispose()


def test_sqlite_leases_by_the_same_arithmetic(sqlite_url: str) -> None:
    limits = {**LIMITS, "requests_per_minute": 1000, "period_seconds": 60.0}
    engine = create_engine(sqlite_url)
    limiter = SharedRateLimiter(engine, **limits)
    assert limiter.lease(4, 400, 100).requests == 4
    taken = [limiter.take_leased(100) for _ in range(5)]
    assert [t is not None for t in taken] == [True] * 4 + [False]  # the block holds 4
    rest = limiter.lease(1000, 1000, 1)
    assert rest.requests == 6  # capacity 10, 4 leased before: what is left, never more
    assert all(limiter.take_leased(1) is not None for _ in range(6))
    assert limiter.lease(1, 1, 1).requests == 0  # all used: nothing until the refill
    limiter.close()
    engine.dispose()


def test_a_block_leased_while_a_pause_is_being_set_is_not_used(pg_url: str) -> None:
    """A 429's pause and a lease racing (the loop pauses while the leaser's statement is
    on its way): the lease reached the rows first and was granted, but its block arrives
    after the pause retired this process's block. It must not be used during the pause."""
    engine = create_engine(pg_url)
    # A lease time longer than the lock wait below, so that the block is still usable.
    limits = {**LIMITS, "requests_per_minute": 3000, "period_seconds": 10.0, "lease_seconds": 5.0}
    limiter = SharedRateLimiter(engine, **limits)
    limiter.flush()
    limiter.state()  # the rows exist and the lease connection is the only one left to open
    leased: list[Any] = []
    with engine.connect() as blocker:
        # Both rows locked: the lease, then the pause, queue behind this in that order.
        blocker.execute(sa.select(rate_limit_buckets.c.name).with_for_update())
        lease = threading.Thread(target=lambda: leased.append(limiter.lease(10, 100, 1)))
        lease.start()
        time.sleep(0.5)
        pause = threading.Thread(target=limiter.pause, args=(5.0,))
        pause.start()
        time.sleep(0.5)
        blocker.commit()
    lease.join(10)
    pause.join(10)
    assert leased and leased[0].requests == 10  # the lease went first: granted
    assert limiter.state()["paused_for_seconds"] > 3
    assert limiter.take_leased(1) is None, "a grant handed out during the pause"
    limiter.close()
    engine.dispose()
