"""Claims on kid-weeks under concurrency, on PostgreSQL: a renewal racing a claim, many
callers renewing at once, and lock conflicts met by the warehouse gate.

Found by a 5,000-kid gold run slowed down (tracemalloc): every task whose lease looked
stale renewed all the run's claims itself, at once; the renewals deadlocked one another
and each deadlock was reported as a warehouse outage."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.default import CACHE_HIT

from kidsfin_assets.reports.ledger import Claims
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.outage import WarehouseGate
from kidsfin_assets.warehouse.tables import create_warehouse_tables, report_claims

WEEK = dt.date(2026, 11, 23)
LEASE = 60.0


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = db.create_engine(pg_url)
    create_warehouse_tables(engine)
    yield engine
    engine.dispose()


def _wanted(kids: range) -> dict[int, str]:
    return {kid: f"input-{kid}" for kid in kids}


def _statements(engine: Engine, prefix: str) -> list[str]:
    """Every statement the engine sends that starts with `prefix` (appended as sent)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(prefix):
            sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    return sent


def test_a_renewal_while_a_claim_commits_leaves_the_claimed_kids_held(engine: Engine) -> None:
    """The claim's rows are not yet committed when the renewal's UPDATE runs, so it does
    not return them; the kids are still this run's for the claim's whole lease. (Before,
    the renewal dropped them: each then looked lost and renewed again, one per task.)"""
    claims = Claims(engine, WEEK, "run-a", LEASE)
    claims.claim(_wanted(range(1, 11)))
    renewals: list[threading.Thread] = []

    def renew_before_commit(conn: Any) -> None:
        if not renewals:  # the second claim's commit: renew from another thread, now
            renewals.append(threading.Thread(target=claims.renew))
            renewals[0].start()
            renewals[0].join(timeout=30)

    sa.event.listen(engine, "commit", renew_before_commit)
    result = claims.claim(_wanted(range(11, 21)))
    sa.event.remove(engine, "commit", renew_before_commit)

    assert renewals and not renewals[0].is_alive()
    assert result.mine == set(range(11, 21))
    assert all(claims.holds(kid, margin=LEASE / 2) for kid in range(1, 21))


def test_callers_renewing_at_once_share_one_update(engine: Engine) -> None:
    """Sixteen tasks finding their lease stale together send one or two UPDATEs, not
    sixteen, and none fails."""
    claims = Claims(engine, WEEK, "run-a", LEASE)
    claims.claim(_wanted(range(1, 5001)))
    updates = _statements(engine, "UPDATE")
    start, errors = threading.Barrier(16), []

    def renew() -> None:
        start.wait()
        try:
            claims.renew()
        except Exception as exc:  # any error fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=renew) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert 1 <= len(updates) <= 2, f"{len(updates)} renewals for 16 callers at once"
    assert all(claims.holds(kid, margin=LEASE / 2) for kid in (1, 2500, 5000))


def test_a_renewal_does_not_revive_a_lease_that_ran_out(engine: Engine) -> None:
    claims = Claims(engine, WEEK, "run-a", 5.0)
    claims.claim(_wanted(range(1, 4)))
    with engine.begin() as conn:  # kid 2's lease ran out (as after a long outage)
        conn.execute(
            report_claims.update().where(report_claims.c.kid_id == 2).values(lease_until=0.0)
        )
    time.sleep(0.1)
    claims._valid_until[2] = time.monotonic()  # its own time ran out too
    claims.renew()
    assert claims.holds(1, margin=1.0) and claims.holds(3, margin=1.0)
    assert not claims.holds(2, margin=0.0)


def _set_leases(engine: Engine, leases: dict[int, float]) -> float:
    """Each kid's lease_until at the database's clock now + its offset; returns that now."""
    claims = report_claims
    with engine.begin() as conn:
        now = db.clock_epoch(conn)
        for kid, offset in leases.items():
            conn.execute(
                claims.update().where(claims.c.kid_id == kid).values(lease_until=now + offset)
            )
    return now


def _claim_rows(engine: Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.kid_id: r._asdict() for r in conn.execute(sa.select(report_claims))}


def test_a_claim_still_held_is_left_to_its_run_and_one_run_out_is_taken_over(
    engine: Engine,
) -> None:
    """Run B claims three kids run A holds: the one whose lease still runs stays A's (two
    runs never both pay for a kid), the two whose lease ran out become B's (a dead run's
    kids do not wait for ever)."""
    a = Claims(engine, WEEK, "run-a", LEASE)
    assert a.claim(_wanted(range(1, 4))).mine == {1, 2, 3}
    # kid 1 held 30 s more; kid 2's lease ran out a second ago, kid 3's an hour ago
    now = _set_leases(engine, {1: 30.0, 2: -1.0, 3: -3600.0})
    b = Claims(engine, WEEK, "run-b", LEASE)
    result = b.claim(_wanted(range(1, 4)))
    assert 1 not in result.mine, (
        "run B took kid 1, whose claim by run A holds 30 s more: both runs would pay for it"
    )
    assert result.mine == {2, 3}, (
        f"run B took {sorted(result.mine)}: kids 2 and 3, whose leases ran out 1 s and an "
        "hour ago, must be taken over, or a dead run's kids wait for ever"
    )
    assert result.elsewhere == {1: "run-a"}
    rows = _claim_rows(engine)
    assert (rows[1]["run_id"], rows[1]["lease_until"]) == ("run-a", pytest.approx(now + 30.0))
    assert {rows[kid]["run_id"] for kid in (2, 3)} == {"run-b"}
    assert all(rows[kid]["lease_until"] >= now + LEASE for kid in (2, 3))
    assert b.holds(2, margin=LEASE / 2) and b.holds(3, margin=LEASE / 2)
    assert not b.holds(1, margin=0.0)


def test_a_renewal_extends_a_lease_still_held_and_not_one_run_out(engine: Engine) -> None:
    claims = Claims(engine, WEEK, "run-a", LEASE)
    claims.claim(_wanted(range(1, 3)))
    now = _set_leases(engine, {1: 2.0, 2: -1.0})  # kid 1: 2 s left; kid 2: ran out 1 s ago
    claims._valid_until[2] = time.monotonic()  # its own time ran out too
    claims.renew()
    rows = _claim_rows(engine)
    assert rows[1]["lease_until"] >= now + LEASE, (
        f"kid 1's lease, still held with 2 s left, ends {rows[1]['lease_until'] - now:.1f} s "
        f"from now after a renewal (not {LEASE:g} s): the run loses every kid it holds"
    )
    assert rows[2]["lease_until"] == pytest.approx(now - 1.0), (
        "kid 2's lease, which ran out, was renewed: another run may have taken it"
    )
    assert claims.holds(1, margin=LEASE / 2) and not claims.holds(2, margin=0.0)


def test_a_lease_holds_only_while_it_outlasts_now_plus_the_margin(engine: Engine) -> None:
    claims = Claims(engine, WEEK, "run-a", LEASE)
    now = time.monotonic()
    claims._hold([1], now + 10.0)  # 10 s left
    claims._hold([2], now - 1.0)  # ran out a second ago
    assert claims.holds(1, margin=5.0), "a lease with 10 s left is said not to last 5 s more"
    assert not claims.holds(1, margin=15.0), "a lease with 10 s left is said to last 15 s more"
    assert not claims.holds(2, margin=0.0), "a lease that ran out a second ago is said to hold"
    assert not claims.holds(3, margin=0.0), "a kid never claimed is said to be held"


def test_the_gate_runs_a_deadlocked_transaction_again_without_an_outage(engine: Engine) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL rolls one back
    (deadlock detected). The gate runs it again at once; nobody is told the warehouse is
    unreachable, and both changes land."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(report_claims),
            [
                {
                    "week_start": WEEK,
                    "kid_id": kid,
                    "input_hash": "h",
                    "owner": "o",
                    "run_id": "r",
                    "lease_until": 0.0,
                }
                for kid in (1, 2)
            ],
        )
    said: list[str] = []
    gate = WarehouseGate(engine, wait_seconds=30, stopping=lambda: False, on_change=said.append)
    both_hold_one = threading.Barrier(2)
    attempts = {1: 0, 2: 0}

    def touch(first: int, second: int) -> None:
        attempts[first] += 1
        with engine.begin() as conn:
            claims = report_claims
            for n, kid in enumerate((first, second)):
                conn.execute(
                    claims.update()
                    .where(claims.c.kid_id == kid)
                    .values(lease_until=claims.c.lease_until + first)
                )
                if n == 0 and attempts[first] == 1:
                    both_hold_one.wait(timeout=30)  # each holds one row, wants the other

    threads = [
        threading.Thread(target=gate.call, args=(lambda a=a, b=b: touch(a, b),))
        for a, b in ((1, 2), (2, 1))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert said == []
    assert attempts[1] + attempts[2] == 3  # one of the two ran again
    with engine.connect() as conn:
        leases = conn.execute(sa.select(report_claims.c.lease_until)).scalars().all()
    assert leases == [3.0, 3.0]


def test_claims_and_upserts_of_any_size_are_compiled_once(engine: Engine) -> None:
    """A gold run claims pages and stores groups of every size from 1 to 300. Built with
    `.values(rows)`, each such statement was compiled again on every call (SQLAlchemy
    caches no multi-row VALUES statement): CPU the step spends per group, not per week."""
    claims = Claims(engine, WEEK, "run-a", LEASE)
    compiled: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            compiled.append(context.cache_hit)

    def claim_and_upsert(first: int, size: int) -> None:
        claims.claim(_wanted(range(first, first + size)))
        with engine.begin() as conn:
            rows = [_claim_row(kid) for kid in range(first, first + size)]
            db.upsert_many(conn, report_claims, rows, ["week_start", "kid_id"])

    claim_and_upsert(1, 1)  # one row, then several: compiled once each
    claim_and_upsert(2, 2)
    sa.event.listen(engine, "after_cursor_execute", record)
    first = 4
    for size in range(3, 41):
        claim_and_upsert(first, size)
        first += size
    assert len(compiled) >= 76
    assert set(compiled) == {CACHE_HIT}, f"{len(set(compiled))} kinds: {set(compiled)}"


def _claim_row(kid: int) -> dict[str, Any]:
    return {
        "week_start": WEEK,
        "kid_id": kid,
        "input_hash": "h",
        "owner": "o",
        "run_id": "r",
        "lease_until": 1.0,
    }


def test_a_group_of_rows_reaches_the_database_in_one_statement(engine: Engine) -> None:
    """A plain executemany of an INSERT ... ON CONFLICT is one round trip per row (psycopg2
    runs it row by row): a group of 300 reports was 300 statements, and its ledger rows
    300 more, each waited for by every task of the group."""
    dbapi_calls: list[str] = []
    for kind in ("do_execute", "do_executemany"):
        sa.event.listen(
            engine.dialect, kind, lambda *_, kind=kind: dbapi_calls.append(kind), named=False
        )
    rows = [_claim_row(kid) for kid in range(1, 301)]
    with engine.begin() as conn:
        dbapi_calls.clear()
        db.upsert_many(conn, report_claims, rows, ["week_start", "kid_id"])
        upserts, dbapi_calls[:] = list(dbapi_calls), []
        db.insert_ignoring_duplicates(conn, report_claims, [*rows, _claim_row(301)])
        inserts = list(dbapi_calls)
    assert upserts == ["do_execute"] and inserts == ["do_execute"], (upserts, inserts)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(report_claims)).scalar() == 301
