"""Gold layer: one AI report per kid-week, with usage and cost as metadata."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.defs.catalog import table_metadata
from kidsfin_assets.defs.keys import APP_KIDS, GOLD_KEY, OWNERS, SILVER_KEY
from kidsfin_assets.defs.resources import (
    AnalysisResource,
    PrivacyResource,
    SourcesResource,
    StepRetryResource,
    WarehouseResource,
)
from kidsfin_assets.llm.pricing import ModelPrice, Usage
from kidsfin_assets.llm.transport import ApiAccess
from kidsfin_assets.reports import ledger
from kidsfin_assets.reports.openai_client import OpenAIReportsResource
from kidsfin_assets.reports.prompt import Prompt, load_prompt
from kidsfin_assets.reports.report_writer import (
    StorageSettings,
    WeekOutcome,
    WeekReportWriter,
    WriterSettings,
)
from kidsfin_assets.reports.tally import ProgressEvery
from kidsfin_assets.warehouse.tables import kid_weekly_reports as reports_table

OPENAI_POOL = "openai"


def writer_settings(openai: OpenAIReportsResource, prompt: Prompt) -> WriterSettings:
    """The `openai` resource's values the gold engine reads, as plain values."""
    return WriterSettings(
        offline=openai.offline,
        model=openai.model,
        api=openai.api,
        in_flight=openai.in_flight(prompt),
        batch_min_reports=openai.batch_min_reports,
        retry_max_attempts=openai.retry_max_attempts,
        price=openai.price(),
        progress=ProgressEvery(
            group_size=openai.progress_group_size,
            reports=openai.progress_every_reports,
            seconds=openai.progress_every_seconds,
        ),
        access=ApiAccess(
            api_key=openai.api_key,
            organization=openai.organization,
            project=openai.project,
            base_url=openai.base_url,
            timeout_seconds=openai.timeout_seconds,
        ),
    )


def usage_metadata(
    outcome: WeekOutcome, paid: dict[str, Any], writer: str, model: str, mode: str
) -> dict[str, Any]:
    """Numeric, so that the UI plots them across partitions. What was paid comes from the
    ledger: every request of this run (earlier attempts of a retried step included)."""
    attempted = outcome.written + outcome.ungrounded + outcome.failed
    return {
        "writer": writer,
        "model": model,
        "mode": mode,
        "silver_rows": outcome.silver_rows,
        "reports_written": outcome.written,
        "reports_reused": outcome.reused,
        "reports_by_other_runs": outcome.by_other_runs,
        "reports_failed": outcome.failed,
        "reports_superseded": outcome.superseded,
        # grounding: reports whose every number and trend the data supports, answers
        # rejected for a statement it does not, reports kept for review without one
        "reports_grounded": outcome.written,
        "reports_ungrounded": outcome.ungrounded,
        "answers_ungrounded": paid["errors_by_kind"].get("ungrounded", 0),
        **{f"findings_{kind}": n for kind, n in sorted(paid["findings_by_kind"].items())},
        "answers_replayed": outcome.replayed,
        "answers_unstored": outcome.unstored,
        "success_rate": round(outcome.written / attempted, 4) if attempted else 1.0,
        "requests": paid["requests"],
        "answers_paid": paid["answers_paid"],
        "retries": paid["retries"],
        "rate_limited": paid["errors_by_kind"].get("rate_limited", 0),
        "usage_flagged": paid["usage_flagged"],
        # failed attempts by kind (timeout, http_503, invalid_answer, ...), retried or not
        **{f"errors_{kind}": n for kind, n in sorted(paid["errors_by_kind"].items())},
        "prompt_tokens": paid["prompt_tokens"],
        "completion_tokens": paid["completion_tokens"],
        "cached_tokens": paid["cached_tokens"],
        "cost_usd": paid["cost_usd"],
        "input_cost_usd": paid["input_cost_usd"],
        "output_cost_usd": paid["output_cost_usd"],
        "saving_vs_sync_usd": paid.get("saving_vs_sync_usd", 0.0),
        "reports_in_batches": outcome.in_batches,
        "reports_queued": outcome.queued,
        "wall_seconds": round(outcome.wall_seconds, 3),
        "avg_seconds_per_report": round(outcome.wall_seconds / outcome.written, 3)
        if outcome.written
        else 0.0,
        # the async client's transport as it sent (aiohttp, and whether in pure Python)
        **({"http_transport": outcome.http_transport} if outcome.http_transport else {}),
    }


def paid_in_run(
    engine: Engine, week: Week, run_id: str, usage: Usage, sync_price: ModelPrice
) -> dict[str, Any]:
    """The run's requests and cost from the ledger; from this process's counters when the
    warehouse cannot be read (the step is failing then anyway)."""
    try:
        with engine.connect() as conn:
            totals = ledger.run_totals(conn, week.start, run_id)
    except Exception:
        return {
            "requests": usage.requests,
            "answers_paid": usage.requests - sum(usage.errors_by_kind.values()),
            "retries": usage.retries,
            "usage_flagged": 0,
            "errors_by_kind": dict(usage.errors_by_kind),
            "findings_by_kind": {},
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "cost_usd": usage.cost_usd,
            "input_cost_usd": usage.input_cost_usd,
            "output_cost_usd": usage.output_cost_usd,
        }
    at_sync_prices = sum(
        sum(sync_price.split_cost(*tokens)) for tokens in totals["tokens_by_tier"].values()
    )
    totals["saving_vs_sync_usd"] = round(max(0.0, at_sync_prices - totals["cost_usd"]), 6)
    return totals


def current_reports(engine: Engine, week: Week) -> int | None:
    """The week's reports of kids still in silver: the table's rows for the partition."""
    t = reports_table
    query = sa.select(sa.func.count()).where(
        t.c.week_start == week.start, t.c.superseded_at.is_(None)
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    except sa.exc.SQLAlchemyError:
        return None  # the warehouse went away: the step is failing then anyway


SUMMARY_ROWS = (
    ("Reports", "silver_rows", "{}"),
    ("Written", "reports_written", "{}"),
    ("Reused (already paid)", "reports_reused", "{}"),
    ("Written by another run", "reports_by_other_runs", "{}"),
    ("Kept for review (ungrounded)", "reports_ungrounded", "{}"),
    ("Failed", "reports_failed", "{}"),
    ("Success rate", "success_rate", "{:.1%}"),
    ("Requests", "requests", "{}"),
    ("Answers paid", "answers_paid", "{}"),
    ("Retries", "retries", "{}"),
    ("Prompt tokens", "prompt_tokens", "{:,}"),
    ("  of which cached", "cached_tokens", "{:,}"),
    ("Completion tokens", "completion_tokens", "{:,}"),
    ("Input cost (USD)", "input_cost_usd", "${:.4f}"),
    ("Output cost (USD)", "output_cost_usd", "${:.4f}"),
    ("Cost (USD)", "cost_usd", "${:.4f}"),
    ("Saved against sync prices", "saving_vs_sync_usd", "${:.4f}"),
    ("Duration", "wall_seconds", "{:.1f} s"),
    ("Average per report", "avg_seconds_per_report", "{:.2f} s"),
)


REVIEW_SHOWN = 50  # reports kept for review shown in the UI (the file has them all)


def reports_for_review(engine: Engine, week: Week) -> tuple[int, list[dict[str, Any]]]:
    """How many of the week's current reports are kept for review (this run's or an
    earlier one's), and the first of them with what was refused in each."""
    t = reports_table
    kept = sa.and_(
        t.c.week_start == week.start, t.c.superseded_at.is_(None), t.c.grounded.is_(False)
    )
    first = sa.select(t.c.kid_id, t.c.findings).where(kept).order_by(t.c.kid_id)
    try:
        with engine.connect() as conn:
            count = int(conn.execute(sa.select(sa.func.count()).where(kept)).scalar_one())
            rows = [dict(r._mapping) for r in conn.execute(first.limit(REVIEW_SHOWN))]
    except sa.exc.SQLAlchemyError:
        return 0, []  # the warehouse went away: the step is failing then anyway
    return count, rows


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def review_markdown(rows: list[dict[str, Any]], kept: int, week: Week) -> str:
    """The reviewer's view: each report kept out of the parents' export, the sentences the
    grounding check refused in it and why, so that nobody has to open a JSON file."""
    out = [
        f"**{kept} report(s) kept for review**, out of the parents' export "
        f"(`needs_review_reports_{week.key}.json` holds them whole). Each answer was asked "
        "again and none came back grounded; what the last one was refused for (each "
        "sentence as the model wrote it, numbers in digits; [[KID]] stands for the child's "
        "name, which stays out of Dagster's metadata):",
    ]
    for row in rows:
        findings = row["findings"] or []
        out += ["", f"**kid {row['kid_id']}**", "", "| field | refused | why |", "|---|---|---|"]
        out += [
            f"| {_cell(f.get('field'))} | {_cell(f.get('sentence') or f.get('text'))} "
            f"| {_cell(f.get('message'))} |"
            for f in findings
        ]
    if kept > len(rows):
        out += ["", f"... and {kept - len(rows)} more (all in the review file)."]
    return "\n".join(out)


def batches_markdown(rows: list[dict[str, Any]]) -> str:
    """The week's batches for the UI: state, lines done and failed, time in the queue."""
    now = dt.datetime.now(dt.UTC)
    out = ["| batch | state | lines | done | failed | in queue |", "|---|---|---|---|---|---|"]
    for row in rows:
        created = row["created_at"]
        if isinstance(created, dt.datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        end = row["finished_at"] or now
        if isinstance(end, dt.datetime) and end.tzinfo is None:
            end = end.replace(tzinfo=dt.UTC)
        queued = (end - created).total_seconds() if isinstance(created, dt.datetime) else 0.0
        out.append(
            f"| {row['batch_id'] or row['id']} | {row['status']} | {row['lines']} | "
            f"{row['lines_completed']} | {row['lines_failed']} | {queued / 60:.1f} min |"
        )
    return "\n".join(out)


def in_flight_said(openai: OpenAIReportsResource) -> str:
    """max_concurrent as the banner says it: its value, or auto and where it starts."""
    if openai.max_concurrent is not None:
        return str(openai.max_concurrent)
    return f"auto (from {openai.in_flight(load_prompt()).limit()})"


def start_banner(week: Week, openai: OpenAIReportsResource) -> str:
    """AI Production Pipeline's start banner (docs/design.md): what this step does, its limits."""
    if openai.offline:
        how = "offline rules writer"
    else:
        how = (
            f"{openai.model}, {in_flight_said(openai)} in flight, "
            f"{openai.requests_per_minute} req/min, {openai.tokens_per_minute:,} tokens/min"
        )
    return f"═══ kidsfin reports · week {week.key} · {how} ═══"


def summary_lines(meta: dict[str, Any]) -> list[tuple[str, str]]:
    return [(label, fmt.format(meta[key])) for label, key, fmt in SUMMARY_ROWS]


def summary_box(title: str, meta: dict[str, Any]) -> str:
    """AI Production Pipeline's closing summary, drawn with box-drawing characters."""
    lines = summary_lines(meta)
    left = max(len(label) for label, _ in lines)
    right = max(max(len(value) for _, value in lines), len(title) - left - 3)
    width = left + right + 3
    out = [
        "╔" + "═" * (width + 2) + "╗",
        f"║ {title.center(width)} ║",
        "╠" + "═" * (width + 2) + "╣",
    ]
    out += [f"║ {label.ljust(left)} │ {value.rjust(right)} ║" for label, value in lines]
    out.append("╚" + "═" * (width + 2) + "╝")
    return "\n".join(out)


def log_summary(title: str, meta: dict[str, Any]) -> str:
    """The summary's key figures on one line: the UI shows a log message of a few lines
    whole and cuts a longer one (the box's first seven lines were all it showed)."""
    return (
        f"{title}: {meta['silver_rows']} reports, {meta['reports_written']} written, "
        f"{meta['reports_reused']} reused, {meta['reports_ungrounded']} for review, "
        f"{meta['reports_failed']} failed; {meta['requests']} requests, "
        f"{meta['retries']} retries; {meta['prompt_tokens']:,} + "
        f"{meta['completion_tokens']:,} tokens; ${meta['cost_usd']:.4f}; "
        f"{meta['wall_seconds']:.1f} s (full table: the `summary` metadata, and stdout)"
    )


def summary_markdown(meta: dict[str, Any]) -> str:
    rows = "\n".join(f"| {label.strip()} | {value} |" for label, value in summary_lines(meta))
    return "| | |\n|---|---|\n" + rows


def retry_or_raise(
    context: dg.AssetExecutionContext, retry: StepRetryResource, error: Exception
) -> dg.RetryRequested:
    """Ask Dagster to run the step again (exponential back-off with jitter), while the
    step has retries left; a configured policy, where a static RetryPolicy could not be."""
    if context.retry_number >= retry.max_retries:
        raise error
    policy = dg.RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )
    wait = policy.calculate_delay(context.retry_number + 1)
    return dg.RetryRequested(max_retries=retry.max_retries, seconds_to_wait=wait)


@dg.asset(
    key=GOLD_KEY,
    group_name="gold",
    kinds={"openai", "sql"},
    owners=OWNERS,
    tags={"kidsfin/layer": "gold", "kidsfin/pays": "openai"},
    metadata=table_metadata(reports_table),
    # Reports of an older prompt show as stale: the prompt's version is the code's.
    code_version=load_prompt().version,
    # Nicknames are filled in from the app's kids after the API answered.
    deps=[SILVER_KEY, APP_KIDS],
    partitions_def=weekly_partitions,
    # One week per run, so that each run's cost metadata is exactly one week's.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    pool=OPENAI_POOL,
    # In batch mode a run may only submit: the week is materialised when collected.
    output_required=False,
    # Step retries: `step_retry` (retry_or_raise), so a run can change them.
    description=(
        "One report per kid-week for the parents (financial health, spending, saving, "
        "activity, recommendations, score 0-10), written to `kid_weekly_reports` as "
        "each answer arrives. Each kid-week is claimed before it is paid for, and every "
        "request is recorded in `report_ledger`. Every number and trend a report states "
        "is checked against the week's data; an ungrounded answer is asked again, and "
        "kept for review (out of the export) if no grounded one comes. Re-runs only ask "
        "for kids whose inputs (metrics, model, prompt version) have no report yet, so a "
        "finished week costs nothing. No nickname or kid id reaches the API. Without "
        "OPENAI_API_KEY an offline writer builds the reports by rules, at no cost. "
        "Metadata: requests, retries, tokens, cost in USD (from the ledger), grounding."
    ),
)
def kid_weekly_reports(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    openai: OpenAIReportsResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    privacy: PrivacyResource,
    step_retry: StepRetryResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    try:
        yield from write_week_reports(context, warehouse, openai, sources, analysis, privacy)
    except dg.Failure as failure:
        if not failure.allow_retries:
            raise
        raise retry_or_raise(context, step_retry, failure) from failure
    except Exception as error:  # a warehouse outage, a bug: as a RetryPolicy would
        raise retry_or_raise(context, step_retry, error) from error


def write_week_reports(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    openai: OpenAIReportsResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    privacy: PrivacyResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    if openai.offline:
        context.log.warning(
            "OPENAI_API_KEY is not set: NO AI IS USED. Reports come from the offline "
            "rules writer (writer=offline) and cost nothing."
        )
    week = Week.from_key(context.partition_key, analysis.timezone)
    context.log.info(start_banner(week, openai))
    engine = warehouse.get_engine()
    storage = StorageSettings(
        run_id=context.run_id,
        outage_wait_seconds=warehouse.outage_wait_seconds,
        claim_lease_seconds=warehouse.claim_lease_seconds,
        spool_dir=warehouse.spool_path,
        warehouse_id=ledger.warehouse_id(engine),
    )
    prompt = load_prompt()
    writer = WeekReportWriter(
        context.log,
        engine,
        sources.tables(),
        writer_settings(openai, prompt),
        openai,
        prompt,
        week,
        storage,
        pseudonymize=privacy.pseudonymize,
        known_categories=tuple(privacy.known_categories),
    )
    outcome = writer.run()
    if outcome.silver_rows == 0:
        context.log.warning(
            f"week {week.key} has no silver rows: nothing to report. If the week had "
            "activity, materialise silver/kid_weekly_analysis for it first."
        )
    paid = paid_in_run(engine, week, context.run_id, writer.usage, writer.settings.price)
    meta = usage_metadata(outcome, paid, writer.writer_name, writer.model, writer.api_used)
    rows = current_reports(engine, week)
    if rows is not None:
        meta["dagster/row_count"] = rows
    title = f"kidsfin reports · week {week.key}"
    context.log.info(log_summary(title, meta))
    # The box whole, on the step's stdout (the run's "stdout" tab; the console).
    print(summary_box(title, meta), flush=True)
    meta["summary"] = dg.MetadataValue.md(summary_markdown(meta))
    kept, review_rows = reports_for_review(engine, week)
    if kept:
        meta["kept_for_review"] = dg.MetadataValue.md(review_markdown(review_rows, kept, week))
    if outcome.batches:
        meta["batches"] = dg.MetadataValue.md(batches_markdown(outcome.batches))
    if (outcome.in_batches or outcome.queued) and not outcome.failed:
        # Answers pending in the Batch API: not materialised yet. openai_batch_sensor
        # (or materialising the week again) collects them when the batches finish.
        open_ids = [b["batch_id"] or b["id"] for b in outcome.batches if not b["ingested_at"]]
        context.log.info(
            f"week {week.key}: {outcome.in_batches} reports wait in batches "
            f"{', '.join(open_ids) or '-'}, {outcome.queued} for room in the batch "
            "queue; the week is materialised once they are collected"
        )
        yield dg.AssetObservation(
            asset_key=GOLD_KEY, partition=context.partition_key, metadata=meta
        )
        return
    if outcome.failed:
        raise dg.Failure(
            description=(
                f"{outcome.failed} of {outcome.silver_rows} reports failed for week "
                f"{week.key}; {outcome.written} written and {outcome.reused} reused are "
                "kept, and a re-run asks only for the missing ones. "
                + (outcome.fatal or "First errors: " + "; ".join(outcome.errors[:3]))
            ),
            metadata=meta,
            allow_retries=outcome.fatal is None,
        )
    yield dg.MaterializeResult(metadata=meta)
