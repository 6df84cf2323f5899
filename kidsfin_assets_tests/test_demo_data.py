"""The demo data generator: shape, validity, dirty rows, determinism, CLI and the COPY path."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.defs.resources import SourcesResource
from kidsfin_assets.warehouse.db import create_engine
from kidsfin_demo import (
    DemoGenerator,
    DemoSpec,
    DemoSummary,
    create_source_tables,
    generate,
    generator,
    wallet,
)
from kidsfin_demo.cli import main
from kidsfin_demo.dirty import DIRTY_NOTE_PREFIX, ORPHAN_KID_BASE
from kidsfin_demo.vocabulary import (
    ALLOWANCE_CATEGORY,
    EVENT_TYPES,
    INCOME_CATEGORIES,
    KINDS,
    NICKNAMES,
    SPENDING_CATEGORIES,
    TRICKY_NOTES,
)

TZ = "Asia/Ho_Chi_Minh"
END_WEEK = dt.date(2026, 10, 5)  # a Monday
NAMES = SourcesResource()
VALID_KINDS_IN_ORDER = ("income", "spending", "saving", "withdrawal")
VALID_KINDS = set(VALID_KINDS_IN_ORDER)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


def _load(engine: Engine, names: SourcesResource = NAMES, **kwargs: Any) -> DemoSummary:
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
    allowances = [float(t[5]) for t in valid if t[4] == ALLOWANCE_CATEGORY]
    assert len(allowances) == 10 * 6 - 2  # one a kid-week; the late starter misses two
    assert all(50_000 <= a <= 200_000 for a in allowances)
    # The app's Vietnamese categories (and spending left without one).
    spending = [t for t in valid if t[3] == "spending"]
    assert {t[4] for t in spending} >= {"ăn vặt", "đồ chơi", "sách vở", "trò chơi", None}
    assert {t[4] for t in spending} <= {*SPENDING_CATEGORIES, None}
    assert {t[4] for t in valid if t[3] == "income"} == set(INCOME_CATEGORIES)
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
    names = SourcesResource(
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
        [sys.executable, "-m", "kidsfin_demo", *args],
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


# --- money that adds up -------------------------------------------------------------------

INCOME, SPENDING, SAVING, WITHDRAWAL = (KINDS.index(k) for k in VALID_KINDS_IN_ORDER)
# Per kind: what a row does to the wallet (cash) and to the savings.
WALLET_SIGN = np.array([1, -1, -1, 1])
SAVINGS_SIGN = np.array([0, 0, 1, -1])


@dataclass
class Money:
    """Valid transactions as arrays, each kid's in time order (then txn_id, as the app
    numbered them): kid, instant (epoch seconds), generated week, kind (KINDS index), VND."""

    kid: np.ndarray
    at: np.ndarray
    txn_id: np.ndarray
    week: np.ndarray
    kind: np.ndarray
    amount: np.ndarray

    @classmethod
    def sorted(cls, **columns: np.ndarray) -> Money:
        order = np.lexsort((columns["txn_id"], columns["at"], columns["kid"]))
        return cls(**{k: np.asarray(v)[order] for k, v in columns.items()})

    def running(self, values: np.ndarray) -> np.ndarray:
        """Cumulative sum per kid, row by row."""
        total = np.cumsum(values)
        first = np.flatnonzero(np.r_[True, self.kid[1:] != self.kid[:-1]])
        before = total[first] - values[first]
        return total - np.repeat(before, np.diff(np.r_[first, len(values)]))

    def wallet(self) -> np.ndarray:
        return self.running(WALLET_SIGN[self.kind] * self.amount)

    def savings(self) -> np.ndarray:
        return self.running(SAVINGS_SIGN[self.kind] * self.amount)

    def total(self, kind: int, by: np.ndarray) -> np.ndarray:
        mask = self.kind == kind
        return np.bincount(by[mask], self.amount[mask], minlength=int(by.max()) + 1)


@dataclass
class Goals:
    kid: np.ndarray
    target: np.ndarray
    created: np.ndarray  # epoch seconds
    completed: np.ndarray  # epoch seconds, -1 while open


def check_money_adds_up(money: Money) -> None:
    """Replayed in order, no wallet and no savings is ever below zero; over each kid's whole
    history spending and saving stay within the income, and saving within each week's."""
    wallet, savings = money.wallet(), money.savings()
    assert wallet.min() >= 0, f"kid {money.kid[wallet.argmin()]}: wallet {wallet.min()}"
    assert savings.min() >= 0, f"kid {money.kid[savings.argmin()]}: savings {savings.min()}"
    income = money.total(INCOME, money.kid)
    assert np.all(money.total(SPENDING, money.kid) <= income)
    assert np.all(money.total(SAVING, money.kid) <= income)
    kid_week = money.kid * (int(money.week.max()) + 1) + money.week
    # The week's savings rate as silver computes it (saving / income) is at most 100 %.
    assert np.all(money.total(SAVING, kid_week) <= money.total(INCOME, kid_week))


def check_goals(money: Money, goals: Goals) -> tuple[int, int]:
    """A goal completes at the first saving after it was set that brings the savings to its
    target, and stays open while none has; a kid has one open goal at a time. Returns
    (completed, open)."""
    savings = money.savings()
    is_saving = money.kind == SAVING
    for kid in np.unique(goals.kid):
        lo, hi = np.searchsorted(money.kid, [kid, kid + 1])
        mine = np.flatnonzero(goals.kid == kid)
        mine = mine[np.argsort(goals.created[mine])]
        for i, g in enumerate(mine):
            reached = np.flatnonzero(
                is_saving[lo:hi]
                & (money.at[lo:hi] > goals.created[g])
                & (savings[lo:hi] >= goals.target[g])
            )
            expected = money.at[lo + reached[0]] if len(reached) else -1
            assert goals.completed[g] == expected, (kid, goals.target[g], goals.completed[g])
            if i + 1 < len(mine):  # one open goal at a time: this one ended before the next
                assert 0 <= goals.completed[g] < goals.created[mine[i + 1]], kid
    done = int((goals.completed >= 0).sum())
    return done, len(goals.kid) - done


def _epoch(value: Any) -> int:
    instant = _instant(value)
    assert instant is not None
    return int(instant.timestamp())


def _money_from_db(engine: Engine, mondays: list[dt.date]) -> tuple[Money, Goals]:
    starts = _week_starts(mondays)
    kids = {r[0] for r in _rows(engine, "kids", "1")}
    rows = [
        (kid, _epoch(at), txn_id, _week_index(_instant(at), starts), KINDS.index(kind), amount)
        for txn_id, kid, at, kind, _cat, amount, _note in _rows(engine, "transactions", "1")
        if kid in kids and at is not None and kind in VALID_KINDS and not _amount_defect(amount)
    ]
    kid, at, txn_id, week, kind, amount = (np.array(c) for c in zip(*rows, strict=True))
    money = Money.sorted(
        kid=kid, at=at, txn_id=txn_id, week=week, kind=kind, amount=amount.astype(np.int64)
    )
    goal_rows = _rows(engine, "savings_goals", "goal_id")
    goals = Goals(
        kid=np.array([g[1] for g in goal_rows]),
        target=np.array([int(g[3]) for g in goal_rows]),
        created=np.array([_epoch(g[4]) for g in goal_rows]),
        completed=np.array([-1 if g[5] is None else _epoch(g[5]) for g in goal_rows]),
    )
    return money, goals


def test_money_adds_up_in_the_database(engine: Engine) -> None:
    summary = _load(engine, kids=60, weeks=12, seed=11)
    money, goals = _money_from_db(engine, summary.weeks)
    check_money_adds_up(money)
    done, still_open = check_goals(money, goals)
    assert done == summary.savings_goals_completed > 0 and still_open > 0
    assert done + still_open == summary.savings_goals
    # Goals reached are bought: a withdrawal, then a purchase noted with the goal's title.
    titles = {g[2] for g in _rows(engine, "savings_goals", "1") if g[5] is not None}
    notes = {t[6] for t in _rows(engine, "transactions", "1") if t[3] == "spending"}
    assert titles & notes


def test_dirty_rows_are_labelled_and_the_same_every_run(engine: Engine) -> None:
    first = _load(engine, kids=30, weeks=4, seed=3)
    kids = {r[0] for r in _rows(engine, "kids", "1")}
    labelled: Counter[str] = Counter()
    for txn_id, kid, at, kind, _cat, amount, note in _rows(engine, "transactions", "1"):
        defect = (
            "orphan_kid" if kid not in kids
            else "missing_time" if at is None
            else "unknown_kind" if kind not in VALID_KINDS
            else _amount_defect(amount)
        )  # fmt: skip
        if defect is None:
            assert not (note or "").startswith(DIRTY_NOTE_PREFIX), txn_id
        else:
            assert note == DIRTY_NOTE_PREFIX + defect, (txn_id, note)
            labelled[f"transactions.{defect}"] += 1
        assert kid in kids or kid >= ORPHAN_KID_BASE
    for _id, kid, _at, _type in _rows(engine, "app_events", "1"):
        assert kid in kids or kid >= ORPHAN_KID_BASE
    txn_reasons = {k: v for k, v in first.invalid_by_reason.items() if k.startswith("trans")}
    assert labelled == Counter(txn_reasons)
    again = _load(engine, kids=30, weeks=4, seed=3)
    assert again.invalid_by_reason == first.invalid_by_reason


def _in_memory(spec: DemoSpec) -> tuple[DemoGenerator, Money, Goals, dict[str, np.ndarray]]:
    """Generate without a database: the valid transactions, goals, and the dirty rows' notes."""
    gen = DemoGenerator(spec)
    txns: dict[str, list[np.ndarray]] = {}
    goal_parts: dict[str, list[np.ndarray]] = {}
    for table, rows in gen.tables():
        into = txns if table == "transactions" else goal_parts if table == "savings_goals" else None
        if into is not None and len(rows):
            for name, values in rows.columns.items():
                into.setdefault(name, []).append(values)
    t = {k: np.concatenate(v) for k, v in txns.items()}
    g = {k: np.concatenate(v) for k, v in goal_parts.items()}
    amount = t["amount"]
    valid = (
        (t["kid_id"] <= spec.kids)
        & ~np.isnat(t["occurred_at"])
        & (t["kind"] < len(VALID_KINDS))
        & np.isfinite(amount)
        & (np.nan_to_num(amount) > 0)
    )
    at = t["occurred_at"][valid]
    money = Money.sorted(
        kid=t["kid_id"][valid],
        at=at.astype(np.int64),
        txn_id=t["txn_id"][valid],
        week=np.searchsorted(gen.bounds_utc, at, side="right") - 1,
        kind=t["kind"][valid].astype(np.int64),
        amount=amount[valid].astype(np.int64),
    )
    completed = g["completed_at"]
    goals = Goals(
        kid=g["kid_id"],
        target=g["target_amount"].astype(np.int64),
        created=g["created_at"].astype(np.int64),
        completed=np.where(np.isnat(completed), -1, completed.astype(np.int64)),
    )
    return gen, money, goals, {"note": t["note"][~valid], "kid": t["kid_id"][~valid]}


def test_two_years_of_two_thousand_kids_add_up() -> None:
    weeks = 104
    spec = DemoSpec(kids=2_000, weeks=weeks, end_week=END_WEEK, seed=1)
    gen, money, goals, dirty = _in_memory(spec)
    check_money_adds_up(money)
    done, still_open = check_goals(money, goals)
    assert done > 1_000 and still_open > 100

    # Bounded spending, no compounding: the last week against the first, for all kids and
    # kid by kid (its last four weeks against its first four).
    spent = money.total(SPENDING, money.week)
    assert 0.5 < spent[weeks - 1] / spent[0] < 2.5, spent[[0, weeks - 1]]
    kid_week_spent = np.zeros((spec.kids + 1, weeks))
    np.add.at(
        kid_week_spent, (money.kid, money.week), np.where(money.kind == SPENDING, money.amount, 0)
    )
    first, last = kid_week_spent[:, :4].sum(axis=1), kid_week_spent[:, -4:].sum(axis=1)
    ratio = last[first > 0] / first[first > 0]
    assert 0.5 < np.median(ratio) < 2.5 and np.percentile(ratio, 99) < 25
    # The volume asked for: about 8 valid rows a kid-week, from the first week to the last.
    per_kid_week = np.bincount(money.week, minlength=weeks) / spec.kids
    assert 7.0 < per_kid_week.mean() < 9.0 and per_kid_week.min() > 6.0

    # Dirty rows, labelled: one per defect counted, orphans far from real kids.
    summary = gen.summary(0.0)
    labels = Counter(str(n).removeprefix(DIRTY_NOTE_PREFIX) for n in dirty["note"])
    assert labels == Counter(
        {k.split(".")[1]: v for k, v in summary.invalid_by_reason.items() if k.startswith("tr")}
    )
    assert np.all((dirty["kid"] <= spec.kids) | (dirty["kid"] >= ORPHAN_KID_BASE))


def test_a_chunk_without_active_kids(monkeypatch: pytest.MonkeyPatch) -> None:
    # One kid a chunk: the late starter's chunk has nobody active in the first weeks.
    monkeypatch.setattr(generator, "KID_CHUNK", 1)
    gen, money, goals, _dirty = _in_memory(DemoSpec(kids=12, weeks=4, end_week=END_WEEK))
    check_money_adds_up(money)
    check_goals(money, goals)
    late = gen.summary(0.0).late_starters[0]
    assert set(money.week[money.kid == late]) == {2, 3}


def test_wallet_pass_equals_paying_row_by_row() -> None:
    rng = np.random.default_rng(5)
    group = np.sort(rng.integers(0, 50, 2_000))
    delta = rng.integers(-60, 40, len(group)) * 1000
    opening = rng.integers(0, 30, 50) * 1000
    moved, after = wallet.wallet_pass(group, delta, opening)
    wallets = opening.copy()
    for i, (kid, d) in enumerate(zip(group, delta, strict=True)):
        take = d if d >= 0 else -min(-d, wallets[kid])  # never more than the wallet holds
        wallets[kid] += take
        assert (moved[i], after[i]) == (abs(take), wallets[kid]), i
    assert (moved < np.abs(delta)).any() and (moved == 0).any()  # some rows were cut


def test_stable_order_equals_lexsort() -> None:
    rng = np.random.default_rng(6)
    low, high = rng.integers(0, 1 << 20, 5_000), rng.integers(0, 300, 5_000)
    assert np.array_equal(wallet.stable_order(low, high), np.lexsort((low, high)))
    with pytest.raises(ValueError, match="2\\*\\*32"):
        wallet.stable_order(np.array([-1]))
