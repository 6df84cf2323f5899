"""Asset checks: is each week's state trustworthy? Numeric metadata, plotted by the UI."""

from collections.abc import Callable, Iterator

import dagster as dg
import sqlalchemy as sa

# Not exported by `dagster` 1.13 (pinned <1.14); what a per-partition evaluation needs to
# name the materialisation it checked, as Dagster's own check results do.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from sqlalchemy.engine import Connection

from kidsfin_assets.keys import GOLD_KEY, RAW_KEY, SILVER_KEY
from kidsfin_assets.resources import WarehouseResource
from kidsfin_assets.settings import Settings
from kidsfin_assets.validation import valid_events, valid_transactions
from kidsfin_assets.warehouse import (
    kid_weekly_analysis,
    kid_weekly_reports,
    quarantine,
    raw_app_events,
    raw_transactions,
    source_tables,
)
from kidsfin_assets.weeks import Week, weekly_partitions

WeekCheck = Callable[[Connection, Week], dg.AssetCheckResult]


def _count(conn: Connection, query: sa.Select) -> int:
    return int(conn.execute(query).scalar_one() or 0)


def _week_rows(table: sa.Table, week: Week) -> sa.Select:
    return sa.select(sa.func.count()).select_from(table).where(table.c.week_start == week.start)


def _current_reports(week: Week) -> sa.ColumnElement[bool]:
    """The week's reports of kids still in silver (superseded ones are kept, not counted)."""
    gold = kid_weekly_reports
    return sa.and_(gold.c.week_start == week.start, gold.c.superseded_at.is_(None))


def silver_row_per_active_kid(settings: Settings) -> WeekCheck:
    src = source_tables(settings.sources)

    def check(conn: Connection, week: Week) -> dg.AssetCheckResult:
        window = (week.shifted(-2).starts_at, week.ends_at)
        txns = valid_transactions(conn.engine, src, week.timezone, *window).subquery()
        events = valid_events(conn.engine, src, week.timezone, *window).subquery()
        active = sa.union(sa.select(txns.c.kid_id), sa.select(events.c.kid_id)).subquery()
        expected = _count(conn, sa.select(sa.func.count()).select_from(active))
        silver = kid_weekly_analysis
        rows = _count(conn, _week_rows(silver, week))
        distinct = _count(
            conn,
            sa.select(sa.func.count(sa.distinct(silver.c.kid_id))).where(
                silver.c.week_start == week.start
            ),
        )
        return dg.AssetCheckResult(
            passed=rows == expected == distinct,
            metadata={"silver_rows": rows, "active_kids": expected, "distinct_kids": distinct},
        )

    return check


def gold_report_per_silver_row(_: Settings) -> WeekCheck:
    def check(conn: Connection, week: Week) -> dg.AssetCheckResult:
        silver, gold = kid_weekly_analysis, kid_weekly_reports
        silver_rows = _count(conn, _week_rows(silver, week))
        matched = _count(
            conn,
            sa.select(sa.func.count())
            .select_from(
                gold.join(
                    silver,
                    sa.and_(
                        gold.c.week_start == silver.c.week_start, gold.c.kid_id == silver.c.kid_id
                    ),
                )
            )
            .where(_current_reports(week)),
        )
        reports = _count(conn, sa.select(sa.func.count()).where(_current_reports(week)))
        superseded = _count(conn, _week_rows(gold, week)) - reports
        return dg.AssetCheckResult(
            passed=silver_rows == matched == reports,
            metadata={
                "silver_rows": silver_rows,
                "reports": reports,
                "missing_reports": silver_rows - matched,
                "orphan_reports": reports - matched,
                "superseded_reports": superseded,
            },
        )

    return check


def scores_in_range(_: Settings) -> WeekCheck:
    def check(conn: Connection, week: Week) -> dg.AssetCheckResult:
        gold = kid_weekly_reports
        scores = [
            r.report.get("overall_score")
            for r in conn.execute(sa.select(gold.c.report).where(_current_reports(week)))
        ]
        bad = [s for s in scores if not isinstance(s, int | float) or not 0 <= s <= 10]
        numbers = [float(s) for s in scores if s not in bad]
        return dg.AssetCheckResult(
            passed=not bad,
            metadata={
                "reports": len(scores),
                "out_of_range": len(bad),
                "min_score": min(numbers, default=0.0),
                "max_score": max(numbers, default=0.0),
                "mean_score": round(sum(numbers) / len(numbers), 3) if numbers else 0.0,
            },
        )

    return check


def quarantine_share(settings: Settings) -> WeekCheck:
    limit = settings.checks.max_quarantine_share

    def check(conn: Connection, week: Week) -> dg.AssetCheckResult:
        bad = _count(conn, _week_rows(quarantine, week))
        good = _count(conn, _week_rows(raw_transactions, week)) + _count(
            conn, _week_rows(raw_app_events, week)
        )
        share = bad / (bad + good) if bad + good else 0.0
        return dg.AssetCheckResult(
            passed=share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined_rows": bad,
                "valid_rows": good,
                "quarantined_share": round(share, 6),
                "max_share": limit,
            },
        )

    return check


def reports_grounded(settings: Settings) -> WeekCheck:
    least = settings.checks.min_grounded_share

    def check(conn: Connection, week: Week) -> dg.AssetCheckResult:
        gold = kid_weekly_reports
        reports, ungrounded = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(gold.c.grounded.is_(False)),
            ).where(_current_reports(week))
        ).one()
        share = (reports - ungrounded) / reports if reports else 1.0
        return dg.AssetCheckResult(
            passed=share >= least,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reports": int(reports),
                "ungrounded_reports": int(ungrounded),
                "grounded_share": round(share, 6),
                "min_grounded_share": least,
            },
        )

    return check


def cost_per_report(settings: Settings) -> WeekCheck:
    limit = settings.checks.max_cost_per_report_usd

    def check(conn: Connection, week: Week) -> dg.AssetCheckResult:
        gold = kid_weekly_reports
        n, total = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(gold.c.cost_usd), 0.0)).where(
                _current_reports(week)
            )
        ).one()
        average = float(total) / n if n else 0.0
        return dg.AssetCheckResult(
            passed=average <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reports": n,
                "cost_usd": float(total),
                "cost_per_report_usd": average,
                "max_cost_per_report_usd": limit,
            },
        )

    return check


CHECKS: list[tuple[str, dg.AssetKey, bool, Callable[[Settings], WeekCheck], str]] = [
    (
        "one_row_per_active_kid",
        SILVER_KEY,
        False,
        silver_row_per_active_kid,
        "One silver row per kid with valid activity in W, W-1 or W-2, none twice.",
    ),
    (
        "one_report_per_silver_row",
        GOLD_KEY,
        True,
        gold_report_per_silver_row,
        "Every silver row of the week has exactly one report and no report lacks one. "
        "Blocking: the reports export waits for it.",
    ),
    (
        "scores_within_0_10",
        GOLD_KEY,
        False,
        scores_in_range,
        "Every report's overall_score is a number from 0 to 10.",
    ),
    (
        "reports_grounded",
        GOLD_KEY,
        False,
        reports_grounded,
        "Warns when fewer than checks.min_grounded_share of the week's reports have every "
        "number and trend they state supported by the data (the rest wait for review in "
        "needs_review_reports_<week>.json).",
    ),
    (
        "quarantine_share_below_threshold",
        RAW_KEY,
        False,
        quarantine_share,
        "Warns when the share of the week's source rows quarantined exceeds "
        "checks.max_quarantine_share.",
    ),
    (
        "cost_per_report_below_threshold",
        GOLD_KEY,
        False,
        cost_per_report,
        "Warns when the week's average cost per report exceeds checks.max_cost_per_report_usd.",
    ),
]


def _target(
    context: dg.AssetCheckExecutionContext, asset: dg.AssetKey, week: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The week's latest materialisation, which this evaluation checked (as Dagster records
    it for a check of one partition)."""
    where = dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[week])
    records = context.instance.fetch_materializations(where, limit=1).records
    if not records:
        return None
    latest = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
    )


def _build_check(
    settings: Settings,
    name: str,
    asset: dg.AssetKey,
    blocking: bool,
    factory: Callable[[Settings], WeekCheck],
    description: str,
) -> dg.AssetChecksDefinition:
    evaluate = factory(settings)

    @dg.asset_check(
        name=name,
        asset=asset,
        blocking=blocking,
        description=description,
        partitions_def=weekly_partitions(settings),
    )
    def week_check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.Output[None] | dg.AssetCheckEvaluation]:
        """One evaluation per week, each recorded on its own partition. A range run (raw and
        silver in a backfill) would otherwise record one evaluation without a partition
        and leave every week of the range "Skipped" in the UI."""
        (output,) = context.op_execution_context.op_def.output_defs
        yield dg.Output(None, output_name=output.name)  # what blocked steps wait for
        with warehouse.get_engine().connect() as conn:
            for key in context.partition_keys:
                result = evaluate(conn, Week.from_key(key, settings.weeks.timezone))
                yield dg.AssetCheckEvaluation(
                    asset_key=asset,
                    check_name=name,
                    passed=result.passed,
                    metadata=result.metadata,
                    target_materialization_data=_target(context, asset, key),
                    severity=result.severity,
                    description=result.description,
                    blocking=blocking,
                    partition=key,
                )

    return week_check


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    return [_build_check(settings, *spec) for spec in CHECKS]
