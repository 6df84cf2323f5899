"""What new_week_sensor asks the source database: a few indexed range queries.

A week's fingerprint is, for transactions and app_events, the row count and the first and
last occurred_at inside the week: one range query per table that PostgreSQL answers from
the occurred_at index alone (an index-only scan: no heap page is read where the
visibility map says all-visible, which autovacuum maintains). It sees rows added or
removed and a week's first or last instant moving; it does not see an in-place UPDATE of
amount, kind, category or kid, a row deleted and another inserted in the same week
(same count) unless that moves the first or last instant, nor a late `kids` row (the
README says what to do then). Version 1 fingerprints also had the max id, which needs
every row's heap page (~1 s per 200,000-row week).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import Sources


class TableFingerprint(NamedTuple):
    rows: int
    first_at: str | None  # UTC ISO-8601, comparable across dialects
    last_at: str | None


class Fingerprint(NamedTuple):
    transactions: TableFingerprint
    app_events: TableFingerprint

    @property
    def empty(self) -> bool:
        return self.transactions.rows == 0 and self.app_events.rows == 0

    @property
    def version(self) -> str:
        """A short hash: what run keys and tags carry."""
        text = json.dumps(list(self), separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _instant(value: Any) -> dt.datetime:
    """A timestamp_value() result as an aware UTC datetime (SQLite yields epoch seconds)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _table_fingerprint(conn: Connection, table: sa.TableClause, week: Week) -> TableFingerprint:
    """Only occurred_at is read, so that the index on it answers alone (index-only)."""
    engine = conn.engine
    at = db.timestamp_value(engine, table.c.occurred_at)
    query = sa.select(sa.func.count(), sa.func.min(at), sa.func.max(at)).where(
        at >= db.timestamp_param(engine, week.starts_at),
        at < db.timestamp_param(engine, week.ends_at),
    )
    rows, first_at, last_at = conn.execute(query).one()
    return TableFingerprint(
        int(rows),
        None if first_at is None else _instant(first_at).isoformat(),
        None if last_at is None else _instant(last_at).isoformat(),
    )


def week_fingerprint(conn: Connection, src: Sources, week: Week) -> Fingerprint:
    """Two index-only range queries: count, first and last occurred_at of each table."""
    return Fingerprint(
        _table_fingerprint(conn, src.transactions, week),
        _table_fingerprint(conn, src.app_events, week),
    )


def source_versions(
    conn: Connection, src: Sources, week: Week, weeks_before: int = 0
) -> dict[str, str]:
    """The versions of the week's rows and of the `weeks_before` weeks before it, by week
    key, oldest first: what a materialisation records it was computed from (raw: its week;
    silver: W-2, W-1 and W, which its trends read), and what new_week_sensor compares with
    today's. Taken before the rows are read, so that a row arriving during the run makes
    the recorded version differ from the next one, never hides it."""
    weeks = [week.shifted(-n) for n in range(weeks_before, -1, -1)]
    return {w.key: week_fingerprint(conn, src, w).version for w in weeks}


def next_activity(
    conn: Connection, src: Sources, start: dt.datetime, end: dt.datetime
) -> dt.datetime | None:
    """The first occurred_at in [start, end) in either table: min() on the index, no scan."""
    engine = conn.engine
    found = []
    for table in (src.transactions, src.app_events):
        at = db.timestamp_value(engine, table.c.occurred_at)
        query = sa.select(sa.func.min(at)).where(
            at >= db.timestamp_param(engine, start), at < db.timestamp_param(engine, end)
        )
        value = conn.execute(query).scalar()
        if value is not None:
            found.append(_instant(value))
    return min(found, default=None)


def weeks_with_activity(conn: Connection, src: Sources, first: Week, last: Week) -> list[Week]:
    """Every week in [first, last] with source rows, found week by week on the index."""
    weeks: list[Week] = []
    lower = first
    while lower <= last:
        instant = next_activity(conn, src, lower.starts_at, last.ends_at)
        if instant is None:
            break
        weeks.append(Week.containing(instant, first.timezone))
        lower = weeks[-1].shifted(1)
    return weeks
