"""The benchmarks' scratch databases: two runs on one server never drop each other's."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from bench import common


def _databases(admin: sa.Engine) -> set[str]:
    with admin.connect() as conn:
        return set(conn.exec_driver_sql("SELECT datname FROM pg_database").scalars())


def test_two_runs_of_one_benchmark_get_databases_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kidsfin_assets_tests.conftest import _admin_url

    monkeypatch.setenv(common.ADMIN_URL_ENV, _admin_url())
    admin = sa.create_engine(_admin_url())
    try:
        with common.scratch_database("silver_s") as first:
            first_name = sa.engine.make_url(first).database
            with common.scratch_database("silver_s") as second:
                second_name = sa.engine.make_url(second).database
                assert first_name != second_name
                assert {first_name, second_name} <= _databases(admin)
            # The second run's clean-up dropped its own database only.
            assert first_name in _databases(admin)
            assert second_name not in _databases(admin)
        assert first_name not in _databases(admin)
    finally:
        admin.dispose()


def test_gold_offline_says_how_fast_the_cpu_ran_through_the_run() -> None:
    """The speed samples name the share of the run at half speed, and the note scales what
    the CPUs allow by the median against the fastest (a run at half speed all through allows
    twice its own rate at full speed)."""
    from bench import gold_offline
    from bench.environment import reference_ms

    summary = gold_offline.speed_summary([20.0, 40.0, 39.0, 21.0, 38.0])
    assert summary["speed_ms_fastest"] == 20.0 and summary["speed_ms_median"] == 38.0
    assert summary["slow_share"] == 0.6  # 38, 39, 40: at 1.6x the fastest or slower
    note = gold_offline.speed_note({**summary, "cpu_ms_per_report": 2.0})
    allowed = round((os.cpu_count() or 1) * 1000 / 2.0 * 38.0 / 20.0)
    assert "60% of the run" in note and f"~{allowed:,} reports a second" in note
    assert "not sampled" in gold_offline.speed_note(gold_offline.speed_summary([]))
    assert reference_ms(gold_offline.SPEED_ADDITIONS) > 0
