"""The demo data generator: shape, validity, dirty rows, determinism, CLI and the COPY path."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.db import create_engine
from kidsfin_assets.demo_data import (
    EVENT_TYPES,
    NICKNAMES,
    TRICKY_NOTES,
    DemoSpec,
    DemoSummary,
    create_source_tables,
    generate,
    main,
)
from kidsfin_assets.settings import PROJECT_ROOT, SourceTables

TZ = "Asia/Ho_Chi_Minh"
END_WEEK = dt.date(2026, 10, 5)  # a Monday
NAMES = SourceTables()
VALID_KINDS = {"income", "spending", "saving", "withdrawal"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


def _load(engine: Engine, names: SourceTables = NAMES, **kwargs: Any) -> DemoSummary:
    kwargs.setdefault("end_week", END_WEEK)
    return generate(engine, names, DemoSpec(**kwargs))


def _rows(engine: Engine, table: str, order_by: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order_by}")
        ]


def _instant(value: Any) -> dt.datetime | None:
    """PostgreSQL gives aware datetimes; SQLite ISO text with an offset."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without offset: {value!r}"
    return parsed


def _week_starts(mondays: list[dt.date], tz: str = TZ) -> list[dt.datetime]:
    zone = zoneinfo.ZoneInfo(tz)
    days = [*mondays, mondays[-1] + dt.timedelta(days=7)]
    return [dt.datetime.combine(d, dt.time(0), tzinfo=zone) for d in days]


def _week_index(instant: dt.datetime, starts: list[dt.datetime]) -> int | None:
    for i in range(len(starts) - 1):
        if starts[i] <= instant < starts[i + 1]:
            return i
    return None


def _amount_defect(value: Any) -> str | None:
    if value is None:
        return "null_amount"
    if (isinstance(value, Decimal) and value.is_nan()) or (
        isinstance(value, float) and math.isnan(value)
    ):
        return "nan_amount"
    if value == 0:
        return "zero_amount"
    return "negative_amount" if value < 0 else None


def _defects(engine: Engine) -> Counter[str]:
    """Classify every source row the way the summary counts it (one defect a row)."""
    kids = {r[0] for r in _rows(engine, "kids", "kid_id")}
    found: Counter[str] = Counter()
    for _id, kid, at, kind, _cat, amount, _note in _rows(engine, "transactions", "txn_id"):
        reasons = [
            "orphan_kid" if kid not in kids else None,
            "missing_time" if at is None else None,
            "unknown_kind" if kind not in VALID_KINDS else None,
            _amount_defect(amount),
        ]
        reasons = [r for r in reasons if r]
        assert len(reasons) <= 1, f"row {_id} has several defects: {reasons}"
        found.update(f"transactions.{r}" for r in reasons)
    for _id, kid, at, _type in _rows(engine, "app_events", "event_id"):
        reasons = ["orphan_kid"] if kid not in kids else []
        reasons += ["missing_time"] if at is None else []
        assert len(reasons) <= 1
        found.update(f"app_events.{r}" for r in reasons)
    return found


def _valid_activity(engine: Engine) -> list[tuple[int, dt.datetime, str, Any]]:
    """(kid_id, instant, kind or event type, amount) of every valid source row."""
    kids = {r[0] for r in _rows(engine, "kids", "kid_id")}
    out = []
    for _id, kid, at, kind, _cat, amount, _note in _rows(engine, "transactions", "txn_id"):
        if kid in kids and at is not None and kind in VALID_KINDS and not _amount_defect(amount):
            out.append((kid, _instant(at), kind, amount))
    for _id, kid, at, etype in _rows(engine, "app_events", "event_id"):
        if kid in kids and at is not None:
            out.append((kid, _instant(at), etype, None))
    return out


def test_default_demo_is_ten_kids_six_weeks_of_continuous_activity(engine: Engine) -> None:
    summary = _load(engine)

    assert summary.kids == 10
    assert summary.weeks == [END_WEEK - dt.timedelta(weeks=5 - i) for i in range(6)]
    assert len(summary.late_starters) == 1
    counts = {t: len(_rows(engine, t, "1")) for t in ("transactions", "app_events")}
    assert counts == {"transactions": summary.transactions, "app_events": summary.app_events}
    assert len(_rows(engine, "savings_goals", "goal_id")) == summary.savings_goals > 0

    kids = _rows(engine, "kids", "kid_id")
    assert [k[0] for k in kids] == list(range(1, 11))
    assert len({k[1] for k in kids}) == 10 and {k[1] for k in kids} <= set(NICKNAMES)

    starts = _week_starts(summary.weeks)
    active: dict[int, set[int]] = {k[0]: set() for k in kids}
    for kid, at, _kind, amount in _valid_activity(engine):
        week = _week_index(at, starts)
        assert week is not None, f"activity outside the generated weeks: {at}"
        active[kid].add(week)
        if amount is not None:
            assert float(amount) % 1000 == 0, amount
    # Every timestamp, of invalid rows too, lies within the generated local weeks.
    stamps = [r[2] for r in _rows(engine, "transactions", "1") + _rows(engine, "app_events", "1")]
    assert all(_week_index(_instant(s), starts) is not None for s in stamps if s is not None)
    late = summary.late_starters[0]
    for kid, weeks in active.items():
        assert weeks == (set(range(2, 6)) if kid == late else set(range(6))), kid
    # The late starter signed up just before its first week.
    created = _instant(kids[late - 1][3])
    assert created is not None and starts[1] <= created < starts[2]


def test_demo_content_is_realistic(engine: Engine) -> None:
    summary = _load(engine)
    txns = _rows(engine, "transactions", "txn_id")
    valid = [t for t in txns if t[3] in VALID_KINDS and t[2] is not None and t[1] <= 10]
    allowances = [float(t[5]) for t in valid if t[4] == "allowance"]
    assert len(allowances) == 10 * 6 - 2  # one a kid-week; the late starter misses two
    assert all(50_000 <= a <= 200_000 for a in allowances)
    spending = [t for t in valid if t[3] == "spending"]
    assert {t[4] for t in spending} >= {"snacks", "toys", "books", "games", "transport", None}
    notes = [t[6] for t in txns]
    assert None in notes and "" in notes
    assert any(n in TRICKY_NOTES for n in notes), "no adversarial note"
    assert {t[3] for t in txns} <= VALID_KINDS | {"refund"}

    types = {e[3] for e in _rows(engine, "app_events", "event_id")}
    assert types <= set(EVENT_TYPES)
    assert {"login", "lesson_completed", "quiz_completed", "goal_created"} <= types

    starts = _week_starts(summary.weeks)
    for _gid, kid, _title, target, created, completed in _rows(engine, "savings_goals", "1"):
        assert 1 <= kid <= 10 and float(target) % 10_000 == 0
        created_at, completed_at = _instant(created), _instant(completed)
        assert created_at is not None and _week_index(created_at, starts) is not None
        assert completed_at is None or created_at < completed_at < starts[-1]

    # Personas and trends: last week's spending against the mean of the two before varies.
    spent: Counter[tuple[int, int]] = Counter()
    for kid, at, kind, amount in _valid_activity(engine):
        if kind == "spending":
            spent[kid, _week_index(at, starts)] += float(amount)
    trends = set()
    for kid in range(1, 11):
        base = (spent[kid, 4] + spent[kid, 3]) / 2
        change = (spent[kid, 5] - base) / base if base else math.inf
        trends.add("up" if change > 0.1 else "down" if change < -0.1 else "flat")
    assert {"up", "down"} <= trends


def test_dirty_rows_match_the_summary_and_clean_has_none(engine: Engine) -> None:
    dirty = _load(engine, kids=30, weeks=4)
    found = _defects(engine)
    assert found == Counter(dirty.invalid_by_reason)
    nan_kind = "null_amount" if engine.dialect.name == "sqlite" else "nan_amount"
    expected_kinds = {
        *(
            f"transactions.{d}"
            for d in ("orphan_kid", "missing_time", "unknown_kind", "zero_amount")
        ),
        *("transactions.negative_amount", f"transactions.{nan_kind}"),
        *("app_events.orphan_kid", "app_events.missing_time"),
    }
    assert set(dirty.invalid_by_reason) == expected_kinds
    share = dirty.invalid_rows / (dirty.transactions + dirty.app_events)
    assert 0.01 < share < 0.03
    quarantine = dirty.expected_quarantine()
    assert sum(quarantine["transactions"].values()) + sum(quarantine["app_events"].values()) == (
        dirty.invalid_rows
    )
    assert set(quarantine["transactions"]) == {
        "orphan_kid",
        "missing_time",
        "unknown_kind",
        "bad_amount",
    }
    dirty_valid = sorted(_valid_activity(engine), key=repr)

    clean = _load(engine, kids=30, weeks=4, dirty=False)
    assert clean.invalid_by_reason == {} and not _defects(engine)
    # Dirty rows are extra rows: the valid data is the same with or without them.
    assert sorted(_valid_activity(engine), key=repr) == dirty_valid
    assert clean.transactions == dirty.transactions - sum(
        v for k, v in dirty.invalid_by_reason.items() if k.startswith("transactions.")
    )


def test_reload_replaces_and_is_deterministic(engine: Engine) -> None:
    def dump() -> dict[str, list[tuple[Any, ...]]]:
        return {
            t: _rows(engine, t, "1")
            for t in ("kids", "transactions", "app_events", "savings_goals")
        }

    first = _load(engine, kids=12, weeks=3, seed=7)
    before = dump()
    second = _load(engine, kids=12, weeks=3, seed=7)
    after = dump()
    assert after == before  # same rows, no duplicates
    assert len(after["transactions"]) == second.transactions == first.transactions
    assert len(after["kids"]) == 12
    _load(engine, kids=12, weeks=3, seed=8)
    assert dump()["transactions"] != before["transactions"]


def test_source_tables_and_indexes(engine: Engine) -> None:
    create_source_tables(engine, NAMES)
    create_source_tables(engine, NAMES)  # idempotent
    inspector = sa.inspect(engine)
    indexes = {
        t: {i["name"] for i in inspector.get_indexes(t)} for t in ("transactions", "app_events")
    }
    assert indexes["transactions"] >= {"ix_transactions_occurred_at", "ix_transactions_kid_id"}
    assert "ix_app_events_occurred_at" in indexes["app_events"]
    types = {c["name"]: str(c["type"]) for c in inspector.get_columns("transactions")}
    if engine.dialect.name == "sqlite":
        assert types["occurred_at"] == "TEXT" and types["amount"] == "REAL"
        assert types["txn_id"] == "INTEGER"
    else:
        assert types["occurred_at"] == "TIMESTAMP" and types["amount"] == "NUMERIC(14, 2)"
        assert types["txn_id"] == "BIGINT"
        assert inspector.get_foreign_keys("transactions") == []


def test_schema_qualified_tables_on_postgres(pg_url: str) -> None:
    names = SourceTables(
        kids="app.kids",
        transactions="app.transactions",
        app_events="app.app_events",
        savings_goals="app.savings_goals",
    )
    engine = create_engine(pg_url)
    try:
        summary = _load(engine, names, kids=5, weeks=2)
        assert len(_rows(engine, "app.kids", "1")) == 5
        assert len(_rows(engine, "app.transactions", "1")) == summary.transactions
        indexes = {i["name"] for i in sa.inspect(engine).get_indexes("transactions", "app")}
        assert "ix_transactions_occurred_at" in indexes
    finally:
        engine.dispose()


def test_dst_zone_stays_within_local_weeks(sqlite_url: str) -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: offsets change inside the range.
    engine = create_engine(sqlite_url)
    summary = _load(
        engine, kids=10, weeks=2, end_week=dt.date(2026, 10, 26), timezone="Europe/Berlin"
    )
    starts = _week_starts(summary.weeks, "Europe/Berlin")
    stamps = [r[2] for r in _rows(engine, "transactions", "txn_id") if r[2] is not None]
    assert {s[-6:] for s in stamps} == {"+02:00", "+01:00"}
    assert all(_week_index(_instant(s), starts) is not None for s in stamps)
    engine.dispose()


def test_default_end_week_is_the_last_complete_week() -> None:
    friday = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
    assert DemoSpec(weeks=2).week_starts(friday) == [dt.date(2026, 11, 9), dt.date(2026, 11, 16)]
    # Sunday 23:30 UTC is already Monday in Ho Chi Minh City: the week just ended counts.
    late_sunday = dt.datetime(2026, 11, 22, 17, 30, tzinfo=dt.UTC)
    assert DemoSpec(weeks=1).week_starts(late_sunday) == [dt.date(2026, 11, 16)]
    with pytest.raises(ValueError, match="Monday"):
        DemoSpec(end_week=dt.date(2026, 10, 6))
    with pytest.raises(ValueError, match="kids"):
        DemoSpec(kids=0)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kidsfin_assets.demo_data", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_loads_and_prints_summary(database_url: str) -> None:
    url = database_url
    if url.startswith("postgresql"):
        # Trust auth ignores the password; it must still never be printed.
        url = url.replace("postgres@", "postgres:s3cret@", 1)
    run = _cli(
        *("--database-url", url, "--kids", "12", "--weeks", "3"),
        *("--end-week", "2026-10-05", "--clean"),
    )
    assert run.returncode == 0, run.stderr
    assert "s3cret" not in run.stdout + run.stderr
    assert "kids:          12" in run.stdout
    assert "2026-09-21 .. 2026-10-05 (3 weeks" in run.stdout
    assert "invalid rows:  0" in run.stdout
    engine = create_engine(database_url)
    try:
        assert len(_rows(engine, "kids", "1")) == 12
        assert not _defects(engine)
    finally:
        engine.dispose()


def test_cli_rejects_an_end_week_that_is_not_a_monday() -> None:
    run = _cli("--end-week", "2026-10-06")
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0, run.stderr
    assert "Tuesday" in run.stderr and "Monday" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "args",
    [["--kids", "0"], ["--weeks", "x"], ["--end-week", "2026-13-01"], ["--bogus"]],
)
def test_cli_bad_arguments(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("kidsfin-demo-data: error:") and err.count("\n") == 1


def test_cli_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--database-url", "postgresql://kid:s3cret@127.0.0.1:1/nowhere", "--kids", "1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot load demo data" in err and "s3cret" not in err


def test_scale_copy_path_on_postgres(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        summary = _load(engine, kids=2_000, weeks=2, txns_per_kid_week=10)
        assert summary.elapsed_seconds < 30
        with engine.connect() as conn:

            def scalar(sql: str) -> Any:
                return conn.exec_driver_sql(sql).scalar_one()

            assert scalar("SELECT count(*) FROM kids") == 2_000
            assert scalar("SELECT count(DISTINCT nickname) FROM kids") == 2_000
            assert scalar("SELECT count(*) FROM transactions") == summary.transactions
            assert scalar("SELECT count(*) FROM app_events") == summary.app_events
            assert scalar("SELECT count(*) FROM savings_goals") == summary.savings_goals
            assert 36_000 < summary.transactions < 44_000  # about 10 a kid-week, +2 % dirty
            nan = scalar("SELECT count(*) FROM transactions WHERE amount = 'NaN'")
            assert nan == summary.invalid_by_reason["transactions.nan_amount"] > 0
            # CSV round trip: empty notes stay empty strings, hostile text stays intact.
            assert scalar("SELECT count(*) FROM transactions WHERE note = ''") > 0
            assert scalar("SELECT count(*) FROM transactions WHERE note IS NULL") > 0
            notes = {r[0] for r in conn.exec_driver_sql("SELECT DISTINCT note FROM transactions")}
            assert set(TRICKY_NOTES) <= notes
    finally:
        engine.dispose()
