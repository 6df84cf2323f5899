"""Silver W takes W-1's and W-2's figures (its trends' inputs) from silver's rows of W-1
when they are current for what raw holds, and from raw otherwise (metrics.py).

A row of W-1 holds W-1's own figures and, as its `_prev1` columns, W-2's. Each test first
proves that W really read them from there (a value changed by hand in W-1's stored rows
shows up in W), then that late data in W-1 or W-2, loaded by raw after W-1's silver ran,
makes W read raw again: every row equals the full scan of test_silver_reference.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.warehouse.tables import kid_weekly_analysis
from kidsfin_assets_tests.helpers import SourceDB, warehouse_engine
from kidsfin_assets_tests.test_silver_balances import (  # noqa: F401 (the fixture)
    W4,
    W5,
    W6,
    WEEKS,
    assert_equals_full_scan,
    demo,
    run_silver,
    run_weeks,
)
from kidsfin_assets_tests.test_silver_reference import silver

BY_HAND = 1_000  # added by hand to W5's stored figures, in đồng


def _change_w5_by_hand(settings: Settings, kid: int) -> tuple[float, float]:
    """W5's stored income (W5's own) and spending_prev1 (W4's) for one kid, made
    BY_HAND higher; returns the two changed values."""
    t = kid_weekly_analysis
    with warehouse_engine(settings).begin() as conn:
        changed = conn.execute(
            sa.update(t)
            .where(t.c.week_start == W5, t.c.kid_id == kid)
            .values(
                income_total=t.c.income_total + BY_HAND,
                spending_total_prev1=t.c.spending_total_prev1 + BY_HAND,
            )
            .returning(t.c.income_total, t.c.spending_total_prev1)
        ).one()
    return float(changed[0]), float(changed[1])


def _w6_shows(settings: Settings, kid: int, changed: tuple[float, float]) -> bool:
    """Whether W6's row for `kid` took W5's and W4's figures from the changed W5 row."""
    w6 = silver(settings, W6)[kid]
    return (float(w6["income_total_prev1"]), float(w6["spending_total_prev2"])) == changed


def _five_weeks_then_raw_w6(settings: Settings) -> int:
    """Raw and silver W1 .. W5, raw W6; a kid active in W5."""
    run_weeks(settings, WEEKS[0], W5)
    run_weeks(settings, W6, W6, "group:raw")
    return min(k for k, row in silver(settings, W5).items() if row["active_days"] > 0)


def test_w_takes_w1_and_w2_from_w1s_silver_rows(demo: Settings) -> None:  # noqa: F811
    kid = _five_weeks_then_raw_w6(demo)
    changed = _change_w5_by_hand(demo, kid)
    run_silver(demo, W6, W6)
    assert _w6_shows(demo, kid, changed)
    run_silver(demo, W5, W6)  # W5 again from raw: the hand-made change is gone
    assert not _w6_shows(demo, kid, changed)
    assert_equals_full_scan(demo, [W5, W6])


def _late_data_in(settings: Settings, week: dt.date, kid: int) -> None:
    """A late spending in `week`, loaded by raw alone: W5's silver now predates it."""
    SourceDB(settings).txns(
        (990_000_050, kid, f"{week + dt.timedelta(days=3)} 10:00", "spending", None, 4_321)
    )
    run_weeks(settings, week, week, "group:raw")


@pytest.mark.parametrize("late_in", [W5, W4], ids=["w1", "w2"])
def test_late_data_in_w1_or_w2_makes_w_read_raw_again(demo: Settings, late_in: dt.date) -> None:  # noqa: F811
    """Late rows in W-1 (W5), or in W-2 (W4: W5's own figures are still current, but its
    `_prev1`, W4's, are not), loaded by raw after W5's silver ran."""
    kid = _five_weeks_then_raw_w6(demo)
    changed = _change_w5_by_hand(demo, kid)
    _late_data_in(demo, late_in, kid)
    run_silver(demo, W6, W6)
    assert not _w6_shows(demo, kid, changed)
    assert_equals_full_scan(demo, [W6])


def test_w1_rows_deleted_by_hand_make_w_read_raw_again(demo: Settings) -> None:  # noqa: F811
    kid = _five_weeks_then_raw_w6(demo)
    t = kid_weekly_analysis
    with warehouse_engine(demo).begin() as conn:
        conn.execute(sa.delete(t).where(t.c.week_start == W5, t.c.kid_id == kid))
    run_silver(demo, W6, W6)
    assert_equals_full_scan(demo, [W6])
