"""Shared plumbing of the benchmarks: scratch databases, the fake OpenAI server, real
Dagster runs (in process and through the `dagster` CLI), machine facts, tables, results.

Everything here is local: PostgreSQL on 127.0.0.1 (KIDSFIN_BENCH_DATABASE_URL overrides
it) and the test suite's OpenAI-compatible server, started as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from kidsfin_assets.defs.resources import Settings, load_settings
from kidsfin_assets.warehouse import db

PROJECT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT / "bench" / "results"
ADMIN_URL_ENV = "KIDSFIN_BENCH_DATABASE_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
API_KEY = "sk-bench-kidsfin-not-a-real-key"
GOLD_SELECTION = "gold/kid_weekly_reports"
GOLD_STEP = "gold__kid_weekly_reports"
RAW_SILVER_SELECTION = "group:raw or group:silver"
# Dagster's console logger at WARNING: the benchmarks' own tables stay readable.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# --- machine ------------------------------------------------------------------------------


def _proc_value(path: str, key: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    return None


def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPUs, RAM, Python, PostgreSQL and its memory settings."""
    mem_kb = _proc_value("/proc/meminfo", "MemTotal") or "0 kB"
    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_value("/proc/cpuinfo", "model name") or platform.processor(),
        "ram_gib": round(int(mem_kb.split()[0]) / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        # Other work on the machine skews every timing: say how busy it was.
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    info.update(code_version())
    with contextlib.suppress(ImportError):
        import dagster

        info["dagster"] = dagster.__version__
    engine = sa.create_engine(admin_url())
    try:
        with engine.connect() as conn:
            info["postgresql"] = conn.exec_driver_sql("SHOW server_version").scalar_one()
            for name in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather"):
                info[f"pg_{name}"] = conn.exec_driver_sql(f"SHOW {name}").scalar_one()
    except sa.exc.SQLAlchemyError as exc:
        info["postgresql"] = f"unreachable: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    return info


def code_version() -> dict[str, Any]:
    """The commit measured, and the project files changed since (other work in progress)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    # Porcelain lines are "XY path": the leading status column may be a space.
    changed = git("status", "--porcelain", "--", "kidsfin_assets", "config", "prompts")
    return {
        "git_commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted_project_files": [line[3:] for line in changed.splitlines()],
    }


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu_count']} CPU ({info['cpu_model']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, PostgreSQL {info.get('postgresql', '?')}, "
        f"Dagster {info.get('dagster', '?')}, {info['date_utc']}"
    )


# --- databases and settings ---------------------------------------------------------------


def admin_url() -> str:
    return db.normalize_url(os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL))


def scratch_database_name(name: str) -> str:
    """`kidsfin_bench_<name>_<random>`: unique, so that two benchmark runs on one server
    never drop each other's database (PostgreSQL keeps 63 bytes of a name)."""
    return f"kidsfin_bench_{name[:36]}_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def scratch_database(name: str, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database of its own for `name`, dropped afterwards."""
    database = scratch_database_name(name)
    admin = sa.create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    url = make_url(admin_url()).set(database=database).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        db._cached_engine.cache_clear()  # pooled connections would keep the database busy
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


def use_settings(url: str, **env: str) -> Settings:
    """Point this process's pipeline settings at `url`, with KIDSFIN_* overrides only from
    `env` (not from whoever runs the benchmark: the figures must not depend on their shell)."""
    for name in list(os.environ):
        if name.startswith(("KIDSFIN_", "OPENAI_")) and not name.startswith("KIDSFIN_BENCH_"):
            del os.environ[name]
    os.environ["KIDSFIN_DATABASE_URL"] = url
    os.environ.update(env)
    return load_settings()


def load_demo(
    url: str, settings: Settings, *, kids: int, weeks: int, txns_per_kid_week: float = 8.0
) -> Any:
    """The demo generator's data (COPY), ending with the last complete week."""
    from kidsfin_demo import DemoSpec, generate

    engine = db.create_engine(url)
    try:
        spec = DemoSpec(
            kids=kids,
            weeks=weeks,
            txns_per_kid_week=txns_per_kid_week,
            timezone=settings.analysis.timezone,
        )
        return generate(engine, settings.sources, spec)
    finally:
        engine.dispose()


def materialize_in_process(settings: Settings, week: str, selection: str) -> Any:
    """A real Dagster run of the project's assets, in this process (ephemeral instance).
    With silver selected, raw is loaded first for the weeks before `week` that have rows
    (silver reads raw's W-2 and W-1, and raw's history for the savings balance), as the
    sensor or a backfill would have; that run is not what is measured."""
    import dagster as dg

    from kidsfin_assets.definitions import pipeline_assets, run_resources

    if "silver" in selection:
        load_raw_before(settings, week)
    return dg.materialize(
        pipeline_assets,
        resources=run_resources(settings),
        partition_key=week,
        selection=selection,
        run_config=QUIET_RUN_CONFIG,
    )


def load_raw_before(settings: Settings, week: str) -> None:
    """One run of raw over the weeks before `week`, from the first with app rows."""
    import dagster as dg

    from kidsfin_assets.config.weeks import WEEKS, Week
    from kidsfin_assets.definitions import build_definitions
    from kidsfin_assets.warehouse.source_activity import next_activity
    from kidsfin_assets.warehouse.tables import source_tables

    tz = settings.analysis.timezone
    end = Week.from_key(week, tz)
    start = Week(WEEKS.start_date, tz)
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    with engine.connect() as conn:
        found = next_activity(conn, source_tables(settings.sources), start.starts_at, end.starts_at)
    if found is None:
        return
    first = Week.containing(found, tz)
    job = dg.define_asset_job("raw_history", selection="group:raw")
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    tags = {
        "dagster/asset_partition_range_start": first.key,
        "dagster/asset_partition_range_end": end.shifted(-1).key,
    }
    result = defs.resolve_job_def("raw_history").execute_in_process(
        tags=tags, run_config=QUIET_RUN_CONFIG
    )
    assert result.success, "raw for the weeks before the measured one failed"


def warehouse_scalar(settings: Settings, sql: str, **params: Any) -> Any:
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def warehouse_execute(settings: Settings, sql: str, **params: Any) -> None:
    engine = db.get_engine(settings.warehouse.database_url, settings.warehouse.schema_name)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def gold_count(settings: Settings, week: str | None = None) -> int:
    where = " WHERE week_start = CAST(:week AS date)" if week else ""
    sql = f"SELECT count(*) FROM kidsfin.kid_weekly_reports{where}"
    return int(warehouse_scalar(settings, sql, week=week) or 0)


# --- the fake OpenAI server ---------------------------------------------------------------


class FakeServer:
    """`python -m openai_test_server` in a subprocess (its own GIL), with its
    control plane: /_stats, /_requests, /_reset, /_config."""

    def __init__(self, **options: Any) -> None:
        args = [sys.executable, "-m", "openai_test_server", "--port", "0"]
        args += ["--api-key", API_KEY]
        for name, value in options.items():
            if value is None:
                continue
            flag = "--" + name.replace("_", "-")
            args += [flag, ",".join(value) if isinstance(value, list | tuple) else str(value)]
        self.proc = subprocess.Popen(
            args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"fake OpenAI server did not start: {line!r}")
        self.base_url = line.split(" ", 1)[1]
        self.root = self.base_url.removesuffix("/v1")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stats")

    def reset(self) -> None:
        self._call("POST", "/_reset", {})

    def configure(self, **changes: Any) -> None:
        self._call("POST", "/_config", changes)

    def chat_times(self) -> list[float]:
        """Arrival times (epoch seconds) of the chat requests, oldest first."""
        recorded = self._call("GET", "/_requests")
        return sorted(r["timestamp"] for r in recorded if r["path"].endswith("/chat/completions"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- gold through the dagster CLI ---------------------------------------------------------


@dataclass
class GoldRun:
    """`dagster asset materialize` of one gold week, in its own session (killable as one)."""

    week: str
    home: Path
    log: Path
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.time)
    ended: float | None = None

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.ended is None:
            self.ended = time.time()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        if self.ended is None:
            self.ended = time.time()
        return code

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait()

    @property
    def wall_seconds(self) -> float:
        return (self.ended or time.time()) - self.started

    def tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def metadata(self) -> dict[str, Any]:
        return gold_run_metadata(self.home)


def gold_env(url: str, base_url: str, home: Path, export_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a gold run: only the benchmark's KIDSFIN_* / OPENAI_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIDSFIN_", "OPENAI_"))}
    return {
        **env,
        "DAGSTER_HOME": str(home),
        "KIDSFIN_DATABASE_URL": url,
        "KIDSFIN_EXPORTS__EXPORT_DIR": str(export_dir),
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": base_url,
        **extra,
    }


def start_gold(week: str, workdir: Path, url: str, base_url: str, **extra: str) -> GoldRun:
    """Launch one gold week through the real CLI, with a DAGSTER_HOME of its own."""
    n = len(list(workdir.glob("home_*")))
    home = workdir / f"home_{n}"
    home.mkdir(parents=True)
    # Default storage (SQLite under the home), said explicitly; no telemetry.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = workdir / f"gold_{n}_{week}.log"
    env = gold_env(url, base_url, home, workdir / "exports", **extra)
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "kidsfin_assets.definitions", "--select", GOLD_SELECTION]
    command += ["--partition", week]
    with log.open("wb") as out:
        # A file, not a pipe: a run logs a line per report and must never block on us.
        proc = subprocess.Popen(
            command,
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # SIGKILL of the group reaches the step process too
        )
    return GoldRun(week, home, log, proc)


def _plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, int | float | str | bool) or inner is None else str(inner)


def gold_run_metadata(home: Path) -> dict[str, Any]:
    """Gold's metadata (requests, retries, reports...) from the run's own Dagster instance,
    on success (the materialisation) or failure (dg.Failure), plus the step's attempts and
    its duration from the first start to the last end (a step retry's delay included).

    A retried attempt's own metadata is not in the event log (STEP_UP_FOR_RETRY carries
    none): with several attempts, the counts are the last attempt's; count requests at the
    server for the whole run."""
    import dagster as dg

    out: dict[str, Any] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return out
        run = runs[0]
        out["run_status"] = run.status.value
        out["run_id"] = run.run_id  # the ledger's run_id: what this run itself paid for
        first_start, attempts = None, 0
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or event.step_key != GOLD_STEP:
                continue  # the asset checks' steps are not gold's
            kind = event.event_type
            if kind == dg.DagsterEventType.STEP_START:
                attempts += 1
                first_start = first_start or entry.timestamp
            elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
                meta = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
                out.update({k: _plain(v) for k, v in meta.items() if k != "summary"})
            elif kind == dg.DagsterEventType.STEP_FAILURE:
                data = event.event_specific_data.user_failure_data  # type: ignore[union-attr]
                if data is not None:
                    out.update({k: _plain(v) for k, v in data.metadata.items() if k != "summary"})
            ended = kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
            if ended and first_start is not None:
                out["step_seconds"] = round(entry.timestamp - first_start, 3)
        out["step_attempts"] = attempts
    return out


# --- output -------------------------------------------------------------------------------


@dataclass
class Goal:
    """One goal of the issue: the measured value against its target."""

    name: str
    value: Any
    target: str
    met: bool


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table (also valid Markdown)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"\n{title}", line(header), rule, *(line(r) for r in cells)])


def goals_table(goals: Sequence[Goal]) -> str:
    rows = [(g.name, g.value, g.target, "MET" if g.met else "MISSED") for g in goals]
    return table("Goals", ("goal", "measured", "target", ""), rows)


def write_results(name: str, quick: bool, machine: dict[str, Any], payload: dict[str, Any]) -> Path:
    """bench/results/<name>.json (<name>_quick.json for --quick, so that a smoke run never
    replaces real figures), with the machine the figures came from."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = name + ("_quick" if quick else "")
    path = RESULTS_DIR / f"{stem}.json"
    data = {
        "benchmark": stem,
        "machine": machine,
        "quick": quick,
        **payload,
        "goals": [asdict(g) for g in payload.get("goals", [])],
    }
    path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    print(f"\nwritten to {path}")
    return path


def rate_window(times: Sequence[float]) -> tuple[float, float]:
    """(first, last) arrival: the steady part of a run, without Dagster's start-up."""
    return (times[0], times[-1]) if times else (0.0, 0.0)


def per_minute(count: int, seconds: float) -> float:
    return 60.0 * count / seconds if seconds > 0 else 0.0
