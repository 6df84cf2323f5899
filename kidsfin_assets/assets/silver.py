"""Silver layer: per kid-week metrics and trends, the metric contract of DESIGN.md."""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.metrics import compute_week
from kidsfin_assets.resources import WarehouseResource
from kidsfin_assets.settings import Settings
from kidsfin_assets.warehouse import Sources, kid_weekly_analysis, source_tables
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
SILVER_KEY = dg.AssetKey(["silver", "kid_weekly_analysis"])


def replace_week(conn: Connection, week: Week, rows: list[dict[str, Any]]) -> None:
    """Delete then insert, inside the caller's transaction: readers see old or new, never half."""
    conn.execute(
        sa.delete(kid_weekly_analysis).where(kid_weekly_analysis.c.week_start == week.start)
    )
    if rows:
        conn.execute(sa.insert(kid_weekly_analysis), rows)


def materialize_week(
    conn: Connection, src: Sources, week: Week, threshold: float
) -> list[dict[str, Any]]:
    rows = compute_week(conn, src, week, threshold)
    replace_week(conn, week, rows)
    return rows


def preview_table(rows: list[dict[str, Any]], limit: int = 10) -> str:
    header = "| " + " | ".join(PREVIEW_COLUMNS) + " |"
    rule = "|" + "---|" * len(PREVIEW_COLUMNS)
    body = ["| " + " | ".join(str(r[c]) for c in PREVIEW_COLUMNS) + " |" for r in rows[:limit]]
    return "\n".join([header, rule, *body])


def _metadata(rows: list[dict[str, Any]], weeks: list[str]) -> dict[str, Any]:
    def total(column: str) -> float:
        return round(sum(r[column] for r in rows), 2)

    return {
        "row_count": len(rows),
        "weeks": len(weeks),
        "income_total": total("income_total"),
        "spending_total": total("spending_total"),
        "saving_total": total("saving_total"),
        "withdrawal_total": total("withdrawal_total"),
        "kids_with_spending": sum(1 for r in rows if r["top_spending_category"]),
        "preview": dg.MetadataValue.md(preview_table(rows)),
    }


def build_kid_weekly_analysis(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=SILVER_KEY,
        group_name="silver",
        kinds={"sql", "pandas"},
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
            "and W+2 after late data in W (the sensor does)."
        ),
    )
    def kid_weekly_analysis_asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        engine, src = warehouse.get_engine(), source_tables(settings.sources)
        all_rows: list[dict[str, Any]] = []
        for key in context.partition_keys:
            week = Week.from_key(key, settings.weeks.timezone)
            with engine.begin() as conn:
                rows = materialize_week(conn, src, week, settings.trends.threshold)
            context.log.info(f"week {key}: {len(rows)} kid rows written")
            all_rows += rows
        return dg.MaterializeResult(metadata=_metadata(all_rows, context.partition_keys))

    return kid_weekly_analysis_asset
