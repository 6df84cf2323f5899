"""Settings: YAML, environment overrides, KIDSFIN_CONFIG, and errors that name the key."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kidsfin_assets.config.settings import DEFAULT_CONFIG, SettingsError, load_settings
from kidsfin_assets.config.weeks import Week, weekly_partitions
from kidsfin_assets.warehouse.db import DatabaseUrlError, normalize_url, redact

PROJECT = Path(__file__).resolve().parent.parent
MODULE = "kidsfin_assets.definitions"


def test_defaults_from_yaml() -> None:
    settings = load_settings()
    assert settings.weeks.timezone == "Asia/Ho_Chi_Minh"
    assert settings.trends.threshold == 0.10
    assert settings.openai.model == "gpt-4o-mini"
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("data/kidsfin.db")


def test_environment_overrides_any_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIDSFIN_WEEKS__START_DATE", "2025-12-29")
    monkeypatch.setenv("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "123")
    monkeypatch.setenv("KIDSFIN_PRIVACY__PSEUDONYMIZE", "false")
    monkeypatch.setenv("KIDSFIN_DATABASE_URL", "postgresql://u@h/db")
    settings = load_settings()
    assert settings.weeks.start_date == dt.date(2025, 12, 29)
    assert settings.openai.requests_per_minute == 123
    assert settings.privacy.pseudonymize is False
    assert settings.resolved_database_url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("KIDSFIN_WEEKS__START_DATE", "2026-01-06", "weeks.start_date"),  # a Tuesday
        ("KIDSFIN_WEEKS__TIMEZONE", "Mars/Olympus", "weeks.timezone"),
        ("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "lots", "openai.requests_per_minute"),
        ("KIDSFIN_TRENDS__THRESHOLD", "-1", "trends.threshold"),
        ("KIDSFIN_SOURCES__KIDS", "kids; drop table x", "sources.kids"),
    ],
)
def test_bad_value_names_the_key_and_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)
    assert env in str(error.value)


def test_kidsfin_config_points_at_another_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["openai"]["model"] = "gpt-4o"
    config["unknown_section"] = {"x": 1}
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    with pytest.raises(SettingsError, match="unknown_section"):
        load_settings()
    del config["unknown_section"]
    path.write_text(yaml.safe_dump(config))
    assert load_settings().openai.model == "gpt-4o"
    monkeypatch.setenv("KIDSFIN_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(SettingsError, match="not found"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("KIDSFIN_OPENAI__TIMEOUT_SECONDS", "soon", "openai.timeout_seconds"),
        # valid alone, refused when the OpenAI resource is made (check_token_budget)
        ("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", "500", "openai.tokens_per_minute"),
    ],
)
def test_bad_setting_stops_the_code_location_with_a_message(
    tmp_path: Path, variable: str, value: str, named: str
) -> None:
    env = {
        variable: value,
        "PATH": "/usr/bin:/bin",
        "DAGSTER_HOME": str(tmp_path),
    }
    # As the code server loads it: importing reads nothing, loading `defs` stops.
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", MODULE],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert named in done.stdout + done.stderr


def test_database_urls() -> None:
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert "secret" not in redact("postgresql://u:secret@h/db")
    with pytest.raises(DatabaseUrlError, match="unsupported"):
        normalize_url("mysql://u@h/db")
    for driver in ("psycopg", "asyncpg", "pg8000"):
        with pytest.raises(DatabaseUrlError, match=f"driver '{driver}'"):
            normalize_url(f"postgresql+{driver}://u@h/db")
    assert normalize_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_a_config_file_cannot_move_the_partitions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The partitions are fixed at import from the environment: a config file asking for
    another start is refused, naming the variable that does it."""
    from kidsfin_assets.definitions import build_definitions

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["weeks"]["start_date"] = "2025-12-29"
    path = tmp_path / "moved.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    with pytest.raises(SettingsError) as error:
        build_definitions(load_settings())
    assert "weeks.start_date" in str(error.value)
    assert "KIDSFIN_WEEKS__START_DATE" in str(error.value)


def test_only_complete_weeks_are_partitions() -> None:
    settings = load_settings()
    keys = weekly_partitions.get_partition_keys()
    assert keys[0] == "2026-01-05"
    last = Week.from_key(keys[-1], settings.weeks.timezone)
    assert last.is_complete()
    assert not last.shifted(1).is_complete()
    assert all(dt.date.fromisoformat(k).weekday() == 0 for k in keys)


def settings_error() -> str:
    """The message load_settings() stops with."""
    with pytest.raises(SettingsError) as error:
        load_settings()
    return str(error.value)


def test_unusable_database_url_stops_start_up_without_echoing_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIDSFIN_DATABASE_URL", "mysql://app:s3cret-pw@db.example/app")
    message = settings_error()
    assert "database_url" in message and "KIDSFIN_DATABASE_URL" in message
    assert "unsupported database 'mysql'" in message
    assert "s3cret-pw" not in message


def test_database_url_is_refused_in_a_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["database_url"] = "postgresql://app:s3cret-pw@db.example/app"
    path = tmp_path / "with_url.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    message = settings_error()
    assert "database_url" in message and "KIDSFIN_DATABASE_URL" in message
    assert "s3cret-pw" not in message


def test_model_missing_from_the_pricing_table_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIDSFIN_OPENAI__MODEL", "gpt-9-imaginary")
    message = settings_error()
    assert "openai.model" in message and "gpt-9-imaginary" in message
    assert "pricing" in message


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        # each passed start-up before and failed (or hung) a run later
        ("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "1", "openai.requests_per_minute"),
        ("KIDSFIN_OPENAI__TIMEOUT_SECONDS", "inf", "openai.timeout_seconds"),
        ("KIDSFIN_RETRY__INITIAL_WAIT_SECONDS", "inf", "retry.initial_wait_seconds"),
        ("KIDSFIN_RETRY__MAX_WAIT_SECONDS", "1e300", "retry.max_wait_seconds"),
        ("KIDSFIN_OPENAI__RATE_LIMIT_PERIOD_SECONDS", "inf", "openai.rate_limit_period_seconds"),
        ("KIDSFIN_DATABASE_URL", "postgresql://u:pw@h:port/db", "database_url"),
        ("KIDSFIN_SILVER__MAX_SHRINK_SHARE", "1.5", "silver.max_shrink_share"),
        # an empty folder wrote the exports or spool into the project's root
        ("KIDSFIN_EXPORT_DIR", " ", "export_dir"),
        ("KIDSFIN_WAREHOUSE__SPOOL_DIR", "", "warehouse.spool_dir"),
        # quoted in SQL the project writes itself
        ("KIDSFIN_WAREHOUSE__SCHEMA", 'kidsfin"; drop', "warehouse.schema"),
    ],
)
def test_settings_that_would_fail_later_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)
    assert "pw" not in str(error.value)


def test_a_token_budget_that_cannot_hold_two_requests_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tokens_per_minute below two of the largest requests (prompt plus max_tokens) would
    fail every gold run (llm/bucket.py); the definitions refuse it, naming the minimum."""
    from kidsfin_assets.definitions import build_definitions
    from kidsfin_assets.reports.openai_client import largest_request_tokens
    from kidsfin_assets.reports.prompt import load_prompt

    minimum = 2 * largest_request_tokens(load_prompt(), max_tokens=800)
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_TOKENS", "800")
    monkeypatch.setenv("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", str(minimum - 1))
    settings = load_settings()  # valid on their own: the prompt is not the settings' business
    with pytest.raises(SettingsError) as error:
        build_definitions(settings)
    assert str(error.value) == (
        f"invalid kidsfin settings in {DEFAULT_CONFIG}:\n  openai.tokens_per_minute: must be "
        f"at least {minimum} (two of the largest requests: prompt plus max_tokens=800), "
        f"got {minimum - 1}"
    )
    monkeypatch.setenv("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", str(minimum))
    build_definitions(load_settings())  # exactly two requests fit


def test_a_misspelled_variable_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIDSFIN_OPENAI_MODEL", "gpt-4o")  # one underscore: no such setting
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "KIDSFIN_OPENAI_MODEL" in str(error.value)


def test_a_pricing_file_that_is_not_a_mapping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prices = tmp_path / "pricing.yaml"
    prices.write_text("- gpt-4o-mini\n- 0.15\n")
    monkeypatch.setenv("KIDSFIN_OPENAI__PRICING_FILE", str(prices))
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "must be a mapping" in str(error.value)


def test_known_categories_default_to_the_demo_apps_and_can_be_set(monkeypatch) -> None:
    from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
    from kidsfin_assets.config.settings import PrivacySettings
    from kidsfin_assets.reports.offline_writer import CATEGORY_WORDS
    from kidsfin_assets.reports.prompt import OTHER_CATEGORIES_LABEL, TYPED_CATEGORY
    from kidsfin_demo.vocabulary import INCOME_CATEGORIES, SPENDING_CATEGORIES

    known = load_settings().privacy.known_categories
    assert known == DEFAULT_KNOWN_CATEGORIES == PrivacySettings().known_categories
    assert {*SPENDING_CATEGORIES, *INCOME_CATEGORIES} <= set(known)
    assert set(CATEGORY_WORDS) - {OTHER_CATEGORIES_LABEL, TYPED_CATEGORY} <= set(known)
    monkeypatch.setenv("KIDSFIN_PRIVACY__KNOWN_CATEGORIES", '["bánh", "kem"]')
    assert load_settings().privacy.known_categories == ("bánh", "kem")
    monkeypatch.setenv("KIDSFIN_PRIVACY__KNOWN_CATEGORIES", '["bánh", " "]')
    with pytest.raises(SettingsError, match=r"privacy\.known_categories"):
        load_settings()


def test_pricing_loads_without_the_settings_module() -> None:
    """pricing.py reads its file on its own; settings imports it at the top (no cycle)."""
    code = (
        "import sys, kidsfin_assets.llm.pricing; "
        "print('kidsfin_assets.config.settings' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    from kidsfin_assets.config import errors, settings
    from kidsfin_assets.llm import pricing

    assert settings.SettingsError is errors.SettingsError is pricing.SettingsError


def test_settings_do_not_import_the_prompt_or_the_openai_client() -> None:
    """The dependency runs one way (prompt -> warehouse -> settings), so the token-budget
    check that needs the prompt is in definitions.py, not here."""
    code = "import sys, kidsfin_assets.config.settings; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert not loaded & {"kidsfin_assets.reports.prompt", "kidsfin_assets.reports.openai_client"}


def test_a_list_that_is_not_json_is_reported_by_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-settings' own error named only the section ("privacy"), as a traceback."""
    monkeypatch.setenv("KIDSFIN_PRIVACY__KNOWN_CATEGORIES", "ăn vặt, snacks")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        "invalid kidsfin settings: not JSON in KIDSFIN_PRIVACY__KNOWN_CATEGORIES "
        '(a list is written ["ăn vặt", "snacks"])'
    )


def pricing_without(tmp_path: Path, tier: str) -> Path:
    """config/pricing.yaml with every model's `tier` price taken out."""
    table = yaml.safe_load((PROJECT / "config" / "pricing.yaml").read_text())
    for price in table["models"].values():
        del price[tier]
    path = tmp_path / f"pricing-without-{tier}.yaml"
    path.write_text(yaml.safe_dump(table))
    return path


@pytest.mark.parametrize(
    ("key", "value", "tier", "without"),
    [
        ("mode", "batch", "batch", "sync"),
        # auto sends a week of batch_min_reports or more through the Batch API
        ("mode", "auto", "batch", "sync"),
        ("service_tier", "flex", "flex", "default"),
    ],
)
def test_a_tier_without_its_price_stops_the_code_location_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str, tier: str, without: str
) -> None:
    """Answers are priced at the tier that served them: started without that tier's price,
    the first batch or flex answer could not be priced (and, paid, not recorded). Loading
    the definitions (as Dagster loads the code location) stops, in one line naming the
    setting, the pricing file and what to do."""
    from kidsfin_assets.config.settings import get_settings
    from kidsfin_assets.definitions import defs

    prices = pricing_without(tmp_path, tier)
    env = {"KIDSFIN_OPENAI__PRICING_FILE": str(prices), f"KIDSFIN_OPENAI__{key.upper()}": value}
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    get_settings.cache_clear()
    try:
        defs()
    except SettingsError as error:
        message = str(error)
    else:
        pytest.fail(f"openai.{key}: {value} loaded with no {tier} price in {prices}")
    assert message == (
        f"openai.{key}: {value!r} needs a {tier} price for 'gpt-4o-mini' and {prices} has "
        f"none; add `{tier}: {{input, cached_input, output}}` under the model, or set "
        f"openai.{key}: {without}"
    )
    # The code location as Dagster loads it shows that line.
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", MODULE],
        cwd=PROJECT,
        env={**os.environ, **env, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and f"SettingsError: {message}\n" in done.stdout + done.stderr
    # With the tier's price (the project's pricing file), the same setting loads.
    monkeypatch.delenv("KIDSFIN_OPENAI__PRICING_FILE")
    get_settings.cache_clear()
    defs()
