"""The definitions are module-level and loaded lazily; run settings are resources a run
(the launchpad) can override."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from kidsfin_assets.config.settings import InvalidSettings
from kidsfin_assets.config.weeks import weekly_partitions
from kidsfin_assets.definitions import build_definitions
from kidsfin_assets.defs.resources import AnalysisResource, SensorResource, Settings
from kidsfin_assets.warehouse.tables import kid_weekly_analysis
from kidsfin_assets_tests.helpers import (
    SourceDB,
    fetch,
    materialize_range,
    materialize_week,
    use_database,
    warehouse_engine,
)

PROJECT = Path(__file__).resolve().parent.parent
W = "2026-03-16"

# Imports every module of the package with an audit hook that records what reads a
# config file or reaches a database (a socket, an SQLite file).
IMPORT_EVERYTHING = textwrap.dedent(
    """
    import pkgutil, sys, importlib
    touched = []
    def hook(event, args):
        if event == "open" and isinstance(args[0], str) and args[0].endswith((".yaml", ".db")):
            touched.append(f"open {args[0]}")
        if event in ("socket.connect", "sqlite3.connect"):
            touched.append(f"{event} {args[1:] if event == 'socket.connect' else args}")
    sys.addaudithook(hook)
    import kidsfin_assets
    names = [m.name for m in pkgutil.walk_packages(kidsfin_assets.__path__, "kidsfin_assets.")]
    for name in names:
        importlib.import_module(name)
    import kidsfin_assets.definitions as d
    print(len(names), "modules;", type(d.defs).__name__)
    print("TOUCHED", touched)
    """
)


def test_importing_the_modules_reads_no_config_and_opens_no_database(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        # Were either read, the import would fail or connect: neither may happen.
        "KIDSFIN_CONFIG": str(tmp_path / "missing.yaml"),
        "KIDSFIN_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/app",
        "KIDSFIN_OPENAI__TIMEOUT_SECONDS": "soon",
    }
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LazyDefinitions" in done.stdout
    assert "TOUCHED []" in done.stdout, done.stdout


def test_loading_the_definitions_reads_the_settings(tmp_path: Path) -> None:
    """The audit hook sees what it is meant to: loading `defs` does read the config."""
    script = IMPORT_EVERYTHING + "d.defs()\nprint('AFTER', touched)\n"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = done.stdout.split("AFTER", 1)[1]
    assert "pipeline.yaml" in after


def trend_week(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Settings:
    """A kid whose income rose 15 % against W-1 and W-2: `up` at the default threshold
    (0.10), `flat` at 0.20."""
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    source.kids((1, "An"))
    source.txns(
        (1, 1, "2026-03-03 10:00", "income", None, 100000),  # W-2
        (2, 1, "2026-03-10 10:00", "income", None, 100000),  # W-1
        (3, 1, "2026-03-17 10:00", "income", None, 115000),  # W
    )
    # Silver reads raw's W-2, W-1 and W: raw holds them, as the sensor would have left it.
    assert materialize_range(settings, "2026-03-02", W).success
    return settings


def income_trend(settings: Settings) -> str:
    t = kid_weekly_analysis
    rows = fetch(warehouse_engine(settings), t.select().where(t.c.kid_id == 1))
    (row,) = [r for r in rows if str(r["week_start"]) == W]
    return row["income_total_trend"]


def test_a_run_overrides_the_trend_threshold_as_the_launchpad_would(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    settings = trend_week(monkeypatch, pg_url)
    assert materialize_week(settings, W, selection="group:silver").success
    assert income_trend(settings) == "up"
    override = {"resources": {"analysis": {"config": {"trend_threshold": 0.2}}}}
    assert materialize_week(settings, W, selection="group:silver", run_config=override).success
    assert income_trend(settings) == "flat"


def test_the_settings_are_the_resources_defaults(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    trend_week(monkeypatch, pg_url)
    monkeypatch.setenv("KIDSFIN_ANALYSIS__TREND_THRESHOLD", "0.2")
    changed = use_database(monkeypatch, pg_url)
    assert materialize_week(changed, W, selection="group:silver").success
    assert income_trend(changed) == "flat"


def failed_run_message(settings: Settings, selection: str, override: dict[str, Any]) -> str:
    """The failure a run of W with `override` ended with (it must fail)."""
    result = materialize_week(
        settings, W, selection=selection, run_config=override, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    return str(failure.event_specific_data)


@pytest.mark.parametrize(
    ("resource", "field", "value", "line", "selection"),
    [
        (
            "analysis",
            "trend_threshold",
            -1.0,
            "analysis.trend_threshold: Input should be greater than or equal to 0, got -1.0",
            "group:silver",
        ),
        (
            "sources",
            "kids",
            "kids; drop table x",
            "sources.kids: 'kids; drop table x' is not a table name",
            "group:raw",
        ),
        (
            "privacy",
            "known_categories",
            ["bánh", " "],
            "privacy.known_categories: a known category is empty, got ['bánh', ' ']",
            "group:gold",
        ),
        (
            "check_limits",
            "max_quarantine_share",
            2.0,
            "check_limits.max_quarantine_share: Input should be less than or equal to 1, got 2.0",
            "group:raw",
        ),
        (
            "step_retry",
            "max_retries",
            -1,
            "step_retry.max_retries: Input should be greater than or equal to 0, got -1",
            "group:gold",
        ),
        (
            "exports",
            "export_dir",
            " ",
            "exports.export_dir: is empty (it would write into the project's root), got ' '",
            "group:exports",
        ),
        (
            "exports",
            "format",
            "xml",
            "exports.format: 'xml' is not an export format (json or jsonl)",
            "group:exports",
        ),
        (
            "warehouse",
            "claim_lease_seconds",
            1.0,
            "warehouse.claim_lease_seconds: Input should be greater than or equal to 5, got 1.0",
            "group:silver",
        ),
        (
            "warehouse",
            "schema_name",
            "kidsfin; drop",
            "warehouse.schema_name: 'kidsfin; drop' is not a schema name",
            "group:silver",
        ),
        # each ran before: as sync, or failing inside the step
        (
            "openai",
            "api",
            "fast",
            "openai.api: must be 'sync', 'batch' or 'auto', got 'fast'",
            "group:gold",
        ),
        (
            "openai",
            "max_concurrent",
            5000,
            "openai.max_concurrent: Input should be less than or equal to 4096, got 5000",
            "group:gold",
        ),
        (
            "openai",
            "retry_max_attempts",
            0,
            "openai.retry_max_attempts: Input should be greater than or equal to 1, got 0",
            "group:gold",
        ),
    ],
)
def test_a_bad_override_fails_the_run_in_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    resource: str,
    field: str,
    value: object,
    line: str,
    selection: str,
) -> None:
    """A launchpad override only of the field (the others keep their defaults), checked by
    the field's own rule when the run builds the resource, before any step's work."""
    settings = trend_week(monkeypatch, pg_url)
    override = {"resources": {resource: {"config": {field: value}}}}
    assert f"InvalidSettings: {line}" in failed_run_message(settings, selection, override)


def test_a_run_cannot_move_the_weeks_time_zone(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    """The partitions' zone is fixed when the code location loads: a run that tries to cut
    its week in another zone (the key would name one week, the window another) is refused
    before it starts, as Dagster refuses any field a resource does not have."""
    settings = trend_week(monkeypatch, pg_url)
    assert "timezone" not in AnalysisResource.model_fields
    override = {"resources": {"analysis": {"config": {"timezone": "UTC"}}}}
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        materialize_week(settings, W, selection="group:silver", run_config=override)
    assert 'unexpected config entry "timezone" at path root:resources:analysis:config' in str(
        refused.value
    )
    assert settings.analysis.timezone == weekly_partitions.timezone


def test_an_override_of_one_field_keeps_the_others_settings(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    """Dagster fills the fields a run's config leaves out from their launchpad defaults:
    the loaded settings, not the class's (a threshold of 0.2 from the environment holds
    while the run changes max_shrink_share)."""
    trend_week(monkeypatch, pg_url)
    settings = use_database(monkeypatch, pg_url, KIDSFIN_ANALYSIS__TREND_THRESHOLD="0.2")
    override = {"resources": {"analysis": {"config": {"max_shrink_share": 0.9}}}}
    assert materialize_week(settings, W, selection="group:silver", run_config=override).success
    assert income_trend(settings) == "flat"  # 0.10, the class's default, says "up"


def test_the_launchpad_defaults_are_the_loaded_settings(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    """Each resource the job needs shows every one of its settings in the launchpad, with
    the loaded value as its default, and a secret as the variable it came from."""
    from kidsfin_assets.defs.jobs import JOB_NAME

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown")
    settings = use_database(
        monkeypatch,
        pg_url,
        KIDSFIN_OPENAI__MODEL="gpt-4o",
        KIDSFIN_ANALYSIS__MAX_SHRINK_SHARE="0.3",
    )
    job = build_definitions(settings).resolve_job_def(JOB_NAME)
    shown = {}
    for key in ("warehouse", "sources", "analysis", "privacy", "exports", "step_retry"):
        fields = job.resource_defs[key].config_schema.config_type.fields
        shown[key] = {name: field.default_value for name, field in fields.items()}
        resource = getattr(settings, key)
        assert set(fields) == set(type(resource).model_fields), key
    openai = job.resource_defs["openai"].config_schema.config_type.fields
    assert openai["model"].default_value == "gpt-4o"
    assert openai["api_key"].default_value == {"env": "OPENAI_API_KEY"}
    assert shown["warehouse"]["database_url"] == {"env": "KIDSFIN_DATABASE_URL"}
    assert shown["analysis"] == {"trend_threshold": 0.1, "max_shrink_share": 0.3}
    assert shown["exports"]["export_dir"] == settings.exports.export_dir
    assert shown["privacy"]["known_categories"] == settings.privacy.known_categories
    assert "sk-never-shown" not in repr(shown) + repr(openai)


def test_a_bad_resource_value_is_refused_when_the_resource_is_made() -> None:
    with pytest.raises(InvalidSettings) as raised:
        SensorResource(late_data_weeks=-1)
    assert raised.value.description == (
        "sensor.late_data_weeks: Input should be greater than or equal to 0, got -1"
    )
    assert raised.value.allow_retries is False


@pytest.mark.parametrize(
    ("field", "value", "unpriced", "says"),
    [
        ("service_tier", "flex", "flex", "openai.service_tier: 'flex' needs a flex price"),
        ("api", "auto", "batch", "openai.api: 'auto' needs a batch price"),
        ("model", "gpt-9-imaginary", None, "openai.model: no price for 'gpt-9-imaginary'"),
    ],
)
def test_an_override_to_an_unpriced_tier_or_model_fails_the_run_before_paying(
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    server: Any,
    tmp_path: Path,
    field: str,
    value: str,
    unpriced: str | None,
    says: str,
) -> None:
    """Start-up refuses a tier or model the pricing file does not price; a launchpad
    override must be refused alike. (It ran: every flex answer was paid for, could not be
    priced, and was never recorded, so a re-run paid for it again.)"""
    from kidsfin_assets.warehouse.tables import report_ledger
    from kidsfin_assets_tests.test_gold_reports import setup_week
    from kidsfin_assets_tests.test_settings import pricing_without

    prices = pricing_without(tmp_path, unpriced) if unpriced else PROJECT / "config/pricing.yaml"
    settings, _ = setup_week(
        monkeypatch, pg_url, server, 2, KIDSFIN_OPENAI__PRICING_FILE=str(prices)
    )
    override = {"resources": {"openai": {"config": {field: value}}}}
    result = materialize_week(
        settings, W, selection="group:gold", run_config=override, raise_on_error=False
    )
    paid = server.stats.ok
    recorded = len(fetch(warehouse_engine(settings), report_ledger.select()))
    assert (result.success, server.stats.requests_total) == (False, 0), (
        f"the run overriding openai.{field} with {value!r}, which the pricing file does not "
        f"price, {'succeeded' if result.success else 'failed'} after paying for {paid} "
        f"answers ({recorded} of them recorded): it must be refused before any request"
    )
    failure = next(e for e in result.all_events if e.is_failure)
    assert says in str(failure.event_specific_data)


def test_the_assets_run_on_their_resources_alone(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path
) -> None:
    """Module-level assets, callable in a test with resources built by hand: with no
    readable config at all, so nothing in a run reads the settings behind its back."""
    from kidsfin_assets.defs.assets.raw import kid_activity
    from kidsfin_assets.defs.assets.silver import kid_weekly_analysis as silver
    from kidsfin_assets.defs.resources import (
        AnalysisResource,
        CheckLimitsResource,
        SourcesResource,
        WarehouseResource,
    )

    settings = trend_week(monkeypatch, pg_url)
    monkeypatch.setenv("KIDSFIN_CONFIG", str(tmp_path / "missing.yaml"))
    resources = {
        "warehouse": WarehouseResource(database_url=pg_url),
        "sources": SourcesResource(),
        "analysis": AnalysisResource(trend_threshold=0.2),
        "check_limits": CheckLimitsResource(),  # raw's check runs in raw's step
    }
    result = dg.materialize([kid_activity, silver], resources=resources, partition_key=W)
    assert result.success
    assert income_trend(settings) == "flat"
