"""Silver layer: per kid-week metrics and trends, the metric contract of docs/metrics.md."""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection

from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.defs.assets.raw import source_errors_explained
from kidsfin_assets.defs.catalog import table_metadata
from kidsfin_assets.defs.keys import (
    APP_EVENTS,
    APP_KIDS,
    APP_SAVINGS_GOALS,
    APP_TRANSACTIONS,
    OWNERS,
    SILVER_KEY,
)
from kidsfin_assets.defs.resources import AnalysisResource, SourcesResource, WarehouseResource
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.metrics import WEEKS_BACK, write_week
from kidsfin_assets.warehouse.source_activity import source_versions
from kidsfin_assets.warehouse.tables import kid_weekly_analysis as analysis_table

PREVIEW_COLUMNS = (
    "kid_id",
    "income_total",
    "spending_total",
    "saving_total",
    "net_flow",
    "active_days",
    "top_spending_category",
    "spending_total_trend",
)
PREVIEW_ROWS = 10


def preview_table(rows: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(PREVIEW_COLUMNS) + " |"
    rule = "|" + "---|" * len(PREVIEW_COLUMNS)
    body = ["| " + " | ".join(str(r[c]) for c in PREVIEW_COLUMNS) + " |" for r in rows]
    return "\n".join([header, rule, *body])


def week_summary(conn: Connection, week: Week) -> dict[str, Any]:
    """The week's own figures, read back from the table (not held in memory)."""
    t = analysis_table
    money = ("income_total", "spending_total", "saving_total", "withdrawal_total")
    totals = conn.execute(
        sa.select(
            sa.func.count().label("row_count"),
            sa.func.count(t.c.top_spending_category).label("kids_with_spending"),
            *(sa.func.coalesce(sa.func.sum(t.c[c]), 0).label(c) for c in money),
        ).where(t.c.week_start == week.start)
    ).one()
    preview = conn.execute(
        sa.select(*(t.c[c] for c in PREVIEW_COLUMNS))
        .where(t.c.week_start == week.start)
        .order_by(t.c.kid_id)
        .limit(PREVIEW_ROWS)
    )
    return {
        "row_count": int(totals.row_count),
        "dagster/row_count": int(totals.row_count),
        "kids_with_spending": int(totals.kids_with_spending),
        **{c: round(float(totals._mapping[c]), 2) for c in money},
        "preview": dg.MetadataValue.md(preview_table([dict(r._mapping) for r in preview])),
    }


class SilverRunConfig(dg.Config):
    allow_shrink: bool = Field(
        default=False,
        description=(
            "Write a week whose kid rows dropped by more than silver.max_shrink_share since "
            "its last materialisation (refused by default: an emptied app table would "
            "otherwise turn every paid report of the week into a superseded one)."
        ),
    )


def week_row_count(conn: Connection, week: Week) -> int:
    t = analysis_table
    query = sa.select(sa.func.count()).where(t.c.week_start == week.start)
    return int(conn.execute(query).scalar_one())


def refuse_shrink(week: Week, before: int, after: int, max_share: float | None) -> None:
    """Fail (rolling the week back) when the week lost too many kid rows at once."""
    if max_share is None or before == 0 or (before - after) / before <= max_share:
        return
    raise dg.Failure(
        description=(
            f"silver week {week.key} would drop from {before} to {after} kid rows "
            f"({(before - after) / before:.0%}, above silver.max_shrink_share={max_share}); "
            "nothing was written and gold keeps its reports. Check the app's tables (an "
            "emptied kids or transactions table?); if the drop is real, re-run with run "
            "config `ops: {silver__kid_weekly_analysis: {config: {allow_shrink: true}}}`."
        ),
        metadata={"rows_before": before, "rows_after": after},
        allow_retries=False,
    )


@dg.asset(
    key=SILVER_KEY,
    group_name="silver",
    kinds={"sql"},
    owners=OWNERS,
    tags={"kidsfin/layer": "silver"},
    metadata=table_metadata(analysis_table),
    # What it reads: W, W-1 and W-2 straight from the app's tables (not raw's copy),
    # so one week can run alone.
    deps=[APP_TRANSACTIONS, APP_EVENTS, APP_SAVINGS_GOALS, APP_KIDS],
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "Per kid-week metrics (income, spending, saving, withdrawal, net flow, savings "
        "rate, counts, active days, spending by category, savings balance) and trends "
        "against W-1 and W-2, computed in the database and written to "
        "`kid_weekly_analysis`, replacing the week's rows in one transaction. Trends "
        "read W-1 and W-2 straight from the source tables, so one week can be "
        "materialised alone; a backfill needs no earlier partitions, but re-run W+1 "
        "and W+2 after late data in W (the sensor does). The savings balance is "
        "carried from the balances stored with W-3 (or an earlier week, or a full "
        "scan when none is still valid), so a week's cost does not grow with history. "
        "Each week's metadata (totals, preview) is its own, in a backfill's range run "
        "too, with the source versions of W-2, W-1 and W it was computed at."
    ),
)
def kid_weekly_analysis(
    context: dg.AssetExecutionContext,
    config: SilverRunConfig,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
) -> dg.MaterializeResult:
    engine, src, names = warehouse.get_engine(), sources.tables(), sources.names()
    # Oldest first: each week's stored savings balances serve the weeks after it.
    weeks = sorted(Week.from_key(k, analysis.timezone) for k in context.partition_keys)
    max_shrink = None if config.allow_shrink else analysis.max_shrink_share
    written_in_run = 0
    for week in weeks:
        # one transaction per week: all rows or none
        with source_errors_explained(names), engine.begin() as conn:
            db.week_lock(conn, "silver", week.key)
            # W-2, W-1 and W, before their rows are read (source_activity.source_versions)
            versions = source_versions(conn, src, week, WEEKS_BACK - 1)
            before = week_row_count(conn, week)
            written = write_week(conn, src, week, analysis.trend_threshold)
            refuse_shrink(week, before, written, max_shrink)  # rolls the week back
            meta = week_summary(conn, week)
        context.log.info(f"week {week.key}: {written} kid rows written")
        # Each week of a range run carries its own figures and preview, not the range's.
        meta["source_versions"] = dg.MetadataValue.json(versions)
        context.add_asset_metadata(meta, partition_key=week.key)
        written_in_run += written
    if len(weeks) > 1:
        context.log.info(
            f"{len(weeks)} weeks {weeks[0].key} to {weeks[-1].key}: "
            f"{written_in_run} kid rows written"
        )
    return dg.MaterializeResult()
