"""Settings: each a resource's field, read from the file (a section per resource) and the
environment, and a bad value stopping the code location in one line naming
`<resource>.<field>`, its rule and where the value came from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kidsfin_assets.config import settings as settings_module
from kidsfin_assets.config.settings import (
    RetiredSettingWarning,
    SettingsError,
    SettingsModel,
    SettingsResource,
)
from kidsfin_assets.config.weeks import (
    DEFAULT_TIMEZONE,
    WEEKS,
    Week,
    check_weeks,
    weekly_partitions,
)
from kidsfin_assets.defs.resources import SECTIONS, Settings, load_settings
from kidsfin_assets.warehouse.db import DatabaseUrlError, normalize_url, redact

PROJECT = Path(__file__).resolve().parent.parent
MODULE = "kidsfin_assets.definitions"


def test_each_section_is_a_resource_key_and_each_setting_a_field() -> None:
    """`Settings` holds one section per resource; its key is the field's name, the file's
    section and the resource key in the definitions (test_definitions.py)."""
    assert [section.key for section in SECTIONS] == [f.name for f in dataclasses.fields(Settings)]
    for section in SECTIONS:
        assert issubclass(section, SettingsResource | SettingsModel)
        for name, field in section.model_fields.items():
            how = (field.json_schema_extra or {}).get("kidsfin")  # type: ignore[union-attr]
            if how is None:  # inherited, no setting (dagster-openai's own fields)
                continue
            assert field.description, f"{section.key}.{name} has no description"
            assert not field.is_required(), f"{section.key}.{name} has no default"


def test_the_defaults_are_the_fields_own() -> None:
    """config/pipeline.yaml sets nothing: every value is its field's default."""
    settings = load_settings()
    assert settings.analysis.timezone == DEFAULT_TIMEZONE
    assert settings.analysis.trend_threshold == 0.10
    assert settings.openai.model == "gpt-4o-mini"
    assert settings.warehouse.database_url.startswith("sqlite:///")
    assert settings.warehouse.database_url.endswith("data/kidsfin.db")
    sections = [getattr(settings, f.name) for f in dataclasses.fields(settings)]
    conftest_sets = {"spool_dir", "export_dir", "path"}  # temporary folders
    assert all(not section.model_fields_set - conftest_sets for section in sections)


def test_environment_overrides_any_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "123")
    monkeypatch.setenv("KIDSFIN_PRIVACY__PSEUDONYMIZE", "false")
    monkeypatch.setenv("KIDSFIN_ANALYSIS__TREND_THRESHOLD", "0.25")
    monkeypatch.setenv("KIDSFIN_DATABASE_URL", "postgresql://u@h/db")
    settings = load_settings()
    assert settings.openai.requests_per_minute == 123
    assert settings.privacy.pseudonymize is False
    assert settings.analysis.trend_threshold == 0.25
    assert settings.warehouse.database_url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("env", "value", "line"),
    [
        (
            "KIDSFIN_OPENAI__REQUESTS_PER_MINUTE",
            "lots",
            "openai.requests_per_minute: Input should be a valid integer, unable to parse "
            "string as an integer, got 'lots'",
        ),
        (
            "KIDSFIN_ANALYSIS__TREND_THRESHOLD",
            "-1",
            "analysis.trend_threshold: Input should be greater than or equal to 0, got '-1'",
        ),
        (
            "KIDSFIN_SOURCES__KIDS",
            "kids; drop table x",
            "sources.kids: 'kids; drop table x' is not a table name (letters, digits, _; "
            "schema.table)",
        ),
        (
            "KIDSFIN_OPENAI__API",
            "fast",
            "openai.api: must be 'sync', 'batch' or 'auto', got 'fast'",
        ),
    ],
)
def test_a_bad_value_from_the_environment_is_one_line_naming_field_rule_and_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, line: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == f"{line} (from environment variable {env})"


def write_config(tmp_path: Path, document: dict[str, Any], name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


def test_a_bad_value_from_the_file_is_one_line_naming_field_rule_and_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(tmp_path, {"analysis": {"trend_threshold": -1}})
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        f"analysis.trend_threshold: Input should be greater than or equal to 0, got -1 "
        f"(from {path})"
    )


def test_kidsfin_config_points_at_another_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(tmp_path, {"openai": {"model": "gpt-4o"}, "unknown_section": {"x": 1}})
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    with pytest.raises(SettingsError, match=r"unknown_section\.x: no such setting"):
        load_settings()
    path = write_config(tmp_path, {"openai": {"model": "gpt-4o", "modle": "x"}})
    with pytest.raises(SettingsError, match=r"openai\.modle: no such setting"):
        load_settings()
    path = write_config(tmp_path, {"openai": {"model": "gpt-4o"}})
    assert load_settings().openai.model == "gpt-4o"
    monkeypatch.setenv("KIDSFIN_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(SettingsError, match="not found"):
        load_settings()


# What config/pipeline.yaml said before each setting was a field of the resource holding it.
OLD_FILE = {
    "trends": {"threshold": 0.2},
    "silver": {"max_shrink_share": 0.4},
    "retry": {"max_attempts": 3, "step_max_retries": 1},
    "checks": {"min_grounded_share": 0.9},
    "openai": {"mode": "auto", "batch_size": 10},
    "warehouse": {"schema": "kidsfin"},
    "export_dir": "data/exports",
    "export_format": "json",
    "log_file": "data/logs/kidsfin.log",
}
NEW_NAMES = {
    "trends.threshold": "analysis.trend_threshold",
    "silver.max_shrink_share": "analysis.max_shrink_share",
    "retry.max_attempts": "openai.retry_max_attempts",
    "retry.step_max_retries": "step_retry.max_retries",
    "checks.min_grounded_share": "check_limits.min_grounded_share",
    "openai.mode": "openai.api",
    "openai.batch_size": "openai.progress_group_size",
    "warehouse.schema": "warehouse.schema_name",
    "export_dir": "exports.export_dir",
    "export_format": "exports.format",
    "log_file": "file_logger.path",
}


def test_a_file_using_an_old_name_is_refused_naming_the_new_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(tmp_path, OLD_FILE)
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    with pytest.raises(SettingsError) as error:
        load_settings()
    lines = str(error.value).splitlines()
    assert sorted(lines) == sorted(
        f"{old}: renamed {new}; rename it in {path}" for old, new in NEW_NAMES.items()
    )


def test_a_file_naming_the_threaded_client_is_refused_saying_it_was_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(tmp_path, {"openai": {"concurrency": "threads"}})
    monkeypatch.setenv("KIDSFIN_CONFIG", str(path))
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        f"openai.concurrency in {path}: 'threads': the threaded client was removed; the event "
        "loop is the only client (its requests in flight and the bucket's leases sized from "
        "the limits): delete the setting"
    )
    path = write_config(tmp_path, {"openai": {"client": "async"}})
    with pytest.warns(RetiredSettingWarning, match="openai.client in .*: the threaded client"):
        load_settings()


def test_an_old_variable_still_sets_its_setting_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deployments set variables the README documented (KIDSFIN_OPENAI__MODE,
    KIDSFIN_RETRY__STEP_MAX_RETRIES, KIDSFIN_EXPORT_DIR ...): they keep working, and say
    their new names."""
    monkeypatch.setenv("KIDSFIN_OPENAI__MODE", "auto")
    monkeypatch.setenv("KIDSFIN_RETRY__STEP_MAX_RETRIES", "0")
    monkeypatch.setenv("KIDSFIN_TRENDS__THRESHOLD", "0.2")
    monkeypatch.delenv("KIDSFIN_EXPORTS__EXPORT_DIR")
    monkeypatch.setenv("KIDSFIN_EXPORT_DIR", "s3://bucket/weekly")
    with pytest.warns(RetiredSettingWarning) as warned:
        settings = load_settings()
    assert settings.openai.api == "auto"
    assert settings.step_retry.max_retries == 0
    assert settings.analysis.trend_threshold == 0.2
    assert settings.exports.export_dir == "s3://bucket/weekly"
    said = {str(w.message) for w in warned}
    assert (
        "KIDSFIN_OPENAI__MODE is the old name of KIDSFIN_OPENAI__API (openai.api); rename it"
        in said
    )
    assert len(said) == 4
    # An old and a new name at once: which one wins would be a guess.
    monkeypatch.setenv("KIDSFIN_OPENAI__API", "sync")
    with pytest.raises(SettingsError, match="KIDSFIN_OPENAI__MODE and KIDSFIN_OPENAI__API"):
        load_settings()


def dagster_validate(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`dagster definitions validate` on the code location, as the code server loads it."""
    return subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", MODULE],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_bad_value_from_the_file_or_the_environment_stops_the_code_location_in_one_line(
    tmp_path: Path,
) -> None:
    """Through Dagster's own CLI: importing reads nothing, loading `defs` stops with the
    line naming the resource's field, its rule and where the value came from."""
    path = write_config(tmp_path, {"openai": {"max_concurrent": 5000}})
    from_file = dagster_validate({"KIDSFIN_CONFIG": str(path)}, tmp_path)
    from_env = dagster_validate({"KIDSFIN_CHECK_LIMITS__MAX_QUARANTINE_SHARE": "2"}, tmp_path)
    assert from_file.returncode != 0 and from_env.returncode != 0
    assert (
        "SettingsError: openai.max_concurrent: Input should be less than or equal to 4096, "
        f"got 5000 (from {path})\n"
    ) in from_file.stdout + from_file.stderr
    assert (
        "SettingsError: check_limits.max_quarantine_share: Input should be less than or equal "
        "to 1, got '2' (from environment variable KIDSFIN_CHECK_LIMITS__MAX_QUARANTINE_SHARE)\n"
    ) in from_env.stdout + from_env.stderr


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


@pytest.mark.parametrize(
    ("document", "variable"),
    [
        ({"weeks": {"start_date": "2025-12-29"}}, "KIDSFIN_WEEKS__START_DATE"),
        ({"weeks": {"timezone": "UTC"}}, "KIDSFIN_WEEKS__TIMEZONE"),
        ({"analysis": {"timezone": "UTC"}}, "KIDSFIN_WEEKS__TIMEZONE"),
    ],
)
def test_a_config_file_cannot_move_the_partitions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, document: dict[str, Any], variable: str
) -> None:
    """The partitions are fixed at import, from the environment: a file asking for another
    start or zone is refused, naming the variable that does it."""
    monkeypatch.setenv("KIDSFIN_CONFIG", str(write_config(tmp_path, document)))
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "fixed when the code location loads" in str(error.value)
    assert f"set {variable} in its environment" in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("KIDSFIN_WEEKS__START_DATE", "2026-01-06", "2026-01-06 is a Tuesday"),
        ("KIDSFIN_WEEKS__START_DATE", "soon", "'soon' is not a YYYY-MM-DD date"),
        ("KIDSFIN_WEEKS__TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        # valid, but after this process fixed its partitions
        ("KIDSFIN_WEEKS__START_DATE", "2025-12-29", "differs from the weekly partitions'"),
        ("KIDSFIN_WEEKS__TIMEZONE", "UTC", "differs from the weekly partitions'"),
    ],
)
def test_the_partitions_variables_are_checked_when_the_definitions_load(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as error:
        check_weeks({**os.environ, variable: value})
    assert str(error.value).startswith(f"{variable}: ") and says in str(error.value)
    check_weeks(os.environ)  # the process's own


def test_the_partitions_come_from_the_environment_of_the_process(tmp_path: Path) -> None:
    code = (
        "from kidsfin_assets.config.weeks import weekly_partitions as p; "
        "print(p.start.date(), p.timezone)"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "KIDSFIN_WEEKS__START_DATE": "2025-12-29",
        "KIDSFIN_WEEKS__TIMEZONE": "Europe/Berlin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["2025-12-29", "Europe/Berlin"], done.stderr
    assert (WEEKS.start_date, WEEKS.timezone) == (dt.date(2026, 1, 5), DEFAULT_TIMEZONE)


def test_only_complete_weeks_are_partitions() -> None:
    settings = load_settings()
    keys = weekly_partitions.get_partition_keys()
    assert keys[0] == "2026-01-05"
    last = Week.from_key(keys[-1], settings.analysis.timezone)
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
    assert message.startswith("warehouse.database_url: unsupported database 'mysql'")
    assert message.endswith("(from environment variable KIDSFIN_DATABASE_URL)")
    assert "s3cret-pw" not in message


@pytest.mark.parametrize(
    "document",
    [
        {"database_url": "postgresql://app:s3cret-pw@db.example/app"},
        {"warehouse": {"database_url": "postgresql://app:s3cret-pw@db.example/app"}},
    ],
)
def test_database_url_is_refused_in_a_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, document: dict[str, Any]
) -> None:
    monkeypatch.setenv("KIDSFIN_CONFIG", str(write_config(tmp_path, document)))
    message = settings_error()
    assert message == (
        "warehouse.database_url: not allowed in a config file (it holds a secret); set the "
        "environment variable KIDSFIN_DATABASE_URL"
    )


def test_model_missing_from_the_pricing_table_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIDSFIN_OPENAI__MODEL", "gpt-9-imaginary")
    message = settings_error()
    assert message.startswith("openai.model: no price for 'gpt-9-imaginary' in ")
    assert "pricing" in message


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        # each passed start-up before and failed (or hung) a run later
        ("KIDSFIN_OPENAI__REQUESTS_PER_MINUTE", "1", "openai.requests_per_minute"),
        ("KIDSFIN_OPENAI__TIMEOUT_SECONDS", "inf", "openai.timeout_seconds"),
        ("KIDSFIN_OPENAI__RETRY_INITIAL_WAIT_SECONDS", "inf", "openai.retry_initial_wait_seconds"),
        ("KIDSFIN_OPENAI__RETRY_MAX_WAIT_SECONDS", "1e300", "openai.retry_max_wait_seconds"),
        ("KIDSFIN_OPENAI__RATE_LIMIT_PERIOD_SECONDS", "inf", "openai.rate_limit_period_seconds"),
        ("KIDSFIN_DATABASE_URL", "postgresql://u:pw@h:port/db", "warehouse.database_url"),
        ("KIDSFIN_ANALYSIS__MAX_SHRINK_SHARE", "1.5", "analysis.max_shrink_share"),
        # an empty folder wrote the exports or spool into the project's root
        ("KIDSFIN_EXPORTS__EXPORT_DIR", " ", "exports.export_dir"),
        ("KIDSFIN_WAREHOUSE__SPOOL_DIR", "", "warehouse.spool_dir"),
        ("KIDSFIN_FILE_LOGGER__PATH", "", "file_logger.path"),
        # quoted in SQL the project writes itself
        ("KIDSFIN_WAREHOUSE__SCHEMA_NAME", 'kidsfin"; drop', "warehouse.schema_name"),
        ("KIDSFIN_OPENAI__MAX_CONCURRENT", "many", "openai.max_concurrent"),  # auto or a number
        ("KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS", "6", "openai.rate_limit_lease_seconds"),
    ],
)
def test_settings_that_would_fail_later_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    message = settings_error()
    assert message.startswith(f"{named}: ") and message.endswith(f"variable {env})")
    assert "\n" not in message and ":pw@" not in message


def test_a_token_budget_that_cannot_hold_two_requests_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tokens_per_minute below two of the largest requests (prompt plus max_tokens) would
    fail every gold run (llm/bucket.py): refused, naming the minimum."""
    from kidsfin_assets.reports.openai_client import largest_request_tokens
    from kidsfin_assets.reports.prompt import load_prompt

    minimum = 2 * largest_request_tokens(load_prompt(), max_tokens=800)
    monkeypatch.setenv("KIDSFIN_OPENAI__MAX_TOKENS", "800")
    monkeypatch.setenv("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", str(minimum - 1))
    assert settings_error() == (
        f"openai.tokens_per_minute: must be at least {minimum} (two of the largest requests: "
        f"prompt plus max_tokens=800), got {minimum - 1} "
        "(from environment variable KIDSFIN_OPENAI__TOKENS_PER_MINUTE)"
    )
    monkeypatch.setenv("KIDSFIN_OPENAI__TOKENS_PER_MINUTE", str(minimum))
    load_settings()  # exactly two requests fit


def test_a_misspelled_variable_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIDSFIN_OPENAI_MODEL", "gpt-4o")  # one underscore: no such setting
    monkeypatch.setenv("KIDSFIN_ANALYSIS__TIMEZONE", "UTC")  # no run or file moves the weeks
    monkeypatch.setenv("KIDSFIN_TEST_SOMETHING", "x")  # not a setting's name: not ours
    message = settings_error()
    assert "KIDSFIN_OPENAI_MODEL" in message
    assert "KIDSFIN_ANALYSIS__TIMEZONE: the weekly partitions'" in message
    assert "KIDSFIN_TEST_SOMETHING" not in message


def test_settings_know_no_test_or_benchmark_variables() -> None:
    """The rule for what is a setting's variable is the settings' own: no prefix of the
    test suite or the benchmarks is named in the product."""
    source = Path(settings_module.__file__).read_text()
    assert "KIDSFIN_TEST" not in source and "KIDSFIN_BENCH" not in source


def test_a_pricing_file_that_is_not_a_mapping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prices = tmp_path / "pricing.yaml"
    prices.write_text("- gpt-4o-mini\n- 0.15\n")
    monkeypatch.setenv("KIDSFIN_OPENAI__PRICING_FILE", str(prices))
    message = settings_error()
    assert message.startswith("openai.pricing_file: ") and "must be a mapping" in message


def test_known_categories_default_to_the_demo_apps_and_can_be_set(monkeypatch) -> None:
    from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
    from kidsfin_assets.defs.resources import PrivacyResource
    from kidsfin_assets.reports.offline_writer import CATEGORY_WORDS
    from kidsfin_assets.reports.prompt import OTHER_CATEGORIES_LABEL, TYPED_CATEGORY
    from kidsfin_demo.vocabulary import INCOME_CATEGORIES, SPENDING_CATEGORIES

    known = load_settings().privacy.known_categories
    assert known == list(DEFAULT_KNOWN_CATEGORIES) == PrivacyResource().known_categories
    assert {*SPENDING_CATEGORIES, *INCOME_CATEGORIES} <= set(known)
    assert set(CATEGORY_WORDS) - {OTHER_CATEGORIES_LABEL, TYPED_CATEGORY} <= set(known)
    monkeypatch.setenv("KIDSFIN_PRIVACY__KNOWN_CATEGORIES", '["bánh", "kem"]')
    assert load_settings().privacy.known_categories == ["bánh", "kem"]
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


def test_the_settings_machinery_imports_no_layer_above_config() -> None:
    """How values reach fields (config/settings.py) knows no resource: the rules are the
    resources', beside their fields, so it imports none of the layers it used to validate
    with (warehouse, exports, llm) nor the prompt or the OpenAI client."""
    code = "import sys, kidsfin_assets.config.settings; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = {name for name in done.stdout.split() if name.startswith("kidsfin_assets.")}
    assert {name.split(".")[1] for name in loaded} == {"config"}, loaded


def test_a_list_that_is_not_json_is_reported_by_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-settings' own error named only the section ("privacy"), as a traceback."""
    monkeypatch.setenv("KIDSFIN_PRIVACY__KNOWN_CATEGORIES", "ăn vặt, snacks")
    assert settings_error() == (
        "privacy.known_categories: not JSON in KIDSFIN_PRIVACY__KNOWN_CATEGORIES "
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
        ("api", "batch", "batch", "sync"),
        # auto sends a week of batch_min_reports or more through the Batch API
        ("api", "auto", "batch", "sync"),
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
    from kidsfin_assets.definitions import defs

    prices = pricing_without(tmp_path, tier)
    variable = f"KIDSFIN_OPENAI__{key.upper()}"
    env = {"KIDSFIN_OPENAI__PRICING_FILE": str(prices), variable: value}
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    try:
        defs()
    except SettingsError as error:
        message = str(error)
    else:
        pytest.fail(f"openai.{key}: {value} loaded with no {tier} price in {prices}")
    assert message == (
        f"openai.{key}: {value!r} needs a {tier} price for 'gpt-4o-mini' and {prices} has "
        f"none; add `{tier}: {{input, cached_input, output}}` under the model, or set "
        f"openai.{key}: {without} (from environment variable {variable})"
    )
    # The code location as Dagster loads it shows that line.
    done = dagster_validate({**os.environ, **env}, tmp_path)
    assert done.returncode == 1 and f"SettingsError: {message}\n" in done.stdout + done.stderr
    # With the tier's price (the project's pricing file), the same setting loads.
    monkeypatch.delenv("KIDSFIN_OPENAI__PRICING_FILE")
    defs()


def test_docs_settings_is_written_from_the_declarations() -> None:
    """docs/settings.md (every setting, its default, rule, variable and old name) is the
    declarations' own page: changing a field without rewriting it fails here."""
    from tools import settings_reference

    assert (PROJECT / "docs" / "settings.md").read_text() == settings_reference.render(), (
        "docs/settings.md is stale: run .venv/bin/python -m tools.settings_reference"
    )
