"""The check from start to end: the stack, the weeks materialised, the pages looked at."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from kidsfin_assets.config.weeks import DEFAULT_TIMEZONE
from openai_test_server import running_server
from tools.ui_check import pages, runs, stack, truth
from tools.ui_check.stack import CheckFailed, GraphQL

TIMEZONE = DEFAULT_TIMEZONE  # the weekly partitions' (KIDSFIN_WEEKS__TIMEZONE is not set)
DEMO_WEEKS = 6
FIRST_PARTITION = 2  # the demo's third week: every partition's W-1 and W-2 have rows
RANGE = (runs.RAW, runs.SILVER, runs.ANALYSIS_EXPORT)
GOLD_AND_REPORTS = (runs.GOLD, runs.REPORTS_EXPORT)


def say(message: str) -> None:
    print(f"ui-check: {message}", flush=True)


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


@dataclass
class Scenario:
    partitions: list[str]
    span: list[str]  # the range of the backfill
    week: str  # the whole graph's week
    range_backfill: str = ""
    raw_run: str = ""  # the range backfill's first run: raw over the span
    range_run: str = ""  # its second: silver and the analysis export, the span and after
    gold_backfill: str = ""
    gold_runs: list[str] = field(default_factory=list)
    week_run: str = ""


def run_check(args: argparse.Namespace, tmp: Path, api_key: str) -> Outcome:
    outcome = Outcome()
    with ExitStack() as cleanup:
        liar = cleanup.enter_context(
            running_server(
                api_key=api_key, latency=0.02, report_mode="lying", lie_rate=args.lie_rate
            )
        )
        env = stack.dagster_environment(tmp, "", liar.base_url, api_key)
        del env["KIDSFIN_WEEKS__START_DATE"]
        stack.prepare_home(tmp, env)
        weeks = stack.load_demo_data(env, args.kids, DEMO_WEEKS, tmp / "demo_data.log")
        partitions = weeks[FIRST_PARTITION:]
        env["KIDSFIN_WEEKS__START_DATE"] = partitions[0]
        say(
            f"demo data: {args.kids} kids, weeks {weeks[0]} to {weeks[-1]}; weekly "
            f"partitions {partitions[0]} to {partitions[-1]}"
        )

        port = stack.free_port()
        webserver = stack.start_webserver(env, tmp, port)
        cleanup.callback(webserver.stop)
        daemon = stack.start_daemon(env, tmp)
        cleanup.callback(daemon.stop)
        gql = GraphQL(f"http://127.0.0.1:{port}", [webserver, daemon])
        started = time.monotonic()
        stack.wait_until_serving(gql)
        say(f"UI serving on {gql.url} ({time.monotonic() - started:.0f} s)")

        ui = cleanup.enter_context(pages.browser(args.chromium, gql.url, args.out))
        scenario = Scenario(partitions, span=partitions[:3], week=partitions[3])
        materialise(ui, gql, scenario, by_clicking=args.launch == "ui")
        (tmp / "scenario.json").write_text(json.dumps(scenario.__dict__, indent=2))

        db = tmp / "kidsfin.db"
        rows_read = truth.rows_read_by_week(db, TIMEZONE)
        silver = truth.silver_figures_by_week(db)
        kept = truth.kept_for_review(db, scenario.week)
        say(
            f"the database: rows read by week {dict(sorted(rows_read.items()))}; "
            f"{len(kept)} report(s) of {scenario.week} kept for review"
        )

        def look(what: str, check: Callable[[], list[str]]) -> None:
            started = time.monotonic()
            try:
                found = check()
            except CheckFailed as exc:
                found = [f"{what}: {exc}"]
            outcome.problems += found
            verdict = "OK" if not found else f"{len(found)} problem(s)"
            say(f"looked at {what}: {verdict} ({time.monotonic() - started:.0f} s)")

        def graph() -> list[str]:
            problems, notes = pages.check_asset_graph(ui, len(partitions))
            outcome.notes.extend(notes)
            return problems

        look("(a) the asset graph", graph)
        look(
            f"(b) gold/kid_weekly_reports {scenario.week}",
            lambda: pages.check_gold(
                ui, scenario.week, scenario.week_run, kept, silver[scenario.week]["row_count"]
            ),
        )
        look(
            "(c) the range backfill's page",
            lambda: pages.check_backfill(
                ui,
                scenario.range_backfill,
                {scenario.raw_run, scenario.range_run},
                range_weeks(scenario),
            ),
        )
        look(
            f"(c) raw and silver, weeks {scenario.span[0]}...{scenario.span[-1]}",
            lambda: pages.check_range_weeks(
                ui, scenario.span, (scenario.raw_run, scenario.range_run), rows_read, silver
            ),
        )
        look("(d) new_week_sensor's preview", lambda: pages.check_sensor(ui, partitions))
        for n in range(args.time_week):
            outcome.notes.append(time_week(ui, gql, scenario.week, n + 1))
        outcome.screenshots = list(ui.taken)
        if args.serve:
            serve(gql)
    return outcome


def range_weeks(scenario: Scenario) -> dict[tuple[str, ...], int]:
    """How many weeks the range backfill targets of each asset: raw the span; silver and
    the analysis export also the partitions after it whose trends read the span's last
    weeks (silver W reads raw W-2..W: Dagster follows the partition mapping)."""
    last = scenario.partitions.index(scenario.span[-1])
    later = len(scenario.partitions[last + 1 : last + 3])
    return {
        runs.RAW: len(scenario.span),
        runs.SILVER: len(scenario.span) + later,
        runs.ANALYSIS_EXPORT: len(scenario.span) + later,
    }


def materialise(ui: pages.UI, gql: GraphQL, scenario: Scenario, by_clicking: bool) -> None:
    """As a user of the UI: a backfill of raw, silver and the analysis export over three
    weeks (two runs, their backfill policy: raw over the span, then silver and the export
    over it and the weeks after whose trends read it), then the whole graph for the last
    week (one run), then gold and the reports export for the three weeks (a run a week).
    Clicked in the asset graph's launch dialog, or (--launch graphql) sent as the mutations
    it sends. The week's run waits for the backfill: the backfill's silver run also
    computes the last week (its trends read raw's span), and a gold of that week launched
    alongside could read silver before that run rewrote it, so the sensor would rightly
    ask for the week again."""
    span, week = scenario.span, scenario.week
    started = time.monotonic()
    if by_clicking:
        scenario.range_backfill = pages.launch_backfill(
            ui, gql, RANGE, span, "01_launch_range_backfill"
        )
    else:
        scenario.range_backfill = runs.launch_backfill(gql, span, RANGE)
    say(
        f"launched backfill {scenario.range_backfill} (raw, silver, analysis export "
        f"{span[0]}...{span[-1]})"
    )
    range_runs = runs.wait_for_backfill(gql, scenario.range_backfill)
    runs.require_success(range_runs, f"backfill {scenario.range_backfill}")
    by_assets = {tuple(r.assets): r for r in range_runs}
    raw_only, rest = (runs.RAW,), tuple(sorted((runs.SILVER, runs.ANALYSIS_EXPORT)))
    if len(range_runs) != 2 or set(by_assets) != {raw_only, rest}:
        listed = ", ".join(f"{r.run_id[:8]} {r.assets} {r.partitions}" for r in range_runs)
        raise CheckFailed(
            f"the range backfill {scenario.range_backfill} made {len(range_runs)} runs, "
            f"not raw's and then silver's with the analysis export: {listed}"
        )
    scenario.raw_run = by_assets[raw_only].run_id
    scenario.range_run = by_assets[rest].run_id
    say(
        f"backfill {scenario.range_backfill}: raw's run {scenario.raw_run[:8]}, silver's "
        f"{scenario.range_run[:8]} ({time.monotonic() - started:.0f} s)"
    )
    if by_clicking:
        scenario.week_run = pages.launch_week(ui, gql, runs.PIPELINE, week, "02_launch_week")
    else:
        scenario.week_run = runs.launch_week(gql, week)
    say(f"launched run {scenario.week_run[:8]} (every asset, {week})")

    if by_clicking:
        scenario.gold_backfill = pages.launch_backfill(
            ui, gql, GOLD_AND_REPORTS, span, "03_launch_gold_backfill"
        )
    else:
        scenario.gold_backfill = runs.launch_backfill(gql, span, GOLD_AND_REPORTS)
    gold_runs = runs.wait_for_backfill(gql, scenario.gold_backfill)
    runs.require_success(gold_runs, f"backfill {scenario.gold_backfill}")
    scenario.gold_runs = [r.run_id for r in gold_runs]
    say(
        f"backfill {scenario.gold_backfill}: gold and the reports export, "
        f"{len(gold_runs)} runs ({time.monotonic() - started:.0f} s)"
    )
    whole = runs.wait_for_run(gql, scenario.week_run)
    runs.require_success([whole], f"week {week}")
    if whole.assets != sorted(runs.PIPELINE) or whole.partitions != week:
        raise CheckFailed(f"run {whole.run_id} was {whole.assets} for {whole.partitions}")
    say(f"run {scenario.week_run[:8]} done ({time.monotonic() - started:.0f} s)")


def time_week(ui: pages.UI, gql: GraphQL, week: str, n: int) -> str:
    """The whole graph for `week` from the launch dialog, timed from the click to the run's
    end as the UI shows it (its reports are reused: nothing is paid)."""
    started = time.monotonic()
    run_id = pages.launch_week(ui, gql, runs.PIPELINE, week, f"13_launch_week_timed_{n}")
    run = runs.wait_for_run(gql, run_id)
    wall = time.monotonic() - started
    runs.require_success([run], f"timed run {run_id[:8]} of {week}")
    times = runs.run_times(gql, run_id)
    ui.goto(f"/runs/{run_id}", height=1000)
    ui.wait_text(run_id[:8])
    ui.wait_text("RUN_SUCCESS")  # the run's log has loaded (the breadcrumb shows at once)
    ui.shot(f"14_timed_run_{n}")
    note = (
        f"timed run {n} of {week} ({run_id[:8]}): {wall:.1f} s from the click to its end "
        f"(queued {times['queued_s']} s, running {times['running_s']} s, "
        f"{times['steps']} steps)"
    )
    say(note)
    return note


def serve(gql: GraphQL) -> None:
    say(f"--serve: the UI stays on {gql.url} until Ctrl+C")
    try:
        while True:
            time.sleep(5)
            gql.check_alive()
    except KeyboardInterrupt:
        pass
