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

Leased blocks (`lease_seconds` > 0, for thousands of requests a second): one statement
(no transaction around it) takes up to as many requests (and tokens) as the process has
callers waiting, applies the settlements gathered since the last one, and returns what it
granted; the process hands the block out locally. A grant is taken from the bucket when
the block is leased, but used up to `lease_seconds` later, and the request reaches the
server up to another `lease_seconds` after that (the send, however loaded the process).
So a window of `period_seconds` at the server holds requests granted within `period +
2 * lease_seconds`, and the refill is (limit - C) / (period + 2 * lease_seconds): still
C + (limit - C) = limit in any window. What a block still holds when its time is up is
given back (capped at C, like any refund: as if it had never been taken); a process that
dies holding a block never gives it back, so the others get fewer grants, never more.

Why one module of ~700 lines and one class of ~500 (above the engine's ~600 / ~250): the
promise above (no window over the limit, across processes) rests on the grant, the leased
block, the refill allowance and the settlement being read together, with their SQL for
both dialects; split, each part would restate the invariant it leans on. What callers use
is small: `acquire`, `lease` / `take_leased`, `settle`, `pause`, `close`.
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

from kidsfin_assets.warehouse.db import clock_epoch, is_sqlite, lock_clause, warehouse_schema
from kidsfin_assets.warehouse.tables import create_warehouse_tables, rate_limit_buckets

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
    # Monotonic: a leased grant is sent by then or not at all (the refill counts on it).
    use_by: float = math.inf


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


@dataclass
class _Block:
    """Leased budget that this process hands out until `usable_until` (monotonic)."""

    requests: int
    tokens: int
    granted_at: float  # epoch seconds, by the database's clock
    usable_until: float


@dataclass(frozen=True)
class LeaseResult:
    """What one lease statement did: `requests` granted (0: wait `wait_seconds`)."""

    requests: int
    tokens: int
    granted_at: float
    wait_seconds: float


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
        # Lease mode: the block being handed out, and settlements not yet sent (under guard).
        self.block: _Block | None = None
        self.refund_requests = 0
        self.refund_tokens = 0
        # Pauses written by this process: a lease begun before one must not hand out its block.
        self.pauses = 0

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
        lease_seconds: float = 0.0,
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
        if not (math.isfinite(lease_seconds) and 0 <= lease_seconds <= period_seconds):
            raise ValueError(f"lease_seconds must be 0 to period_seconds, got {lease_seconds!r}")
        if not namespace or len(namespace) + len(":requests") > _NAME_MAX:
            raise ValueError(f"namespace must be 1 to {_NAME_MAX - 9} characters: {namespace!r}")

        # Leased grants reach the server up to 2 * lease_seconds after they left the bucket.
        refill_over = period_seconds + 2 * lease_seconds
        req_cap = float(max(1, math.ceil(requests_per_minute / 100)))
        tok_cap = float(
            min(max(max_request_tokens, math.ceil(tokens_per_minute / 100)), tokens_per_minute / 2)
        )
        self.requests = BucketSpec(
            name=f"{namespace}:requests",
            limit=float(requests_per_minute),
            capacity=req_cap,
            refill_per_second=(requests_per_minute - req_cap) / refill_over,
        )
        self.tokens = BucketSpec(
            name=f"{namespace}:tokens",
            limit=float(tokens_per_minute),
            capacity=tok_cap,
            refill_per_second=(tokens_per_minute - tok_cap) / refill_over,
        )
        self.namespace = namespace
        self.max_request_tokens = max_request_tokens
        self.period_seconds = float(period_seconds)
        self.lease_seconds = float(lease_seconds)
        self._engine = engine
        self._sleep = sleep
        self._specs = {spec.name: spec for spec in (self.requests, self.tokens)}
        # Sorted: every transaction locks the rows in the same order, so none can deadlock.
        self._names = tuple(sorted(self._specs))
        self._local = _local_queue(engine, namespace)
        self._ready = False
        self._lease_lock = threading.Lock()
        self._lease_conn: sa.Connection | None = None
        self._lease_sql = _lease_sql(engine)

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
                if self.lease_seconds:
                    taken, wait = self._acquire_leased(tokens, started)
                    if taken is not None:
                        return taken
                else:
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
        if self.lease_seconds:
            with self._local.guard:  # sent with the next lease statement (or flush())
                self._local.refund_tokens += delta
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
        with self._local.guard:  # this process's leased grants are not used during a pause
            self._retire_block()
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
        with self._local.guard:  # a lease granted before the pause was written: not used
            self._retire_block()
            self._local.pauses += 1

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

    # --- leased blocks (lease_seconds > 0) -----------------------------------------------

    def _acquire_leased(self, tokens: int, started: float) -> tuple[Reservation | None, float]:
        """The head of this process's queue: from the block, else a new block sized for
        every caller queued here (they take from it in turn), else the time to wait."""
        taken = self._take_leased(tokens, started)
        if taken is not None:
            return taken, 0.0
        wanted = len(self._local.waiters)
        lease = self.lease(wanted, tokens * wanted, tokens)
        if not lease.requests:
            return None, lease.wait_seconds
        # None only if the block lapsed already (a stalled process): lease again at once.
        return self._take_leased(tokens, started), 0.0

    def take_leased(self, tokens: int) -> Reservation | None:
        """One request and `tokens` from this process's leased block, or None (none left,
        or its time is up: what it still held is then given back with the next lease)."""
        return self._take_leased(tokens, time.monotonic())

    def lease(self, requests: int, tokens: int, head_tokens: int) -> LeaseResult:
        """One statement: up to `requests` requests and `tokens` tokens into this process's
        block (nothing unless one request and `head_tokens` fit), settlements sent with it."""
        if not self.lease_seconds:
            raise RuntimeError("lease() needs lease_seconds > 0")
        if head_tokens > self.tokens.capacity:
            raise ValueError(f"a request for {head_tokens} tokens can never be granted")
        requests = max(1, requests)
        tokens = int(min(max(tokens, head_tokens), self.tokens.capacity))
        if not self._ready:
            self._ensure_rows()  # before the clock starts: the first lease is not wasted
        # Taken before the statement: a block is usable for lease_seconds from a moment
        # no later than the database's grant, whatever the round trip took.
        leased_at = time.monotonic()
        with self._local.guard:
            self._retire_block()
            pauses = self._local.pauses
        back_requests, back_tokens = self._take_refunds()
        try:
            result = self._lease_statement(
                requests, tokens, head_tokens, back_requests, back_tokens
            )
        except BaseException:
            with self._local.guard:  # not sent: kept for the next statement
                self._local.refund_requests += back_requests
                self._local.refund_tokens += back_tokens
            raise
        if result.requests:
            with self._local.guard:
                self._retire_block()
                if self._local.pauses != pauses:  # granted before a pause: given back
                    self._local.refund_requests += result.requests
                    self._local.refund_tokens += result.tokens
                    return result
                self._local.block = _Block(
                    result.requests,
                    result.tokens,
                    result.granted_at,
                    leased_at + self.lease_seconds,
                )
        return result

    def flush(self) -> None:
        """Send the settlements gathered here and give back the block (end of a step)."""
        if not self.lease_seconds:
            return
        with self._local.guard:
            self._retire_block()
            pending = self._local.refund_requests or self._local.refund_tokens
        if pending:
            back_requests, back_tokens = self._take_refunds()
            try:
                self._lease_statement(0, 0, 0, back_requests, back_tokens)
            except BaseException:
                with self._local.guard:
                    self._local.refund_requests += back_requests
                    self._local.refund_tokens += back_tokens
                raise

    def close(self) -> None:
        """Send what is gathered and let go of the lease connection (end of a step)."""
        try:
            self.flush()
        finally:
            with self._lease_lock:
                self._close_lease_conn(invalidate=False)

    def _take_refunds(self) -> tuple[int, int]:
        with self._local.guard:
            out = (self._local.refund_requests, self._local.refund_tokens)
            self._local.refund_requests = self._local.refund_tokens = 0
        return out

    def _take_leased(self, tokens: int, started: float) -> Reservation | None:
        with self._local.guard:
            block = self._local.block
            if block is None:
                return None
            if time.monotonic() > block.usable_until:
                self._retire_block()
                return None
            if block.requests < 1 or block.tokens < tokens:
                return None
            block.requests -= 1
            block.tokens -= tokens
            return Reservation(
                requests=1,
                tokens=tokens,
                granted_at=block.granted_at,
                waited_seconds=time.monotonic() - started,
                use_by=block.usable_until,
            )

    def _retire_block(self) -> None:
        """Under guard: what the block still holds goes back with the next statement."""
        block = self._local.block
        if block is not None:
            self._local.refund_requests += block.requests
            self._local.refund_tokens += block.tokens
            self._local.block = None

    def _lease_statement(
        self, requests: int, tokens: int, head_tokens: int, back_requests: int, back_tokens: int
    ) -> LeaseResult:
        if not self._ready:
            self._ensure_rows()
        params = {
            "req": self.requests.name,
            "tok": self.tokens.name,
            "req_cap": self.requests.capacity,
            "tok_cap": self.tokens.capacity,
            "req_rate": self.requests.refill_per_second,
            "tok_rate": self.tokens.refill_per_second,
            "req_back": float(back_requests),
            "tok_back": float(back_tokens),
            "want": requests,
            "want_tokens": tokens,
            "head": head_tokens,
        }
        for _ in range(3):
            if is_sqlite(self._engine):
                got = self._lease_in_transaction(params)
            else:
                got = self._run_lease_sql(params)
            if got is not None and got["rows"] == 2:
                return self._lease_result(got)
            self._ensure_rows(recheck=True)  # a row vanished (truncated by hand)
        raise RuntimeError(f"rate limiter rows {self._names} could not be created")

    def _lease_result(self, got: Any) -> LeaseResult:
        granted = int(got["req_n"])
        now = float(got["now"])
        if granted:
            return LeaseResult(granted, int(got["tok_n"]), now, 0.0)
        wait = max(
            float(got["paused_until"]) - now,
            self.requests.deficit_seconds(float(got["req_level"]), 1),
            self.tokens.deficit_seconds(float(got["tok_level"]), float(got["head"])),
            MIN_NAP_SECONDS,
        )
        return LeaseResult(0, 0, now, wait)

    def _run_lease_sql(self, params: dict[str, Any]) -> Any:
        """On one connection kept for the leases (a pooled checkout would add the pool's
        ping, a round trip); a broken one is dropped and the next lease opens another."""
        with self._lease_lock:
            try:
                if self._lease_conn is None:
                    conn = self._engine.connect()
                    self._lease_conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return self._lease_conn.execute(self._lease_sql, params).mappings().first()
            except BaseException:
                self._close_lease_conn(invalidate=True)
                raise

    def _close_lease_conn(self, invalidate: bool) -> None:
        """Under _lease_lock."""
        conn, self._lease_conn = self._lease_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    conn.invalidate()
                conn.close()

    def _lease_in_transaction(self, p: dict[str, Any]) -> dict[str, Any] | None:
        """SQLite's lease: the statement's arithmetic, under BEGIN IMMEDIATE."""
        req, tok = self.requests, self.tokens
        with self._transaction() as (conn, rows, now):
            r_row, t_row = rows[req.name], rows[tok.name]
            req_level = min(
                req.capacity, req.level_at(r_row.level, r_row.updated_at, now) + p["req_back"]
            )
            tok_level = min(
                tok.capacity, tok.level_at(t_row.level, t_row.updated_at, now) + p["tok_back"]
            )
            paused_until = max(row.paused_until for row in rows.values())
            fits = paused_until <= now and req_level >= 1 and tok_level >= p["head"]
            req_n = min(p["want"], math.floor(req_level)) if fits and p["want"] else 0
            tok_n = min(p["want_tokens"], math.floor(tok_level)) if req_n else 0
            t = rate_limit_buckets
            conn.execute(
                t.update()
                .where(t.c.name.in_(self._names))
                .values(
                    level=sa.case(
                        (t.c.name == req.name, req_level - req_n), else_=tok_level - tok_n
                    ),
                    updated_at=sa.case((t.c.updated_at > now, t.c.updated_at), else_=now),
                )
            )
        return {
            "rows": 2,
            "req_n": req_n,
            "tok_n": tok_n,
            "req_level": req_level,
            "tok_level": tok_level,
            "now": now,
            "paused_until": paused_until,
            "head": p["head"],
        }

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


def _lease_sql(engine: Engine) -> sa.TextClause:
    """The lease as one PostgreSQL statement (one round trip, no transaction around it).

    `locked` takes both rows' locks (FOR UPDATE in a CTE returns the newest versions after
    waiting); the clock is read after it (the aggregate needs every locked row first), so
    transactions on the bucket see non-decreasing times; updated_at never moves back.
    Settlements (`req_back`, `tok_back`) are applied before the grant, capped at capacity."""
    schema = warehouse_schema(engine)
    table = f'"{schema}".{rate_limit_buckets.name}' if schema else rate_limit_buckets.name
    return sa.text(
        f"""
        WITH locked AS (
            SELECT name, level, updated_at, paused_until FROM {table}
            WHERE name IN (:req, :tok) ORDER BY name FOR UPDATE
        ), clock AS (
            SELECT CAST(extract(epoch FROM clock_timestamp()) AS float8) AS now,
                   count(*) AS rows
            FROM locked
        ), cur AS (
            SELECT c.now, c.rows, max(l.paused_until) AS paused_until,
                max(CASE WHEN l.name = :req THEN LEAST(CAST(:req_cap AS float8),
                    LEAST(CAST(:req_cap AS float8),
                          l.level + :req_rate * GREATEST(0, c.now - l.updated_at))
                    + :req_back) END) AS req_level,
                max(CASE WHEN l.name = :tok THEN LEAST(CAST(:tok_cap AS float8),
                    LEAST(CAST(:tok_cap AS float8),
                          l.level + :tok_rate * GREATEST(0, c.now - l.updated_at))
                    + :tok_back) END) AS tok_level
            FROM locked l CROSS JOIN clock c GROUP BY c.now, c.rows
        ), g AS (
            SELECT cur.*, CASE
                WHEN cur.paused_until <= cur.now AND cur.req_level >= 1
                     AND cur.tok_level >= :head AND :want > 0
                THEN LEAST(:want, floor(cur.req_level)) ELSE 0 END AS req_n
            FROM cur
        ), g2 AS (
            SELECT g.*, CASE WHEN g.req_n > 0 THEN LEAST(:want_tokens, floor(g.tok_level))
                        ELSE 0 END AS tok_n
            FROM g
        )
        UPDATE {table} AS b
        SET level = CASE WHEN b.name = :req THEN g2.req_level - g2.req_n
                         ELSE g2.tok_level - g2.tok_n END,
            updated_at = GREATEST(b.updated_at, g2.now)
        FROM g2
        WHERE b.name IN (:req, :tok) AND g2.rows = 2
        RETURNING g2.rows, g2.req_n, g2.tok_n, g2.req_level, g2.tok_level, g2.now,
                  g2.paused_until, CAST(:head AS float8) AS head
        """
    )
