"""`kidsfin-demo-data` / `python -m kidsfin_demo`: load demo data into the source tables."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.config.settings import SettingsError, SourceTables
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets.warehouse.db import DatabaseUrlError, create_engine, one_line_error, redact
from kidsfin_demo.loading import generate
from kidsfin_demo.spec import DemoSpec, DemoSummary

PROG = "kidsfin-demo-data"
N = TypeVar("N", int, float)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the message says what is wrong.
        self.exit(2, f"{PROG}: error: {message}\n")


def _checked(
    parse: Callable[[str], N], noun: str, ok: Callable[[N], bool], rule: str
) -> Callable[[str], N]:
    """An argparse type: `parse` the text, else "'x' is not <noun>"; then `ok`, else
    "'x' must be <rule>"."""

    def check(text: str) -> N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value

    return check


_positive_int = _checked(int, "a whole number", lambda v: v >= 1, "at least 1")
_non_negative_int = _checked(int, "a whole number", lambda v: v >= 0, "at least 0")
_positive_float = _checked(float, "a number", lambda v: 0 < v <= 1000, "in (0, 1000]")


def _monday(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None
    if day.weekday() != 0:
        raise argparse.ArgumentTypeError(f"{text} is a {day:%A}; weeks start on a Monday")
    return day


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Load realistic demo data into the app's source tables (replaces them).",
    )
    parser.add_argument("--database-url", help="default: KIDSFIN_DATABASE_URL or local SQLite")
    parser.add_argument("--kids", type=_positive_int, default=10)
    parser.add_argument("--weeks", type=_positive_int, default=6)
    parser.add_argument(
        "--end-week",
        type=_monday,
        metavar="YYYY-MM-DD",
        help="Monday of the last week (default: the last complete week)",
    )
    parser.add_argument("--seed", type=_non_negative_int, default=42)
    parser.add_argument("--clean", action="store_true", help="no deliberately invalid rows")
    parser.add_argument(
        "--txns-per-kid-week",
        type=_positive_float,
        default=8.0,
        help="volume: transactions a kid-week on average (default 8)",
    )
    return parser


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _print_summary(summary: DemoSummary, url: str, names: SourceTables, tz: str) -> None:
    weeks = summary.weeks
    invalid = ", ".join(f"{k}={v}" for k, v in sorted(summary.invalid_by_reason.items()))
    tables = ", ".join([names.kids, names.transactions, names.app_events, names.savings_goals])
    print(f"Loaded demo data into {redact(url)} ({tables})")
    print(f"  weeks:         {weeks[0]} .. {weeks[-1]} ({len(weeks)} weeks, {tz})")
    print(f"  kids:          {summary.kids:,}")
    print(f"  transactions:  {summary.transactions:,}")
    print(f"  app_events:    {summary.app_events:,}")
    print(
        f"  savings_goals: {summary.savings_goals:,} "
        f"({summary.savings_goals_completed:,} completed)"
    )
    print(f"  invalid rows:  {summary.invalid_rows:,}" + (f" ({invalid})" if invalid else ""))
    if summary.late_starters:
        print(f"  late starters: kid_id {', '.join(map(str, summary.late_starters))}")
    print(f"  elapsed:       {summary.elapsed_seconds:.1f} s")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(one_line_error(exc))
    url = args.database_url or settings.warehouse.database_url
    names = settings.sources
    tz = settings.analysis.timezone
    try:
        spec = DemoSpec(
            kids=args.kids,
            weeks=args.weeks,
            end_week=args.end_week,
            timezone=tz,
            seed=args.seed,
            dirty=not args.clean,
            txns_per_kid_week=args.txns_per_kid_week,
        )
    except ValueError as exc:
        _fail(str(exc), 2)
    engine: Engine | None = None
    try:
        engine = create_engine(url)
        summary = generate(engine, names, spec)
    except DatabaseUrlError as exc:
        _fail(str(exc), 2)
    except (sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
        _fail(f"cannot load demo data into {redact(url)}: {one_line_error(exc)}")
    except KeyboardInterrupt:
        _fail("interrupted; the previous rows are unchanged", 130)
    finally:
        if engine is not None:
            engine.dispose()
    _print_summary(summary, url, names, tz)


if __name__ == "__main__":
    main()
