"""Shared fixtures: a fresh real PostgreSQL database or SQLite file per test.

PostgreSQL comes from KIDSFIN_TEST_DATABASE_URL (default: the local server); each test
gets a database of its own, created from it and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from kidsfin_assets.db import normalize_url

DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return normalize_url(os.environ.get("KIDSFIN_TEST_DATABASE_URL", DEFAULT_TEST_PG))


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's KIDSFIN_* or OPENAI_* environment, or another test's."""
    from kidsfin_assets.settings import get_settings

    for name in list(os.environ):
        if name.startswith(("KIDSFIN_", "OPENAI_")) and name != "KIDSFIN_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("KIDSFIN_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("KIDSFIN_LOG_FILE", str(tmp_path / "logs" / "kidsfin.log"))
    monkeypatch.setenv("KIDSFIN_WAREHOUSE__SPOOL_DIR", str(tmp_path / "spool"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped after the test."""
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"kidsfin_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from kidsfin_assets.db import _cached_engine

        _cached_engine.cache_clear()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kidsfin.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on a real PostgreSQL database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)
