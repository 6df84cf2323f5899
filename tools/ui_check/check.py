"""`python -m tools.ui_check` (`make ui-check`): what the Dagster UI shows for this project,
checked in a real browser (Debian's chromium, headless, driven by Playwright), with
screenshots to look at.

1. A temporary DAGSTER_HOME (the root's dagster.yaml, as `make dev`), a temporary SQLite
   demo database (`python -m kidsfin_demo`: 6 weeks; the weekly partitions start at the
   third, so every partition has two weeks of history and the UI shows four weeks) and the
   suite's OpenAI-compatible server lying in half its answers, with two attempts a report:
   some reports are kept for review.
2. `dagster-webserver` and `dagster-daemon` (what `dagster dev` runs) on a free loopback
   port, and weeks materialised as a user does, by clicking the asset graph's
   "Materialize all" and its launch dialog (or, with --launch graphql, by sending the
   mutations that dialog sends): a backfill of raw, silver and the analysis export over
   three weeks (two runs: raw's, then silver's with the export), then the whole graph for
   the last week, then gold and the reports export for the three weeks (a run a week).
3. The asset graph (groups expanded), gold's latest materialisation for the week (its
   `summary` table and `kept_for_review` Markdown), the range backfill's page, raw's and
   silver's partitions of the range run week by week, and new_week_sensor's "Preview tick
   result", which must request nothing. Every page's text is checked against the
   database; the screenshots go to --out.

Exit status 0 when every page shows what it should, 1 with the reasons when not, 2 when
the check cannot run here.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tools.ui_check.stack import ROOT, CheckFailed

DEFAULT_OUT = Path("/tmp/kidsfin_ui_check")
CHROMIUM = Path("/usr/bin/chromium")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.ui_check", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"screenshots ({DEFAULT_OUT})"
    )
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help=f"browser ({CHROMIUM})")
    parser.add_argument("--kids", type=int, default=20, help="demo kids (20)")
    parser.add_argument("--lie-rate", type=float, default=0.5, help="answers that lie (0.5)")
    parser.add_argument(
        "--launch",
        choices=("ui", "graphql"),
        default="ui",
        help="launch the runs by clicking the asset graph's launch dialog (ui, the default) "
        "or by sending the mutations it sends (graphql)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, databases)"
    )
    parser.add_argument(
        "--time-week",
        type=int,
        default=0,
        metavar="N",
        help="after the check, launch the whole graph for the last week N more times from the "
        "launch dialog, one at a time, and time each from the click to its end",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the check, keep the UI running (Ctrl+C stops it) to look around",
    )
    return parser.parse_args(argv)


def preflight(args: argparse.Namespace) -> str | None:
    """Why the check cannot run here, or None."""
    out = args.out.resolve()
    if out == ROOT or ROOT in out.parents:
        return f"--out {args.out} is inside the repository; give a folder outside it"
    if not args.chromium.exists():
        return f"no browser at {args.chromium}: `apt-get install -y chromium` (Debian's)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: `pip install -e '.[dev]'` (make install)"
    if (ROOT / ".env").exists():
        return (
            f"{ROOT / '.env'} exists: Dagster commands load it and its values win over the "
            "check's (a real OPENAI_BASE_URL or database). Move it aside for the check."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = preflight(args)
    if problem:
        print(f"ui-check: {problem}", file=sys.stderr)
        return 2
    from tools.ui_check.scenario import run_check

    # A TERM (a CI timeout, `kill`) unwinds like Ctrl+C: the webserver, the daemon and the
    # browser are stopped on the way out, not left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="kidsfin_ui_check_"))
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()
    print(f"ui-check: temporary folder {tmp}, screenshots in {args.out}", flush=True)
    try:
        outcome = run_check(args, tmp, api_key=f"sk-ui-check-{secrets.token_hex(8)}")
    except CheckFailed as exc:
        print(f"\nui-check: FAILED: {exc}", file=sys.stderr)
        print(f"ui-check: logs kept in {tmp}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nui-check: interrupted; logs kept in {tmp}", file=sys.stderr)
        return 130
    finally:
        print(f"ui-check: took {time.monotonic() - started:.0f} s", flush=True)
    print("\nui-check: screenshots (look at them):")
    for path in outcome.screenshots:
        print(f"  {path}")
    for note in outcome.notes:
        print(f"ui-check: note: {note}")
    if outcome.problems:
        print(f"\nui-check: FAILED, {len(outcome.problems)} problem(s):", file=sys.stderr)
        for problem in outcome.problems:
            print(f"  - {problem}", file=sys.stderr)
        print(f"ui-check: screenshots in {args.out}; logs kept in {tmp}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nui-check: OK: every page showed what it should; screenshots in {args.out}")
    return 0
