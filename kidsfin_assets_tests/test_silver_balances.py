"""savings_balance carried forward (metrics.py) equals the full scan of docs/metrics.md, also
after late data and when weeks are materialised alone or out of order.

Silver reads raw, and stores every kid's balance with each week; it carries it from the
latest stored week (at most W-1) that is still valid for what raw holds (stored after the
latest load of every raw week up to it). Each test compares every silver row with the
pure-Python reference of test_silver_reference.py (all history summed from the source),
and checks which week each balance was carried from, so that a test cannot pass on the
full scan alone.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
import sqlalchemy as sa

from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import savings_balance_weeks
from kidsfin_assets_tests.helpers import (
    SourceDB,
    fetch,
    local,
    materialize_range,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.test_silver_reference import (
    differences,
    read_sources,
    reference,
    silver,
)
from kidsfin_demo import DemoSpec, generate

END = dt.date(2026, 3, 16)
WEEKS = [END - dt.timedelta(weeks=n) for n in range(5, -1, -1)]  # W1 .. W6, oldest first
W1, W2, W3, W4, W5, W6 = WEEKS
SPEC = DemoSpec(kids=12, weeks=6, end_week=END, seed=11, dirty=True)
LATE_SAVING = 777_000


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Settings:
    settings = use_database(monkeypatch, database_url)
    engine = db.create_engine(settings.warehouse.database_url)
    try:
        generate(engine, settings.sources, SPEC)
    finally:
        engine.dispose()
    return settings


def run_weeks(
    settings: Settings, first: dt.date, last: dt.date, selection: str = "group:raw or group:silver"
) -> None:
    """One real Dagster run of raw and silver (or `selection`) over [first, last], as a
    backfill launches it."""
    assert materialize_range(settings, first.isoformat(), last.isoformat(), selection).success


def run_silver(settings: Settings, first: dt.date, last: dt.date) -> None:
    run_weeks(settings, first, last, "group:silver")


def bases(settings: Settings) -> dict[dt.date, dt.date | None]:
    """Each stored week -> the week its balances were carried from (None: full scan)."""
    t = savings_balance_weeks
    rows = fetch(warehouse_engine(settings), sa.select(t.c.week_start, t.c.base_week))
    return {r["week_start"]: r["base_week"] for r in rows}


def assert_equals_full_scan(settings: Settings, weeks: list[dt.date]) -> None:
    source = read_sources(settings)
    threshold = Fraction(str(settings.analysis.trend_threshold))
    problems = [
        p
        for week in weeks
        for p in differences(week, reference(source, week, threshold), silver(settings, week))
    ]
    assert not problems, "silver differs from the full scan:\n" + "\n".join(problems)


def add_late_rows(settings: Settings) -> None:
    """A late saving in W2 and a late withdrawal in W3, for kids the demo has."""
    SourceDB(settings).txns(
        (990_000_001, 1, f"{W2 + dt.timedelta(days=2)} 09:00", "saving", None, LATE_SAVING),
        (990_000_002, 2, f"{W3 + dt.timedelta(days=4)} 18:00", "withdrawal", None, 12_000),
    )


def test_weeks_in_order_carry_the_balance_and_equal_the_full_scan(demo: Settings) -> None:
    run_weeks(demo, W1, W6)
    # Not a full scan each week: from W2 on, each week carried W-1's stored balances.
    assert bases(demo) == {W1: None, W2: W1, W3: W2, W4: W3, W5: W4, W6: W5}
    assert_equals_full_scan(demo, WEEKS)


def test_late_saving_rerun_in_order_from_its_week_equals_the_full_scan(demo: Settings) -> None:
    run_weeks(demo, W1, W6)
    before = silver(demo, W6)[1]["savings_balance"]
    add_late_rows(demo)
    run_weeks(demo, W2, W6)  # the changed week and every week after it, in order
    assert bases(demo) == {W1: None, W2: W1, W3: W2, W4: W3, W5: W4, W6: W5}
    assert_equals_full_scan(demo, WEEKS)
    assert float(silver(demo, W6)[1]["savings_balance"]) == float(before) + LATE_SAVING


def test_a_raw_week_loaded_again_stops_later_weeks_carrying_balances_stored_before(
    demo: Settings,
) -> None:
    """Late rows in W2 and W3: raw and silver re-run W2, raw alone W3. The balances stored
    with W3 .. W5 predate raw W3's new load, so W6 alone must not carry W3's: it carries
    W2's and reads raw W3 .. W5."""
    run_weeks(demo, W1, W6)
    add_late_rows(demo)
    run_weeks(demo, W2, W2)
    run_weeks(demo, W3, W3, "group:raw")
    run_weeks(demo, W6, W6)
    assert bases(demo)[W6] == W2
    assert_equals_full_scan(demo, [W2, W6])


def test_the_sensors_reruns_equal_the_full_scan(demo: Settings) -> None:
    """After late data in W3 the sensor re-runs W3, W4 and W5 (W4's and W5's silver wait
    for W3's raw when they start first: test_silver_window.py): each reads W3 from raw,
    none a stale balance."""
    run_weeks(demo, W1, W6)
    SourceDB(demo).txns((990_000_003, 3, f"{W3} 10:00", "saving", None, 55_000))
    for week in (W3, W4, W5):
        run_weeks(demo, week, week)
    assert_equals_full_scan(demo, [W3, W4, W5])


def test_a_week_alone_with_and_without_its_stored_predecessor(demo: Settings) -> None:
    run_weeks(demo, W1, W6, "group:raw")
    run_silver(demo, W6, W6)  # nothing stored before it: every raw week summed
    assert bases(demo) == {W6: None}
    run_silver(demo, W3, W3)
    run_silver(demo, W6, W6)  # W3 stored and still valid: carried from it
    assert bases(demo)[W6] == W3
    assert_equals_full_scan(demo, [W3, W6])


def test_a_late_kids_row_brings_its_earlier_savings_in_once_raw_loads_them_again(
    demo: Settings,
) -> None:
    """Rows of a kid_id with no kids row yet are quarantined by raw (orphan_kid). When the
    row arrives, the backfill from the kid's first row (README: what the sensor cannot see)
    brings them in, and the balance counts them, as the full scan does."""
    source = SourceDB(demo)
    source.txns(
        (990_000_010, 555, f"{W1} 09:00", "saving", None, 40_000),
        (990_000_011, 555, f"{W2} 09:00", "saving", None, 2_000),
    )
    run_weeks(demo, W1, W6)
    assert 555 not in silver(demo, W2)
    source.kids((555, "late"))
    source.txns((990_000_012, 555, f"{W6} 09:00", "income", None, 1_000))
    run_weeks(demo, W1, W6)
    assert bases(demo)[W6] == W5
    assert float(silver(demo, W6)[555]["savings_balance"]) == 42_000
    assert_equals_full_scan(demo, WEEKS)


def _goal(settings: Settings, kid: int, goal_id: int) -> dict:
    goals = silver(settings, W6)[kid]["savings_goals"]
    return next(g for g in goals if g["goal_id"] == goal_id)


def test_goal_progress_follows_late_data_through_the_carried_balance(demo: Settings) -> None:
    """A goal whose progress a late saving changes, and a goal completed late: after the
    re-run from the changed week, W6 (which carries W3's stored balance) says so."""
    run_weeks(demo, W1, W6)
    balance = float(silver(demo, W6)[1]["savings_balance"])
    source = SourceDB(demo)
    source.insert(
        source.src.savings_goals,
        [
            {
                "goal_id": 990_000_001,
                "kid_id": 1,
                "title": "late goal",
                "target_amount": max(balance, 0) + LATE_SAVING / 2,
                "created_at": local(f"{W2} 08:00"),
                "completed_at": None,
            },
            {
                "goal_id": 990_000_002,
                "kid_id": 2,
                "title": "done late",
                "target_amount": 1000,
                "created_at": local(f"{W3} 08:00"),
                "completed_at": None,
            },
        ],
    )
    run_weeks(demo, W6, W6)  # raw lists the week's goals
    assert _goal(demo, 1, 990_000_001)["progress_percent"] < 100
    assert _goal(demo, 2, 990_000_002)["open_at_week_end"] is True
    add_late_rows(demo)
    with source.engine.begin() as conn:  # completed in W6, written late
        t = source.src.savings_goals
        done = source._value(local(f"{W6} 09:00"))
        conn.execute(sa.update(t).where(t.c.goal_id == 990_000_002).values(completed_at=done))
    run_weeks(demo, W2, W6)
    assert bases(demo)[W6] == W5  # carried, not a full scan
    assert_equals_full_scan(demo, WEEKS)
    late = _goal(demo, 1, 990_000_001)
    assert (late["progress_percent"], late["reached"]) == (100, True)
    done = _goal(demo, 2, 990_000_002)
    assert (done["open_at_week_end"], done["completed_in_week"]) == (False, True)
