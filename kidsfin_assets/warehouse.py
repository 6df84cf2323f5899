"""The project's own tables (schema `kidsfin` on PostgreSQL) and the app's source tables."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.db import WAREHOUSE_SCHEMA_TOKEN, ensure_warehouse_schema, split_table_name
from kidsfin_assets.settings import SourceTables

metadata = sa.MetaData(schema=WAREHOUSE_SCHEMA_TOKEN)
JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
Money = sa.Numeric(18, 2, asdecimal=False)

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
)

# Silver's savings balances carried from week to week (metrics.py says why they stay
# right under late data). One row per kid_id (orphans too: a late `kids` row makes their
# rows count) with any valid saving or withdrawal before the end of the week, in cents.
savings_balances = sa.Table(
    "savings_balances",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("kid_id", sa.BigInteger, primary_key=True),
    sa.Column("balance_cents", sa.BigInteger, nullable=False),
)

# One row per week with stored balances: `seq` numbers silver's materialisations in
# commit order (they are serialised), which decides whether a week's balances may be
# carried forward; `base_week` is the week they were carried from (NULL: a full scan).
savings_balance_weeks = sa.Table(
    "savings_balance_weeks",
    metadata,
    sa.Column("week_start", sa.Date, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("base_week", sa.Date, nullable=True),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
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
    """Idempotent: create the schema and any missing table."""
    with engine.begin() as conn:
        ensure_warehouse_schema(conn)
        metadata.create_all(conn, checkfirst=True)


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
