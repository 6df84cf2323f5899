"""Raw layer: one week's valid source rows, copied into the warehouse; bad rows quarantined."""

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets import db
from kidsfin_assets import validation as v
from kidsfin_assets.catalog import table_schema
from kidsfin_assets.keys import APP_TABLES, OWNERS, RAW_KEY
from kidsfin_assets.resources import AnalysisResource, SourcesResource, WarehouseResource
from kidsfin_assets.settings import SourceTables
from kidsfin_assets.warehouse import (
    Sources,
    missing_table,
    quarantine,
    raw_app_events,
    raw_transactions,
)
from kidsfin_assets.weeks import Week, weekly_partitions


@dataclass
class RawWeekCounts:
    rows_read: int = 0
    transactions_valid: int = 0
    events_valid: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    undated: int = 0

    @property
    def rows_valid(self) -> int:
        return self.transactions_valid + self.events_valid


def _copy_valid_rows(conn: Connection, src: Sources, week: Week) -> tuple[int, int]:
    window = (week.starts_at, week.ends_at)
    for table in (raw_transactions, raw_app_events):
        conn.execute(sa.delete(table).where(table.c.week_start == week.start))
    when = sa.literal(week.start, sa.Date).label("week_start")
    txns = v.valid_transactions(conn.engine, src, week.timezone, *window, extra=[when])
    columns = ["txn_id", "kid_id", "kind", "category", "amount", "local_date", "week_start"]
    n_txn = conn.execute(sa.insert(raw_transactions).from_select(columns, txns)).rowcount
    events = v.valid_events(conn.engine, src, week.timezone, *window, extra=[when])
    columns = ["event_id", "kid_id", "event_type", "local_date", "week_start"]
    n_evt = conn.execute(sa.insert(raw_app_events).from_select(columns, events)).rowcount
    return n_txn, n_evt


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


def load_raw_week(conn: Connection, names: SourceTables, src: Sources, week: Week) -> RawWeekCounts:
    """Copy the valid rows and quarantine the rest, in the caller's transaction."""
    engine = conn.engine
    db.week_lock(conn, "raw", week.key)
    counts = RawWeekCounts()
    window = (week.starts_at, week.ends_at)
    for table in (src.transactions, src.app_events):
        counts.rows_read += conn.execute(v.rows_in_window(engine, table, *window)).scalar_one()
    counts.transactions_valid, counts.events_valid = _copy_valid_rows(conn, src, week)
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
    for name, table, id_column, time_column in (
        (names.transactions, src.transactions, "txn_id", "occurred_at"),
        (names.app_events, src.app_events, "event_id", "occurred_at"),
        (names.savings_goals, src.savings_goals, "goal_id", "created_at"),
    ):
        undated = v.undated_rows(engine, table, id_column, time_column)
        counts.undated += _quarantine(conn, name, undated, None)[v.Reason.MISSING_TIME]
    return counts


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


def _metadata(counts: RawWeekCounts) -> dict[str, int]:
    by_reason = {f"quarantined_{reason}": n for reason, n in sorted(counts.quarantined.items())}
    return {
        "rows_read": counts.rows_read,
        "rows_valid": counts.rows_valid,
        "dagster/row_count": counts.rows_valid,
        "transactions_valid": counts.transactions_valid,
        "events_valid": counts.events_valid,
        "rows_quarantined": sum(counts.quarantined.values()),
        **by_reason,
        "rows_without_time": counts.undated,
    }


@dg.asset(
    key=RAW_KEY,
    deps=APP_TABLES,
    group_name="raw",
    kinds={"sql"},
    owners=OWNERS,
    tags={"kidsfin/layer": "raw"},
    # Three tables: no one `dagster/table_name`; the schema of each, by name.
    metadata={
        f"schema/{t.name}": table_schema(t) for t in (raw_transactions, raw_app_events, quarantine)
    },
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "One week's valid transactions and app events, copied from the app's tables "
        "into `raw_transactions` / `raw_app_events`. Rows that break a rule (kid "
        "missing, no time, unknown kind, amount <= 0, NaN or beyond NUMERIC(14,2)) go to "
        "`quarantine` with the reason, and so do savings goals silver leaves out (kid "
        "missing, no creation time, a bad target, completed before created); rows with "
        "no time belong to no week and are re-checked every run."
    ),
)
def kid_activity(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
) -> dg.MaterializeResult:
    tz, names = analysis.timezone, sources.names()
    engine, src = warehouse.get_engine(), sources.tables()
    total = RawWeekCounts()
    for key in context.partition_keys:
        week = Week.from_key(key, tz)
        # one transaction per week: all of it or none
        with source_errors_explained(names), engine.begin() as conn:
            counts = load_raw_week(conn, names, src, week)
        context.log.info(
            f"week {key}: {counts.rows_read} rows read, {counts.rows_valid} valid, "
            f"{sum(counts.quarantined.values())} quarantined {dict(counts.quarantined)}"
        )
        total.rows_read += counts.rows_read
        total.transactions_valid += counts.transactions_valid
        total.events_valid += counts.events_valid
        total.quarantined += counts.quarantined
        total.undated = counts.undated
    return dg.MaterializeResult(metadata=_metadata(total))
