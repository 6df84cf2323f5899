"""Silver layer: per kid-week metrics and trends, the metric contract of docs/metrics.md."""

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.defs.catalog import table_metadata
from kidsfin_assets.defs.checks import ONE_ROW_PER_ACTIVE_KID, SILVER_CHECKS, evaluate_checks
from kidsfin_assets.defs.keys import OWNERS, RAW_KEY, SILVER_KEY
from kidsfin_assets.defs.raw_runs import raw_in_flight
from kidsfin_assets.defs.resources import AnalysisResource, WarehouseResource
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.metrics import write_week
from kidsfin_assets.warehouse.raw_weeks import (
    ABSENT,
    loader,
    read_loads,
    read_problems,
    read_versions,
    window_state,
    window_weeks,
)
from kidsfin_assets.warehouse.tables import kid_weekly_analysis as analysis_table

# Silver W reads raw W-2, W-1 and W (the first weeks: those raw's first partition holds).
RAW_WINDOW = dg.TimeWindowPartitionMapping(
    start_offset=-2, allow_nonexistent_upstream_partitions=True
)

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


RAW_WAIT_SECONDS = 30 * 60  # at most, for runs loading the raw weeks silver reads
RAW_POLL_SECONDS = 2.0


def previous_weeks_read(week: Week, from_silver: bool) -> str:
    """Where W-1's and W-2's figures (the trends' inputs) came from, for the log and the
    metadata: silver's rows of W-1 when current, else raw again."""
    weeks = f"{week.shifted(-2).key} and {week.shifted(-1).key}"
    if from_silver:
        return f"{weeks} from silver's {week.shifted(-1).key} rows"
    return f"{weeks} from raw"


def raw_state(engine: Engine, week: Week) -> dict[Week, str]:
    with engine.connect() as conn:
        return window_state(week, read_loads(conn, window_weeks(week)))


def wait_for_raw(
    context: dg.AssetExecutionContext,
    engine: Engine,
    week: Week,
    first_partition: dt.date,
    in_flight: Callable[[Week], str | None],
    wait_seconds: float = RAW_WAIT_SECONDS,
) -> None:
    """Return once raw's W-2, W-1 and W may be read (raw_weeks.window_problems), and no
    earlier week raw went past is still missing (skipped_problems): at once when so, after
    the runs loading them when some are in flight, else fail saying which raw week to
    materialise first."""
    deadline = time.monotonic() + wait_seconds
    waited_for: set[str] = set()
    while True:
        with engine.connect() as conn:
            _, problems = read_problems(conn, week)
        if not problems:
            return
        pending = {}
        for problem in problems:
            run_id = in_flight(loader(problem.week, first_partition))
            if run_id is not None:
                pending[problem.week.key] = run_id
        if not pending or time.monotonic() > deadline:
            break
        for key, run_id in pending.items():
            if run_id not in waited_for:
                who = run_id if run_id.startswith("backfill ") else f"run {run_id}"
                context.log.info(
                    f"week {week.key}: waiting for {who}, which materialises raw "
                    f"week {key} (silver reads raw's W-2, W-1 and W; its savings balance "
                    "sums every raw week)"
                )
                waited_for.add(run_id)
        time.sleep(RAW_POLL_SECONDS)
    reasons = "; ".join(p.describe(week) for p in problems)
    weeks = sorted({loader(p.week, first_partition).key for p in problems})
    raise dg.Failure(
        description=(
            f"silver week {week.key} cannot read raw yet: {reasons}. Materialise "
            f"raw/kid_activity for {', '.join(weeks)} first (or launch weeks "
            f"{weeks[0]} to {week.key} together: a backfill runs raw and silver over them "
            "in one run, raw first). Nothing was written."
        ),
        allow_retries=False,
    )


@dg.asset(
    key=SILVER_KEY,
    group_name="silver",
    kinds={"sql"},
    owners=OWNERS,
    tags={"kidsfin/layer": "silver"},
    metadata=table_metadata(analysis_table),
    # What it reads: raw's W-2, W-1 and W (its own stored balances of an earlier week
    # carry the savings balance; raw_weeks.py, metrics.py).
    deps=[dg.AssetDep(RAW_KEY, partition_mapping=RAW_WINDOW)],
    partitions_def=weekly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[ONE_ROW_PER_ACTIVE_KID],  # evaluated in this step, after the weeks
    description=(
        "Per kid-week metrics (income, spending, saving, withdrawal, net flow, savings "
        "rate, counts, active days, spending by category, savings goals, savings balance) "
        "and trends against W-1 and W-2, computed in the database from raw's validated "
        "copy (never the app's tables) and written to `kid_weekly_analysis`, replacing "
        "the week's rows in one transaction. Reads raw's W-2, W-1 and W: raw must hold "
        "them as the app has them (a raw week the app has rows in, never materialised or "
        "materialised before late rows, stops the run naming the raw week to materialise; "
        "a run loading it is waited for). A week raw never loaded is left as it is (a "
        "backfill of raw over A..B also re-runs silver for B+1 and B+2, which read raw's "
        "B). A backfill runs silver over its range in one run. The savings balance is "
        "carried from the balances stored with W-1 "
        "(or an earlier week still valid for what raw holds, or raw's opening balance and "
        "every raw week since), and W-1's and W-2's figures are taken from W-1's silver "
        "rows while raw has not re-loaded those weeks since (else read from raw again: "
        "`previous_weeks_read`), so a week's cost does not grow with history. Each week's "
        "metadata (totals, preview) is its own, in a backfill's range run too, with the "
        "source versions of W-2, W-1 and W that raw held when it was computed."
    ),
)
def kid_weekly_analysis(
    context: dg.AssetExecutionContext,
    config: SilverRunConfig,
    warehouse: WarehouseResource,
    analysis: AnalysisResource,
) -> Iterator[dg.MaterializeResult | dg.Output[None] | dg.AssetCheckEvaluation]:
    engine = warehouse.get_engine()
    # Oldest first: each week's stored savings balances serve the weeks after it.
    weeks = sorted(Week.from_key(k, analysis.timezone) for k in context.partition_keys)
    first_partition = weekly_partitions.start.date()
    opening = window_weeks(Week(first_partition, analysis.timezone))[0].start
    max_shrink = None if config.allow_shrink else analysis.max_shrink_share
    written_in_run = 0
    for week in weeks:
        if raw_state(engine, week)[week] == ABSENT:
            # A backfill of raw over A..B re-runs silver over A..B+2 (the partition
            # mapping): B+1 and B+2 may be weeks raw never loaded, with rows.
            note = (
                f"raw/kid_activity {week.key} is not materialised (and no raw load saw the "
                f"app's week empty): nothing was read or written for week {week.key} "
                f"(materialise raw {week.key}, then silver)"
            )
            context.log.warning(f"week {week.key}: {note}")
            context.add_asset_metadata({"not_computed": note}, partition_key=week.key)
            continue
        wait_for_raw(context, engine, week, first_partition, lambda w: raw_in_flight(context, w))
        # one transaction per week: all rows or none
        with engine.begin() as conn:
            db.week_lock(conn, "silver", week.key)
            before = week_row_count(conn, week)
            done = write_week(conn, week, analysis.trend_threshold, opening)
            # Under write_week's lock: what raw holds now is what was read.
            loads, problems = read_problems(conn, week)
            if problems:
                raise dg.Failure(
                    description=f"raw's weeks up to {week.key} changed while silver read "
                    f"them ({'; '.join(p.describe(week) for p in problems)}); run the week "
                    "again.",
                )
            refuse_shrink(week, before, done.rows, max_shrink)  # rolls the week back
            meta = week_summary(conn, week)
        base = done.balance_base
        carried = f"carried from {base}" if base else f"from the opening balance ({opening})"
        context.log.info(
            f"week {week.key}: {done.rows} kid rows written (savings balance {carried} "
            f"and raw's weeks since; {previous_weeks_read(week, done.previous_from_silver)})"
        )
        # Each week of a range run carries its own figures and preview, not the range's.
        meta["source_versions"] = dg.MetadataValue.json(read_versions(week, loads))
        meta["previous_weeks_read"] = previous_weeks_read(week, done.previous_from_silver)
        context.add_asset_metadata(meta, partition_key=week.key)
        written_in_run += done.rows
    if len(weeks) > 1:
        context.log.info(
            f"{len(weeks)} weeks {weeks[0].key} to {weeks[-1].key}: "
            f"{written_in_run} kid rows written"
        )
    yield dg.MaterializeResult()
    yield from evaluate_checks(context, warehouse, analysis.timezone, SILVER_CHECKS)
