"""Which weeks raw holds, at which source versions, and in what order raw and silver wrote.

Raw records each week it loads (`raw_weeks`): the version of the week's app rows it copied
and the versions of W-2 .. W+2 its load saw (index-only fingerprints, source_activity.py).
Silver W reads raw's W-2, W-1 and W (its partition mapping) and holds them to the newest
look any of their loads took (`window_state`): a week raw holds must be the app's week as
last seen, a week raw never loaded must have been seen empty. Anything else is raw behind
the app (a week never loaded that has rows, or loaded before late rows arrived): silver
waits for a run loading it, if one is in flight, else fails saying which raw week to
materialise (`window_problems`); a week whose own raw week is absent is not computed.

Raw's loads and silver's writes share one sequence (`seq`, in commit order: each takes
`lock_writes` before numbering and holds it until commit), which says whether a balance
silver stored is still right for what raw holds now (metrics.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.source_activity import (
    Fingerprint,
    TableFingerprint,
    week_fingerprint,
)
from kidsfin_assets.warehouse.tables import (
    Sources,
    raw_skipped_weeks,
    raw_weeks,
    savings_balance_weeks,
)

# The version of a week without app rows (what the sensor computes for it too).
EMPTY_VERSION = Fingerprint(
    TableFingerprint(0, None, None), TableFingerprint(0, None, None)
).version
HISTORY_WEEKS = 2  # raw's first partition also copies the two weeks before it (W-1, W-2)


def lock_writes(conn: Connection) -> None:
    """Serialise raw's loads and silver's writes from here until commit, so that `seq`
    follows commit order. (SQLite's BEGIN IMMEDIATE already serialises every writer.)"""
    if not db.is_sqlite(conn.engine):
        table = db.warehouse_schema(conn.engine) or "public"
        conn.exec_driver_sql(
            f'LOCK TABLE "{table}".savings_balance_weeks IN SHARE ROW EXCLUSIVE MODE'
        )


def next_seq(conn: Connection) -> int:
    """The next number of the sequence raw_weeks and savings_balance_weeks share (call it
    after lock_writes)."""
    top = sa.union_all(
        sa.select(sa.func.max(raw_weeks.c.seq).label("seq")),
        sa.select(sa.func.max(savings_balance_weeks.c.seq).label("seq")),
    ).subquery()
    found = conn.execute(sa.select(sa.func.coalesce(sa.func.max(top.c.seq), 0) + 1))
    return int(found.scalar_one())


@dataclass(frozen=True)
class Load:
    """One week raw holds: its latest load."""

    week_start: dt.date
    seq: int
    timezone: str
    source_version: str
    # The versions this load saw of the app's weeks around it (W-2 .. W+2, the complete
    # ones), by key: what silver holds raw's neighbouring weeks to.
    seen: Mapping[str, str]


def record_loads(
    conn: Connection, versions: Mapping[Week, str], seen: Mapping[str, str], loaded_by: Week
) -> int:
    """Number this load and record its weeks (`versions`: each week copied, with the
    version of its app rows; `seen`: the versions the load saw around `loaded_by`). In
    raw's transaction, at its end: holds lock_writes until commit. Returns the seq."""
    lock_writes(conn)
    seq = next_seq(conn)
    now = dt.datetime.now(dt.UTC)
    for week, version in versions.items():
        row = {
            "week_start": week.start,
            "seq": seq,
            "timezone": week.timezone,
            "source_version": version,
            "versions_seen": json.dumps(dict(seen) if week == loaded_by else {}, sort_keys=True),
            "loaded_by": loaded_by.start,
            "loaded_at": now,
        }
        db.upsert(conn, raw_weeks, row, ["week_start"])
    starts = [week.start for week in versions]
    conn.execute(sa.delete(raw_skipped_weeks).where(raw_skipped_weeks.c.week_start.in_(starts)))
    return seq


def record_skipped(conn: Connection, skipped: Mapping[Week, str], loaded_by: Week) -> None:
    """Record the weeks this load went past while a run (the value) was loading them,
    those still not loaded now (after record_loads: under lock_writes, so a load of one
    committing later finds its row and deletes it)."""
    loaded = _loaded_starts(conn)
    for week, run_id in skipped.items():
        if week.start not in loaded:
            row = {"week_start": week.start, "skipped_by": loaded_by.start, "run_id": run_id}
            db.upsert(conn, raw_skipped_weeks, row, ["week_start"])


def _loaded_starts(conn: Connection) -> set[dt.date]:
    found = conn.execute(sa.select(raw_weeks.c.week_start)).scalars()
    return {_date(d) for d in found}


def read_loads(conn: Connection, weeks: Iterable[Week] | None = None) -> dict[dt.date, Load]:
    """The loads of these weeks (all weeks: None), by Monday."""
    t = raw_weeks
    query = sa.select(t.c.week_start, t.c.seq, t.c.timezone, t.c.source_version, t.c.versions_seen)
    if weeks is not None:
        query = query.where(t.c.week_start.in_([w.start for w in weeks]))
    found = {}
    for start, seq, timezone, version, seen in conn.execute(query):
        start = _date(start)
        found[start] = Load(start, int(seq), timezone, version, json.loads(seen or "{}"))
    return found


def window_weeks(week: Week) -> list[Week]:
    """W-2, W-1, W: the raw weeks silver W reads (its partition mapping)."""
    return [week.shifted(-n) for n in range(HISTORY_WEEKS, -1, -1)]


def seen_weeks(week: Week, now: dt.datetime) -> list[Week]:
    """The weeks raw W's load fingerprints: W-2 .. W+2, those complete at `now` (the
    weeks whose silver reads raw W, and the weeks raw W's silver reads)."""
    around = [week.shifted(n) for n in range(-HISTORY_WEEKS, HISTORY_WEEKS + 1)]
    return [w for w in around if w.is_complete(now)]


CURRENT, EMPTY, ABSENT, BEHIND = "current", "empty", "absent", "behind"
SKIPPED = "skipped"  # before W-2: loaded past while a run was loading it, not loaded yet


def window_state(week: Week, loads: Mapping[dt.date, Load]) -> dict[Week, str]:
    """What raw holds of each week silver W reads, against the newest look any raw load
    of those weeks took at the app's rows (each load fingerprints its W-2 .. W+2):

    - current: loaded, and no later load saw the app's week otherwise;
    - empty: never loaded, and the newest look saw no rows (nothing to read);
    - absent: never loaded, with rows (or never looked at);
    - behind: loaded, but a later load saw the app's week changed (late data).
    """
    mine = [
        load
        for w in window_weeks(week)
        if (load := loads.get(w.start)) is not None and load.timezone == week.timezone
    ]
    state = {}
    for read in window_weeks(week):
        own = next((load for load in mine if load.week_start == read.start), None)
        looks = [(load.seq, load.seen[read.key]) for load in mine if read.key in load.seen]
        if own is not None:
            looks.append((own.seq, own.source_version))
        newest = max(looks, default=None)
        if own is not None:
            state[read] = CURRENT if newest[1] == own.source_version else BEHIND
        elif newest is not None and newest[1] == EMPTY_VERSION:
            state[read] = EMPTY
        else:
            state[read] = ABSENT
    return state


@dataclass(frozen=True)
class Problem:
    """A raw week silver W must not read as it is."""

    week: Week
    kind: str  # ABSENT, BEHIND or SKIPPED
    run_id: str = ""  # SKIPPED: the run that was loading it when raw went past it

    def describe(self, silver_week: Week) -> str:
        if self.kind == SKIPPED:
            return (
                f"raw/kid_activity {self.week.key} has app rows and is not loaded: raw loaded "
                f"later weeks past it while {self.run_id} was loading it, which has not "
                "(failed, cancelled or still running), and silver's savings balance sums "
                "every raw week"
            )
        if self.kind == ABSENT:
            return (
                f"raw/kid_activity {self.week.key} is not materialised, and the app has rows "
                f"in that week (silver {silver_week.key} reads raw weeks "
                f"{silver_week.shifted(-2).key} to {silver_week.key})"
            )
        return (
            f"raw/kid_activity {self.week.key} was materialised before the app's rows of "
            "that week changed (late data): it holds older rows than the app"
        )


def window_problems(week: Week, loads: Mapping[dt.date, Load]) -> list[Problem]:
    """The raw weeks silver W cannot read as they are (see window_state)."""
    state = window_state(week, loads)
    return [Problem(w, kind) for w, kind in state.items() if kind in (ABSENT, BEHIND)]


def skipped_problems(conn: Connection, week: Week) -> list[Problem]:
    """The weeks before silver W's window that raw went past while they were being loaded
    and still does not hold (W-2 .. W: window_problems)."""
    t = raw_skipped_weeks
    before = window_weeks(week)[0].start
    rows = conn.execute(sa.select(t.c.week_start, t.c.run_id).where(t.c.week_start < before))
    return [
        Problem(Week(_date(start), week.timezone), SKIPPED, run_id)
        for start, run_id in sorted(rows, key=lambda r: _date(r[0]))
    ]


def read_problems(conn: Connection, week: Week) -> tuple[dict[dt.date, Load], list[Problem]]:
    """raw's loads of W-2 .. W, and every raw week silver W cannot read as it is."""
    loads = read_loads(conn, window_weeks(week))
    return loads, window_problems(week, loads) + skipped_problems(conn, week)


def _date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def read_versions(week: Week, loads: Mapping[dt.date, Load]) -> dict[str, str]:
    """The source versions of W-2, W-1 and W that silver W read through raw, oldest first
    (a week raw does not hold is an empty one): what its metadata records for the sensor."""
    found = {}
    for read in window_weeks(week):
        load = loads.get(read.start)
        found[read.key] = load.source_version if load is not None else EMPTY_VERSION
    return found


def loader(week: Week, first_partition: dt.date) -> Week:
    """The partition whose raw run loads `week` (the first partition loads the two weeks
    before it)."""
    return week if week.start >= first_partition else Week(first_partition, week.timezone)


def _rows_before(conn: Connection, src: Sources, before: dt.datetime) -> bool:
    """Whether either app table has a row before `before` (the first partition's history)."""
    engine = conn.engine
    return any(
        conn.execute(
            sa.select(
                sa.exists().where(
                    db.timestamp_value(engine, t.c.occurred_at) < db.timestamp_param(engine, before)
                )
            )
        ).scalar()
        for t in (src.transactions, src.app_events)
    )


def history_gaps(conn: Connection, src: Sources, first: Week, before: Week) -> list[Week]:
    """The weeks from the first partition up to `before` that raw never loaded although the
    app has rows in them (the first partition: rows in it or before it, which its load keeps
    as the opening balance). Silver's savings balance sums raw's weeks from the first
    partition, so a week raw skipped would make it wrong without an error: raw refuses to
    load past a gap. The steady state (every week loaded) costs one query of raw_weeks."""
    loaded = _loaded_starts(conn)
    gaps = []
    week = first
    while week < before:
        if week.start not in loaded:
            if week == first:
                has_rows = _rows_before(conn, src, week.ends_at)
            else:  # the sensor's index-only look at a week
                has_rows = not week_fingerprint(conn, src, week).empty
            if has_rows:
                gaps.append(week)
        week = week.shifted(1)
    return gaps
