"""A token bucket on requests and tokens per minute, shared by every process via the warehouse.

Several Dagster runs (parallel backfills, several pods) spend one OpenAI budget, so the
bucket state lives in the `rate_limit_buckets` table, one row per bucket
(`<namespace>:requests`, `<namespace>:tokens`). Every change is one short transaction
under a row lock (SELECT ... FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite); waiting
happens outside it, by sleeping for the computed deficit.

Why the capacities are small: the API enforces its limit over a sliding window of
`period_seconds`. A bucket of capacity C refilled at R per period lets C + R through in one
window. With refill (limit - C) per period, any window of `period_seconds` grants at most
C + (limit - C) = limit, because the level never exceeds C. C is kept small (1 % of the
limit, or one maximal request for tokens) so that little of the limit is lost to it.
"""

from __future__ import annotations

import collections
import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.db import clock_epoch, lock_clause, warehouse_schema
from kidsfin_assets.warehouse import create_warehouse_tables, rate_limit_buckets

# Longest single nap: a waiting caller notices cancellation at least this often.
MAX_NAP_SECONDS = 5.0
# Shortest nap, so that float rounding in the deficit can never turn the wait into a spin.
MIN_NAP_SECONDS = 0.001
_NAME_MAX = rate_limit_buckets.c.name.type.length or 64


class RateLimiterCancelled(Exception):
    """acquire() was abandoned because its `cancelled` callback returned True."""


@dataclass(frozen=True)
class Reservation:
    """What acquire() granted; pass it to settle() once the real token count is known."""

    requests: int
    tokens: int
    granted_at: float  # epoch seconds, by the database's clock
    waited_seconds: float


@dataclass(frozen=True)
class BucketSpec:
    """One bucket's configuration: at most `limit` per sliding window of the period."""

    name: str
    limit: float
    capacity: float
    refill_per_second: float

    def level_at(self, level: float, updated_at: float, now: float) -> float:
        # Clamp elapsed at 0: a clock that steps back must not drain the bucket.
        return min(self.capacity, level + self.refill_per_second * max(0.0, now - updated_at))

    def deficit_seconds(self, level: float, amount: float) -> float:
        """Time until `level` (already refilled to now) reaches `amount`; 0 if it has."""
        return max(0.0, (amount - level) / self.refill_per_second)


@dataclass(frozen=True)
class _Row:
    level: float
    updated_at: float
    paused_until: float


class _LocalQueue:
    """What the threads of one process share about one bucket pair.

    `lock`: threads queue here for a transaction (cheap) instead of on the database lock
    (a pooled connection each; on SQLite, the busy handler's back-off naps).
    `waiters`: acquire() callers in arrival order. Only the head polls the database, so a
    refill wakes one thread per process instead of a herd that mostly fails; it also makes
    grants first-come first-served, so a large request is not starved by small ones.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.guard = threading.Lock()
        self.setup = threading.Lock()  # one thread creates the table and rows
        self.waiters: collections.deque[threading.Event] = collections.deque()

    def join(self) -> threading.Event:
        turn = threading.Event()
        with self.guard:
            self.waiters.append(turn)
            if self.waiters[0] is turn:
                turn.set()
        return turn

    def leave(self, turn: threading.Event) -> None:
        with self.guard:
            self.waiters.remove(turn)
            if self.waiters:
                self.waiters[0].set()


_local_queues: dict[tuple[str, str | None, str], _LocalQueue] = {}
_local_queues_guard = threading.Lock()


def _local_queue(engine: Engine, namespace: str) -> _LocalQueue:
    key = (str(engine.url), warehouse_schema(engine), namespace)
    with _local_queues_guard:
        return _local_queues.setdefault(key, _LocalQueue())


class SharedRateLimiter:
    """Requests-per-minute and tokens-per-minute buckets, shared through the database."""

    def __init__(
        self,
        engine: Engine,
        *,
        requests_per_minute: int,
        tokens_per_minute: int,
        namespace: str = "openai",
        period_seconds: float = 60.0,
        max_request_tokens: int = 4096,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not (math.isfinite(period_seconds) and period_seconds > 0):
            raise ValueError(f"period_seconds must be a positive number, got {period_seconds!r}")
        if requests_per_minute < 2:
            # Capacity 1 with limit 1 would leave nothing to refill with.
            raise ValueError(f"requests_per_minute must be at least 2, got {requests_per_minute}")
        if max_request_tokens < 1:
            raise ValueError(f"max_request_tokens must be at least 1, got {max_request_tokens}")
        if max_request_tokens > tokens_per_minute / 2:
            raise ValueError(
                f"max_request_tokens={max_request_tokens} is more than half of "
                f"tokens_per_minute={tokens_per_minute}: the shared bucket could not stay within "
                "the API's sliding-window limit; raise tokens_per_minute or lower max_tokens"
            )
        if not namespace or len(namespace) + len(":requests") > _NAME_MAX:
            raise ValueError(f"namespace must be 1 to {_NAME_MAX - 9} characters: {namespace!r}")

        req_cap = float(max(1, math.ceil(requests_per_minute / 100)))
        tok_cap = float(
            min(max(max_request_tokens, math.ceil(tokens_per_minute / 100)), tokens_per_minute / 2)
        )
        self.requests = BucketSpec(
            name=f"{namespace}:requests",
            limit=float(requests_per_minute),
            capacity=req_cap,
            refill_per_second=(requests_per_minute - req_cap) / period_seconds,
        )
        self.tokens = BucketSpec(
            name=f"{namespace}:tokens",
            limit=float(tokens_per_minute),
            capacity=tok_cap,
            refill_per_second=(tokens_per_minute - tok_cap) / period_seconds,
        )
        self.namespace = namespace
        self.max_request_tokens = max_request_tokens
        self.period_seconds = float(period_seconds)
        self._engine = engine
        self._sleep = sleep
        self._specs = {spec.name: spec for spec in (self.requests, self.tokens)}
        # Sorted: every transaction locks the rows in the same order, so none can deadlock.
        self._names = tuple(sorted(self._specs))
        self._local = _local_queue(engine, namespace)
        self._ready = False

    # --- public API ---------------------------------------------------------------------

    def acquire(self, tokens: int, *, cancelled: Callable[[], bool] | None = None) -> Reservation:
        """Block (sleeping) until one request and `tokens` tokens are free; take them."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if tokens > self.tokens.capacity:
            raise ValueError(
                f"a request for {tokens} tokens can never be granted: the shared token bucket "
                f"holds at most {self.tokens.capacity:g} (raise tokens_per_minute or lower "
                "max_tokens)"
            )
        started = time.monotonic()
        turn = self._local.join()
        try:
            while True:
                self._check_cancelled(cancelled, started)
                if not turn.wait(MAX_NAP_SECONDS):
                    continue  # another thread of this process is ahead: wait for our turn
                granted_at, wait = self._try_acquire(tokens)
                if granted_at is not None:
                    return Reservation(
                        requests=1,
                        tokens=tokens,
                        granted_at=granted_at,
                        waited_seconds=time.monotonic() - started,
                    )
                # Sleep for the deficit itself (the refill is continuous, so waking on time
                # loses nothing); the jitter spreads the heads of several processes.
                jitter = random.uniform(0.0, 0.001 + 0.01 * wait)
                self._sleep(min(MAX_NAP_SECONDS, max(MIN_NAP_SECONDS, wait) + jitter))
        finally:
            self._local.leave(turn)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Give back unused reserved tokens, or take the extra (the level may go negative)."""
        if actual_tokens < 0:
            raise ValueError(f"actual_tokens must be >= 0, got {actual_tokens}")
        delta = reservation.tokens - actual_tokens
        if delta == 0:
            return
        spec = self.tokens
        with self._transaction() as (conn, rows, now):
            row = rows[spec.name]
            # A refund is capped at capacity like the refill: it must not create a burst.
            level = min(spec.capacity, spec.level_at(row.level, row.updated_at, now) + delta)
            t = rate_limit_buckets
            conn.execute(
                t.update().where(t.c.name == spec.name).values(level=level, updated_at=now)
            )

    def pause(self, seconds: float) -> None:
        """A 429 was seen: no process gets a grant until now + seconds (or a later pause)."""
        if not math.isfinite(seconds):
            raise ValueError(f"pause seconds must be finite, got {seconds!r}")
        if seconds <= 0:
            return
        with self._transaction() as (conn, _rows, now):
            until = now + seconds
            t = rate_limit_buckets
            conn.execute(
                t.update()
                .where(t.c.name.in_(self._names))
                .values(
                    paused_until=sa.case((t.c.paused_until > until, t.c.paused_until), else_=until)
                )
            )

    def state(self) -> dict[str, Any]:
        """Levels as of now, capacities and the pause, for metadata and tests."""
        with self._transaction() as (_conn, rows, now):
            pass
        paused_until = max(row.paused_until for row in rows.values())
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "now": now,
            "paused_until": paused_until,
            "paused_for_seconds": max(0.0, paused_until - now),
        }
        for key, spec in (("requests", self.requests), ("tokens", self.tokens)):
            row = rows[spec.name]
            out[key] = {
                "level": spec.level_at(row.level, row.updated_at, now),
                "capacity": spec.capacity,
                "limit": spec.limit,
                "refill_per_second": spec.refill_per_second,
                "updated_at": row.updated_at,
            }
        return out

    # --- internals ----------------------------------------------------------------------

    def _check_cancelled(self, cancelled: Callable[[], bool] | None, started: float) -> None:
        if cancelled is not None and cancelled():
            raise RateLimiterCancelled(
                f"rate limiter {self.namespace!r}: wait cancelled after "
                f"{time.monotonic() - started:.1f}s"
            )

    def _try_acquire(self, tokens: int) -> tuple[float | None, float]:
        """One transaction: (grant time, 0) on success, else (None, seconds to wait)."""
        req, tok = self.requests, self.tokens
        with self._transaction() as (conn, rows, now):
            req_level = req.level_at(rows[req.name].level, rows[req.name].updated_at, now)
            tok_level = tok.level_at(rows[tok.name].level, rows[tok.name].updated_at, now)
            paused_until = max(row.paused_until for row in rows.values())
            wait = max(
                paused_until - now,
                req.deficit_seconds(req_level, 1),
                tok.deficit_seconds(tok_level, tokens),
            )
            if wait > 0:
                return None, wait  # nothing written: the lock is released at once
            t = rate_limit_buckets
            conn.execute(
                t.update()
                .where(t.c.name.in_(self._names))
                .values(
                    level=sa.case((t.c.name == req.name, req_level - 1), else_=tok_level - tokens),
                    updated_at=now,
                )
            )
            return now, 0.0

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[tuple[sa.Connection, dict[str, _Row], float]]:
        """One transaction holding both bucket rows locked, and the DB clock read after the
        lock was granted (so transactions on one bucket see non-decreasing times)."""
        if not self._ready:
            self._ensure_rows()
        for _ in range(3):
            with self._local.lock, self._engine.begin() as conn:
                rows = self._lock_rows(conn)
                if len(rows) == len(self._names):
                    yield conn, rows, clock_epoch(conn)
                    return
            # A row vanished (table truncated by hand): recreate it outside the lock, retry.
            self._ensure_rows(recheck=True)
        raise RuntimeError(f"rate limiter rows {self._names} could not be created")

    def _lock_rows(self, conn: sa.Connection) -> dict[str, _Row]:
        t = rate_limit_buckets
        stmt = lock_clause(
            self._engine,
            sa.select(t.c.name, t.c.level, t.c.updated_at, t.c.paused_until)
            .where(t.c.name.in_(self._names))
            .order_by(t.c.name),
        )
        return {
            name: _Row(float(level), float(updated_at), float(paused_until or 0.0))
            for name, level, updated_at, paused_until in conn.execute(stmt)
        }

    def _ensure_rows(self, *, recheck: bool = False) -> None:
        """Create the table if needed and any missing bucket row, full (level = capacity)."""
        with self._local.setup:
            if self._ready and not recheck:
                return  # another thread of this limiter did it while we queued
            self._create_rows()
            self._ready = True

    def _create_rows(self) -> None:
        if not self._ready:
            # Several processes may race to create the table on PostgreSQL: the loser's DDL
            # fails on the catalog's unique index, and the retry then finds the table there.
            for attempt in range(3):
                try:
                    create_warehouse_tables(self._engine)
                    break
                except sa.exc.DBAPIError:
                    if attempt == 2:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        t = rate_limit_buckets
        try:
            with self._engine.begin() as conn:
                existing = set(conn.scalars(sa.select(t.c.name).where(t.c.name.in_(self._names))))
                now = clock_epoch(conn)
                missing = [name for name in self._names if name not in existing]
                if missing:
                    conn.execute(
                        t.insert(),
                        [
                            {
                                "name": name,
                                "level": self._specs[name].capacity,
                                "updated_at": now,
                                "paused_until": 0.0,
                            }
                            for name in missing
                        ],
                    )
        except sa.exc.IntegrityError:
            pass  # another process inserted them first: just as good
