"""Shared fixtures: a fresh real PostgreSQL database or SQLite file per test.

PostgreSQL comes from KIDSFIN_TEST_DATABASE_URL (default: the local server); each test
gets a database of its own, created from it and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from kidsfin_assets.warehouse.db import normalize_url

DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return normalize_url(os.environ.get("KIDSFIN_TEST_DATABASE_URL", DEFAULT_TEST_PG))


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's KIDSFIN_* or OPENAI_* environment, or another test's."""

    for name in list(os.environ):
        if name.startswith(("KIDSFIN_", "OPENAI_")) and name != "KIDSFIN_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("KIDSFIN_EXPORTS__EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("KIDSFIN_FILE_LOGGER__PATH", str(tmp_path / "logs" / "kidsfin.log"))
    monkeypatch.setenv("KIDSFIN_WAREHOUSE__SPOOL_DIR", str(tmp_path / "spool"))
    yield


@contextlib.contextmanager
def _new_database(options: str = "") -> Iterator[str]:
    """A new, empty PostgreSQL database (CREATE DATABASE ... `options`); dropped after."""
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"kidsfin_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" {options}')
    url = make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from kidsfin_assets.warehouse.db import _cached_engine

        _cached_engine.cache_clear()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped after the test."""
    with _new_database() as url:
        yield url


def _locale_collation_options() -> str | None:
    """CREATE DATABASE options for an English (non-C) default collation, if the server has
    one: ICU en-US (PostgreSQL 15+), else the OS locale en_US.utf8; None if neither."""
    admin = sa.create_engine(_admin_url())
    try:
        with admin.connect() as conn:
            version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
            names = set(conn.exec_driver_sql("SELECT collname FROM pg_collation").scalars())
    finally:
        admin.dispose()
    if version >= 150000 and "en-US-x-icu" in names:
        return (
            "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        )
    for libc in ("en_US.utf8", "en_US.UTF-8"):
        if libc in names:
            return f"TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE '{libc}' LC_CTYPE '{libc}'"
    return None


@pytest.fixture
def pg_locale_url() -> Iterator[str]:
    """Like pg_url, but the database sorts text by English rules ('a' < 'B'), not by bytes
    as the suite's other (C collation) databases do; skipped if the server has no such
    collation."""
    options = _locale_collation_options()
    if options is None:
        pytest.skip("this PostgreSQL has neither ICU en-US nor the en_US.utf8 locale")
    with _new_database(options) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kidsfin.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on a real PostgreSQL database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


# The key the suite's OpenAI-compatible server expects in the gold tests.
TEST_API_KEY = "sk-test-kidsfin-0123456789"


@pytest.fixture
def server() -> Iterator[Any]:
    """The suite's OpenAI-compatible server on 127.0.0.1, answering within ~20 ms."""
    from openai_test_server import running_server

    with running_server(api_key=TEST_API_KEY, latency=0.02) as srv:
        yield srv
