"""The project's own tables (schema `kidsfin` on PostgreSQL) and the app's source tables."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.config.settings import SourceTables
from kidsfin_assets.warehouse.db import (
    WAREHOUSE_SCHEMA_TOKEN,
    ddl_lock,
    ensure_warehouse_schema,
    split_table_name,
    warehouse_schema,
)

metadata = sa.MetaData(schema=WAREHOUSE_SCHEMA_TOKEN)
JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
Money = sa.Numeric(18, 2, asdecimal=False)
# The week an undated quarantine row is keyed under in the unique index (NULL is distinct).
QUARANTINE_UNDATED = "0001-01-01"

TREND_METRICS = ("income_total", "spending_total", "saving_total", "txn_count", "active_days")

raw_transactions = sa.Table(
    "raw_transactions",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("txn_id", sa.BigInteger, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, nullable=False),
    sa.Column("local_date", sa.Date, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("amount", Money, nullable=False),
)

raw_app_events = sa.Table(
    "raw_app_events",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("event_id", sa.BigInteger, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, nullable=False),
    sa.Column("local_date", sa.Date, nullable=False),
    sa.Column("event_type", sa.Text),
)

# The valid savings goals raw lists for a week (docs/metrics.md: open at its end, or created
# or completed in it), with their state in that week; silver reads these, not the app's.
raw_savings_goals = sa.Table(
    "raw_savings_goals",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("goal_id", sa.BigInteger, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("target_amount", Money, nullable=False),
    sa.Column("created_order", sa.Float, nullable=False),  # created_at, epoch seconds
    sa.Column("open_at_week_end", sa.Boolean, nullable=False),
    sa.Column("created_in_week", sa.Boolean, nullable=False),
    sa.Column("completed_in_week", sa.Boolean, nullable=False),
)

# One row per week raw holds, the latest load's: `seq` numbers raw's and silver's writes in
# commit order (one sequence with savings_balance_weeks'), which decides whether a stored
# balance may still be carried (metrics.py); `source_version` is the version of the week's
# app rows it copied, `versions_seen` those of W-2 .. W+2 as its load saw them (JSON text),
# which silver holds raw's neighbouring weeks to (raw_weeks.py). `loaded_by` is the
# partition whose run wrote it: the first partition also copies the two weeks before it.
raw_weeks = sa.Table(
    "raw_weeks",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("source_version", sa.Text, nullable=False),
    sa.Column("versions_seen", sa.Text, nullable=False),
    sa.Column("loaded_by", sa.Date, nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
)

# The weeks raw loaded past while another run was loading them (raw refuses any other gap
# in its history): `skipped_by` is the week whose load went past, `run_id` the run (or
# "backfill <id>") loading the skipped week then. A week's row goes when raw loads it.
# Silver waits for it, or fails naming it: the savings balance sums every raw week.
raw_skipped_weeks = sa.Table(
    "raw_skipped_weeks",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("skipped_by", sa.Date, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
)

# The history before raw's first week (the first partition's W-2): each kid's valid saving
# minus withdrawal before `before_week`, in cents. Written by the first partition's raw run;
# silver starts from it when it has no stored balance to carry.
raw_opening_balances = sa.Table(
    "raw_opening_balances",
    metadata,
    sa.Column("before_week", sa.Date, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, primary_key=True),
    sa.Column("balance_cents", sa.BigInteger, nullable=False),
)

# Invalid source rows, with the reason. week_start is NULL for rows without a time.
quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("source_table", sa.Text, nullable=False),
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("week_start", sa.Date, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("quarantined_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Index("ix_quarantine_week", "week_start", "source_table"),
)


def _trend_columns() -> list[sa.Column]:
    columns: list[sa.Column] = []
    for metric in TREND_METRICS:
        kind = sa.Integer if metric in ("txn_count", "active_days") else Money
        columns += [
            sa.Column(f"{metric}_prev1", kind, nullable=False),
            sa.Column(f"{metric}_prev2", kind, nullable=False),
            sa.Column(f"{metric}_trend", sa.String(8), nullable=False),
        ]
    return columns


kid_weekly_analysis = sa.Table(
    "kid_weekly_analysis",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, primary_key=True),
    sa.Column("income_total", Money, nullable=False),
    sa.Column("spending_total", Money, nullable=False),
    sa.Column("saving_total", Money, nullable=False),
    sa.Column("withdrawal_total", Money, nullable=False),
    sa.Column("net_flow", Money, nullable=False),
    sa.Column("savings_rate", sa.Float, nullable=True),
    sa.Column("txn_count", sa.Integer, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("active_days", sa.Integer, nullable=False),
    sa.Column("spending_by_category", JsonType, nullable=False),
    sa.Column("top_spending_category", sa.Text, nullable=True),
    sa.Column("savings_balance", Money, nullable=False),
    *_trend_columns(),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    # The kid's savings goals of the week (metrics.goals_json), titles as typed: for the
    # parent's export only, never sent to the API (reports.prompt_goals). Nullable so
    # that add_missing_columns can add it to an existing warehouse (NULL: no goals read).
    sa.Column("savings_goals", JsonType, nullable=True),
)

# Silver's savings balances carried from week to week (metrics.py says why they stay
# right). One row per kid with any saving or withdrawal raw holds (or an opening balance)
# before the end of the week, in cents.
savings_balances = sa.Table(
    "savings_balances",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, primary_key=True),
    sa.Column("balance_cents", sa.BigInteger, nullable=False),
)

# One row per week with stored balances: `seq` numbers silver's materialisations in
# commit order (the sequence raw_weeks shares), which decides whether a week's balances
# may be carried forward; `base_week` is the week they were carried from (NULL: from the
# opening balance and every raw week before the window).
savings_balance_weeks = sa.Table(
    "savings_balance_weeks",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("base_week", sa.Date, nullable=True),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    # The silver rows this materialisation wrote: the next week takes its W-1 and W-2
    # figures from them only while they are all still there (metrics.py). NULL: written
    # before the column existed, never taken.
    sa.Column("silver_rows", sa.BigInteger, nullable=True),
)

kid_weekly_reports = sa.Table(
    "kid_weekly_reports",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, primary_key=True),
    sa.Column("report", JsonType, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("prompt_version", sa.Text, nullable=False),
    sa.Column("input_hash", sa.Text, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("cached_tokens", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("writer", sa.String(16), nullable=False),
    sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
    # The accepted answer in report_ledger this report was derived from (NULL: offline).
    sa.Column("answer_id", sa.String(64), nullable=True),
    # Set when the kid left the week's silver rows: a paid report is kept, never deleted.
    sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
    # False: every answer stated something the data does not say; the last one is kept for
    # review, out of the parents' export (NULL: written before reports were checked).
    sa.Column("grounded", sa.Boolean, nullable=True),
    sa.Column("findings", JsonType, nullable=True),  # what the grounding check found
)

# The ledger: every request sent to the API and what came back (an answer is paid for,
# whether it became a report or not), recorded the moment it is known.
report_ledger = sa.Table(
    "report_ledger",
    metadata,
    # Chosen before the request is sent, so a replayed spool entry is stored once.
    sa.Column("answer_id", sa.String(64), primary_key=True),
    sa.Column("week_start", sa.Date, nullable=False),
    sa.Column("kid_id", sa.BigInteger, nullable=False),
    sa.Column("input_hash", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    # accepted, or the kind of failure (http_503, timeout, refusal, invalid_answer, ...)
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("model_requested", sa.Text, nullable=False),
    sa.Column("tier", sa.String(16), nullable=True),  # default, flex or batch: its price
    sa.Column("model_answered", sa.Text, nullable=True),  # as the response names it
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("input_cost_usd", sa.Float, nullable=False),
    sa.Column("output_cost_usd", sa.Float, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    # Why the usage above is not the response's own figures (missing, negative, absurd).
    sa.Column("usage_note", sa.Text, nullable=True),
    sa.Column("content", sa.Text, nullable=True),  # placeholder, never a nickname
    sa.Column("findings", JsonType, nullable=True),  # an ungrounded answer's statements
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_report_ledger_kid", "week_start", "kid_id", "input_hash"),
    sa.Index("ix_report_ledger_run", "run_id"),
)

# Claims: a kid-week being asked for right now, by whom, until when (the lease is renewed
# while the owner lives). A second run skips claimed kids and waits for their answers.
report_claims = sa.Table(
    "report_claims",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, primary_key=True),
    sa.Column("input_hash", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),  # host:pid:token of the claiming writer
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False),  # epoch seconds, database clock
)

# Batches sent to OpenAI's Batch API, one row per input file: recorded before the file is
# uploaded, with the file id before the batch is created and the batch id right after, so
# a run killed in between finds (and adopts) its batch instead of paying for it again.
openai_batches = sa.Table(
    "openai_batches",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # ours; the batch's metadata.kidsfin_id
    sa.Column("week_start", sa.Date, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("input_file_id", sa.Text, nullable=True),
    sa.Column("batch_id", sa.Text, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),  # preparing, or OpenAI's status
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("lines_completed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lines_failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("estimated_tokens", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=True),
    # Who is uploading and creating it, and until when (epoch, database clock): another
    # run adopts or abandons a batch without an id only once its submitter is gone.
    sa.Column("submitter", sa.Text, nullable=True),
    sa.Column("preparing_until", sa.Float, nullable=True),
    sa.Index("ix_openai_batches_open", "week_start", "ingested_at"),
)

# One row: this warehouse's own id, so that a spool file finds its way back to it whatever
# URL the next run reaches it by (another host name, a pooler, a fail-over address).
warehouse_identity = sa.Table(
    "warehouse_identity",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
)

# The shared OpenAI budget: one row per bucket, updated under a lock by every process.
rate_limit_buckets = sa.Table(
    "rate_limit_buckets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("level", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("paused_until", sa.Float, nullable=False, server_default="0"),
)


def create_warehouse_tables(engine: Engine) -> None:
    """Idempotent: create the schema, any missing table, and the columns and indexes
    added since a table was first created (nullable columns only)."""
    with engine.begin() as conn:
        # Runs starting at once on a fresh database would race on the catalog.
        ddl_lock(conn)
        ensure_warehouse_schema(conn)
        metadata.create_all(conn, checkfirst=True)
        for table in metadata.sorted_tables:
            add_missing_columns(conn, table)
        ensure_quarantine_key(conn)


def add_missing_columns(conn: Connection, table: sa.Table) -> None:
    schema = warehouse_schema(conn.engine)
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name, schema=schema)}
    for column in table.columns:
        if column.name not in present and column.nullable:
            kind = column.type.compile(dialect=conn.dialect)
            name = f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'
            conn.exec_driver_sql(f'ALTER TABLE {name} ADD COLUMN "{column.name}" {kind}')


def ensure_quarantine_key(conn: Connection) -> None:
    """One quarantine row per source row and week (undated rows: week NULL), so that two
    runs at once cannot duplicate them. Duplicates left by earlier versions are removed."""
    schema = warehouse_schema(conn.engine)
    name = f'"{schema}".quarantine' if schema else "quarantine"
    index = "uq_quarantine_row"
    existing = {i["name"] for i in sa.inspect(conn).get_indexes("quarantine", schema=schema)}
    if index in existing:
        return
    conn.exec_driver_sql(
        f"DELETE FROM {name} WHERE id NOT IN (SELECT min(id) FROM {name} "
        "GROUP BY source_table, source_id, week_start)"
    )
    conn.exec_driver_sql(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {name} "
        f"(source_table, source_id, COALESCE(week_start, {QUARANTINE_UNDATED!r}))"
    )


@dataclass(frozen=True)
class Sources:
    """The app's tables, named from settings, with the columns the pipeline reads."""

    kids: sa.TableClause
    transactions: sa.TableClause
    app_events: sa.TableClause
    savings_goals: sa.TableClause


def _table(name: str, *columns: str) -> sa.TableClause:
    schema, table = split_table_name(name)
    return sa.table(table, *(sa.column(c) for c in columns), schema=schema)


def source_tables(names: SourceTables) -> Sources:
    return Sources(
        kids=_table(names.kids, "kid_id", "nickname", "birth_date", "created_at"),
        transactions=_table(
            names.transactions,
            "txn_id",
            "kid_id",
            "occurred_at",
            "kind",
            "category",
            "amount",
            "note",
        ),
        app_events=_table(names.app_events, "event_id", "kid_id", "occurred_at", "event_type"),
        savings_goals=_table(
            names.savings_goals,
            "goal_id",
            "kid_id",
            "title",
            "target_amount",
            "created_at",
            "completed_at",
        ),
    )


_MISSING_TABLE = re.compile(r'relation "([^"]+)" does not exist|no such table: (\S+)')


def missing_table(exc: BaseException) -> str | None:
    """The table a database error says does not exist, if that is what it says."""
    found = _MISSING_TABLE.search(str(getattr(exc, "orig", exc)))
    return (found.group(1) or found.group(2)) if found else None


def nicknames(conn: Connection, src: Sources, kid_ids: list[int]) -> dict[int, str]:
    """Nicknames of these kids (read here, after the API call, never sent to it)."""
    if not kid_ids:
        return {}
    kids = src.kids
    found: dict[int, str] = {}
    for start in range(0, len(kid_ids), 5000):  # bounded IN lists
        chunk = kid_ids[start : start + 5000]
        query = sa.select(kids.c.kid_id, kids.c.nickname).where(kids.c.kid_id.in_(chunk))
        found.update(dict(conn.execute(query).all()))
    return found
