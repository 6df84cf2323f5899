"""The pages, in headless chromium (Debian's /usr/bin/chromium driven by Playwright): what a
user clicks and reads. Each function leaves screenshots in the output folder and returns
the problems it saw on the page (an empty list when the page shows what it should)."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tools.ui_check import runs
from tools.ui_check.stack import CheckFailed, GraphQL
from tools.ui_check.truth import KeptReport

# Headless in a container: no sandbox (root), no GPU, and nothing that reaches the network
# on its own (updates, sync, first-run pages).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH = 1600
RENDER_TIMEOUT_MS = 90_000  # the UI's first load on a busy 2-core machine
GROUPS = ("app", "raw", "silver", "gold", "exports")
ASSET_NAMES = (
    "transactions",
    "app_events",
    "savings_goals",
    "kids",
    "kid_activity",
    "kid_weekly_analysis",
    "kid_weekly_reports",
    "kids_analysis_json",
    "kids_reports_json",
)


@dataclass
class UI:
    page: Page
    base: str
    out: Path
    taken: list[Path]

    def goto(self, path: str, height: int = 1000, width: int = WIDTH) -> None:
        self.page.set_viewport_size({"width": width, "height": height})
        self.page.goto(self.base + path)

    def shot(self, name: str, target: Locator | None = None) -> Path:
        path = self.out / f"{name}.png"
        if target is None:
            self.page.screenshot(path=path)
        else:
            target.screenshot(path=path)
        self.taken.append(path)
        return path

    def wait_text(self, text: str | re.Pattern[str], within: Locator | None = None) -> Locator:
        where = within if within is not None else self.page
        found = where.get_by_text(text).first
        try:
            found.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        except PlaywrightTimeout as exc:
            self.shot(f"zz_timeout_{len(self.taken):02d}")
            raise CheckFailed(f"the page {self.page.url} never showed {text!r}") from exc
        return found


@contextmanager
def browser(chromium: Path, base: str, out: Path) -> Iterator[UI]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = launched.new_context(viewport={"width": WIDTH, "height": 1000})
            context.set_default_timeout(RENDER_TIMEOUT_MS)
            page = context.new_page()
            # The first visit's "Join the Dagster community" dialog: skipped, as a user
            # would, whenever it shows up.
            skip = page.get_by_role("button", name="Skip", exact=True)
            page.add_locator_handler(skip, lambda: skip.click())
            yield UI(page, base, out, [])
        finally:
            launched.close()


def _normal(text: str) -> str:
    """Text as rendered from Markdown and compared: no markup, spaces collapsed."""
    text = text.replace("\\|", "|")
    text = re.sub(r"[*`\\]", "", text)
    return " ".join(text.split())


def metadata_rows(ui: UI) -> dict[str, str]:
    """The metadata table on screen, key to the value's text (first row of a key wins; the
    rows of a Markdown table inside a value come after their own key)."""
    rows = ui.page.evaluate(
        """() => Array.from(document.querySelectorAll('tr')).map(
              tr => Array.from(tr.children).map(td => td.innerText.trim()))"""
    )
    found: dict[str, str] = {}
    for row in rows:
        if len(row) >= 2 and row[0] and row[0] not in found:
            found[row[0]] = row[1]
    return found


def metadata_row(ui: UI, key: str) -> Locator:
    """The metadata table's row of `key` (its first cell says just that)."""
    return ui.page.locator(f"xpath=//tr[td[1][normalize-space(.)='{key}']]").first


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------------------
# Launching, as a user does: the asset graph's "Materialize all" and its launch dialog.
# --------------------------------------------------------------------------------------


def _selection_path(keys: tuple[tuple[str, ...], ...]) -> str:
    query = " or ".join(f'key:"{"/".join(key)}"' for key in keys)
    return "/asset-groups~" + urllib.parse.quote(query, safe="") + "/"


def _open_launch_dialog(ui: UI, keys: tuple[tuple[str, ...], ...], whole: bool = False) -> Locator:
    """The global graph, whole or filtered to `keys` (the search box's selection, kept in
    the URL), then "Materialize all": the launch dialog."""
    ui.goto("/asset-groups" if whole else _selection_path(keys))
    ui.page.locator("button", has_text=re.compile(r"^Materialize all")).click()
    dialog = ui.page.get_by_role("dialog")
    ui.wait_text(f"Launch runs to materialize {len(keys)} assets", dialog)
    return dialog


def launch_backfill(
    ui: UI, gql: GraphQL, keys: tuple[tuple[str, ...], ...], weeks: list[str], name: str
) -> str:
    """Type the range into the dialog's partition box, look, click "Launch backfill"."""
    dialog = _open_launch_dialog(ui, keys)
    box = dialog.locator("input[type=text]").first
    box.click()
    box.fill(f"[{weeks[0]}...{weeks[-1]}]")
    box.press("Enter")
    ui.wait_text(re.compile(rf"^{len(weeks)} partitions$"), dialog)
    ui.shot(name)
    before = runs.backfill_ids(gql)
    dialog.get_by_role("button", name="Launch backfill").click()
    return runs.new_one(before, lambda: runs.backfill_ids(gql), f"backfill {weeks[0]}...")


def launch_week(
    ui: UI, gql: GraphQL, keys: tuple[tuple[str, ...], ...], week: str, name: str
) -> str:
    """The whole graph's "Materialize all", the dialog's "Latest" (the last complete week),
    look, click "Launch 1 run"."""
    dialog = _open_launch_dialog(ui, keys, whole=True)
    dialog.get_by_role("button", name="Latest", exact=True).click()
    ui.wait_text(re.compile(r"^1 partition$"), dialog)
    shown = dialog.locator("input[type=text]").first.input_value()
    if shown != week:
        raise CheckFailed(f"the launch dialog's latest partition is {shown!r}, not {week}")
    ui.shot(name)
    before = runs.week_run_ids(gql, week)
    dialog.get_by_role("button", name="Launch 1 run").click()
    return runs.new_one(before, lambda: runs.week_run_ids(gql, week), f"week {week}")


# --------------------------------------------------------------------------------------
# (a) the global asset graph
# --------------------------------------------------------------------------------------


def check_asset_graph(ui: UI, partitions: int) -> tuple[list[str], list[str]]:
    """Every group expanded (the graph's settings menu), laid out afresh: every asset, each
    partitioned one with all its weeks materialised, and the groups' columns from left to
    right. Returns (problems, notes)."""
    # Wide enough for the fitted graph (five columns: app, raw, silver, gold, exports) to
    # show each node's status, not its name alone (at 1800 it showed names only).
    ui.goto("/asset-groups", height=1400, width=2400)
    ui.wait_text("Global asset lineage")
    ui.page.get_by_role("button", name="settings", exact=True).click()
    expand = ui.page.get_by_role("menuitem", name="Expand all groups")
    if expand.count():
        expand.click()
    ui.page.keyboard.press("Escape")
    # Fit the expanded graph to the window: the zoom kept from the collapsed one is dropped.
    ui.page.evaluate("localStorage.removeItem('defaultZoom')")
    ui.page.reload()
    ui.wait_text("kid_weekly_reports")
    ui.wait_text(f"{partitions} partitions")
    ui.page.wait_for_timeout(2000)  # the nodes' statuses
    ui.shot("04_asset_graph")

    problems: list[str] = []
    text = ui.page.inner_text("body")
    problems += [f"asset graph: no node {n}" for n in ASSET_NAMES if n not in text.split()]
    filled = text.count("100% filled")
    if filled != 5:
        problems.append(f"asset graph: {filled} of the 5 partitioned assets show 100% filled")
    columns: dict[str, float] = {}
    for group in GROUPS:
        header = ui.page.get_by_text(group, exact=True)
        boxes = [b for b in (header.nth(i).bounding_box() for i in range(header.count())) if b]
        graph_boxes = [b for b in boxes if b["x"] > 480]  # not the sidebar's group list
        if not graph_boxes:
            problems.append(f"asset graph: no group box {group}")
            continue
        columns[group] = min(b["x"] for b in graph_boxes)
    notes: list[str] = []
    if len(columns) == len(GROUPS):
        notes.append(f"asset graph, groups' columns from left to right: {_columns_text(columns)}")
        for left, right in (
            ("app", "raw"),
            ("raw", "silver"),
            ("silver", "gold"),
            ("gold", "exports"),
        ):
            if not columns[left] < columns[right]:
                problems.append(
                    f"asset graph: {left} is not left of {right} ({_columns_text(columns)})"
                )
    return problems, notes


def _columns_text(columns: dict[str, float]) -> str:
    """'app (x=636) → raw, silver (x=951) → ...': groups within 20 px share a column."""
    shown: list[tuple[float, list[str]]] = []
    for group, x in sorted(columns.items(), key=lambda item: item[1]):
        if shown and x - shown[-1][0] < 20:
            shown[-1][1].append(group)
        else:
            shown.append((x, [group]))
    return " → ".join(f"{', '.join(groups)} (x={x:.0f})" for x, groups in shown)


# --------------------------------------------------------------------------------------
# Partition pages: one week's latest materialisation and its metadata
# --------------------------------------------------------------------------------------


def open_partition(ui: UI, asset: tuple[str, ...], week: str, height: int) -> dict[str, str]:
    ui.goto(f"/assets/{'/'.join(asset)}?view=partitions&partition={week}", height=height)
    ui.wait_text("Latest materialization")
    ui.wait_text(re.compile(r"^Metadata$"))
    ui.page.wait_for_timeout(1000)
    return metadata_rows(ui)


def shown_run(ui: UI) -> str:
    """The run id the partition's latest materialisation links to (8 characters)."""
    text = ui.page.inner_text("body")
    found = re.search(r"\bRun\s+([0-9a-f]{8})\b", text)
    return found.group(1) if found else "(none shown)"


def check_gold(
    ui: UI, week: str, run_id: str, kept: list[KeptReport], silver_rows: int
) -> list[str]:
    """(b) gold/kid_weekly_reports for the week: its latest materialisation's metadata,
    the `summary` table and the `kept_for_review` Markdown, against the warehouse."""
    rows = open_partition(ui, ("gold", "kid_weekly_reports"), week, height=3400)
    ui.shot(f"05_gold_{week}_metadata")
    where = f"gold {week}"
    problems: list[str] = []
    if shown_run(ui) != run_id[:8]:
        problems.append(
            f"{where}: latest materialisation from run {shown_run(ui)}, not {run_id[:8]}"
        )
    expected = {
        "silver_rows": silver_rows,
        "reports_ungrounded": len(kept),
        "Reports": silver_rows,
        "Kept for review (ungrounded)": len(kept),
    }
    for key, value in expected.items():
        if _number(rows.get(key)) != value:
            problems.append(f"{where}: {key} shows {rows.get(key)!r}, the warehouse says {value}")
    if "summary" not in rows:
        problems.append(f"{where}: no `summary` metadata")
    else:
        ui.shot(f"06_gold_{week}_summary", metadata_row(ui, "summary"))
    if not kept:
        problems.append(
            f"{where}: no report was kept for review (the server told no lie twice to one "
            "kid): nothing for the reviewer's view to show; run the check again"
        )
        return problems
    if "kept_for_review" not in rows:
        return [*problems, f"{where}: {len(kept)} reports kept for review, no `kept_for_review`"]
    row = metadata_row(ui, "kept_for_review")
    show = row.get_by_text("[Show Markdown]")
    if show.count():  # long Markdown opens in a dialog
        show.first.click()
        shown_in = ui.page.get_by_role("dialog")
        ui.wait_text("kept for review", shown_in)
        ui.shot(f"07_gold_{week}_kept_for_review", shown_in)
    else:
        shown_in = row
        ui.shot(f"07_gold_{week}_kept_for_review", row)
    text = _normal(shown_in.inner_text())
    heading = f"{len(kept)} report(s) kept for review"
    if heading not in text:
        problems.append(f"{where}: kept_for_review does not say {heading!r}")
    for report in kept:
        if f"kid {report.kid_id}" not in text:
            problems.append(f"{where}: kept_for_review does not list kid {report.kid_id}")
        if not report.findings:
            problems.append(f"{where}: kid {report.kid_id} is kept with no findings in the table")
        for finding in report.findings:
            for part in ("field", "text", "message"):
                said = _normal(str(finding.get(part, "")))
                if said and said not in text:
                    problems.append(
                        f"{where}: kid {report.kid_id}'s refused {part} {said!r} is not shown"
                    )
    return problems


def check_range_weeks(
    ui: UI,
    weeks: list[str],
    run_ids: tuple[str, str],
    rows_read: dict[str, int],
    silver: dict[str, dict[str, Any]],
) -> list[str]:
    """(c) raw's and silver's partitions after the range runs (raw's, then silver's):
    each week's own figures, from its range run, equal to what the database holds for
    that week."""
    raw_run, silver_run = run_ids
    problems: list[str] = []
    total_read = sum(rows_read[w] for w in weeks)
    for n, week in enumerate(weeks):
        rows = open_partition(ui, ("raw", "kid_activity"), week, height=1300)
        ui.shot(f"10_raw_{n + 1}_{week}")
        where = f"raw {week}"
        if shown_run(ui) != raw_run[:8]:
            problems.append(
                f"{where}: materialised by run {shown_run(ui)}, not the range's {raw_run[:8]}"
            )
        shown = _number(rows.get("rows_read"))
        if shown != rows_read[week]:
            extra = " (the range's total)" if shown == total_read else ""
            problems.append(
                f"{where}: rows_read shows {rows.get('rows_read')!r}{extra}; the week has "
                f"{rows_read[week]} rows"
            )
        versions = _json(rows.get("source_versions"))
        if set(versions) != {week}:
            problems.append(f"{where}: source_versions names {sorted(versions)}, not {week} alone")
    total_kids = sum(silver[w]["row_count"] for w in weeks)
    for n, week in enumerate(weeks):
        rows = open_partition(ui, ("silver", "kid_weekly_analysis"), week, height=1500)
        ui.shot(f"11_silver_{n + 1}_{week}")
        where = f"silver {week}"
        if shown_run(ui) != silver_run[:8]:
            problems.append(
                f"{where}: materialised by run {shown_run(ui)}, not the range's {silver_run[:8]}"
            )
        for key, value in silver[week].items():
            shown = _number(rows.get(key))
            if shown is None or abs(shown - value) > 0.005:
                extra = " (the range's total)" if key == "row_count" and shown == total_kids else ""
                problems.append(
                    f"{where}: {key} shows {rows.get(key)!r}{extra}; the week's is {value}"
                )
        versions = _json(rows.get("source_versions"))
        if week not in versions or len(versions) != 3:
            problems.append(f"{where}: source_versions names {sorted(versions)}, not W-2, W-1, W")
    return problems


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check_backfill(
    ui: UI, backfill_id: str, run_ids: set[str], weeks_by_key: dict[tuple[str, ...], int]
) -> list[str]:
    """The range backfill's page: each asset's weeks done, and its runs (raw's range, then
    silver's with the analysis export)."""
    problems: list[str] = []
    ui.goto(f"/runs/b/{backfill_id}", height=1000)
    ui.wait_text("Partitions targeted")
    ui.wait_text("kid_activity")
    ui.shot("08_range_backfill")
    lines = [line.strip() for line in ui.page.inner_text("body").splitlines() if line.strip()]
    for key, weeks in weeks_by_key.items():
        name = " / ".join(key)
        if name not in lines:
            problems.append(f"backfill {backfill_id}: {name} is not listed")
            continue
        # name, (name), "100% completed", then targeted, in progress, succeeded, failed
        after = lines[lines.index(name) + 1 :]
        counts = [_number(x) for x in after if _number(x) is not None][:4]
        if counts != [weeks, 0, weeks, 0]:
            problems.append(
                f"backfill {backfill_id}: {name} shows targeted, in progress, succeeded, "
                f"failed = {counts}, not {[weeks, 0, weeks, 0]}"
            )
    ui.goto(f"/runs/b/{backfill_id}?tab=runs", height=1000)
    for run_id in run_ids:
        ui.wait_text(run_id[:8])
    ui.shot("09_range_backfill_runs")
    listed = set(re.findall(r"\b[0-9a-f]{8}\b", ui.page.inner_text("body")))
    expected = {run_id[:8] for run_id in run_ids}
    if listed != expected:
        problems.append(
            f"backfill {backfill_id}: its runs tab lists {sorted(listed)}, not {sorted(expected)}"
        )
    return problems


# --------------------------------------------------------------------------------------
# (d) new_week_sensor: "Preview tick result" must request nothing
# --------------------------------------------------------------------------------------


def check_sensor(ui: UI, weeks: list[str]) -> list[str]:
    ui.goto("/locations/kidsfin/sensors/new_week_sensor", height=1000)
    ui.wait_text("Preview tick result")
    ui.wait_text("Sensor has never run")  # the tick history, loaded (the sensor is off)
    ui.page.get_by_text("Loading ticks").wait_for(state="hidden")
    ui.page.wait_for_timeout(1000)
    ui.shot("12_sensor")
    ui.page.get_by_role("button", name="Preview tick result").click()
    dialog = ui.page.get_by_role("dialog")
    dialog.get_by_role("button", name="Continue").click()  # no cursor: as the sensor starts
    ui.wait_text(re.compile(r"^Requested runs \(\d+\)$"), dialog)
    ui.page.wait_for_timeout(500)
    ui.shot("13_sensor_preview", dialog)
    text = " ".join(dialog.inner_text().split())
    problems: list[str] = []
    requested = re.search(r"Requested runs \((\d+)\)", text)
    if requested is None or requested.group(1) != "0" or "Skipped" not in text:
        problems.append(f"new_week_sensor preview requests runs after every week ran: {text[:400]}")
    done = re.search(r"nothing new or changed \(([^)]*) already materialised", text)
    listed = set(re.findall(r"\d{4}-\d{2}-\d{2}", done.group(1))) if done else set()
    if listed != set(weeks):
        problems.append(f"new_week_sensor preview: weeks done {sorted(listed)}, not {weeks}")
    return problems
