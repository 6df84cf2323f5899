"""Exports: AI Production Pipeline's weekly JSON files (docs/design.md), one per week and layer."""

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.keys import (
    ANALYSIS_EXPORT_KEY,
    APP_KIDS,
    GOLD_KEY,
    OWNERS,
    REPORTS_EXPORT_KEY,
    SILVER_KEY,
)
from kidsfin_assets.resources import (
    AnalysisResource,
    ExportResource,
    SourcesResource,
    WarehouseResource,
)
from kidsfin_assets.warehouse import (
    Sources,
    kid_weekly_analysis,
    kid_weekly_reports,
    nicknames,
)
from kidsfin_assets.weeks import Week, weekly_partitions

EXPORT_FILE_MODE = 0o644


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write to a temporary file, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600; the files are for whoever reads the export volume (another
        # container runs as another user), so readable by all, as open() would make them.
        os.fchmod(fd, EXPORT_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def analysis_document(conn: Connection, src: Sources, week: Week) -> dict[str, Any]:
    table = kid_weekly_analysis
    query = sa.select(table).where(table.c.week_start == week.start).order_by(table.c.kid_id)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    names = nicknames(conn, src, [r["kid_id"] for r in rows])
    kids = [
        {"kid_id": r["kid_id"], "nickname": names.get(r["kid_id"]), **_metrics(r)} for r in rows
    ]
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "week_start": week.key,
        "timezone": week.timezone,
        "total_kids": len(kids),
        "kids": kids,
    }


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    skip = {"kid_id", "week_start", "computed_at"}
    return {k: v for k, v in row.items() if k not in skip}


def export_path(exports: ExportResource, layer: str, week_key: str) -> Path:
    return exports.path(f"kids_{layer}_{week_key}.json")


@dg.asset(
    key=ANALYSIS_EXPORT_KEY,
    group_name="exports",
    kinds={"json", "file"},
    owners=OWNERS,
    tags={"kidsfin/layer": "exports", "kidsfin/pii": "nickname"},
    deps=[SILVER_KEY, APP_KIDS],  # nicknames come from the app's kids
    partitions_def=weekly_partitions,
    # As silver's: a backfill writes the range's files in silver's one run.
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "`kids_analysis_<week>.json` under `export_dir`: every kid's silver metrics "
        "for the week with the kid's nickname, as AI Production Pipeline wrote it."
    ),
)
def kids_analysis_json(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    exports: ExportResource,
) -> dg.MaterializeResult:
    engine, src = warehouse.get_engine(), sources.tables()
    paths, total_kids = [], 0
    for key in context.partition_keys:
        week = Week.from_key(key, analysis.timezone)
        with engine.connect() as conn:
            document = analysis_document(conn, src, week)
        path = export_path(exports, "analysis", key)
        write_json_atomically(path, document)
        paths.append(path)
        total_kids += document["total_kids"]
        context.log.info(f"wrote {document['total_kids']} kids to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(paths[-1])),
            "files": len(paths),
            "dagster/row_count": total_kids,
        }
    )


def reports_document(
    conn: Connection, src: Sources, week: Week, *, for_review: bool = False
) -> dict[str, Any]:
    """AI Production Pipeline's shape: {generated_at, total_reports, reports: [...]}. The
    parents' document holds current reports the grounding check passed (or that predate
    it); the review document, the ones kept because no grounded answer came, with what
    the check found."""
    gold = kid_weekly_reports
    grounded = sa.or_(gold.c.grounded.is_(None), gold.c.grounded.is_(True))
    current = sa.and_(gold.c.week_start == week.start, gold.c.superseded_at.is_(None))
    wanted = sa.not_(grounded) if for_review else grounded
    query = sa.select(gold).where(current, wanted).order_by(gold.c.kid_id)
    rows = conn.execute(query).all()
    names = nicknames(conn, src, [r.kid_id for r in rows])
    reports = [
        {
            "kid_id": r.kid_id,
            "nickname": names.get(r.kid_id),
            **r.report,
            "generated_at": r.generated_at.isoformat()
            if isinstance(r.generated_at, dt.datetime)
            else str(r.generated_at),
            "writer": r.writer,
            "model": r.model,
            **({"findings": r.findings} if for_review else {}),
        }
        for r in rows
    ]
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "week_start": week.key,
        "total_reports": len(reports),
        "reports": reports,
    }


def review_path(exports: ExportResource, week_key: str) -> Path:
    """Not `kids_reports_*`: nothing that picks up the parents' files picks this one up."""
    return exports.path(f"needs_review_reports_{week_key}.json")


@dg.asset(
    key=REPORTS_EXPORT_KEY,
    group_name="exports",
    kinds={"json", "file"},
    owners=OWNERS,
    tags={"kidsfin/layer": "exports", "kidsfin/pii": "nickname"},
    deps=[GOLD_KEY, APP_KIDS],  # nicknames come from the app's kids
    partitions_def=weekly_partitions,
    # As gold's: a backfill writes each week's file in that week's gold run.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    description=(
        "`kids_reports_<week>.json` under `export_dir`: "
        "`{generated_at, total_reports, reports: [...]}` with each kid's nickname and "
        "report, as AI Production Pipeline wrote it; only reports whose numbers and trends "
        "the data supports. Reports kept without a grounded answer go to "
        "`needs_review_reports_<week>.json`, with what the check found."
    ),
)
def kids_reports_json(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    exports: ExportResource,
) -> dg.MaterializeResult:
    week = Week.from_key(context.partition_key, analysis.timezone)
    src = sources.tables()
    with warehouse.get_engine().connect() as conn:
        document = reports_document(conn, src, week)
        review = reports_document(conn, src, week, for_review=True)
    path = export_path(exports, "reports", week.key)
    write_json_atomically(path, document)
    context.log.info(f"wrote {document['total_reports']} reports to {path}")
    kept_out = review_path(exports, week.key)
    if review["total_reports"]:
        write_json_atomically(kept_out, review)
        context.log.warning(
            f"{review['total_reports']} reports stated something the data does not say "
            f"and are kept out of the parents' file: review them in {kept_out}"
        )
    else:
        kept_out.unlink(missing_ok=True)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "total_reports": document["total_reports"],
            "dagster/row_count": document["total_reports"],
            "reports_needing_review": review["total_reports"],
        }
    )
