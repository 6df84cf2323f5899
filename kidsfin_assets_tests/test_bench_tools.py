"""The benchmarks' scratch databases: two runs on one server never drop each other's."""

from __future__ import annotations

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
