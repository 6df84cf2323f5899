"""What the pages should show, read straight from the temporary SQLite database (not from
the pipeline's code): each week's own source rows, silver rows, and the reports kept for
review."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _week_of(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
    local = instant.astimezone(zone).date()
    return (local - dt.timedelta(days=local.weekday())).isoformat()


def rows_read_by_week(db: Path, timezone: str) -> Counter[str]:
    """Transactions and app events inside each local Monday-to-Monday week, every row with
    a time counted (valid or not): raw's `rows_read`."""
    zone = zoneinfo.ZoneInfo(timezone)
    counts: Counter[str] = Counter()
    with sqlite3.connect(db) as conn:
        for table in ("transactions", "app_events"):
            for (text,) in conn.execute(f"SELECT occurred_at FROM {table}"):
                if text is None:
                    continue
                instant = dt.datetime.fromisoformat(text)
                if instant.tzinfo is None:
                    instant = instant.replace(tzinfo=dt.UTC)
                counts[_week_of(instant, zone)] += 1
    return counts


def _table(conn: sqlite3.Connection, name: str) -> str:
    """The warehouse table on SQLite: `name`, or `kidsfin_name`/an attached schema's."""
    found = [
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if row[0] == name or row[0].endswith(f"_{name}")
    ]
    if not found:
        raise LookupError(f"no table {name!r} in the warehouse")
    return found[0]


@dataclass
class KeptReport:
    kid_id: int
    findings: list[dict[str, Any]]


def kept_for_review(db: Path, week: str) -> list[KeptReport]:
    """The week's current reports without a grounded answer, as gold's table holds them."""
    with sqlite3.connect(db) as conn:
        table = _table(conn, "kid_weekly_reports")
        query = (
            f"SELECT kid_id, findings FROM {table} WHERE week_start = ? "
            "AND superseded_at IS NULL AND grounded = 0 ORDER BY kid_id"
        )
        rows = conn.execute(query, (week,)).fetchall()
    return [KeptReport(kid, json.loads(findings) if findings else []) for kid, findings in rows]


SILVER_FIGURES = ("income_total", "spending_total", "saving_total", "withdrawal_total")


def silver_figures_by_week(db: Path) -> dict[str, dict[str, float]]:
    """Each week's kid rows and money totals in silver's table: what the week's metadata
    reads back, and not the range's."""
    with sqlite3.connect(db) as conn:
        table = _table(conn, "kid_weekly_analysis")
        sums = ", ".join(f"coalesce(sum({c}), 0)" for c in SILVER_FIGURES)
        query = f"SELECT week_start, count(*), {sums} FROM {table} GROUP BY week_start"
        found = {}
        for week, count, *totals in conn.execute(query):
            figures = {"row_count": count, "dagster/row_count": count}
            figures.update(
                {c: round(float(v), 2) for c, v in zip(SILVER_FIGURES, totals, strict=True)}
            )
            found[str(week)] = figures
        return found
