"""The gold ledger: claims on kid-weeks, every request and answer paid for, and the reports
derived from accepted answers.

- A kid-week is claimed (with a lease its run renews) before its request is sent, so two
  runs of one week never both pay for it: the second skips it and waits for the answer.
- Every exchange with the API is a row of `report_ledger`, written when it is known; a
  report row is derived from its accepted answer in the same transaction, and carries the
  sum of every answer paid for that kid-week and input (failed ones included).
- Cost metadata is read back from the ledger, so runs and rows always agree.

~620 lines (at the engine's ~600): claims, exchanges and reports are one set of tables and
one set of transactions (a report row is written with its answer's), kept together.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import (
    kid_weekly_analysis,
    kid_weekly_reports,
    report_claims,
    report_ledger,
    warehouse_identity,
)

CHUNK = 1000  # rows per multi-row statement (bounded IN lists and parameters)
USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")


def warehouse_id(engine: Engine) -> str:
    """The warehouse's own id (created on first use): names its spool files."""
    t = warehouse_identity
    with engine.begin() as conn:
        found = conn.execute(sa.select(t.c.id).limit(1)).scalar_one_or_none()
        if found is None:
            db.insert_ignoring_duplicates(conn, t, [{"id": uuid.uuid4().hex}])
            found = conn.execute(sa.select(t.c.id).order_by(t.c.id).limit(1)).scalar_one()
    return str(found)


def new_owner() -> str:
    """host:pid:token -- the pid lets a run on the same host see that a claimant died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """A claimant process on this host that is gone (a batch's claims live by their lease)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _insert(engine: Engine) -> Any:
    if db.is_sqlite(engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


class ClaimLost(Exception):
    """This writer's lease on a kid-week ran out before its request was sent."""


@dataclass(frozen=True)
class ClaimResult:
    mine: set[int]  # claimed by this writer: ask for them
    done: set[int]  # a report with the wanted input is already there
    elsewhere: dict[int, str]  # claimed by another live run (kid -> its run id)


class Claims:
    """This writer's claims on the kid-weeks of one week."""

    def __init__(
        self,
        engine: Engine,
        week_start: dt.date,
        run_id: str,
        lease: float,
        owner: str | None = None,
    ) -> None:
        self.engine, self.week_start, self.run_id, self.lease = engine, week_start, run_id, lease
        self.owner = owner or new_owner()
        # kid -> this process's monotonic time by which its lease surely holds (the lease was
        # set to the database's clock + lease after this time was read)
        self._valid_until: dict[int, float] = {}
        self._held_lock = threading.Lock()
        # One renewal at a time: callers that find their lease stale at once (every task of
        # a slow process) share one UPDATE instead of each locking every claim row.
        self._renew_lock = threading.Lock()
        self._renewed_at = float("-inf")  # when the latest successful renewal began

    def claim(self, wanted: dict[int, str]) -> ClaimResult:
        """Take every kid of `wanted` (kid -> input hash) that nobody holds, or whose
        claim's lease has run out; leave the rest to their owners."""
        mine: set[int] = set()
        done: set[int] = set()
        elsewhere: dict[int, str] = {}
        for chunk in _chunks(sorted(wanted)):
            read_at = time.monotonic()
            with self.engine.begin() as conn:
                self._expire_dead_owners(conn, chunk)
                taken = self._take(conn, {kid: wanted[kid] for kid in chunk})
                finished = self._reported(conn, {kid: wanted[kid] for kid in taken})
                self.delete_in(conn, finished)
                elsewhere.update(self._holders(conn, set(chunk) - taken))
            # Held once committed: a transaction rolled back leaves no claim behind.
            self._hold(taken - finished, read_at + self.lease)
            mine |= taken - finished
            done |= finished
        done |= self.reported({kid: wanted[kid] for kid in elsewhere})
        return ClaimResult(mine, done, {k: r for k, r in elsewhere.items() if k not in done})

    def _take(self, conn: Connection, wanted: dict[int, str]) -> set[int]:
        """Claims rows, held (`_hold`) by the caller once committed; the lease set is the
        database's clock + lease, read after the caller's monotonic `read_at`."""
        claims = report_claims
        now = db.clock_epoch(conn)
        rows = [
            {
                "week_start": self.week_start,
                "kid_id": kid,
                "input_hash": digest,
                "owner": self.owner,
                "run_id": self.run_id,
                "lease_until": now + self.lease,
            }
            for kid, digest in wanted.items()
        ]
        insert = _insert(conn.engine)(claims)  # rows as parameter sets: see db.upsert_many
        statement = insert.on_conflict_do_update(
            index_elements=["week_start", "kid_id"],
            set_={c: insert.excluded[c] for c in ("input_hash", "owner", "run_id", "lease_until")},
            where=sa.or_(claims.c.lease_until < now, claims.c.owner == self.owner),
        ).returning(claims.c.kid_id)
        return set(conn.execute(statement, rows).scalars())

    def _hold(self, kids: Iterable[int], until: float) -> None:
        with self._held_lock:
            self._valid_until.update(dict.fromkeys(kids, until))

    def holds(self, kid: int, margin: float) -> bool:
        """Whether this writer's claim on `kid` surely lasts `margin` more seconds. After an
        outage or a stall longer than the lease it does not: another run may have taken
        the kid and paid for it, so it must not be asked for before `renew` says."""
        with self._held_lock:
            return time.monotonic() + margin < self._valid_until.get(kid, 0.0)

    def _expire_dead_owners(self, conn: Connection, kids: list[int]) -> None:
        claims = report_claims
        owners = conn.execute(
            sa.select(claims.c.owner)
            .distinct()
            .where(claims.c.week_start == self.week_start, claims.c.kid_id.in_(kids))
        ).scalars()
        dead = [owner for owner in owners if owner != self.owner and owner_is_dead(owner)]
        if dead:
            conn.execute(
                claims.update()
                .where(claims.c.week_start == self.week_start, claims.c.owner.in_(dead))
                .values(lease_until=0.0)
            )

    def _holders(self, conn: Connection, kids: set[int]) -> dict[int, str]:
        if not kids:
            return {}
        claims = report_claims
        query = sa.select(claims.c.kid_id, claims.c.run_id).where(
            claims.c.week_start == self.week_start, claims.c.kid_id.in_(sorted(kids))
        )
        return dict(conn.execute(query).all())

    def _reported(self, conn: Connection, wanted: dict[int, str]) -> set[int]:
        if not wanted:
            return set()
        gold = kid_weekly_reports
        query = sa.select(gold.c.kid_id, gold.c.input_hash).where(
            gold.c.week_start == self.week_start, gold.c.kid_id.in_(sorted(wanted))
        )
        return {kid for kid, digest in conn.execute(query) if wanted.get(kid) == digest}

    def reported(self, wanted: dict[int, str]) -> set[int]:
        """Kids of `wanted` whose report with that input is stored (by any run)."""
        found: set[int] = set()
        for chunk in _chunks(sorted(wanted)):
            with self.engine.connect() as conn:
                found |= self._reported(conn, {kid: wanted[kid] for kid in chunk})
        return found

    def delete_in(self, conn: Connection, kids: Iterable[int]) -> None:
        kids = sorted(kids)
        with self._held_lock:
            for kid in kids:
                self._valid_until.pop(kid, None)
        if kids:
            claims = report_claims
            conn.execute(
                claims.delete().where(
                    claims.c.week_start == self.week_start,
                    claims.c.kid_id.in_(kids),
                    claims.c.owner == self.owner,
                )
            )

    def release(self, kids: Iterable[int]) -> None:
        """Give kids back (failed or not asked): another run may take them at once."""
        with self.engine.begin() as conn:
            self.delete_in(conn, kids)

    def release_all(self) -> None:
        claims = report_claims
        with self.engine.begin() as conn:
            conn.execute(claims.delete().where(claims.c.owner == self.owner))
        with self._held_lock:
            self._valid_until.clear()

    def renew(self) -> None:
        """Extend every lease this writer still holds. A lease that ran out is not revived,
        even if nobody took the kid yet: the kid is no longer held (`holds` says so) until
        it is claimed again. Callers at once share one renewal: one that began after this
        call was made covers it."""
        asked_at = time.monotonic()
        with self._renew_lock:
            if self._renewed_at >= asked_at:
                return
            read_at = time.monotonic()
            held = self._renew_rows()
            self._renewed_at = read_at  # only once it succeeded: a failed one covers nobody
            renewed = read_at + self.lease
            with self._held_lock:
                # A kid the update did not return keeps the lease it had: either it ran out
                # (its own time says so) or its claim was not yet committed when the update
                # ran, and is good until its own time.
                for kid in held & self._valid_until.keys():
                    self._valid_until[kid] = max(self._valid_until[kid], renewed)

    def _renew_rows(self) -> set[int]:
        """One statement; rows locked in kid order, as every other writer of claims locks
        them (sorted IN lists), so that it cannot deadlock with a release or a claim."""
        claims = report_claims
        with self.engine.begin() as conn:
            now = db.clock_epoch(conn)
            mine = sa.and_(claims.c.owner == self.owner, claims.c.lease_until >= now)
            if db.is_sqlite(conn.engine):  # one writer at a time: no lock order to keep
                where = mine
            else:
                locked = (
                    sa.select(claims.c.week_start, claims.c.kid_id)
                    .where(mine)
                    .order_by(claims.c.kid_id)
                    .with_for_update()
                )
                where = sa.tuple_(claims.c.week_start, claims.c.kid_id).in_(locked)
            statement = (
                claims.update()
                .where(where)
                .values(lease_until=now + self.lease)
                .returning(claims.c.kid_id)
            )
            return set(conn.execute(statement).scalars())


# --- the ledger ---------------------------------------------------------------------------


def attempts(conn: Connection, week_start: dt.date, wanted: dict[int, str]) -> dict[int, int]:
    """Requests already made for each kid's current input (sync and batch alike)."""
    t = report_ledger
    counts: dict[int, int] = {}
    for chunk in _chunks(sorted(wanted)):
        query = (
            sa.select(t.c.kid_id, t.c.input_hash, sa.func.count())
            .where(t.c.week_start == week_start, t.c.kid_id.in_(chunk))
            .group_by(t.c.kid_id, t.c.input_hash)
        )
        for kid, digest, n in conn.execute(query):
            if wanted.get(kid) == digest:
                counts[kid] = int(n)
    return counts


def claimed_by(conn: Connection, week_start: dt.date, owner: str) -> dict[int, str]:
    """The kids (and the input each was claimed for) that `owner` holds this week."""
    claims = report_claims
    query = sa.select(claims.c.kid_id, claims.c.input_hash).where(
        claims.c.week_start == week_start, claims.c.owner == owner
    )
    return dict(conn.execute(query).all())


def pending_in_batches(conn: Connection, week_start: dt.date) -> int:
    """How many of the week's kids (in silver, without the report a batch asks for) a batch
    holds: counted by the warehouse, not read into memory."""
    claims, gold, silver = report_claims, kid_weekly_reports, kid_weekly_analysis
    in_silver = (
        sa.select(silver.c.kid_id)
        .where(silver.c.week_start == claims.c.week_start, silver.c.kid_id == claims.c.kid_id)
        .exists()
    )
    reported = (
        sa.select(gold.c.kid_id)
        .where(
            gold.c.week_start == claims.c.week_start,
            gold.c.kid_id == claims.c.kid_id,
            gold.c.input_hash == claims.c.input_hash,
        )
        .exists()
    )
    query = sa.select(sa.func.count()).where(
        claims.c.week_start == week_start,
        claims.c.owner.like("batch:%"),
        in_silver,
        sa.not_(reported),
    )
    return int(conn.execute(query).scalar_one())


def release_owner(conn: Connection, week_start: dt.date, owner: str) -> None:
    claims = report_claims
    conn.execute(claims.delete().where(claims.c.week_start == week_start, claims.c.owner == owner))


def store_exchange(conn: Connection, row: dict[str, Any]) -> None:
    """One ledger row; stored once even when a spool replays it."""
    db.insert_ignoring_duplicates(conn, report_ledger, [row])


def stored_answers(conn: Connection, answer_ids: Iterable[str]) -> set[str]:
    """Which of these answers the ledger already holds."""
    t = report_ledger
    found: set[str] = set()
    for chunk in _chunks(sorted(set(answer_ids))):
        query = sa.select(t.c.answer_id).where(t.c.answer_id.in_(chunk))
        found |= set(conn.execute(query).scalars())
    return found


def store_exchanges(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Many ledger rows in multi-row INSERTs; returns the answer ids stored
    now. An answer already there (a file collected again, by this or another run) is left
    as it is and not returned: its report must not be derived, nor its cost counted, twice."""
    if not rows:
        return set()
    t = report_ledger
    # executemany: compiled once (cached), sent as multi-row VALUES ("insertmanyvalues").
    statement = _insert(conn.engine)(t).on_conflict_do_nothing().returning(t.c.answer_id)
    return set(conn.execute(statement, rows).scalars())


def paid_for_many(
    conn: Connection, week_start: dt.date, wanted: dict[int, str]
) -> dict[int, dict[str, Any]]:
    """`paid_for` of many kids (kid -> input hash) in one grouped query per chunk."""
    t = report_ledger
    sums = [sa.func.coalesce(sa.func.sum(t.c[c]), 0) for c in USAGE_COLUMNS]
    paid: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(wanted)):
        query = (
            sa.select(t.c.kid_id, t.c.input_hash, *sums)
            .where(t.c.week_start == week_start, t.c.kid_id.in_(chunk))
            .group_by(t.c.kid_id, t.c.input_hash)
        )
        for kid, digest, *totals in conn.execute(query):
            if wanted[kid] == digest:
                paid[kid] = _usage(totals)
    return paid


def _usage(totals: list[Any]) -> dict[str, Any]:
    prompt, completion, cached, cost = totals
    return {
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "cached_tokens": int(cached),
        "cost_usd": float(cost),
    }


def store_reports(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Reports derived from answers stored in this transaction, each with what every
    answer for its kid-week and input cost: one grouped read and one multi-row upsert per
    chunk (`store_report` for many rows of one week)."""
    latest = {(r["week_start"], r["kid_id"]): r for r in rows}  # one row per key and statement
    by_week: dict[dt.date, list[dict[str, Any]]] = {}
    for row in latest.values():
        by_week.setdefault(row["week_start"], []).append(row)
    gold = kid_weekly_reports
    for week_start, week_rows in by_week.items():
        for chunk in _chunks(week_rows):
            paid = paid_for_many(conn, week_start, {r["kid_id"]: r["input_hash"] for r in chunk})
            values = [{**r, **paid.get(r["kid_id"], {}), "superseded_at": None} for r in chunk]
            insert = _insert(conn.engine)(gold)
            keys = ["week_start", "kid_id"]
            updates = {c: insert.excluded[c] for c in values[0] if c not in keys}
            upsert = insert.on_conflict_do_update(index_elements=keys, set_=updates)
            # RETURNING makes it one multi-row VALUES per 1,000 rows ("insertmanyvalues"),
            # not psycopg2's executemany (a statement a row).
            conn.execute(upsert.returning(gold.c.kid_id), values).all()


def paid_for(conn: Connection, week_start: dt.date, kid_id: int, digest: str) -> dict[str, Any]:
    """What every answer for this kid-week and input cost, by the report's column names."""
    t = report_ledger
    totals = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(t.c.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(t.c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(t.c.cached_tokens), 0),
            sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0),
        ).where(t.c.week_start == week_start, t.c.kid_id == kid_id, t.c.input_hash == digest)
    ).one()
    return {
        "prompt_tokens": int(totals[0]),
        "completion_tokens": int(totals[1]),
        "cached_tokens": int(totals[2]),
        "cost_usd": float(totals[3]),
    }


def store_report(conn: Connection, row: dict[str, Any], *, replace: bool = True) -> bool:
    """The report row, with what its answers cost; `replace=False` keeps a stored report of
    the same input (a replayed spool entry arriving after a re-run)."""
    gold = kid_weekly_reports
    if not replace:
        existing = conn.execute(
            sa.select(gold.c.input_hash).where(
                gold.c.week_start == row["week_start"], gold.c.kid_id == row["kid_id"]
            )
        ).scalar_one_or_none()
        if existing == row["input_hash"]:
            return False
    if row.get("answer_id"):
        row = {**row, **paid_for(conn, row["week_start"], row["kid_id"], row["input_hash"])}
    db.upsert(conn, gold, {**row, "superseded_at": None}, ["week_start", "kid_id"])
    return True


def run_totals(conn: Connection, week_start: dt.date, run_id: str) -> dict[str, Any]:
    """This run's requests and what they cost, from the ledger: every attempt of the step
    (a Dagster step retry included) and every outcome."""
    t = report_ledger
    rows = conn.execute(
        sa.select(
            t.c.outcome,
            sa.func.count(),
            *(sa.func.coalesce(sa.func.sum(t.c[c]), 0) for c in _SUMMED),
            sa.func.count(t.c.usage_note),
        )
        .where(t.c.week_start == week_start, t.c.run_id == run_id)
        .group_by(t.c.outcome)
    ).all()
    totals: dict[str, Any] = {"requests": 0, "answers_paid": 0, "usage_flagged": 0}
    totals.update({c: 0 for c in _SUMMED})
    errors: dict[str, int] = {}
    for outcome, n, *sums, flagged in rows:
        totals["requests"] += n
        totals["usage_flagged"] += flagged
        for column, value in zip(_SUMMED, sums, strict=True):
            totals[column] += value
        if outcome != "accepted":
            errors[outcome] = n
    totals["answers_paid"] = _answers_paid(conn, week_start, run_id)
    totals["retries"] = totals["requests"] - _kids_asked(conn, week_start, run_id)
    totals["errors_by_kind"] = errors
    totals["findings_by_kind"] = _findings_by_kind(conn, week_start, run_id)
    totals["tokens_by_tier"] = _tokens_by_tier(conn, week_start, run_id)
    for column in _SUMMED:  # PostgreSQL sums BIGINT as NUMERIC
        totals[column] = float(totals[column]) if "cost" in column else int(totals[column])
    return totals


_SUMMED = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "input_cost_usd",
    "output_cost_usd",
)


def _tokens_by_tier(
    conn: Connection, week_start: dt.date, run_id: str
) -> dict[str, tuple[int, int, int]]:
    """(prompt, completion, cached) tokens by the tier that served them."""
    t = report_ledger
    query = (
        sa.select(
            sa.func.coalesce(t.c.tier, "default"),
            sa.func.sum(t.c.prompt_tokens),
            sa.func.sum(t.c.completion_tokens),
            sa.func.sum(t.c.cached_tokens),
        )
        .where(t.c.week_start == week_start, t.c.run_id == run_id)
        .group_by(sa.func.coalesce(t.c.tier, "default"))
    )
    return {tier: (int(p or 0), int(c or 0), int(k or 0)) for tier, p, c, k in conn.execute(query)}


def _findings_by_kind(conn: Connection, week_start: dt.date, run_id: str) -> dict[str, int]:
    """What the grounding gate found in this run's answers, by kind of finding."""
    t = report_ledger
    query = sa.select(t.c.findings).where(
        t.c.week_start == week_start, t.c.run_id == run_id, t.c.findings.is_not(None)
    )
    counts: dict[str, int] = {}
    for findings in conn.execute(query).scalars():
        for finding in findings or []:
            counts[finding["kind"]] = counts.get(finding["kind"], 0) + 1
    return counts


def _kids_asked(conn: Connection, week_start: dt.date, run_id: str) -> int:
    t = report_ledger
    query = sa.select(sa.func.count(sa.distinct(t.c.kid_id))).where(
        t.c.week_start == week_start, t.c.run_id == run_id
    )
    return int(conn.execute(query).scalar_one())


def _answers_paid(conn: Connection, week_start: dt.date, run_id: str) -> int:
    t = report_ledger
    query = sa.select(sa.func.count()).where(
        t.c.week_start == week_start, t.c.run_id == run_id, t.c.model_answered.is_not(None)
    )
    return int(conn.execute(query).scalar_one())


def supersede_missing(conn: Connection, week_start: dt.date, silver_kids: sa.Select[Any]) -> int:
    """Mark the week's reports of kids no longer in silver (`silver_kids`: a query of the
    week's kid ids) as superseded (kept, never deleted: they were paid for); clear the mark
    of kids who are back."""
    gold = kid_weekly_reports
    # EXISTS, not IN: `NOT IN (subquery)` is hashed only while PostgreSQL expects the
    # week's kids to fit in work_mem (4 MB: ~100,000 kids); past that it rescans the
    # materialised list for every report, quadratic in the week (300,000 kids: an
    # estimated 1.3e9 against 2.6e4 for the anti-join, 0.4 s).
    in_silver = silver_kids.where(silver_kids.selected_columns[0] == gold.c.kid_id).exists()
    week = gold.c.week_start == week_start
    gone = conn.execute(
        gold.update()
        .where(week, gold.c.superseded_at.is_(None), sa.not_(in_silver))
        .values(superseded_at=dt.datetime.now(dt.UTC))
    ).rowcount
    conn.execute(
        gold.update()
        .where(week, gold.c.superseded_at.is_not(None), in_silver)
        .values(superseded_at=None)
    )
    return gone


def store_exchanges_grouped(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many ledger rows in one statement; each stored once (a spool may replay it)."""
    db.insert_ignoring_duplicates(conn, report_ledger, rows)


def store_reports_grouped(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many report rows (the sync path's store_report, replace=True), with what every
    answer of their input cost read in one query and written in one upsert. The ledger
    rows of this group must be stored first (their cost is part of the sum)."""
    if not rows:
        return
    t = report_ledger
    keys = {(r["week_start"], r["kid_id"], r["input_hash"]) for r in rows if r.get("answer_id")}
    totals: dict[tuple[Any, int, str], dict[str, Any]] = {}
    for week_start in {k[0] for k in keys}:
        kids = sorted({k[1] for k in keys if k[0] == week_start})
        for part in _chunks(kids):
            query = (
                sa.select(
                    t.c.kid_id,
                    t.c.input_hash,
                    sa.func.coalesce(sa.func.sum(t.c.prompt_tokens), 0),
                    sa.func.coalesce(sa.func.sum(t.c.completion_tokens), 0),
                    sa.func.coalesce(sa.func.sum(t.c.cached_tokens), 0),
                    sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0),
                )
                .where(t.c.week_start == week_start, t.c.kid_id.in_(part))
                .group_by(t.c.kid_id, t.c.input_hash)
            )
            for kid, digest, prompt, completion, cached, cost in conn.execute(query):
                totals[(week_start, kid, digest)] = {
                    "prompt_tokens": int(prompt),
                    "completion_tokens": int(completion),
                    "cached_tokens": int(cached),
                    "cost_usd": float(cost),
                }
    free = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}
    # One row a kid-week: the last of the group wins, as one store_report after another.
    latest: dict[tuple[Any, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["week_start"], row["kid_id"], row["input_hash"])
        paid = totals.get(key, free) if row.get("answer_id") else {}
        latest[(row["week_start"], row["kid_id"])] = {**row, **paid, "superseded_at": None}
    db.upsert_many(conn, kid_weekly_reports, list(latest.values()), ["week_start", "kid_id"])
