"""Deliberately invalid rows: a fixed, seeded share of the transactions and app events.

The pipeline's quarantine (kidsfin_assets.warehouse.validation) must catch each; the demo summary
counts them per defect, and QUARANTINE_REASON says what the quarantine calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kidsfin_demo.times import local_to_utc
from kidsfin_demo.vocabulary import (
    REFUND,
    SLOT_CATEGORY,
    SLOT_KIND,
    SPENDING_PRICE,
    SPENDING_SLOT_P,
)
from kidsfin_demo.wallet import round_vnd

# Deliberately invalid rows, for the pipeline's quarantine and its tests: about 2 % of the
# transactions and app events, one defect a row, dealt round-robin over the defects so that
# even a small demo has every kind (a fixed, seeded set: the same rows every run). They are
# extra rows: the valid data, and every wallet, are the same with or without them. Each is
# recognisable: an invalid transaction's note is DIRTY_NOTE_PREFIX + its defect, and an
# orphan's kid_id is ORPHAN_KID_BASE or above (never a real kid).
DIRTY_SHARE = 0.02
TXN_DEFECTS = ("orphan_kid", "missing_time", "unknown_kind", "zero_amount", "negative_amount")
EVENT_DEFECTS = ("orphan_kid", "missing_time")
DIRTY_NOTE_PREFIX = "demo: invalid on purpose: "
ORPHAN_KID_BASE = 900_000_000
# What the pipeline's quarantine calls each defect (kidsfin_assets.warehouse.validation.Reason).
QUARANTINE_REASON = {
    "orphan_kid": "orphan_kid",
    "missing_time": "missing_time",
    "unknown_kind": "unknown_kind",
    "zero_amount": "bad_amount",
    "negative_amount": "bad_amount",
    "nan_amount": "bad_amount",
    "null_amount": "bad_amount",
}


LocalTimes = Callable[[np.random.Generator, int], np.ndarray]


@dataclass
class _Share:
    """One table's dirty rows so far: a running fraction owed keeps DIRTY_SHARE exact at any
    scale, and a count of defects dealt keeps the round-robin going across chunks."""

    debt: float = 0.0
    dealt: int = 0

    def count(self, valid_rows: int) -> int:
        self.debt += DIRTY_SHARE * valid_rows
        k = int(self.debt)
        self.debt -= k
        return k

    def deal(self, defects: Sequence[str], k: int) -> np.ndarray:
        # Round-robin over the defects, so even a small demo has every kind.
        picked = np.asarray(defects, dtype=object)[(self.dealt + np.arange(k)) % len(defects)]
        self.dealt += k
        return picked


class DirtyRows:
    """Adds invalid rows to each chunk of valid ones and counts them per defect.

    `random_local(rng, n)` gives n random local times in the chunk's week: the invalid rows
    fall in the same week as the valid ones.
    """

    def __init__(self, tz: str, sqlite: bool) -> None:
        self.tz = tz
        self.nan_defect = "null_amount" if sqlite else "nan_amount"  # SQLite has no NaN
        self.txn_defects = (*TXN_DEFECTS, self.nan_defect)
        # "<transactions|app_events>.<defect>" -> rows
        self.invalid: dict[str, int] = {
            **{f"transactions.{d}": 0 for d in self.txn_defects},
            **{f"app_events.{d}": 0 for d in EVENT_DEFECTS},
        }
        self._txns, self._events = _Share(), _Share()

    def _who_and_when(
        self,
        rng: np.random.Generator,
        random_local: LocalTimes,
        kids: np.ndarray,
        defect: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each invalid row's kid_id (an orphan's: none of the kids) and time (maybe none)."""
        k = len(defect)
        kid = kids[rng.integers(0, len(kids), k)] + 1
        orphan = defect == "orphan_kid"
        kid[orphan] = ORPHAN_KID_BASE + rng.integers(0, 100_000, int(orphan.sum()))
        when = local_to_utc(random_local(rng, k), self.tz)
        when[defect == "missing_time"] = np.datetime64("NaT")
        return kid, when

    def _count(self, table: str, defects: Sequence[str], defect: np.ndarray) -> None:
        for d in defects:
            self.invalid[f"{table}.{d}"] += int((defect == d).sum())

    def transactions(
        self,
        rng: np.random.Generator,
        random_local: LocalTimes,
        kids: np.ndarray,
        txns: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        k = self._txns.count(len(txns["kid_id"]))
        if k == 0:
            return txns
        defect = self._txns.deal(self.txn_defects, k)
        slot = rng.choice(8, size=k, p=SPENDING_SLOT_P)
        kid, when = self._who_and_when(rng, random_local, kids, defect)
        kind = SLOT_KIND[slot].copy()
        kind[defect == "unknown_kind"] = REFUND
        amount = round_vnd(SPENDING_PRICE[slot] * rng.lognormal(0.0, 0.45, k))
        amount[defect == "zero_amount"] = 0.0
        amount[defect == "negative_amount"] *= -1
        amount[defect == self.nan_defect] = np.nan  # NUMERIC 'NaN' on PG, NULL on SQLite
        self._count("transactions", self.txn_defects, defect)
        dirty = {
            "kid_id": kid,
            "occurred_at": when,
            "kind": kind,
            "category": SLOT_CATEGORY[slot],
            "amount": amount,
            "note": np.char.add(DIRTY_NOTE_PREFIX, defect.astype(str)).astype(object),
        }
        return {c: np.concatenate([txns[c], dirty[c]]) for c in txns}

    def events(
        self,
        rng: np.random.Generator,
        random_local: LocalTimes,
        kids: np.ndarray,
        events: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        k = self._events.count(len(events["kid_id"]))
        if k == 0:
            return events
        defect = self._events.deal(EVENT_DEFECTS, k)
        kid, when = self._who_and_when(rng, random_local, kids, defect)
        self._count("app_events", EVENT_DEFECTS, defect)
        dirty = {"kid_id": kid, "occurred_at": when, "event_type": rng.integers(0, 3, k)}
        return {c: np.concatenate([events[c], dirty[c]]) for c in events}
