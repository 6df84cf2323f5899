"""What `make dev` runs, in a temporary folder: a DAGSTER_HOME with the local SQLite
instance, a SQLite demo database, the suite's OpenAI-compatible server (lying, so that some
reports are kept for review), and `dagster-webserver` plus `dagster-daemon` (which `dagster
dev` starts too: it runs the backfills and the queued runs launched from the UI).
"""

from __future__ import annotations

import datetime as dt
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "kidsfin"
REPOSITORY = "__repository__"
STARTUP_TIMEOUT = 180.0  # seconds; a loaded 2-core machine needs 20-60 s


class CheckFailed(Exception):
    """What the UI shows (or the stack behind it) is not what it should be."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_dev_workspace_args() -> list[str]:
    """The code location arguments of `make dev`'s `dagster dev` (workspace.yaml, location
    `kidsfin`); dagster-webserver and dagster-daemon take the same."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndev: install", 1)[1].split("\n\n", 1)[0]
    (line,) = [line for line in recipe.splitlines() if "dagster dev" in line]
    return shlex.split(line.split("dagster dev", 1)[1])


def dagster_environment(
    tmp: Path, start_week: str, openai_url: str, api_key: str
) -> dict[str, str]:
    """The Dagster processes' environment: the caller's, without any KIDSFIN_, OPENAI_ or
    DAGSTER_ variable of theirs, and everything the check's runs write under `tmp`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_", "DAGSTER_"))
    }
    env.update(
        DAGSTER_HOME=str(tmp / "dagster_home"),
        KIDSFIN_DATABASE_URL=f"sqlite:///{tmp / 'kidsfin.db'}",
        KIDSFIN_EXPORTS__EXPORT_DIR=str(tmp / "exports"),
        KIDSFIN_FILE_LOGGER__PATH=str(tmp / "logs" / "kidsfin.log"),
        KIDSFIN_WAREHOUSE__SPOOL_DIR=str(tmp / "spool"),
        # The weekly partitions, fixed when the code location loads (as `make dev` does
        # with the demo's first week).
        KIDSFIN_WEEKS__START_DATE=start_week,
        OPENAI_API_KEY=api_key,
        OPENAI_BASE_URL=openai_url,
        # Two attempts a report: a lie told twice keeps the report for review.
        KIDSFIN_OPENAI__RETRY_MAX_ATTEMPTS="2",
        KIDSFIN_OPENAI__RETRY_INITIAL_WAIT_SECONDS="0.05",
        KIDSFIN_OPENAI__RETRY_MAX_WAIT_SECONDS="0.2",
        KIDSFIN_OPENAI__RETRY_JITTER_SECONDS="0.05",
        KIDSFIN_STEP_RETRY__MAX_RETRIES="0",  # a failing step fails the check at once
        KIDSFIN_OPENAI__TIMEOUT_SECONDS="20",
        # This checkout's code, whichever checkout the virtualenv was installed from.
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_home(tmp: Path, env: dict[str, str]) -> Path:
    """As `make dev` does: the root's dagster.yaml as the instance's dagster.yaml. Its
    SQLite storage is created here, once: the webserver and the daemon, started together
    on a fresh instance, would both create it and race (alembic: "more than one head")."""
    home = tmp / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    command = [str(BIN / "dagster"), "instance", "migrate"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise CheckFailed(f"creating the Dagster instance failed:\n{done.stdout}{done.stderr}")
    return home


def load_demo_data(env: dict[str, str], kids: int, weeks: int, log: Path) -> list[str]:
    """`python -m kidsfin_demo` into the temporary SQLite database: the last `weeks`
    complete weeks. Returns the weeks loaded, oldest first."""
    command = [sys.executable, "-m", "kidsfin_demo", "--kids", str(kids), "--weeks", str(weeks)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise CheckFailed(f"loading the demo data failed:\n{done.stdout}{done.stderr}")
    # "  weeks:         2026-10-26 .. 2026-11-30 (6 weeks, Asia/Ho_Chi_Minh)"
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("weeks:"))
    first, _, last = line.split(":", 1)[1].split("(")[0].split()
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(weeks=n)).isoformat() for n in range((end - start).days // 7 + 1)]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """The process and what it spawned (its code server): its own process group."""
        if self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def start(name: str, command: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group with its code server
        )
    return Process(name, popen, log)


def start_webserver(env: dict[str, str], tmp: Path, port: int) -> Process:
    command = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    return start(
        "dagster-webserver", [*command, *make_dev_workspace_args()], env, tmp / "webserver.log"
    )


def start_daemon(env: dict[str, str], tmp: Path) -> Process:
    command = [str(BIN / "dagster-daemon"), "run", *make_dev_workspace_args()]
    return start("dagster-daemon", command, env, tmp / "daemon.log")


@dataclass
class GraphQL:
    url: str
    processes: list[Process] = field(default_factory=list)

    def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:
            raise CheckFailed(f"GraphQL HTTP {exc.code}: {exc.read()[:2000]!r}") from exc
        if payload.get("errors"):
            raise CheckFailed(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                raise CheckFailed(
                    f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}"
                )


WORKSPACE_QUERY = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
  }
}
"""

DAEMONS_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"


def wait_until_serving(gql: GraphQL, timeout: float = STARTUP_TIMEOUT) -> None:
    """Until the webserver answers, the code location `kidsfin` has loaded and the daemon's
    backfill and run-queue loops report healthy."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        gql.check_alive()
        try:
            with urllib.request.urlopen(f"{gql.url}/server_info", timeout=5) as response:
                json.load(response)
            entries = gql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
            daemons = gql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        except (OSError, ValueError, CheckFailed) as exc:
            last = repr(exc)
        else:
            errors = [
                e["locationOrLoadError"]["message"]
                for e in entries
                if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"
            ]
            if errors:
                raise CheckFailed(f"the code location failed to load: {errors[0]}")
            loaded = [e["name"] for e in entries if e["loadStatus"] == "LOADED"]
            healthy = {d["daemonType"] for d in daemons if d["healthy"]}
            if loaded == [LOCATION] and {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= healthy:
                return
            last = f"locations loaded: {loaded}, healthy daemons: {sorted(healthy)}"
        time.sleep(1.0)
    tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in gql.processes)
    raise CheckFailed(f"the UI was not ready after {timeout:.0f} s ({last})\n{tails}")
