"""Exports: AI Production Pipeline's weekly JSON files (docs/design.md), one per week and layer.

Each file is streamed: the week's rows are read a page of kids at a time (keyset pages
in one read-only snapshot, so the count in the header and the rows agree) and written as
they are read (export_formats.py), to a local folder or an object store, whole or not at
all (export_store.py). An export's memory does not grow with the number of kids.
"""

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets import db
from kidsfin_assets.export_formats import EXTENSIONS, Item, Listing, write_listing
from kidsfin_assets.export_store import ExportStorageError, ExportTarget, LocalFolder
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

# Kids read (and their nicknames looked up) at a time: what an export holds in memory.
PAGE_KIDS = 2000


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """A whole document to a local file: a reader never sees half of it."""
    with LocalFolder(path.parent).open(path.name) as sink:
        sink.write(json.dumps(document, ensure_ascii=False, indent=2, default=str).encode())


def export_name(layer: str, week_key: str, export_format: str) -> str:
    return f"kids_{layer}_{week_key}{EXTENSIONS[export_format]}"


def review_name(week_key: str, export_format: str) -> str:
    """Not `kids_reports_*`: nothing that picks up the parents' files picks this one up."""
    return f"needs_review_reports_{week_key}{EXTENSIONS[export_format]}"


def keyset_pages(
    conn: Connection, query: sa.Select[Any], kid: sa.Column[Any], size: int
) -> Iterator[list[dict[str, Any]]]:
    """`query`'s rows in `kid` order, `size` at a time, each page found through the index
    from where the last one ended (no OFFSET: each page costs the same)."""
    after: Any = None
    while True:
        page_query = query if after is None else query.where(kid > after)
        page = [dict(r._mapping) for r in conn.execute(page_query.order_by(kid).limit(size))]
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1][kid.name]


def count_rows(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar())


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    skip = {"kid_id", "week_start", "computed_at"}
    return {k: v for k, v in row.items() if k not in skip}


def _analysis_items(conn: Connection, src: Sources, page: list[dict[str, Any]]) -> list[Item]:
    names = nicknames(conn, src, [r["kid_id"] for r in page])
    return [
        {"kid_id": r["kid_id"], "nickname": names.get(r["kid_id"]), **_metrics(r)} for r in page
    ]


def analysis_listing(conn: Connection, src: Sources, week: Week) -> Listing:
    """`{generated_at, week_start, timezone, total_kids, kids: [...]}`: every kid's silver
    row of the week with its nickname."""
    table = kid_weekly_analysis
    where = table.c.week_start == week.start
    total = count_rows(conn, table, where)
    pages = keyset_pages(conn, sa.select(table).where(where), table.c.kid_id, PAGE_KIDS)
    header = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "week_start": week.key,
        "timezone": week.timezone,
        "total_kids": total,
    }
    return Listing(header, "kids", total, (_analysis_items(conn, src, p) for p in pages))


def _report_item(row: dict[str, Any], nickname: str | None, for_review: bool) -> Item:
    generated_at = row["generated_at"]
    return {
        "kid_id": row["kid_id"],
        "nickname": nickname,
        **row["report"],
        "generated_at": generated_at.isoformat()
        if isinstance(generated_at, dt.datetime)
        else str(generated_at),
        "writer": row["writer"],
        "model": row["model"],
        **({"findings": row["findings"]} if for_review else {}),
    }


def _report_items(
    conn: Connection, src: Sources, page: list[dict[str, Any]], for_review: bool
) -> list[Item]:
    names = nicknames(conn, src, [r["kid_id"] for r in page])
    return [_report_item(r, names.get(r["kid_id"]), for_review) for r in page]


def reports_listing(
    conn: Connection, src: Sources, week: Week, *, for_review: bool = False
) -> Listing:
    """AI Production Pipeline's shape: {generated_at, week_start, total_reports, reports:
    [...]}. The parents' document holds current reports the grounding check passed (or that
    predate it); the review document, the ones kept because no grounded answer came, with
    what the check found."""
    gold = kid_weekly_reports
    grounded = sa.or_(gold.c.grounded.is_(None), gold.c.grounded.is_(True))
    current = sa.and_(gold.c.week_start == week.start, gold.c.superseded_at.is_(None))
    where = sa.and_(current, sa.not_(grounded) if for_review else grounded)
    total = count_rows(conn, gold, where)
    pages = keyset_pages(conn, sa.select(gold).where(where), gold.c.kid_id, PAGE_KIDS)
    header = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "week_start": week.key,
        "total_reports": total,
    }
    items = (_report_items(conn, src, p, for_review) for p in pages)
    return Listing(header, "reports", total, items)


@dataclass(frozen=True)
class Exported:
    """A file written: where, and how many kids (or reports) it holds."""

    location: str
    rows: int


def export_file(target: ExportTarget, name: str, export_format: str, listing: Listing) -> Exported:
    """Stream `listing` into `name`, which a reader sees whole (or as it was) throughout."""
    with target.open(name) as sink:
        rows = write_listing(sink, export_format, listing)
    return Exported(target.location(name), rows)


def replace_review(
    target: ExportTarget, week_key: str, export_format: str, listing: Listing
) -> Exported | None:
    """The week's review file in `export_format` (none when no report needs review); one
    in another format is the week's past state, so it goes."""
    for other in EXTENSIONS:
        if other != export_format:
            target.remove(review_name(week_key, other))
    name = review_name(week_key, export_format)
    if not listing.total:
        target.remove(name)
        return None
    return export_file(target, name, export_format, listing)


@contextlib.contextmanager
def storage_failures_named() -> Iterator[None]:
    """A store that cannot be written (no bucket, no permission, a full disk) fails the run
    with one line naming the setting, not the storage library's traceback."""
    try:
        yield
    except ExportStorageError as exc:
        raise dg.Failure(description=f"exports.export_dir: {exc}") from None


def file_metadata(exported: Exported, export_format: str) -> dict[str, Any]:
    return {
        "path": dg.MetadataValue.path(exported.location),
        "format": export_format,
        "dagster/row_count": exported.rows,
    }


def weeks_of(context: dg.AssetExecutionContext, timezone: str) -> Iterable[Week]:
    """The run's weeks, oldest first (a ranged run has several, each written alone)."""
    return (Week.from_key(key, timezone) for key in context.partition_keys)


@dg.asset(
    key=ANALYSIS_EXPORT_KEY,
    group_name="exports",
    kinds={"json", "file"},
    owners=OWNERS,
    tags={"kidsfin/layer": "exports", "kidsfin/pii": "nickname"},
    deps=[SILVER_KEY, APP_KIDS],  # nicknames come from the app's kids
    partitions_def=weekly_partitions,
    # As silver's: a backfill writes the range's files in silver's one run, each week's
    # file with its own metadata.
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "`kids_analysis_<week>.json` (or `.jsonl`, `exports.format`) under `export_dir` (a "
        "folder or an s3://, gs://, az:// URL): every kid's silver metrics for the week "
        "with the kid's nickname, as AI Production Pipeline wrote it."
    ),
)
def kids_analysis_json(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    exports: ExportResource,
) -> dg.MaterializeResult:
    engine, src, target = warehouse.get_engine(), sources.tables(), exports.target()
    for week in weeks_of(context, analysis.timezone):
        name = export_name("analysis", week.key, exports.format)
        with storage_failures_named(), db.snapshot(engine) as conn:
            done = export_file(target, name, exports.format, analysis_listing(conn, src, week))
        context.log.info(f"wrote {done.rows} kids to {done.location}")
        metadata = {**file_metadata(done, exports.format), "total_kids": done.rows}
        context.add_asset_metadata(metadata, partition_key=week.key)
    return dg.MaterializeResult()


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
        "`kids_reports_<week>.json` (or `.jsonl`, `exports.format`) under `export_dir` (a "
        "folder or an s3://, gs://, az:// URL): `{generated_at, total_reports, reports: "
        "[...]}` with each kid's nickname and report, as AI Production Pipeline wrote it; "
        "only reports whose numbers and trends the data supports. Reports kept without a "
        "grounded answer go to `needs_review_reports_<week>.json`, with what the check found."
    ),
)
def kids_reports_json(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    analysis: AnalysisResource,
    exports: ExportResource,
) -> dg.MaterializeResult:
    engine, src, target = warehouse.get_engine(), sources.tables(), exports.target()
    fmt = exports.format
    for week in weeks_of(context, analysis.timezone):
        with storage_failures_named(), db.snapshot(engine) as conn:
            parents = reports_listing(conn, src, week)
            done = export_file(target, export_name("reports", week.key, fmt), fmt, parents)
            review = reports_listing(conn, src, week, for_review=True)
            kept_out = replace_review(target, week.key, fmt, review)
        context.log.info(f"wrote {done.rows} reports to {done.location}")
        if kept_out is not None:
            context.log.warning(
                f"{kept_out.rows} reports stated something the data does not say and are "
                f"kept out of the parents' file: review them in {kept_out.location}"
            )
        metadata = {
            **file_metadata(done, fmt),
            "total_reports": done.rows,
            "reports_needing_review": kept_out.rows if kept_out else 0,
        }
        context.add_asset_metadata(metadata, partition_key=week.key)
    return dg.MaterializeResult()
