"""Raw layer: one week's valid source rows, copied into the warehouse; bad rows quarantined."""

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.config.settings import SourceTables
from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.defs.catalog import SCHEMA_PREFIX, table_schema
from kidsfin_assets.defs.checks import QUARANTINE_SHARE, evaluate_checks, raw_checks
from kidsfin_assets.defs.keys import (
    APP_EVENTS,
    APP_SAVINGS_GOALS,
    APP_TABLES,
    APP_TRANSACTIONS,
    OWNERS,
    RAW_KEY,
)
from kidsfin_assets.defs.raw_runs import raw_in_flight
from kidsfin_assets.defs.resources import (
    AnalysisResource,
    CheckLimitsResource,
    SourcesResource,
    WarehouseResource,
)
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse import validation as v
from kidsfin_assets.warehouse.raw_weeks import (
    history_gaps,
    read_loads,
    record_loads,
    record_skipped,
    seen_weeks,
    window_weeks,
)
from kidsfin_assets.warehouse.source_activity import Fingerprint, week_fingerprint
from kidsfin_assets.warehouse.tables import (
    Sources,
    missing_table,
    quarantine,
    raw_app_events,
    raw_opening_balances,
    raw_savings_goals,
    raw_skipped_weeks,
    raw_transactions,
    raw_weeks,
)

# The reasons a row of a week can be quarantined for (a row without a time belongs to no
# week): every week's metadata carries each, 0 included, so the UI plots every week.
WEEK_REASONS = (
    v.Reason.DUPLICATE_ID,
    v.Reason.ORPHAN_KID,
    v.Reason.UNKNOWN_KIND,
    v.Reason.BAD_AMOUNT,
    v.Reason.COMPLETED_BEFORE_CREATED,
)


@dataclass
class RawWeekCounts:
    rows_read: int = 0
    transactions_valid: int = 0
    events_valid: int = 0
    goals_listed: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    # The week's source version (source_activity.source_versions) the rows were read at.
    source_versions: dict[str, str] = field(default_factory=dict)

    @property
    def rows_valid(self) -> int:
        return self.transactions_valid + self.events_valid

    def add(self, other: "RawWeekCounts") -> None:
        """Sum of weeks, for a range run's log line."""
        self.rows_read += other.rows_read
        self.transactions_valid += other.transactions_valid
        self.events_valid += other.events_valid
        self.quarantined += other.quarantined


def _copy_valid_rows(conn: Connection, src: Sources, week: Week) -> tuple[int, int]:
    """Replace raw's copy of the week's valid transactions and app events."""
    window = (week.starts_at, week.ends_at)
    for table in (raw_transactions, raw_app_events):
        conn.execute(sa.delete(table).where(table.c.week_start == week.start))
    when = sa.literal(week.start, sa.Date).label("week_start")
    engine, tz, monday = conn.engine, week.timezone, week.start
    txns = v.valid_transactions(engine, src, tz, *window, extra=[when], monday=monday)
    columns = ["txn_id", "kid_id", "kind", "category", "amount", "local_date", "week_start"]
    n_txn = conn.execute(sa.insert(raw_transactions).from_select(columns, txns)).rowcount
    events = v.valid_events(engine, src, tz, *window, extra=[when], monday=monday)
    columns = ["event_id", "kid_id", "event_type", "local_date", "week_start"]
    n_evt = conn.execute(sa.insert(raw_app_events).from_select(columns, events)).rowcount
    return n_txn, n_evt


def _copy_listed_goals(conn: Connection, src: Sources, week: Week) -> int:
    """Replace raw's copy of the valid goals listed for the week, with their state in it."""
    g = raw_savings_goals
    conn.execute(sa.delete(g).where(g.c.week_start == week.start))
    listed = v.listed_goals(conn.engine, src, week.starts_at, week.ends_at).subquery()
    rows = sa.select(sa.literal(week.start, sa.Date), *listed.c)
    columns = ["week_start", *(c.name for c in listed.c)]
    return int(conn.execute(sa.insert(g).from_select(columns, rows)).rowcount)


def _store_opening_balances(conn: Connection, src: Sources, before: Week) -> None:
    """The history before raw's first week: each kid's valid savings before it."""
    o = raw_opening_balances
    conn.execute(sa.delete(o).where(o.c.before_week == before.start))
    sums = v.savings_before(conn.engine, src, before.starts_at).subquery()
    rows = sa.select(sa.literal(before.start, sa.Date), sums.c.kid_id, sums.c.balance_cents)
    conn.execute(sa.insert(o).from_select(["before_week", "kid_id", "balance_cents"], rows))


def _quarantine(conn: Connection, name: str, rows: sa.Select, week: Week | None) -> Counter[str]:
    """Replace this week's (or the undated) quarantine rows of one source table."""
    week_start = None if week is None else week.start
    match = (
        quarantine.c.week_start.is_(None)
        if week_start is None
        else quarantine.c.week_start == week_start
    )
    conn.execute(sa.delete(quarantine).where(match, quarantine.c.source_table == name))
    found = conn.execute(rows).all()
    # Keyed per source row and week: a parallel run refreshing the same undated rows
    # cannot duplicate them.
    db.insert_ignoring_duplicates(
        conn,
        quarantine,
        [
            {"source_table": name, "source_id": sid, "week_start": week_start, "reason": r}
            for sid, r in set(found)
        ],
    )
    # One row (and one count) per source id: the copies of a duplicated id are one problem.
    return Counter(reason for _, reason in set(found))


def load_raw_week(
    conn: Connection,
    names: SourceTables,
    src: Sources,
    week: Week,
    first: bool = False,
    known: dict[Week, Fingerprint] | None = None,
    look_ahead: bool = True,
) -> RawWeekCounts:
    """Copy the valid rows and quarantine the rest, in the caller's transaction. The first
    partition (`first`) also copies the two weeks before it, which the first weeks' trends
    compare with, and stores the opening balance of the history before those.

    It also looks at the app's W-2 and W-1 (silver holds raw's copies of them to what
    raw's newest load saw: raw_weeks.py) and, with `look_ahead`, at W+1 and W+2 when raw
    has never loaded them (so that silver can tell an empty week from one raw lacks).
    `known`: the weeks a range run already looked at (their loads' own fingerprints, not
    taken twice); this load's are added to it."""
    engine = conn.engine
    db.week_lock(conn, "raw", week.key)
    window = (week.starts_at, week.ends_at)
    known = {} if known is None else known
    # First, before any row is read: a row arriving meanwhile changes the next version.
    around = seen_weeks(week, dt.datetime.now(dt.UTC))
    later = [w for w in around if w > week]
    held = read_loads(conn, later).keys() if later else set()
    unloaded = {w for w in later if w.start not in held}
    prints = {}
    for w in around:
        if w in known:
            prints[w] = known[w]
        elif w <= week or (look_ahead and w in unloaded):
            prints[w] = week_fingerprint(conn, src, w)
    fp = prints[week]
    known[week] = fp
    counts = RawWeekCounts(
        rows_read=fp.transactions.rows + fp.app_events.rows,  # the rows inside the week
        source_versions={week.key: fp.version},
    )
    counts.transactions_valid, counts.events_valid = _copy_valid_rows(conn, src, week)
    counts.goals_listed = _copy_listed_goals(conn, src, week)
    counts.quarantined += _quarantine(
        conn, names.transactions, v.invalid_transactions(engine, src, *window), week
    )
    counts.quarantined += _quarantine(
        conn, names.app_events, v.invalid_events(engine, src, *window), week
    )
    # Goals silver leaves out, under the week they were created in.
    counts.quarantined += _quarantine(
        conn, names.savings_goals, v.invalid_goals(engine, src, *window), week
    )
    loaded = {week: fp.version}
    if first:
        history = window_weeks(week)[:-1]
        for earlier in history:
            _copy_valid_rows(conn, src, earlier)
            loaded[earlier] = prints[earlier].version
        _store_opening_balances(conn, src, history[0])
    seen = {w.key: p.version for w, p in prints.items()}
    record_loads(conn, loaded, seen, loaded_by=week)
    return counts


def quarantine_undated(conn: Connection, names: SourceTables, src: Sources) -> dict[str, int]:
    """Quarantine the rows without a time (they belong to no week), afresh; their count
    by configured table name. Once a run, in the caller's transaction."""
    engine = conn.engine
    undated: dict[str, int] = {}
    for name, table, id_column, time_column in (
        (names.transactions, src.transactions, "txn_id", "occurred_at"),
        (names.app_events, src.app_events, "event_id", "occurred_at"),
        (names.savings_goals, src.savings_goals, "goal_id", "created_at"),
    ):
        rows = v.undated_rows(engine, table, id_column, time_column)
        undated[name] = _quarantine(conn, name, rows, None)[v.Reason.MISSING_TIME]
    return undated


@contextlib.contextmanager
def source_errors_explained(names: SourceTables) -> Iterator[None]:
    """A missing app table fails the step with one line naming it, not a traceback."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        table = missing_table(exc)
        if table is None:
            raise
        configured = ", ".join(f"{k}={v}" for k, v in names.model_dump().items())
        raise dg.Failure(
            description=(
                f"the app table {table!r} does not exist in the database "
                f"(sources in config/pipeline.yaml: {configured})"
            ),
            allow_retries=False,
        ) from None


def week_metadata(counts: RawWeekCounts) -> dict[str, Any]:
    """One week's own figures: what its partition shows and plots."""
    by_reason = {f"quarantined_{reason}": counts.quarantined[reason] for reason in WEEK_REASONS}
    return {
        "rows_read": counts.rows_read,
        "rows_valid": counts.rows_valid,
        "dagster/row_count": counts.rows_valid,
        "transactions_valid": counts.transactions_valid,
        "events_valid": counts.events_valid,
        "goals_listed": counts.goals_listed,
        "rows_quarantined": sum(counts.quarantined.values()),
        **by_reason,
        # What new_week_sensor compares with the source's rows now (docs/design.md).
        "source_versions": dg.MetadataValue.json(counts.source_versions),
    }


def counts_line(label: str, counts: RawWeekCounts) -> str:
    """'week 2026-03-16: 140 rows read, 130 valid (120 transactions, 10 app events), 10
    quarantined (bad_amount 4, orphan_kid 6)': reasons by name, only those that occur."""
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(counts.quarantined.items()) if n)
    quarantined = sum(counts.quarantined.values())
    return (
        f"{label}: {counts.rows_read} rows read, {counts.rows_valid} valid "
        f"({counts.transactions_valid} transactions, {counts.events_valid} app events), "
        f"{quarantined} quarantined" + (f" ({reasons})" if reasons else "")
    )


def undated_line(undated: dict[str, int]) -> str:
    found = ", ".join(f"{name} {n}" for name, n in undated.items() if n)
    if not found:
        return "rows without a time: none"
    return (
        f"rows without a time, in no week, quarantined as missing_time: {found} "
        "(observed on the app tables as rows_without_time)"
    )


def observe_undated(
    context: dg.AssetExecutionContext, names: SourceTables, undated: dict[str, int]
) -> None:
    """The undated rows are the app table's, not a week's: an observation of the table
    (not partitioned), which its catalog page lists and plots over time."""
    for key in (APP_TRANSACTIONS, APP_EVENTS, APP_SAVINGS_GOALS):
        name = getattr(names, key.path[-1])
        context.log_event(
            dg.AssetObservation(
                asset_key=key,
                description="Rows without a time: they belong to no week (quarantined).",
                metadata={"rows_without_time": undated[name]},
            )
        )


def refuse_history_gaps(
    conn: Connection,
    src: Sources,
    first: Week,
    start: Week,
    in_flight: Callable[[Week], str | None],
) -> dict[Week, str]:
    """Raw loads no week past one it skipped that has app rows, unless another run is
    loading that week (the sensor's runs of several new weeks start together): silver's
    savings balance sums raw's weeks from the first partition, and would be wrong without
    a word. Returns the weeks gone past that way, with the run loading each (recorded with
    the load: silver waits for them)."""
    loading = {w: in_flight(w) for w in history_gaps(conn, src, first, start)}
    gaps = [w for w, run_id in loading.items() if run_id is None]
    if gaps:
        listed = ", ".join(w.key for w in gaps[:5]) + (" ..." if len(gaps) > 5 else "")
        raise dg.Failure(
            description=(
                f"raw/kid_activity {start.key} would leave a gap in raw's history: the app "
                f"has rows in weeks raw never loaded ({listed}), and silver's savings "
                f"balance sums raw's weeks from the first partition ({first.key}). "
                f"Materialise raw/kid_activity from {gaps[0].key} to {start.key} first (one "
                "backfill: a range runs in one run, in order). Nothing was written."
            ),
            allow_retries=False,
        )
    return {w: run_id for w, run_id in loading.items() if run_id is not None}


@dg.asset(
    key=RAW_KEY,
    deps=APP_TABLES,
    group_name="raw",
    kinds={"sql"},
    owners=OWNERS,
    tags={"kidsfin/layer": "raw"},
    # Three tables: no one `dagster/table_name`; the schema of each, by name.
    metadata={
        f"{SCHEMA_PREFIX}{t.name}": table_schema(t)
        for t in (
            raw_transactions,
            raw_app_events,
            raw_savings_goals,
            raw_opening_balances,
            raw_weeks,
            raw_skipped_weeks,
            quarantine,
        )
    },
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[QUARANTINE_SHARE],  # evaluated in this step, each week after its rows
    description=(
        "The one place the app's rows are validated: one week's valid transactions and "
        "app events, copied from the app's tables into `raw_transactions` / "
        "`raw_app_events`, and the valid savings goals listed for the week (open at its "
        "end, or created or completed in it) into `raw_savings_goals`; silver reads these, "
        "never the app. Rows that break a rule (kid missing, no time, unknown kind, amount "
        "<= 0, NaN or beyond NUMERIC(14,2)) go to `quarantine` with the reason, and so do "
        "the week's new goals silver leaves out (kid missing, no creation time, a bad "
        "target, completed before created). `raw_weeks` records each load with the source "
        "versions it saw. The first partition also copies the two weeks before it (the "
        "first weeks' trends compare with them) and stores the opening balance of the "
        "history before those (`raw_opening_balances`). Each week's metadata is its own, "
        "in a backfill's range run too, with the source version it was read at. Rows with "
        "no time belong to no week: quarantined afresh every run and counted on the app "
        "table they are in (an observation, `rows_without_time`)."
    ),
)
def kid_activity(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    check_limits: CheckLimitsResource,
) -> Iterator[dg.MaterializeResult | dg.Output[None] | dg.AssetCheckEvaluation]:
    tz, names = analysis.timezone, sources.names()
    engine, src = warehouse.get_engine(), sources.tables()
    keys = context.partition_keys
    first = weekly_partitions.start.date().isoformat()
    total = RawWeekCounts()
    known: dict[Week, Fingerprint] = {}  # the app's weeks this run looked at
    with source_errors_explained(names), engine.connect() as conn:
        skipped = refuse_history_gaps(
            conn,
            src,
            Week.from_key(first, tz),
            Week.from_key(min(keys), tz),
            lambda w: raw_in_flight(context, w),
        )
    for key in sorted(keys):
        week = Week.from_key(key, tz)
        # one transaction per week: all of it or none
        with source_errors_explained(names), engine.begin() as conn:
            counts = load_raw_week(
                conn, names, src, week, key == first, known, look_ahead=key == max(keys)
            )
            if key == min(keys):  # after its record_loads, under lock_writes
                record_skipped(conn, skipped, week)
        context.log.info(counts_line(f"week {key}", counts))
        # Each week of a range run carries its own figures, not the range's.
        context.add_asset_metadata(week_metadata(counts), partition_key=key)
        total.add(counts)
    if len(keys) > 1:
        context.log.info(counts_line(f"{len(keys)} weeks {keys[0]} to {keys[-1]}", total))
    with source_errors_explained(names), engine.begin() as conn:
        undated = quarantine_undated(conn, names, src)
    context.log.info(undated_line(undated))
    observe_undated(context, names, undated)
    yield dg.MaterializeResult()
    yield from evaluate_checks(context, warehouse, tz, raw_checks(check_limits))
