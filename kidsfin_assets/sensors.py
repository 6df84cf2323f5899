"""new_week_sensor: runs every complete week once, and again when its source rows change.

A tick (1) re-fingerprints the last `sensor.late_data_weeks` weeks up to the last processed
one and re-requests each week whose fingerprint changed (late or edited rows), together
with W+1 and W+2, whose trends read W; (2) requests the next complete weeks with activity
that were never processed, at most `sensor.max_weeks_per_tick` of them, and the empty
weeks up to two after one with activity (silver has rows for them: kids active in W-1 or
W-2). New weeks' run keys carry the week's data version, so a repeated tick (or a lost
cursor) never runs the same data twice; late-data keys also carry the tick, so data that
changes back to an earlier version still runs again.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets import db
from kidsfin_assets.keys import PIPELINE, REPORTS_EXPORT_KEY
from kidsfin_assets.settings import SensorSettings, Settings
from kidsfin_assets.warehouse import Sources, source_tables
from kidsfin_assets.weeks import Week, weekly_partitions

JOB_NAME = "weekly_reports_job"
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


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# The sensor's notion of "now"; tests replace it.
clock: Callable[[], dt.datetime] = _utc_now


class SourceDatabaseError(RuntimeError):
    """The source tables could not be read; the tick fails and the cursor stays as it was."""


class InvalidCursorError(ValueError):
    """The stored cursor is not one this sensor wrote."""


# --- fingerprints ----------------------------------------------------------------------


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


# --- cursor ----------------------------------------------------------------------------


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


# --- one tick --------------------------------------------------------------------------


class Evaluation(NamedTuple):
    run_requests: list[dg.RunRequest]
    cursor: str
    summary: str  # what the tick looked at: the skip reason when nothing is requested


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
    config: SensorSettings,
    tick: str,
) -> tuple[dict[str, dg.RunRequest], SensorCursor]:
    tz = first.timezone
    requests: dict[str, dg.RunRequest] = {}
    prints: dict[Week, Fingerprint] = {}
    through = Week.from_key(state.through, tz) if state.through else None
    if through is not None:
        window = _window(through, first, last, config.late_data_weeks)
        prints |= _late_data(conn, src, state, window, requests, tick)
    start = first if through is None else max(first, through.shifted(1))
    new = _new_weeks(conn, src, start, last, config.max_weeks_per_tick, requests)
    prints |= new
    through = max(new, default=through)
    if through is None:
        return requests, SensorCursor()
    keep = set(_window(through, first, last, config.late_data_weeks))
    # Processed weeks, empty ones included: a row arriving in those is a change.
    processed = {w for w, p in prints.items() if not p.empty or w.key in requests}
    processed |= {w for w in prints if w.key in state.fp}
    fp = {w.key: prints[w].version for w in processed if w in keep}
    return requests, SensorCursor(through.key, fp)


def _one_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return " ".join(str(inner).split()) or type(inner).__name__


def evaluate(settings: Settings, cursor: str | None, now: dt.datetime) -> Evaluation:
    """One tick, as a function of the cursor, the source rows and `now`.

    Raises SourceDatabaseError when the source tables cannot be read, and
    InvalidCursorError when `cursor` was not written by this sensor.
    """
    state = SensorCursor.parse(cursor)
    tz = settings.weeks.timezone
    first = Week(settings.weeks.start_date, tz)
    last = Week.containing(now, tz).shifted(-1)  # the week holding `now` is not complete
    if last < first:
        return Evaluation([], state.dump(), f"no complete week yet: the first ends {first.ends_at}")
    url = settings.resolved_database_url
    try:
        engine = db.get_engine(url, settings.warehouse.schema_name)
        with engine.connect() as conn:
            tick = str(int(now.timestamp()))
            requests, new_state = _plan(
                conn, source_tables(settings.sources), state, first, last, settings.sensor, tick
            )
    except (sa.exc.SQLAlchemyError, db.DatabaseUrlError) as exc:
        raise SourceDatabaseError(
            f"{SENSOR_NAME}: could not read the source database {db.redact(url)}: "
            f"{_one_line(exc)}. Nothing was requested and the cursor is unchanged; "
            "the next tick tries again."
        ) from exc
    outcome = f"{len(requests)} run(s) requested" if requests else "nothing new or changed"
    summary = (
        f"{outcome}: complete weeks through {last.key} checked, processed through "
        f"{new_state.through or '(none yet)'}, {len(new_state.fp)} recent processed "
        "week(s) watched for late data"
    )
    return Evaluation([requests[k] for k in sorted(requests)], new_state.dump(), summary)


# --- definitions -----------------------------------------------------------------------


def build_weekly_job(settings: Settings) -> dg.UnresolvedAssetJobDefinition:
    selection = dg.AssetSelection.assets(*PIPELINE)
    return dg.define_asset_job(
        JOB_NAME,
        selection=selection,
        partitions_def=weekly_partitions(settings),
        description=(
            "One week end to end: raw/kid_activity → silver/kid_weekly_analysis → "
            "gold/kid_weekly_reports → the JSON exports. new_week_sensor launches it for "
            "each new or changed week; launch it from the UI for any other week."
        ),
    )


def _sensor_description(settings: Settings) -> str:
    config = settings.sensor
    return (
        f"Every {config.interval_seconds} s, looks at the app's transactions and app_events "
        f"and runs `{JOB_NAME}` for each complete week (Monday to Monday, "
        f"{settings.weeks.timezone}) that has rows, or follows one with rows by at most two "
        "weeks (its silver rows carry those kids' trends), and was not processed yet: at "
        f"most {config.max_weeks_per_tick} weeks with rows per tick; a longer backlog "
        f"continues on the next tick. Late data: the last {config.late_data_weeks} processed "
        "weeks are re-checked (row count, first and last occurred_at, read from the "
        "occurred_at index alone); a week that changed "
        "runs again, and so do the two weeks after it, whose trends compare against it. Run "
        "tags `kidsfin/reason` (new_week, late_data, trend_dependency) and "
        "`kidsfin/data_version` say why. New weeks' run keys carry the data version, so the "
        "same data never runs twice, even after a cursor reset; late-data keys also carry "
        "the tick. If the source database cannot be read the tick fails with the reason and "
        "the next tick retries."
    )


def materialised_at_version(instance: dg.DagsterInstance, week: str, version: str) -> bool:
    """The week's reports export, the job's last step, came from a run at `version`: the
    week went end to end on the data it has now (a `make demo` run, say)."""
    where = dg.AssetRecordsFilter(asset_key=REPORTS_EXPORT_KEY, asset_partitions=[week])
    records = instance.fetch_materializations(where, limit=1).records
    if not records:
        return False
    run = instance.get_run_by_id(records[0].run_id)
    return run is not None and run.tags.get(DATA_VERSION_TAG) == version


def _not_done_yet(
    context: dg.SensorEvaluationContext, requests: list[dg.RunRequest]
) -> tuple[list[dg.RunRequest], list[str]]:
    """New weeks already materialised at their data version are processed, not run again.
    Late-data and trend runs always go: their week's data (or W-1's, W-2's) changed."""
    kept, done = [], []
    for request in requests:
        week, tags = request.partition_key or "", request.tags
        if tags[REASON_TAG] == NEW_WEEK and materialised_at_version(
            context.instance, week, tags[DATA_VERSION_TAG]
        ):
            done.append(week)
        else:
            kept.append(request)
    return kept, done


def build_new_week_sensor(
    settings: Settings, job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=settings.sensor.interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=_sensor_description(settings),
    )
    def new_week_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = clock()
        try:
            result = evaluate(settings, context.cursor, now)
        except InvalidCursorError as exc:
            # Safe to start over: run keys stop a week's same data from running again.
            context.log.warning(f"{exc}; starting from an empty cursor")
            result = evaluate(settings, None, now)
        requests, done = _not_done_yet(context, result.run_requests)
        if done:
            context.log.info(
                f"weeks {', '.join(done)}: already materialised at their data version, "
                "not run again"
            )
        for request in requests:
            tags = request.tags
            context.log.info(
                f"week {request.partition_key}: {tags[REASON_TAG]} "
                f"(data version {tags[DATA_VERSION_TAG]}, run key {request.run_key})"
            )
        if not requests:
            reason = result.summary
            if done:
                reason = f"weeks {', '.join(done)} already materialised at their data version"
            return dg.SensorResult(skip_reason=reason, cursor=result.cursor)
        return dg.SensorResult(run_requests=requests, cursor=result.cursor)

    return new_week_sensor
