"""Silver layer: per kid-week metrics and trends, the metric contract of DESIGN.md."""

import datetime as dt
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.metrics import write_week
from kidsfin_assets.resources import WarehouseResource
from kidsfin_assets.settings import Settings
from kidsfin_assets.warehouse import kid_weekly_analysis, source_tables
from kidsfin_assets.weeks import Week, weekly_partitions

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
SILVER_KEY = dg.AssetKey(["silver", "kid_weekly_analysis"])


def preview_table(rows: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(PREVIEW_COLUMNS) + " |"
    rule = "|" + "---|" * len(PREVIEW_COLUMNS)
    body = ["| " + " | ".join(str(r[c]) for c in PREVIEW_COLUMNS) + " |" for r in rows]
    return "\n".join([header, rule, *body])


def week_summary(conn: Connection, weeks: list[dt.date]) -> dict[str, Any]:
    """Totals over the written weeks, read back from the table (not held in memory)."""
    t = kid_weekly_analysis
    money = ("income_total", "spending_total", "saving_total", "withdrawal_total")
    totals = conn.execute(
        sa.select(
            sa.func.count().label("row_count"),
            sa.func.count(t.c.top_spending_category).label("kids_with_spending"),
            *(sa.func.coalesce(sa.func.sum(t.c[c]), 0).label(c) for c in money),
        ).where(t.c.week_start.in_(weeks))
    ).one()
    preview = conn.execute(
        sa.select(*(t.c[c] for c in PREVIEW_COLUMNS))
        .where(t.c.week_start == max(weeks))
        .order_by(t.c.kid_id)
        .limit(PREVIEW_ROWS)
    )
    return {
        "row_count": int(totals.row_count),
        "kids_with_spending": int(totals.kids_with_spending),
        **{c: round(float(totals._mapping[c]), 2) for c in money},
        "preview": dg.MetadataValue.md(preview_table([dict(r._mapping) for r in preview])),
    }


def build_kid_weekly_analysis(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=SILVER_KEY,
        group_name="silver",
        kinds={"sql"},
        deps=[dg.AssetKey(["raw", "kid_activity"])],
        partitions_def=weekly_partitions(settings),
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
            "scan when none is still valid), so a week's cost does not grow with history."
        ),
    )
    def kid_weekly_analysis_asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        engine, src = warehouse.get_engine(), source_tables(settings.sources)
        # Oldest first: each week's stored savings balances serve the weeks after it.
        weeks = sorted(Week.from_key(k, settings.weeks.timezone) for k in context.partition_keys)
        for week in weeks:
            with engine.begin() as conn:  # one transaction per week: all rows or none
                written = write_week(conn, src, week, settings.trends.threshold)
            context.log.info(f"week {week.key}: {written} kid rows written")
        with engine.connect() as conn:
            meta = week_summary(conn, [w.start for w in weeks])
        return dg.MaterializeResult(metadata={**meta, "weeks": len(weeks)})

    return kid_weekly_analysis_asset
