"""new_week_sensor's plan: which weeks to run, from the cursor, the source's activity and
"now". No Dagster here but the run requests it returns.

A tick (1) re-fingerprints the last `late_data_weeks` weeks up to the last processed one
and re-requests each week whose fingerprint changed (late or edited rows), together with
W+1 and W+2, whose trends read W; (2) requests the next complete weeks with activity that
were never processed, at most `max_weeks_per_tick` of them, and the empty weeks up to two
after one with activity (silver has rows for them: kids active in W-1 or W-2). New weeks'
run keys carry the week's data version (source_activity.py), so a repeated tick (or a
lost cursor) never runs the same data twice; late-data keys also carry the tick, so data
that changes back to an earlier version still runs again.

Whoever materialised a week (this sensor, the UI, the CLI), what it recorded decides
whether the week is done: raw and silver record the source versions they read
(`source_versions` in each week's metadata: raw W's, silver W-2's, W-1's and W's). A
requested week whose recorded versions all equal today's is left out; a new week
materialised at other versions runs as late data (or as a trend dependency, when only
W-1's or W-2's rows changed). `evaluate` asks the caller what was recorded (the sensor
reads it from the Dagster instance), so this module stays free of Dagster's storage.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.config.settings import SourceTables
from kidsfin_assets.config.weeks import Week
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.source_activity import Fingerprint, next_activity, week_fingerprint
from kidsfin_assets.warehouse.tables import Sources, source_tables

SENSOR_NAME = "new_week_sensor"
CURSOR_VERSION = 2
LEGACY_CURSOR_VERSIONS = (1,)  # read once: their fingerprints are another kind

REASON_TAG = "kidsfin/reason"
DATA_VERSION_TAG = "kidsfin/data_version"
CHANGED_WEEK_TAG = "kidsfin/changed_week"  # on trend_dependency runs: the week that changed

NEW_WEEK = "new_week"
LATE_DATA = "late_data"
TREND_DEPENDENCY = "trend_dependency"
TREND_WEEKS = 2  # silver's trends compare W with W-1 and W-2


class SourceDatabaseError(RuntimeError):
    """The source tables could not be read; the tick fails and the cursor stays as it was."""


class InvalidCursorError(ValueError):
    """The stored cursor is not one this sensor wrote."""


@dataclass(frozen=True)
class Watch:
    """What a tick looks at: the source database and tables, the weeks, and how much."""

    database_url: str
    schema_name: str
    sources: SourceTables
    first_week: dt.date
    timezone: str
    late_data_weeks: int
    max_weeks_per_tick: int


@dataclass(frozen=True)
class SensorCursor:
    """`through`: the last week requested as new; `fp`: versions of the processed weeks
    in the late-data window ending at `through` (so it never grows with history)."""

    through: str | None = None
    fp: dict[str, str] = field(default_factory=dict)
    # Read from a cursor of an earlier version: its versions cannot be compared with
    # today's, so the next tick takes the watched weeks' prints as they are (no re-runs).
    legacy: bool = False

    @classmethod
    def parse(cls, text: str | None) -> SensorCursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") not in (
                CURSOR_VERSION,
                *LEGACY_CURSOR_VERSIONS,
            ):
                raise ValueError(f"not a version {CURSOR_VERSION} cursor")
            through, fp = data.get("through"), data.get("fp") or {}
            for key in [through, *fp] if through else list(fp):
                Week.from_key(key, "UTC")
            if not all(isinstance(v, str) for v in fp.values()):
                raise ValueError("fingerprint versions must be strings")
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidCursorError(f"unreadable {SENSOR_NAME} cursor {text!r}: {exc}") from exc
        if data["v"] != CURSOR_VERSION:
            return cls(through, {week: "" for week in fp}, legacy=True)
        return cls(through, dict(fp))

    def dump(self) -> str:
        data = {"v": CURSOR_VERSION, "through": self.through, "fp": dict(sorted(self.fp.items()))}
        return json.dumps(data, separators=(",", ":"))


class Evaluation(NamedTuple):
    run_requests: list[dg.RunRequest]
    cursor: str
    summary: str  # what the tick looked at: the skip reason when nothing is requested
    done: tuple[str, ...] = ()  # requested weeks left out: materialised from today's rows


@dataclass(frozen=True)
class Materialised:
    """What a week's latest materialisation end to end says it read: the source versions
    raw recorded (its week's) and silver recorded (W-2's, W-1's and W's), by week key."""

    raw: Mapping[str, str]
    silver: Mapping[str, str]

    def changed_weeks(self, week: str, current: Mapping[str, str]) -> list[str]:
        """The weeks among W-2..W (`current`: today's versions) whose rows are not those
        the materialisation read, newest first; [] when the week is up to date."""
        changed = {week} if self.raw.get(week) != current[week] else set()
        changed |= {key for key, version in current.items() if self.silver.get(key) != version}
        return sorted(changed, reverse=True)


# What was materialised for a week key, or None when it was not end to end.
Recorded = Callable[[str], Materialised | None]


def _request(
    week: Week, reason: str, version: str, run_key: str, changed: Week | None = None
) -> dg.RunRequest:
    tags = {REASON_TAG: reason, DATA_VERSION_TAG: version}
    if changed is not None:
        tags[CHANGED_WEEK_TAG] = changed.key
    return dg.RunRequest(run_key=run_key, partition_key=week.key, tags=tags)


def _window(through: Week, first: Week, last: Week, size: int) -> list[Week]:
    """The `size` weeks ending at `through`, clipped to [first, last], oldest first."""
    weeks = [through.shifted(-i) for i in range(size - 1, -1, -1)]
    return [w for w in weeks if first <= w <= last]


def _changed(previous: str | None, fp: Fingerprint) -> bool:
    # Missing from the cursor: the week was empty and not processed, so a change iff rows now.
    return fp.version != previous if previous is not None else not fp.empty


def _late_data(
    conn: Connection,
    src: Sources,
    state: SensorCursor,
    window: list[Week],
    requests: dict[str, dg.RunRequest],
    tick: str,
) -> dict[Week, Fingerprint]:
    """Re-request changed weeks of the window, then W+1/W+2 of each; return the new prints.

    Late-data run keys carry the tick as well as the version: data that changes and then
    changes back (a row added, then deleted) has a version that already ran once, and
    Dagster would drop a run key it has seen."""
    prints = {week: week_fingerprint(conn, src, week) for week in window}
    changed = [
        week
        for week, fp in prints.items()
        if not state.legacy and _changed(state.fp.get(week.key), fp)
    ]
    for week in changed:
        version = prints[week].version
        key = f"{week.key}:{version}:{tick}"
        requests[week.key] = _request(week, LATE_DATA, version, key)
    for week in changed:
        version = prints[week].version
        for later in (week.shifted(n) for n in range(1, TREND_WEEKS + 1)):
            # Weeks already passed (processed, or empty until now): later ones come as new.
            if later.key in requests or later not in prints:
                continue
            run_key = f"{later.key}:after:{week.key}:{version}:{tick}"
            requests[later.key] = _request(
                later, TREND_DEPENDENCY, prints[later].version, run_key, changed=week
            )
    return prints


def _new_weeks(
    conn: Connection,
    src: Sources,
    start: Week,
    last: Week,
    limit: int,
    requests: dict[str, dg.RunRequest],
) -> dict[Week, Fingerprint]:
    """Request up to `limit` complete weeks from `start` on that have rows, skipping gaps,
    and the empty weeks that trail them (see `_trailing_weeks`)."""
    found: dict[Week, Fingerprint] = {}
    lower = start
    for _ in range(limit):
        if lower > last:
            break
        instant = next_activity(conn, src, lower.starts_at, last.ends_at)
        if instant is None:
            lower = last.shifted(1)  # nothing more: every week through `last` was looked at
            break
        week = Week.containing(instant, start.timezone)
        fp = week_fingerprint(conn, src, week)
        lower = week.shifted(1)
        if not fp.empty:  # else its rows vanished between the two queries
            found[week] = fp
    found |= _trailing_weeks(conn, src, start, lower, found)
    for week, fp in found.items():
        requests[week.key] = _request(week, NEW_WEEK, fp.version, f"{week.key}:{fp.version}")
    return found


def _trailing_weeks(
    conn: Connection, src: Sources, start: Week, scanned_to: Week, active: dict[Week, Fingerprint]
) -> dict[Week, Fingerprint]:
    """Empty weeks in [start, scanned_to) within TREND_WEEKS after a week with rows.

    Silver has a row for every kid active in W, W-1 or W-2, so a week without rows of its
    own still has rows (and reports) when one of the two before it had activity. Only
    weeks before `scanned_to` qualify: beyond it, a week with rows may not be found yet.
    """
    known = dict(active)

    def fingerprint(week: Week) -> Fingerprint:
        if week not in known:
            known[week] = week_fingerprint(conn, src, week)
        return known[week]

    after_active = {a.shifted(n) for a in active for n in range(1, TREND_WEEKS + 1)}
    candidates = {start.shifted(n) for n in range(TREND_WEEKS)} | after_active
    trailing: dict[Week, Fingerprint] = {}
    for week in sorted(c for c in candidates if start <= c < scanned_to and c not in active):
        fp = fingerprint(week)
        before = (week.shifted(-n) for n in range(1, TREND_WEEKS + 1))
        if fp.empty and (week in after_active or any(not fingerprint(b).empty for b in before)):
            trailing[week] = fp
    return trailing


def _plan(
    conn: Connection,
    src: Sources,
    state: SensorCursor,
    first: Week,
    last: Week,
    watch: Watch,
    tick: str,
) -> tuple[dict[str, dg.RunRequest], SensorCursor, dict[Week, Fingerprint]]:
    tz = first.timezone
    requests: dict[str, dg.RunRequest] = {}
    prints: dict[Week, Fingerprint] = {}
    through = Week.from_key(state.through, tz) if state.through else None
    if through is not None:
        window = _window(through, first, last, watch.late_data_weeks)
        prints |= _late_data(conn, src, state, window, requests, tick)
    start = first if through is None else max(first, through.shifted(1))
    new = _new_weeks(conn, src, start, last, watch.max_weeks_per_tick, requests)
    prints |= new
    through = max(new, default=through)
    if through is None:
        return requests, SensorCursor(), prints
    keep = set(_window(through, first, last, watch.late_data_weeks))
    # Processed weeks, empty ones included: a row arriving in those is a change.
    processed = {w for w, p in prints.items() if not p.empty or w.key in requests}
    processed |= {w for w in prints if w.key in state.fp}
    fp = {w.key: prints[w].version for w in processed if w in keep}
    return requests, SensorCursor(through.key, fp), prints


def _settle(
    conn: Connection,
    src: Sources,
    requests: dict[str, dg.RunRequest],
    recorded: Recorded,
    prints: dict[Week, Fingerprint],
    tick: str,
    timezone: str,
) -> list[str]:
    """Leave out the requested weeks materialised from today's rows (by anyone: this
    sensor, the UI, the CLI), and say why a new week materialised from other rows runs
    again. Returns the weeks left out."""
    done: list[str] = []
    for key in sorted(requests):
        seen = recorded(key)
        if seen is None:
            continue  # never materialised end to end: it runs as planned
        week = Week.from_key(key, timezone)
        reads = [week.shifted(-n) for n in range(TREND_WEEKS, -1, -1)]
        for read in reads:
            if read not in prints:
                prints[read] = week_fingerprint(conn, src, read)
        current = {read.key: prints[read].version for read in reads}
        changed = seen.changed_weeks(key, current)
        if not changed:
            done.append(key)
            del requests[key]
        elif requests[key].tags[REASON_TAG] == NEW_WEEK:
            requests[key] = _rerun(week, changed[0], current, tick)
    return done


def _rerun(week: Week, changed: str, current: Mapping[str, str], tick: str) -> dg.RunRequest:
    """A week materialised from rows that changed since: late data when its own rows
    changed, else a trend dependency of the changed week. The tick in the run key, as for
    the late-data runs `_late_data` requests."""
    version = current[week.key]
    if changed == week.key:
        return _request(week, LATE_DATA, version, f"{week.key}:{version}:{tick}")
    other = Week.from_key(changed, week.timezone)
    run_key = f"{week.key}:after:{changed}:{current[changed]}:{tick}"
    return _request(week, TREND_DEPENDENCY, version, run_key, changed=other)


def evaluate(
    watch: Watch, cursor: str | None, now: dt.datetime, recorded: Recorded | None = None
) -> Evaluation:
    """One tick, as a function of the cursor, the source rows, `now` and, when given,
    what was materialised (`recorded`: see `Materialised`).

    Raises SourceDatabaseError when the source tables cannot be read, and
    InvalidCursorError when `cursor` was not written by this sensor.
    """
    state = SensorCursor.parse(cursor)
    tz = watch.timezone
    first = Week(watch.first_week, tz)
    last = Week.containing(now, tz).shifted(-1)  # the week holding `now` is not complete
    if last < first:
        return Evaluation([], state.dump(), f"no complete week yet: the first ends {first.ends_at}")
    url = watch.database_url
    done: list[str] = []
    try:
        engine = db.get_engine(url, watch.schema_name)
        with engine.connect() as conn:
            tick = str(int(now.timestamp()))
            src = source_tables(watch.sources)
            requests, new_state, prints = _plan(conn, src, state, first, last, watch, tick)
            if recorded is not None:
                done = _settle(conn, src, requests, recorded, prints, tick, tz)
    except (sa.exc.SQLAlchemyError, db.DatabaseUrlError) as exc:
        raise SourceDatabaseError(
            f"{SENSOR_NAME}: could not read the source database {db.redact(url)}: "
            f"{db.one_line_error(exc)}. Nothing was requested and the cursor is unchanged; "
            "the next tick tries again."
        ) from exc
    outcome = f"{len(requests)} run(s) requested" if requests else "nothing new or changed"
    if done:
        outcome += (
            f" ({', '.join(done)} already materialised from their current source rows, "
            "not run again)"
        )
    summary = (
        f"{outcome}: complete weeks through {last.key} checked, processed through "
        f"{new_state.through or '(none yet)'}, {len(new_state.fp)} recent processed "
        "week(s) watched for late data"
    )
    return Evaluation(
        [requests[k] for k in sorted(requests)], new_state.dump(), summary, tuple(done)
    )
