"""What a week needs written: its silver rows read a page at a time, and of each page the
kids still without a report for their inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.config.weeks import Week
from kidsfin_assets.reports.offline_writer import OFFLINE_MODEL
from kidsfin_assets.reports.prompt import Prompt, input_hashes
from kidsfin_assets.reports.report_schema import PLACEHOLDER
from kidsfin_assets.warehouse.tables import kid_weekly_analysis, kid_weekly_reports

WRITER_OPENAI = "openai"
WRITER_OFFLINE = "offline"


@dataclass(frozen=True)
class PendingReport:
    kid_id: int
    metrics: dict[str, Any]
    input_hash: str
    name: str | None = None  # the nickname, filled into the report, never sent


def wanted(items: Iterator[PendingReport] | list[PendingReport]) -> dict[int, str]:
    """Kid -> the input hash its report must have: what a claim is made for."""
    return {item.kid_id: item.input_hash for item in items}


def silver_count(conn: Connection, week: Week) -> int:
    silver = kid_weekly_analysis
    query = sa.select(sa.func.count()).where(silver.c.week_start == week.start)
    return int(conn.execute(query).scalar_one())


def silver_kids(week: Week) -> sa.Select[Any]:
    silver = kid_weekly_analysis
    return sa.select(silver.c.kid_id).where(silver.c.week_start == week.start)


def silver_pages(
    engine: Engine, week: Week, size: int, call: Callable[[Callable[[], Any]], Any]
) -> Iterator[list[dict[str, Any]]]:
    """The week's silver rows, `size` kids at a time in kid order (memory flat in the
    number of kids), each page read in a transaction of its own through `call` (the
    warehouse gate: a page read mid-run rides out an outage like any other call)."""
    silver = kid_weekly_analysis
    after: int | None = None
    while True:
        query = sa.select(silver).where(silver.c.week_start == week.start)
        if after is not None:
            query = query.where(silver.c.kid_id > after)

        def read(query: sa.Select[Any] = query) -> list[dict[str, Any]]:
            with engine.connect() as conn:
                page = conn.execute(query.order_by(silver.c.kid_id).limit(size))
                return [dict(r._mapping) for r in page]

        rows = call(read)
        if not rows:
            return
        yield rows
        after = rows[-1]["kid_id"]


def silver_rows_of(conn: Connection, week: Week, kids: list[int]) -> list[dict[str, Any]]:
    """The week's silver rows of `kids` (those still in silver), in kid order: what a chunk
    of Batch API lines is matched against, read when the chunk is."""
    silver = kid_weekly_analysis
    query = (
        sa.select(silver)
        .where(silver.c.week_start == week.start, silver.c.kid_id.in_(sorted(set(kids))))
        .order_by(silver.c.kid_id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def plan_week(
    conn: Connection,
    week: Week,
    rows: list[dict[str, Any]],
    api_model: str,
    prompt: Prompt,
    offline: bool,
    names: dict[int, str],
    pseudonymize: bool,
    known_categories: tuple[str, ...],
    scattered: bool = False,
) -> tuple[list[PendingReport], int]:
    """Of the week's silver rows (in kid order; `scattered`: not a range of the week's
    kids), those that still need a report (no row with the same input hash), and how many
    were reused.

    Offline, an AI report for the same metrics counts as done: losing the API key for a
    run must not throw away reports that were paid for."""
    if not rows:
        return [], 0
    gold = kid_weekly_reports
    # A page is a range of kids; a chunk of batch lines is kids scattered over the week
    # (read as a range, each chunk would read the week's reports: quadratic in the week).
    kids = (
        gold.c.kid_id.in_([row["kid_id"] for row in rows])
        if scattered
        else gold.c.kid_id.between(rows[0]["kid_id"], rows[-1]["kid_id"])
    )
    existing = dict(
        conn.execute(
            sa.select(gold.c.kid_id, gold.c.input_hash).where(gold.c.week_start == week.start, kids)
        ).all()
    )
    pending = []
    for row in rows:
        name = names.get(row["kid_id"])
        # How the prompt names the child: a placeholder, unless pseudonymisation is off.
        row["child"] = PLACEHOLDER if pseudonymize else name or PLACEHOLDER
        row["known_categories"] = known_categories  # the others are sent as "khác"
        writers = [(api_model, WRITER_OPENAI)] + (
            [(OFFLINE_MODEL, WRITER_OFFLINE)] if offline else []
        )
        paid, *own = input_hashes(row, prompt.version, writers)
        digest = own[0] if offline else paid
        if existing.get(row["kid_id"]) not in (digest, paid):
            pending.append(PendingReport(row["kid_id"], row, digest, name))
    return pending, len(rows) - len(pending)
