"""UI proof: the real `dagster-webserver`, started on loopback against the project.

It serves the code location `make dev` serves (the Makefile's arguments: workspace.yaml,
location `kidsfin`, as compose names it) with the local SQLite instance of `make dev`
(the root's dagster.yaml in a temporary DAGSTER_HOME). Through its GraphQL endpoint the
tests find the three layers' assets and the exports, their weekly partitions, the sensor,
the asset checks and the `openai` pool.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.config.weeks import WEEKS
from kidsfin_assets.defs.resources import load_settings

WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
LOCATION = "kidsfin"
STARTUP_TIMEOUT = 120.0  # seconds; a loaded 2-core machine needs 20-40 s

APP_TABLES = {  # external: read, never materialised
    ("app", "kids"): "app",
    ("app", "transactions"): "app",
    ("app", "app_events"): "app",
    ("app", "savings_goals"): "app",
}
ASSETS = {
    ("raw", "kid_activity"): "raw",
    ("silver", "kid_weekly_analysis"): "silver",
    ("gold", "kid_weekly_reports"): "gold",
    ("exports", "kids_analysis_json"): "exports",
    ("exports", "kids_reports_json"): "exports",
}
CHECKS = {  # check name → (asset, blocking)
    "quarantine_share_below_threshold": (("raw", "kid_activity"), False),
    "one_row_per_active_kid": (("silver", "kid_weekly_analysis"), False),
    "one_report_per_silver_row": (("gold", "kid_weekly_reports"), True),
    "scores_within_0_10": (("gold", "kid_weekly_reports"), False),
    "cost_per_report_below_threshold": (("gold", "kid_weekly_reports"), False),
    "reports_grounded": (("gold", "kid_weekly_reports"), False),
}


@dataclass
class Webserver:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"GraphQL HTTP {exc.code}: {exc.read()[:2000]!r}") from exc
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_environment(home: Path, tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KIDSFIN_", "OPENAI_", "DAGSTER_")) or k == "KIDSFIN_TEST_DATABASE_URL"
    }
    env.update(
        DAGSTER_HOME=str(home),
        KIDSFIN_DATABASE_URL=f"sqlite:///{tmp / 'kidsfin.db'}",
        KIDSFIN_EXPORTS__EXPORT_DIR=str(tmp / "exports"),
        # A setting from the environment: the launchpad shows it as its field's default.
        KIDSFIN_ANALYSIS__TREND_THRESHOLD="0.2",
        PYTHONUNBUFFERED="1",
    )
    return env


WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def _wait_until_loaded(server: Webserver) -> None:
    """Until /server_info answers and the code location has loaded (or failed to)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"dagster-webserver exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                json.load(response)
            entries = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        except (OSError, ValueError, AssertionError) as exc:
            last = repr(exc)
        else:
            loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
            if loaded and len(loaded) == len(entries):
                errors = [
                    e["locationOrLoadError"]
                    for e in entries
                    if e["locationOrLoadError"]["__typename"] == "PythonError"
                ]
                assert not errors, f"code location failed to load: {errors}"
                return
            last = f"locations: {entries}"
        time.sleep(1.0)
    raise AssertionError(
        f"dagster-webserver not ready after {STARTUP_TIMEOUT:.0f} s ({last}):\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the webserver and the code server it spawned (its own process group)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def make_dev_workspace_args() -> list[str]:
    """The code location arguments of `make dev`'s `dagster dev` (dagster-webserver takes
    the same), so that the UI tested here names the location as `make dev` does."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndev: install", 1)[1].split("\n\n", 1)[0]
    (line,) = [line for line in recipe.splitlines() if "dagster dev" in line]
    return shlex.split(line.split("dagster dev", 1)[1])


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    assert WEBSERVER.exists(), f"{WEBSERVER} is not installed"
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    # As `make dev` does: the local SQLite instance, never the production dagster.yaml.
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    log = tmp / "webserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(WEBSERVER),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                *make_dev_workspace_args(),
            ],
            cwd=PROJECT_ROOT,
            env=_clean_environment(home, tmp),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: the webserver and its code server
        )
    server = Webserver(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_until_loaded(server)
        yield server
    finally:
        _stop(process)


ASSET_NODES_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    pools
    isPartitioned
    partitionDefinition { type fmt description }
    partitionKeys
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name blocking assetKey { path } } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def asset_nodes(webserver: Webserver) -> dict[tuple[str, ...], dict[str, Any]]:
    nodes = webserver.graphql(ASSET_NODES_QUERY)["assetNodes"]
    return {tuple(node["assetKey"]["path"]): node for node in nodes}


def test_the_code_location_kidsfin_is_loaded(webserver: Webserver) -> None:
    workspace = webserver.graphql(WORKSPACE_QUERY)["workspaceOrError"]
    (entry,) = workspace["locationEntries"]
    assert entry["name"] == LOCATION
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"


def test_the_three_layers_and_the_exports_are_assets_in_their_groups(
    asset_nodes: dict[tuple[str, ...], dict[str, Any]],
) -> None:
    assert {key: node["groupName"] for key, node in asset_nodes.items()} == ASSETS | APP_TABLES


def test_every_asset_is_partitioned_by_week(
    asset_nodes: dict[tuple[str, ...], dict[str, Any]],
) -> None:
    settings = load_settings()
    start = WEEKS.start_date
    zone = zoneinfo.ZoneInfo(settings.analysis.timezone)
    today = dt.datetime.now(zone).date()
    this_monday = today - dt.timedelta(days=today.weekday())

    keys_by_asset = {}
    for key, node in asset_nodes.items():
        if key in APP_TABLES:
            assert not node["isPartitioned"], key  # the app's tables hold every week
            continue
        assert node["isPartitioned"], key
        definition = node["partitionDefinition"]
        assert definition["type"] == "TIME_WINDOW", key
        assert definition["fmt"] == "%Y-%m-%d", key
        assert settings.analysis.timezone in definition["description"], key
        keys_by_asset[key] = node["partitionKeys"]

    keys = keys_by_asset[("gold", "kid_weekly_reports")]
    assert all(k == keys for k in keys_by_asset.values()), "all assets share the weeks"
    assert keys[0] == start.isoformat() == "2026-01-05"
    mondays = [dt.date.fromisoformat(k) for k in keys]
    assert all(day.weekday() == 0 for day in mondays)
    assert all(b - a == dt.timedelta(days=7) for a, b in itertools.pairwise(mondays))
    # Only complete weeks: the last one ended by this Monday (a week back, at most two
    # across a Monday midnight during the test).
    if this_monday > start:
        assert this_monday - dt.timedelta(days=14) <= mondays[-1] < this_monday


def test_the_sensor_new_week_sensor_exists(webserver: Webserver) -> None:
    data = webserver.graphql(
        """
        query ($selector: RepositorySelector!) {
          sensorsOrError(repositorySelector: $selector) {
            __typename
            ... on Sensors {
              results { name sensorType minIntervalSeconds targets { pipelineName } }
            }
          }
        }
        """,
        {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}},
    )["sensorsOrError"]
    assert data["__typename"] == "Sensors", data
    sensors = {s["name"]: s for s in data["results"]}
    assert "new_week_sensor" in sensors
    sensor = sensors["new_week_sensor"]
    assert sensor["minIntervalSeconds"] == load_settings().sensor.interval_seconds
    assert [t["pipelineName"] for t in sensor["targets"]] == ["weekly_reports_job"]


def test_the_asset_checks_are_listed_on_their_assets(
    asset_nodes: dict[tuple[str, ...], dict[str, Any]],
) -> None:
    found = {}
    for key, node in asset_nodes.items():
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", (key, checks)
        for check in checks["checks"]:
            assert tuple(check["assetKey"]["path"]) == key
            found[check["name"]] = (key, check["blocking"])
    assert found == CHECKS


def test_the_gold_asset_runs_in_the_openai_pool(
    asset_nodes: dict[tuple[str, ...], dict[str, Any]],
) -> None:
    pools = {key: node["pools"] for key, node in asset_nodes.items()}
    assert pools.pop(("gold", "kid_weekly_reports")) == ["openai"]
    assert all(p == [] for p in pools.values()), pools


def test_the_ui_runs_on_the_local_sqlite_instance_with_its_limits(webserver: Webserver) -> None:
    """`dagster dev` on SQLite: run queue and pool default from the root's dagster.yaml."""
    local = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    instance = webserver.graphql(
        "{ instance { info runQueueConfig { maxConcurrentRuns } poolConfig { defaultPoolLimit } } }"
    )["instance"]
    assert "SqliteRunStorage" in instance["info"]
    assert (
        instance["runQueueConfig"]["maxConcurrentRuns"]
        == local["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert (
        instance["poolConfig"]["defaultPoolLimit"] == local["concurrency"]["pools"]["default_limit"]
    )


def test_the_database_url_shows_as_a_variable_name_not_its_value(webserver: Webserver) -> None:
    data = webserver.graphql(
        """
        query ($selector: RepositorySelector!) {
          allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
            __typename
            ... on ResourceDetailsList {
              results { name configuredValues { key value type } }
            }
          }
        }
        """,
        {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}},
    )["allTopLevelResourceDetailsOrError"]
    assert data["__typename"] == "ResourceDetailsList", data
    resources = {r["name"]: r for r in data["results"]}
    assert {"warehouse", "openai"} <= resources.keys()
    values = {v["key"]: v for v in resources["warehouse"]["configuredValues"]}
    assert values["database_url"]["type"] == "ENV_VAR"
    assert values["database_url"]["value"] == "KIDSFIN_DATABASE_URL"


def test_the_launchpad_shows_every_setting_with_its_default(webserver: Webserver) -> None:
    """The launchpad of the weekly job scaffolds each resource its steps use with every one
    of its fields, at the value loaded from the file and the environment (a secret as its
    variable): what `Scaffold all default config` writes, through Dagster's GraphQL."""
    from kidsfin_assets.defs.jobs import JOB_NAME
    from kidsfin_assets.defs.resources import SECTIONS

    data = webserver.graphql(
        """
        query ($selector: PipelineSelector!) {
          runConfigSchemaOrError(selector: $selector) {
            __typename
            ... on RunConfigSchema { rootDefaultYaml }
            ... on PythonError { message }
          }
        }
        """,
        {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "pipelineName": JOB_NAME,
            }
        },
    )["runConfigSchemaOrError"]
    assert data["__typename"] == "RunConfigSchema", data
    resources = yaml.safe_load(data["rootDefaultYaml"])["resources"]
    fields = {section.key: set(section.model_fields) for section in SECTIONS}
    used = {"warehouse", "sources", "analysis", "privacy", "exports", "step_retry", "openai"}
    used |= {"check_limits"}
    assert used <= resources.keys()
    # The OpenAI secrets are unset here: a field without a value is not scaffolded; nor are
    # the two `auto` ones (null: sized by the step), which the schema still lists and
    # describes, and which a run may set to a number.
    fields["openai"] -= {"api_key", "base_url", "organization", "project"}
    fields["openai"] -= {"max_concurrent", "rate_limit_lease_seconds"}
    for key in used:
        assert set(resources[key]["config"]) == fields[key], key
    assert resources["analysis"]["config"] == {"trend_threshold": 0.2, "max_shrink_share": 0.5}
    assert resources["warehouse"]["config"]["database_url"] == {"env": "KIDSFIN_DATABASE_URL"}
    assert resources["openai"]["config"]["model"] == "gpt-4o-mini"
    assert resources["openai"]["config"]["api"] == "sync"
    assert resources["exports"]["config"]["format"] == "json"
