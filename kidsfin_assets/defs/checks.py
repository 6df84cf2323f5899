"""Asset checks: is each week's state trustworthy? Numeric metadata, plotted by the UI."""

from collections.abc import Callable, Iterator, Sequence

import dagster as dg
import sqlalchemy as sa

# Not exported by `dagster` 1.13 (pinned <1.14); what a per-partition evaluation needs to
# name the materialisation it checked, as Dagster's own check results do.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from sqlalchemy.engine import Connection

from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.defs.keys import GOLD_KEY, RAW_KEY, SILVER_KEY
from kidsfin_assets.defs.resources import (
    AnalysisResource,
    CheckLimitsResource,
    WarehouseResource,
)
from kidsfin_assets.warehouse.tables import (
    kid_weekly_analysis,
    kid_weekly_reports,
    quarantine,
    raw_app_events,
    raw_transactions,
)

WeekCheck = Callable[[Connection, Week], dg.AssetCheckResult]


def _count(conn: Connection, query: sa.Select) -> int:
    return int(conn.execute(query).scalar_one() or 0)


def _week_rows(table: sa.Table, week: Week) -> sa.Select:
    return sa.select(sa.func.count()).select_from(table).where(table.c.week_start == week.start)


def _current_reports(week: Week) -> sa.ColumnElement[bool]:
    """The week's reports of kids still in silver (superseded ones are kept, not counted)."""
    gold = kid_weekly_reports
    return sa.and_(gold.c.week_start == week.start, gold.c.superseded_at.is_(None))


def silver_rows_per_active_kid(conn: Connection, week: Week) -> dg.AssetCheckResult:
    """Silver's rows against the kids raw holds a valid row of in W-2 .. W."""
    first = week.shifted(-2).start
    active = sa.union(
        *(
            sa.select(t.c.kid_id).where(t.c.week_start >= first, t.c.week_start <= week.start)
            for t in (raw_transactions, raw_app_events)
        )
    ).subquery()
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


def gold_reports_per_silver_row(conn: Connection, week: Week) -> dg.AssetCheckResult:
    silver, gold = kid_weekly_analysis, kid_weekly_reports
    silver_rows = _count(conn, _week_rows(silver, week))
    matched = _count(
        conn,
        sa.select(sa.func.count())
        .select_from(
            gold.join(
                silver,
                sa.and_(gold.c.week_start == silver.c.week_start, gold.c.kid_id == silver.c.kid_id),
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


SCORES_PER_FETCH = 10_000


def scores_in_range(conn: Connection, week: Week) -> dg.AssetCheckResult:
    gold = kid_weekly_reports
    # Only the score of each report, streamed and summed as it comes: the week's reports
    # read whole were held by the driver at once (gold's peak grew ~0.9 KiB a kid).
    query = (
        sa.select(gold.c.report["overall_score"])
        .where(_current_reports(week))
        .execution_options(yield_per=SCORES_PER_FETCH)
    )
    reports = bad = 0
    low, high, total = float("inf"), float("-inf"), 0.0
    for (score,) in conn.execute(query):
        reports += 1
        if not isinstance(score, int | float) or not 0 <= score <= 10:
            bad += 1
            continue
        low, high, total = min(low, score), max(high, score), total + score
    good = reports - bad
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={
            "reports": reports,
            "out_of_range": bad,
            "min_score": float(low) if good else 0.0,
            "max_score": float(high) if good else 0.0,
            "mean_score": round(total / good, 3) if good else 0.0,
        },
    )


def quarantined_share(conn: Connection, week: Week, limit: float) -> dg.AssetCheckResult:
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


def grounded_share(conn: Connection, week: Week, least: float) -> dg.AssetCheckResult:
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


def average_cost(conn: Connection, week: Week, limit: float) -> dg.AssetCheckResult:
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


def _target(
    context: dg.OpExecutionContext | dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    asset: dg.AssetKey,
    week: str,
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


Evaluations = Iterator[dg.Output[None] | dg.AssetCheckEvaluation]


def evaluate_checks(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    timezone: str,
    checks: Sequence[tuple[dg.AssetCheckSpec, WeekCheck]],
) -> Evaluations:
    """The selected checks, one evaluation per week, each recorded on its own partition (a
    range run would otherwise record one evaluation without a partition and leave every week
    of the range "Skipped" in the UI). Called from the asset's own step (raw, silver: their
    `check_specs`, after the materialisation) or from a check step (gold's)."""
    op_context = context.op_execution_context
    selected = op_context.selected_asset_check_keys
    outputs = op_context.assets_def.check_specs_by_output_name
    chosen = [(spec, check) for spec, check in checks if spec.key in selected]
    if not chosen:
        return
    for spec, _ in chosen:
        name = next(n for n, s in outputs.items() if s.key == spec.key)
        yield dg.Output(None, output_name=name)  # what blocked steps wait for
    with warehouse.get_engine().connect() as conn:
        for key in op_context.partition_keys:
            week = Week.from_key(key, timezone)
            for spec, check in chosen:
                result = check(conn, week)
                yield dg.AssetCheckEvaluation(
                    asset_key=spec.asset_key,
                    check_name=spec.name,
                    passed=result.passed,
                    metadata=result.metadata,
                    target_materialization_data=_target(context, spec.asset_key, key),
                    severity=result.severity,
                    description=result.description,
                    blocking=spec.blocking,
                    partition=key,
                )


# --- the checks: raw's and silver's run in their asset's step (`check_specs`), gold's in one
# step of their own after gold (gold's step is gold's engine's) ---------------------------

QUARANTINE_SHARE = dg.AssetCheckSpec(
    "quarantine_share_below_threshold",
    asset=RAW_KEY,
    partitions_def=weekly_partitions,
    description=(
        "Warns when the share of the week's source rows quarantined exceeds "
        "check_limits.max_quarantine_share."
    ),
)
ONE_ROW_PER_ACTIVE_KID = dg.AssetCheckSpec(
    "one_row_per_active_kid",
    asset=SILVER_KEY,
    partitions_def=weekly_partitions,
    description=(
        "One silver row per kid with a valid row (raw's copy) in W, W-1 or W-2, none twice."
    ),
)
ONE_REPORT_PER_SILVER_ROW = dg.AssetCheckSpec(
    "one_report_per_silver_row",
    asset=GOLD_KEY,
    partitions_def=weekly_partitions,
    blocking=True,
    description=(
        "Every silver row of the week has exactly one report and no report lacks one. "
        "Blocking: the reports export waits for it."
    ),
)
SCORES_WITHIN_0_10 = dg.AssetCheckSpec(
    "scores_within_0_10",
    asset=GOLD_KEY,
    partitions_def=weekly_partitions,
    description="Every report's overall_score is a number from 0 to 10.",
)
REPORTS_GROUNDED = dg.AssetCheckSpec(
    "reports_grounded",
    asset=GOLD_KEY,
    partitions_def=weekly_partitions,
    description=(
        "Warns when fewer than check_limits.min_grounded_share of the week's reports have every "
        "number and trend they state supported by the data (the rest wait for review in "
        "needs_review_reports_<week>.json)."
    ),
)
COST_PER_REPORT = dg.AssetCheckSpec(
    "cost_per_report_below_threshold",
    asset=GOLD_KEY,
    partitions_def=weekly_partitions,
    description=(
        "Warns when the week's average cost per report exceeds "
        "check_limits.max_cost_per_report_usd."
    ),
)


def raw_checks(limits: CheckLimitsResource) -> list[tuple[dg.AssetCheckSpec, WeekCheck]]:
    share = limits.max_quarantine_share
    return [(QUARANTINE_SHARE, lambda conn, w: quarantined_share(conn, w, share))]


SILVER_CHECKS: list[tuple[dg.AssetCheckSpec, WeekCheck]] = [
    (ONE_ROW_PER_ACTIVE_KID, silver_rows_per_active_kid)
]


@dg.multi_asset_check(
    specs=[ONE_REPORT_PER_SILVER_ROW, SCORES_WITHIN_0_10, REPORTS_GROUNDED, COST_PER_REPORT],
    can_subset=True,
    description="Gold's checks, each week of the run, in one step after gold's.",
)
def gold_checks(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    analysis: AnalysisResource,
    check_limits: CheckLimitsResource,
) -> Evaluations:
    least, most = check_limits.min_grounded_share, check_limits.max_cost_per_report_usd
    checks: list[tuple[dg.AssetCheckSpec, WeekCheck]] = [
        (ONE_REPORT_PER_SILVER_ROW, gold_reports_per_silver_row),
        (SCORES_WITHIN_0_10, scores_in_range),
        (REPORTS_GROUNDED, lambda conn, w: grounded_share(conn, w, least)),
        (COST_PER_REPORT, lambda conn, w: average_cost(conn, w, most)),
    ]
    yield from evaluate_checks(context, warehouse, analysis.timezone, checks)


asset_checks = [gold_checks]
