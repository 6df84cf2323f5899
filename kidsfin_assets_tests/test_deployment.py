"""The deployment files, tested without a Docker engine.

- docker-compose.yml parses, names its services, and gives every process the variables
  the code and dagster.yaml read; every ${VAR} it uses is documented in .env.example;
- the Dockerfile's and the compose file's commands are real 1.13 CLI commands that point
  at modules and files which exist, and agree with the README, the Makefile and the
  workspace files;
- deploy/dagster.yaml loads into a real DagsterInstance on a fresh PostgreSQL database,
  records a run there, and reads its run queue and `openai` pool limits; the local SQLite
  instance (the root's dagster.yaml: a plain `dagster dev` there, `make dev` / `make demo`)
  loads too.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from sqlalchemy.engine import make_url

from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.defs.assets.gold import OPENAI_POOL
from kidsfin_assets.defs.resources import ExportResource, WarehouseResource, load_settings

ROOT = PROJECT_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DAGSTER_YAML = ROOT / "deploy" / "dagster.yaml"
LOCAL_DAGSTER_YAML = ROOT / "dagster.yaml"
MODULE = "kidsfin_assets.definitions"
BIN = Path(sys.executable).parent

SERVICES = {"postgres", "code", "webserver", "daemon", "adminer"}
PIPELINE_SERVICES = {"code", "demo-data"}  # they import the code and touch the warehouse
INSTANCE_SERVICES = {"code", "webserver", "daemon"}  # they open the Dagster instance


# --- helpers: the compose file ------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


def referenced_variables(text: str) -> set[str]:
    """Names of ${VAR} / $VAR references, nested ones included; `$$` is a literal dollar."""
    return {a or b for a, b in _VAR.findall(text.replace("$$", ""))}


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ${A}, ${A:-d}, ${A-d}, ${A:?e}, ${A?e}, nesting, $$."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                depth -= text[j] == "}"
                j += 1
            out.append(_expand(text[i + 2 : j - 1], env))
            i = j
        elif text[i] == "$" and (m := re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])):
            out.append(env.get(m.group(), ""))
            i += 1 + m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _expand(body: str, env: Mapping[str, str]) -> str:
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?", body, re.S)
    assert m, f"unsupported interpolation ${{{body}}}"
    name, op, arg = m.group(1), m.group(2), m.group(3) or ""
    value = env.get(name)
    unset = value is None or (op is not None and op.startswith(":") and value == "")
    if op in (":-", "-"):
        return interpolate(arg, env) if unset else value  # type: ignore[return-value]
    if op in (":?", "?"):
        if unset:
            raise MissingVariable(f"{name}: {interpolate(arg, env)}")
        return value  # type: ignore[return-value]
    return value or ""


def service_environment(
    service: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, str | None]:
    """The service's environment after interpolation; None = passed through when set."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    resolved: dict[str, str | None] = {}
    for key, value in raw.items():
        if value is None:
            resolved[key] = env.get(key)  # pass-through: unset in the container when unset
        else:
            resolved[key] = interpolate(str(value), env)
    return resolved


def env_example() -> dict[str, str | None]:
    """Variables in .env.example: value for active lines, None for commented-out ones."""
    names: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.fullmatch(r"\s*([A-Z][A-Z0-9_]*)=(.*)", line):
            names[m.group(1)] = m.group(2).strip()
        elif (m := re.fullmatch(r"\s*#\s*([A-Z][A-Z0-9_]*)=.*", line)) and m.group(1) not in names:
            names[m.group(1)] = None
    return names


def example_env(**overrides: str) -> dict[str, str]:
    """.env.example's active values, as a user would fill them in."""
    env = {k: v for k, v in env_example().items() if v is not None}
    env["POSTGRES_PASSWORD"] = "s3cret-pw"
    env.update(overrides)
    return env


def dagster_yaml_env_vars() -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "env" and isinstance(value, str):
                    names.add(value)
                else:
                    visit(value)

    visit(yaml.safe_load(DAGSTER_YAML.read_text()))
    return names


def env_vars_read_by_code() -> set[str]:
    """OPENAI_* / KIDSFIN_* names spelled out as string literals in kidsfin_assets/."""
    pattern = re.compile(r"""["']((?:OPENAI|KIDSFIN)_[A-Z0-9_]+)["']""")
    found: set[str] = set()
    for path in (ROOT / "kidsfin_assets").rglob("*.py"):
        found |= set(pattern.findall(path.read_text()))
    return found


# --- helpers: the Dockerfile --------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions() if kw == keyword]


def dockerfile_cmd() -> list[str]:
    (cmd,) = dockerfile("CMD")
    return json.loads(cmd)  # exec form: no shell in between, signals reach dagster


def image_files() -> dict[str, Path]:
    """Path in the image → source in the repository, from WORKDIR and COPY."""
    (workdir,) = dockerfile("WORKDIR")
    files: dict[str, Path] = {}
    for rest in dockerfile("COPY"):
        *sources, dest = shlex.split(rest)
        for source in sources:
            src = ROOT / source
            assert src.exists(), f"Dockerfile copies {source}, which does not exist"
            target = dest if dest.startswith("/") else f"{workdir}/{dest}"
            if src.is_file() and (dest.endswith("/") or len(sources) > 1):
                target = f"{target}/{src.name}"  # a file into a folder
            files[posixpath.normpath(target)] = src  # a folder: its contents into dest
    return files


def workdir() -> str:
    (value,) = dockerfile("WORKDIR")
    return value


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in dockerfile("ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


# --- the compose file ---------------------------------------------------------------------


def test_compose_names_the_services() -> None:
    services = compose()["services"]
    assert services.keys() >= SERVICES
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "healthcheck" in services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert any(p.endswith(":8080") for p in services["adminer"]["ports"])
    assert any(p.endswith(":3000") for p in services["webserver"]["ports"])
    assert services["demo-data"]["profiles"] == ["demo"]
    for name in ("code", "webserver", "daemon", "demo-data"):
        assert services[name]["build"]["context"] == ".", name
        assert services[name]["image"] == services["code"]["image"], name


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = set().union(*(referenced_variables(s) for s in walk_strings(compose())))
    assert {"POSTGRES_PASSWORD", "OPENAI_API_KEY", "OPENAI_BASE_URL"} <= used
    documented = env_example()
    assert not used - documented.keys(), f"missing from .env.example: {used - documented.keys()}"
    # Pass-through variables (a key without a value) come from .env as well.
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if value is None:
                assert key in documented, f"{name}: {key} passes through but is undocumented"


def test_env_example_holds_no_secret_and_env_stays_ignored() -> None:
    values = env_example()
    assert values["OPENAI_API_KEY"] is None  # commented out: see the set-up trap test below
    assert values["POSTGRES_PASSWORD"] == ""  # compose refuses to start until it is set
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", ENV_EXAMPLE.read_text())
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", COMPOSE_FILE.read_text())
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False
        ).returncode
        assert ignored == 0, ".env must be git-ignored"
        tracked = subprocess.run(
            ["git", "check-ignore", "-q", ".env.example"], cwd=ROOT, check=False
        ).returncode
        assert tracked == 1, ".env.example must not be git-ignored"


def test_compose_refuses_to_start_without_a_postgres_password() -> None:
    services = compose()["services"]
    env = example_env()
    del env["POSTGRES_PASSWORD"]
    for name in ("postgres", "code", "webserver", "daemon"):
        with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
            service_environment(services[name], env)


def test_the_code_reads_only_variables_the_services_get() -> None:
    read_by_code = env_vars_read_by_code()
    expected = {
        "KIDSFIN_DATABASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT",
    }
    assert expected <= read_by_code  # the grep finds what it should
    instance_vars = dagster_yaml_env_vars()
    assert instance_vars == {f"DAGSTER_PG_{k}" for k in ("USER", "PASSWORD", "HOST", "DB", "PORT")}

    services = compose()["services"]
    for name in PIPELINE_SERVICES:
        missing = read_by_code - services[name]["environment"].keys()
        assert not missing, f"service {name} lacks {missing}"
    for name in INSTANCE_SERVICES:
        missing = instance_vars - services[name]["environment"].keys()
        assert not missing, f"service {name} lacks {missing}"
    documented = env_example().keys()
    assert not (read_by_code | instance_vars) - documented


def test_compose_wires_one_database_for_app_warehouse_and_dagster() -> None:
    services = compose()["services"]
    env = example_env(OPENAI_API_KEY="sk-test", OPENAI_ORG_ID="org-1")
    pg = service_environment(services["postgres"], env)
    user, password, db = pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    assert password == "s3cret-pw"

    code = service_environment(services["code"], env)
    assert code["KIDSFIN_DATABASE_URL"] == f"postgresql://{user}:{password}@postgres:5432/{db}"
    assert code["OPENAI_API_KEY"] == "sk-test"
    assert code["OPENAI_ORG_ID"] == "org-1"
    assert code["OPENAI_BASE_URL"] == "https://api.openai.com/v1"
    for name in INSTANCE_SERVICES:
        instance = service_environment(services[name], env)
        assert instance == instance | {
            "DAGSTER_PG_USER": user,
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_PG_HOST": "postgres",
            "DAGSTER_PG_DB": db,
            "DAGSTER_PG_PORT": "5432",
        }, name
        assert "postgres" in services[name]["depends_on"]
    # The URL the code gets is one the pipeline accepts (postgresql:// → psycopg2).
    assert make_url(code["KIDSFIN_DATABASE_URL"]).host == "postgres"
    # Another database for the pipeline: KIDSFIN_DATABASE_URL in .env wins.
    other = "postgresql://u:p@app-db:5432/app"
    env = example_env(KIDSFIN_DATABASE_URL=other)
    assert service_environment(services["code"], env)["KIDSFIN_DATABASE_URL"] == other


def test_optional_openai_settings_never_reach_the_sdk_empty() -> None:
    """Offline by default; an unset OPENAI_BASE_URL / OPENAI_ORG_ID is never an empty value.

    The OpenAI SDK reads both from the environment itself, and "" would be a broken base
    URL or an empty organisation header.
    """
    code = service_environment(compose()["services"]["code"], example_env(OPENAI_BASE_URL=""))
    assert code["OPENAI_API_KEY"] == ""  # offline writer
    assert code["OPENAI_BASE_URL"] == "https://api.openai.com/v1"
    assert code["OPENAI_ORG_ID"] is None  # unset in the container


def test_env_example_and_compose_agree_on_settings_the_code_validates() -> None:
    code = service_environment(compose()["services"]["code"], example_env())
    assert not any(k.startswith("KIDSFIN_") and k != "KIDSFIN_DATABASE_URL" for k in code)
    # The pipeline's settings load in that environment (KIDSFIN_DATABASE_URL included).
    with pytest.MonkeyPatch.context() as mp:
        for key, value in code.items():
            if key.startswith(("KIDSFIN_", "OPENAI_")) and value is not None:
                mp.setenv(key, value)
        settings = load_settings()
        assert settings.warehouse.database_url == code["KIDSFIN_DATABASE_URL"]


# --- the Dockerfile and the commands --------------------------------------------------------


def test_dockerfile_builds_the_project_from_pyproject() -> None:
    (base,) = dockerfile("FROM")
    assert base == "python:3.11-slim"
    runs = " ".join(dockerfile("RUN"))
    # Editable: settings resolve config/, prompts/ and data/ next to the package; with the
    # `demo` extra, since compose's demo-data service runs the demo loader in this image.
    assert re.search(r"pip install (--\S+ )*-e '\.\[demo\]'(\s|$)", runs)
    files = image_files()
    app = workdir()
    for source in ("pyproject.toml", "README.md", "kidsfin_assets", "config", "prompts"):
        assert files.get(f"{app}/{source}") == ROOT / source, source
    assert files[f"{app}/deploy/workspace.yaml"] == ROOT / "deploy" / "workspace.yaml"
    # DAGSTER_HOME holds the production dagster.yaml.
    home = dockerfile_env()["DAGSTER_HOME"]
    assert files[f"{home}/dagster.yaml"] == DAGSTER_YAML
    # pyproject's readme and packages are what the build needs.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (ROOT / project["project"]["readme"]).is_file()


def test_image_serves_the_code_location_over_grpc() -> None:
    cmd = dockerfile_cmd()
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert option(cmd, "-h") == "0.0.0.0"
    assert option(cmd, "-m") == MODULE
    services = compose()["services"]
    assert services["code"]["command"] == cmd  # compose spells out the image's default
    # deploy/workspace.yaml reaches that server: service name, port and location name.
    (entry,) = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["host"] == "code" and grpc["host"] in services
    assert str(grpc["port"]) == option(cmd, "-p")
    assert f"{grpc['port']}" in " ".join(dockerfile("EXPOSE")).split()
    assert grpc["location_name"] == option(cmd, "--location-name")
    # ... the same location name as `dagster dev` (workspace.yaml) and pyproject.toml.
    (local,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    assert local["python_module"] == {"module_name": MODULE, "location_name": grpc["location_name"]}
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert tool == {"module_name": MODULE, "code_location_name": grpc["location_name"]}


def test_the_module_the_commands_load_holds_the_definitions() -> None:
    module = importlib.import_module(MODULE)
    assert isinstance(module.defs(), dg.Definitions)  # @dg.definitions: loaded lazily
    assert importlib.util.find_spec("kidsfin_demo") is not None


def test_the_code_location_does_not_import_the_demo_or_test_tools() -> None:
    """kidsfin_demo (make demo, compose's demo-data) and the tests' OpenAI server are tools
    beside the pipeline: loading the definitions must not import them."""
    code = (
        f"import sys, {MODULE}; {MODULE}.defs(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kidsfin_demo', 'openai_test_server', 'kidsfin_assets_tests')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_webserver_and_daemon_use_the_deploy_workspace_in_the_image() -> None:
    services = compose()["services"]
    files = image_files()
    web, daemon = services["webserver"]["command"], services["daemon"]["command"]
    assert web[0] == "dagster-webserver" and option(web, "-h") == "0.0.0.0"
    assert any(p.endswith(f":{option(web, '-p')}") for p in services["webserver"]["ports"])
    assert daemon[:2] == ["dagster-daemon", "run"]
    for command in (web, daemon):
        assert files[option(command, "-w")] == ROOT / "deploy" / "workspace.yaml"
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code"] == {"condition": "service_healthy"}
    demo = services["demo-data"]
    assert demo["entrypoint"] == ["python", "-m", "kidsfin_demo"]
    assert demo["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_volumes_land_where_the_code_writes() -> None:
    services = compose()["services"]
    app, home = workdir(), dockerfile_env()["DAGSTER_HOME"]
    default_exports = ExportResource.model_fields["export_dir"].default
    mounts = {v.split(":", 1)[1] for v in services["code"]["volumes"]}
    assert f"{app}/{default_exports}" in mounts
    # The spool of paid answers must outlive the container that wrote it.
    default_spool = WarehouseResource.model_fields["spool_dir"].default
    assert f"{app}/{default_spool}" in mounts
    # Compute logs: written by run workers in `code`, read by the webserver.
    assert f"{home}/storage" in mounts
    web_mounts = {v.split(":", 1)[1] for v in services["webserver"]["volumes"]}
    assert f"{home}/storage" in web_mounts
    named = set(compose()["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            assert volume.split(":", 1)[0] in named


def _help(executable: str, subcommands: list[str]) -> str:
    exe = BIN / executable
    assert exe.exists(), f"{exe} is not installed"
    done = subprocess.run(
        [str(exe), *subcommands, "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_command_is_a_real_dagster_1_13_command() -> None:
    """Each command and each flag it uses exist in the installed CLI (no Docker needed)."""
    services = compose()["services"]
    healthcheck = services["code"]["healthcheck"]["test"]
    assert healthcheck[0] == "CMD"
    commands = [
        dockerfile_cmd(),
        services["code"]["command"],
        services["webserver"]["command"],
        services["daemon"]["command"],
        healthcheck[1:],
    ]
    for command in commands:
        first_flag = next(i for i, token in enumerate(command) if token.startswith("-"))
        executable, subcommands = command[0], command[1:first_flag]
        text = _help(executable, subcommands)
        for flag in (t for t in command[first_flag:] if t.startswith("-")):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", text), (
                f"`{' '.join(command[:first_flag])}` has no option {flag}"
            )
    # The demo loader's flags in compose are ones it accepts.
    from kidsfin_demo.cli import _parser

    _parser().parse_args(services["demo-data"]["command"])


# --- the README and the Makefile ------------------------------------------------------------


def _makefile_targets() -> dict[str, list[str]]:
    targets: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if m := re.match(r"^([A-Za-z_][\w-]*):", line):
            current = m.group(1)
            targets[current] = []
        elif line.startswith("\t") and current:
            targets[current].append(line.strip())
    return targets


def test_readme_commands_match_the_makefile_and_the_deployment() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = _makefile_targets()
    for target in ("demo", "test", "dev"):
        assert f"make {target}" in readme, target
        assert target in targets, target
    # The code location's name is `kidsfin` (workspace.yaml), as compose names it.
    assert any("dagster dev -w workspace.yaml" in line for line in targets["dev"])
    assert "dagster dev" in readme
    assert f"dagster asset materialize -m {MODULE}" in readme
    # `make demo` / `make dev` use the local SQLite instance, never the production one.
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"export DAGSTER_HOME \?= \$\(CURDIR\)/data/dagster_home", makefile)
    assert "cp dagster.yaml $@" in makefile
    for target in ("demo", "dev"):
        assert f"\n{target}: install $(DAGSTER_HOME)/dagster.yaml" in makefile, target
    # Outside make, every host-side command that runs the pipeline gives a DAGSTER_HOME:
    # without one it would run on a temporary instance and its history would be lost.
    for line in readme.splitlines():
        if ".venv/bin/dagster " in line or ".venv/bin/dg launch" in line:
            assert "DAGSTER_HOME=" in line, line
    # Every `-m module` the README runs is the code location or the demo loader.
    for module in re.findall(r"(?:python|dagster[\w -]*?) -m ([\w.]+)", readme):
        assert importlib.util.find_spec(module) is not None, module
    # The Docker section names the real files, services and commands.
    services = compose()["services"]
    assert "cp .env.example .env" in readme
    assert "docker compose up" in readme
    for service in re.findall(
        r"docker compose (?:--profile \w+ )?(?:run --rm|exec) ([\w-]+)", readme
    ):
        assert service in services, service
    profile = re.search(r"docker compose --profile (\w+) run --rm ([\w-]+)", readme)
    assert profile and services[profile.group(2)]["profiles"] == [profile.group(1)]
    assert " ".join(dockerfile_cmd()[:3]) in readme
    # The CI script uses the same CLI as the README, with its own DAGSTER_HOME.
    ci = (ROOT / ".ci" / "materialize_one_week.sh").read_text()
    assert f"dagster asset materialize -m {MODULE}" in ci
    assert "export DAGSTER_HOME=" in ci
    # ... and checks the definitions with dg, right after installing.
    run = (ROOT / ".ci" / "run").read_text()
    assert run.index("make install") < run.index(".venv/bin/dg check defs") < run.index("make test")


# --- dagster.yaml against a real PostgreSQL -----------------------------------------------------


@pytest.fixture
def production_instance(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """dagster.yaml, unchanged, in a fresh DAGSTER_HOME, pointed at a fresh database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    url = make_url(pg_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_USER", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", url.database or "")
    with dg.DagsterInstance.get() as instance:
        yield instance


def test_dagster_yaml_loads_postgres_storage(
    production_instance: dg.DagsterInstance, pg_url: str
) -> None:
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    instance = production_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    # SQLAlchemy >= 2.1 reads a bare postgresql:// as psycopg 3: the scheme pins psycopg2.
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        url = make_url(storage.postgres_url)  # type: ignore[attr-defined]
        assert url.drivername == "postgresql+psycopg2"
        assert (url.host, url.database) == (make_url(pg_url).host, make_url(pg_url).database)


def test_dagster_yaml_limits_are_read(production_instance: dg.DagsterInstance) -> None:
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    concurrency = production_instance.get_concurrency_config()
    assert concurrency.run_queue_config is not None  # the queued run coordinator
    assert (
        concurrency.run_queue_config.max_concurrent_runs
        == config["concurrency"]["runs"]["max_concurrent_runs"]
    )
    default_limit = config["concurrency"]["pools"]["default_limit"]
    assert concurrency.pool_config.default_pool_limit == default_limit
    assert production_instance.global_op_concurrency_default_limit == default_limit
    assert production_instance.run_monitoring_enabled is config["run_monitoring"]["enabled"]
    assert production_instance.run_retries_enabled is config["run_retries"]["enabled"]
    assert production_instance.run_retries_max_retries == config["run_retries"]["max_retries"]


def test_a_run_in_the_openai_pool_is_recorded_in_postgres(
    production_instance: dg.DagsterInstance,
) -> None:
    """A real run through the instance: the pool gets the default limit, events persist."""
    instance = production_instance

    @dg.asset(pool=OPENAI_POOL)
    def pooled_probe() -> int:
        return 1

    result = dg.materialize([pooled_probe], instance=instance, tags={"kidsfin/test": "deploy"})
    assert result.success

    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"kidsfin/test": "deploy"}))
    assert run.run_id == result.run_id
    assert run.status == dg.DagsterRunStatus.SUCCESS
    event = instance.get_latest_materialization_event(dg.AssetKey("pooled_probe"))
    assert event is not None and event.run_id == run.run_id

    # The step claimed a slot in the `openai` pool, which the run created with
    # dagster.yaml's default limit.
    default_limit = yaml.safe_load(DAGSTER_YAML.read_text())["concurrency"]["pools"][
        "default_limit"
    ]
    assert OPENAI_POOL in instance.event_log_storage.get_concurrency_keys()
    info = instance.event_log_storage.get_concurrency_info(OPENAI_POOL)
    assert info.limit == info.slot_count == default_limit
    assert info.using_default_limit
    assert info.claimed_slots == []  # released when the step finished

    # A second instance on the same database (another process: webserver, daemon) sees it.
    with dg.DagsterInstance.get() as other:
        assert other.get_run_by_id(run.run_id) is not None


def test_local_instance_is_sqlite_with_the_same_pool_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make dev` / `make demo`: the root's dagster.yaml in data/dagster_home, no server."""
    from dagster._core.storage.runs import SqliteRunStorage

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(LOCAL_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in dagster_yaml_env_vars():
        monkeypatch.delenv(name, raising=False)
    local = yaml.safe_load(LOCAL_DAGSTER_YAML.read_text())
    production = yaml.safe_load(DAGSTER_YAML.read_text())
    assert "storage" not in local  # SQLite under DAGSTER_HOME
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)
        concurrency = instance.get_concurrency_config()
        assert (
            concurrency.pool_config.default_pool_limit
            == (production["concurrency"]["pools"]["default_limit"])
        )
        assert concurrency.run_queue_config is not None
        assert (
            concurrency.run_queue_config.max_concurrent_runs
            == local["concurrency"]["runs"]["max_concurrent_runs"]
        )


# --- set-up traps -------------------------------------------------------------------------


def test_a_plain_dagster_dev_at_the_root_gets_the_local_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster dev` (and the CLI) without DAGSTER_HOME make a temporary instance configured
    by the dagster.yaml of the folder they run in: at the root, the local SQLite instance with
    the `openai` pool's limit, not the production PostgreSQL one."""
    from dagster._cli.utils import get_possibly_temporary_instance_for_cli
    from dagster._core.storage.runs import SqliteRunStorage

    for name in dagster_yaml_env_vars():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(LOCAL_DAGSTER_YAML, tmp_path / "dagster.yaml")  # the root, as `dagster dev` sees it
    local = yaml.safe_load(LOCAL_DAGSTER_YAML.read_text())
    production = yaml.safe_load(DAGSTER_YAML.read_text())
    with get_possibly_temporary_instance_for_cli("dagster dev") as instance:  # as it does
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert str(tmp_path) in instance.root_directory  # .tmp_dagster_home_* under the root
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == production["concurrency"]["pools"]["default_limit"]
        assert pools.default_pool_limit == local["concurrency"]["pools"]["default_limit"]


def _make_instance_file(home: Path) -> subprocess.CompletedProcess[str]:
    """Make's rule for $(DAGSTER_HOME)/dagster.yaml, which `make demo` and `make dev` need."""
    return subprocess.run(
        ["make", "-C", str(ROOT), f"DAGSTER_HOME={home}", f"{home}/dagster.yaml"],
        capture_output=True,
        text=True,
        check=True,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_never_overwrites_an_existing_instance_file(tmp_path: Path) -> None:
    home = tmp_path / "my_dagster_home"
    _make_instance_file(home)  # none yet: the local instance is copied in
    assert (home / "dagster.yaml").read_text() == LOCAL_DAGSTER_YAML.read_text()
    mine = "# the user's own instance\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(mine)
    os.utime(home / "dagster.yaml", (0, 0))  # older than the root's dagster.yaml
    _make_instance_file(home)
    assert (home / "dagster.yaml").read_text() == mine


def test_an_env_file_from_the_example_hides_no_shell_variable_the_code_reads(
    tmp_path: Path,
) -> None:
    """Dagster's CLI loads ./.env over the shell's environment, empty values included: after
    `cp .env.example .env`, an active `OPENAI_API_KEY=` would silently replace the shell's
    key with an empty one (offline reports). The example sets no variable the code or the
    Dagster instance reads; compose gives them defaults."""
    from dagster._core.secrets.env_file import get_env_var_dict

    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    loaded = get_env_var_dict(str(tmp_path))  # what `dagster dev` puts in the environment
    read = env_vars_read_by_code() | dagster_yaml_env_vars() | {"OPENAI_ORG_ID", "OPENAI_PROJECT"}
    assert not loaded.keys() & read, sorted(loaded.keys() & read)


def test_export_files_are_readable_by_other_users(tmp_path: Path) -> None:
    """Another container on the export volume runs as another user."""
    from kidsfin_assets.defs.assets.exports import write_json_atomically

    path = tmp_path / "kids_reports_2026-03-16.json"
    old = os.umask(0o022)
    try:
        write_json_atomically(path, {"reports": []})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_readme_prices_a_self_hosted_model_at_zero(tmp_path: Path) -> None:
    """The README's pricing file for a model of one's own is one start-up accepts."""
    from kidsfin_assets.llm.pricing import load_price

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n# my-pricing.yaml\n(.*?)```", readme, re.S)
    assert block, "the README shows a pricing file for a self-hosted model"
    (tmp_path / "my-pricing.yaml").write_text(block.group(1))
    model = re.search(r"KIDSFIN_OPENAI__MODEL=(\S+)", readme.split("# my-pricing.yaml")[1])
    assert model
    price = load_price(tmp_path / "my-pricing.yaml", model.group(1))
    assert price.split_cost(1000, 500, 100) == (0.0, 0.0)
