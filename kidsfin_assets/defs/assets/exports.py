"""Exports: AI Production Pipeline's weekly JSON files (docs/design.md), one per week and layer.

Each file is streamed: the week's rows are read a page of kids at a time (one server-side
cursor in a read-only snapshot, so the count in the header and the rows agree) and written as
they are read (export_formats.py), to a local folder or an object store, whole or not at
all (export_store.py). An export's memory does not grow with the number of kids.
"""

import contextlib
import dataclasses
import datetime as dt
import json
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.defs.keys import (
    ANALYSIS_EXPORT_KEY,
    APP_KIDS,
    GOLD_KEY,
    OWNERS,
    REPORTS_EXPORT_KEY,
    SILVER_KEY,
)
from kidsfin_assets.defs.resources import (
    AnalysisResource,
    ExportResource,
    SourcesResource,
    WarehouseResource,
)
from kidsfin_assets.exports.export_formats import EXTENSIONS, Item, Listing, write_listing
from kidsfin_assets.exports.export_store import ExportStorageError, ExportTarget, LocalFolder
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import (
    Sources,
    kid_weekly_analysis,
    kid_weekly_reports,
    nicknames,
)

# Kids read (and their nicknames looked up) at a time: an export holds three pages at most
# (one written, one read ahead, one being read).
PAGE_KIDS = 1000

T = TypeVar("T")


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """A whole document to a local file: a reader never sees half of it."""
    with LocalFolder(path.parent).open(path.name) as sink:
        sink.write(json.dumps(document, ensure_ascii=False, indent=2, default=str).encode())


def export_name(layer: str, week_key: str, export_format: str) -> str:
    return f"kids_{layer}_{week_key}{EXTENSIONS[export_format]}"


def review_name(week_key: str, export_format: str) -> str:
    """Not `kids_reports_*`: nothing that picks up the parents' files picks this one up."""
    return f"needs_review_reports_{week_key}{EXTENSIONS[export_format]}"


def pages_in_order(
    conn: Connection, query: sa.Select[Any], kid: sa.Column[Any], size: int
) -> Generator[list[sa.Row[Any]]]:
    """`query`'s rows in `kid` order, `size` at a time, from one server-side cursor (psycopg2's
    named cursor; SQLite's reads as it goes): the database runs the query once and the
    client holds a page. Not keyset pages of `LIMIT size` each: on a week just written,
    before the table's statistics know it, PostgreSQL plans each as a scan of every row
    after the key and a sort (200 ms a page at 100,000 kids), quadratic in the week."""
    result = conn.execution_options(yield_per=size).execute(query.order_by(kid))
    try:
        yield from result.partitions()
    finally:
        result.close()


def item_pages(
    pages: Generator[list[sa.Row[Any]]], build: Callable[[list[sa.Row[Any]]], list[Item]]
) -> Iterator[list[Item]]:
    """Each page of rows built into items. Closed (or failing), it closes `pages` at once,
    while the transaction their cursor lives in is still open."""
    try:
        for page in pages:
            yield build(page)
    finally:
        pages.close()


def _as_float(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """A money column read as the double precision it is exported as: the database turns
    the NUMERIC into the nearest double, as float(Decimal) did here (both correctly
    rounded), without a Decimal a value on the way."""
    kind = column.type
    money = isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and not kind.asdecimal
    return sa.cast(column, sa.Float).label(column.name) if money else column


_END = object()


@contextlib.contextmanager
def read_ahead(pages: Iterable[T], depth: int = 1) -> Iterator[Iterator[T]]:
    """`pages` iterated in a thread of their own, at most `depth` pages ahead of the caller:
    the next page is read (the database's time, a remote one's round trips) while this one
    is written. The block ends the thread before it exits, an early exit or an error too,
    so the connection the pages read from is the caller's again; the thread's error is
    raised where the page it failed on would have been taken."""
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put((page, None)):
                    return
                del page
            put((_END, None))
        except BaseException as exc:  # handed to the caller, raised there
            put((_END, exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # a generator's cursor, in the transaction that is still open

    def taken() -> Iterator[T]:
        while True:
            page, error = ready.get()
            if error is not None:
                raise error
            if page is _END:
                return
            yield page

    thread = threading.Thread(target=produce, name="kidsfin-export-read-ahead", daemon=True)
    thread.start()
    try:
        yield taken()
    finally:
        stop.set()
        thread.join()


def count_rows(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar())


# Silver's columns that are not the kid's metrics (kid_id leads the item, with the nickname).
NOT_METRICS = ("week_start", "kid_id", "computed_at")


def _analysis_items(conn: Connection, src: Sources, page: list[sa.Row[Any]]) -> list[Item]:
    """`{kid_id, nickname, <metrics in the table's order>}` for a page of (kid_id, metrics)."""
    names = nicknames(conn, src, [row[0] for row in page])
    # Plain str: the columns' names are SQLAlchemy's quoted_name, which the writer would
    # take the slow way (the same text either way).
    metrics = tuple(str(name) for name in page[0]._fields[1:])
    items = []
    for row in page:
        item = {"kid_id": row[0], "nickname": names.get(row[0])}
        item.update(zip(metrics, row[1:], strict=True))
        items.append(item)
    return items


def analysis_listing(conn: Connection, src: Sources, week: Week) -> Listing:
    """`{generated_at, week_start, timezone, total_kids, kids: [...]}`: every kid's silver
    row of the week with its nickname."""
    table = kid_weekly_analysis
    where = table.c.week_start == week.start
    total = count_rows(conn, table, where)
    metrics = [_as_float(c) for c in table.c if c.name not in NOT_METRICS]
    query = sa.select(table.c.kid_id, *metrics).where(where)
    pages = pages_in_order(conn, query, table.c.kid_id, PAGE_KIDS)
    header = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "week_start": week.key,
        "timezone": week.timezone,
        "total_kids": total,
    }
    items = item_pages(pages, lambda page: _analysis_items(conn, src, page))
    return Listing(header, "kids", total, items)


def _report_item(row: sa.Row[Any], nickname: str | None, for_review: bool) -> Item:
    generated_at = row.generated_at
    return {
        "kid_id": row.kid_id,
        "nickname": nickname,
        **row.report,
        "generated_at": generated_at.isoformat()
        if isinstance(generated_at, dt.datetime)
        else str(generated_at),
        "writer": row.writer,
        "model": row.model,
        **({"findings": row.findings} if for_review else {}),
    }


def _report_items(
    conn: Connection, src: Sources, page: list[sa.Row[Any]], for_review: bool
) -> list[Item]:
    names = nicknames(conn, src, [row.kid_id for row in page])
    return [_report_item(row, names.get(row.kid_id), for_review) for row in page]


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
    read = [gold.c[c] for c in ("kid_id", "report", "generated_at", "writer", "model", "findings")]
    pages = pages_in_order(conn, sa.select(*read).where(where), gold.c.kid_id, PAGE_KIDS)
    header = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "week_start": week.key,
        "total_reports": total,
    }
    items = item_pages(pages, lambda page: _report_items(conn, src, page, for_review))
    return Listing(header, "reports", total, items)


@dataclass(frozen=True)
class Exported:
    """A file written: where, and how many kids (or reports) it holds."""

    location: str
    rows: int


def export_file(target: ExportTarget, name: str, export_format: str, listing: Listing) -> Exported:
    """Stream `listing` into `name`, which a reader sees whole (or as it was) throughout;
    the next page is read while one is written."""
    with read_ahead(listing.pages) as pages, target.open(name) as sink:
        rows = write_listing(sink, export_format, dataclasses.replace(listing, pages=pages))
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
        "with the kid's nickname, in the shape of AI Production Pipeline's files (the Go "
        "program kidsfin replaces)."
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
        "[...]}` with each kid's nickname and report, in the shape of AI "
        "Production Pipeline's files (the Go program kidsfin replaces); "
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
