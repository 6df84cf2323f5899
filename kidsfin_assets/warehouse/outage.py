"""Riding out a warehouse outage: while the database is unreachable, callers wait for it
(sending no new API request meanwhile) up to `warehouse.outage_wait_seconds`, then fail."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.warehouse import db

T = TypeVar("T")
PROBE_INTERVAL_SECONDS = 1.0
CONFLICT_RETRIES = 10  # a deadlock or serialisation failure, run again at once (jittered)
CONFLICT_BACKOFF_SECONDS = 0.02


class WarehouseUnavailable(Exception):
    """The warehouse stayed unreachable for longer than the run may wait."""


class WarehouseGate:
    """Runs database calls for the threads of one step. A call that finds the database
    unreachable marks it down; every caller then waits here, probing, until it is back
    (and the call is repeated) or until `wait_seconds` have passed since it went down."""

    def __init__(
        self,
        engine: Engine,
        wait_seconds: float,
        stopping: Callable[[], bool],
        on_change: Callable[[str], None],
    ) -> None:
        self.engine, self.wait_seconds = engine, wait_seconds
        self.stopping, self.on_change = stopping, on_change
        self._down_since: float | None = None
        self._last_error = ""
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def call(self, fn: Callable[[], T]) -> T:
        """`fn` (its own transaction) run once the database is up; run again after an
        outage, or at once after a lock conflict (up to CONFLICT_RETRIES times)."""
        conflicts = 0
        while True:
            self.wait_until_up()
            try:
                return fn()
            except Exception as exc:
                if db.is_lock_conflict(exc) and conflicts < CONFLICT_RETRIES:
                    conflicts += 1
                    time.sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * conflicts))
                    continue
                if not db.is_disconnect(exc):
                    raise
                self.mark_down(exc)

    def may_retry(self, exc: Exception) -> bool:
        """Whether a call that failed with `exc` outside `call` may be run again through it:
        the database went away (marked down here, so every caller waits for it) or a lock
        conflict rolled the transaction back."""
        if db.is_disconnect(exc):
            self.mark_down(exc)
            return True
        return db.is_lock_conflict(exc)

    def wait_until_up(self) -> None:
        while True:
            with self._lock:
                since = self._down_since
            if since is None:
                return
            if time.monotonic() - since > self.wait_seconds:
                raise WarehouseUnavailable(
                    f"the warehouse database has been unreachable for more than "
                    f"warehouse.outage_wait_seconds={self.wait_seconds:g} s "
                    f"({self._last_error})"
                )
            if self.stopping():
                raise WarehouseUnavailable("the run is stopping while the warehouse is down")
            if self._probe():
                self._mark_up()
                return
            time.sleep(PROBE_INTERVAL_SECONDS)

    def _probe(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    def mark_down(self, exc: Exception) -> None:
        with self._lock:
            self._last_error = str(exc).splitlines()[0][:200]
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        self.on_change(
            f"warehouse unreachable ({self._last_error}): no new request is sent; answers "
            f"already paid for are kept; waiting up to {self.wait_seconds:g} s for it"
        )

    def _mark_up(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            lasted = time.monotonic() - self._down_since
            self._down_since = None
        self.on_change(f"warehouse reachable again after {lasted:.1f} s: resuming")
