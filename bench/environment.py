"""What a CPU-bound figure depends on, besides the code: the machine, the interpreter, the
installed packages and their compiled speedups, the load, and the CPU each process spent.

The tier5 case of llm_throughput is one step process on one core: its rate is the CPU a
request costs that process, not the rate limit, on most machines (bench/README.md,
"tier5: what the figure depends on"). So it records all of this with its figures, and
says plainly when a precondition for them is not met.

* `environment()`: packages and whether their C speedups are the ones loaded, the Python
  build, the CPU, two yardsticks of this machine's speed, the load average;
* `CpuSampler`: the CPU seconds of the processes of a run (by role), sampled every half
  second, so the CPU of a stretch of it (the API span) can be read back per request;
* `precondition_warnings()`: what makes the figure say more about the machine than the code.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import importlib.metadata
import os
import platform
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kidsfin_assets.llm.transport import AIOHTTP_SPEEDUPS, speedup_in_use

# The step's HTTP path (openai SDK over aiohttp), its answers (pydantic, jiter), its
# warehouse writes (SQLAlchemy, psycopg2) and Dagster around them.
PACKAGES = (
    "openai",
    "aiohttp",
    "multidict",
    "yarl",
    "frozenlist",
    "propcache",
    "aiohappyeyeballs",
    "httpx2",
    "httpcore2",
    "pydantic",
    "pydantic-core",
    "jiter",
    "SQLAlchemy",
    "psycopg2-binary",
    "dagster",
)

# Environment variables that change how fast the same code runs.
SPEED_ENV = (
    "AIOHTTP_NO_EXTENSIONS",
    "MULTIDICT_NO_EXTENSIONS",
    "YARL_NO_EXTENSIONS",
    "FROZENLIST_NO_EXTENSIONS",
    "PROPCACHE_NO_EXTENSIONS",
    "DISABLE_SQLALCHEMY_CEXT_RUNTIME",
    "PYTHONDEVMODE",
    "PYTHONASYNCIODEBUG",
    "PYTHONMALLOC",
    "PYTHONTRACEMALLOC",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONOPTIMIZE",
)

# The machine the goal was met on (bench/README.md, tier5 run F, and the grounding run of
# the same day, load 0.4): its 1M-additions loop took 33.7 ms of CPU.
REFERENCE_LOOP_MS = 33.7
# The goal: one step process at 0.9 of R.
GOAL_SHARE = 0.9


# --- packages and their compiled speedups -------------------------------------------------


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def speedups() -> dict[str, str | None]:
    """For each package with a C implementation and a silent pure-Python fallback, where
    its hot code comes from here: the compiled module's name when that is the one in use
    (`aiohttp._http_parser`), else the fallback's (`aiohttp.http_parser`)."""
    found = {package: speedup_in_use(package) for package in AIOHTTP_SPEEDUPS}

    def sqlalchemy_() -> str:
        from sqlalchemy.util import _has_cython  # SQLAlchemy 2.1

        return "Cython" if _has_cython.HAS_CYEXTENSION else _has_cython._CYEXTENSION_MSG

    def pydantic_core_() -> str:
        import pydantic_core

        return pydantic_core._pydantic_core.__name__

    def psycopg2_() -> str:
        import psycopg2

        return psycopg2._psycopg.__name__

    for name, find in (
        ("SQLAlchemy", sqlalchemy_),
        ("pydantic-core", pydantic_core_),
        ("psycopg2", psycopg2_),
    ):
        try:
            found[name] = find()
        except Exception as exc:  # not installed, or an import that fails: say which
            found[name] = f"unavailable: {exc.__class__.__name__}"
    return found


# What `speedups()` names when the compiled code is the one in use.
COMPILED = {
    **{package: compiled for package, (_, _, compiled) in AIOHTTP_SPEEDUPS.items()},
    "SQLAlchemy": "Cython",
    "pydantic-core": "pydantic_core._pydantic_core",
    "psycopg2": "psycopg2._psycopg",
}


def missing_speedups(found: dict[str, str | None]) -> list[str]:
    return [name for name, module in COMPILED.items() if found.get(name) != module]


# --- the interpreter and the CPU ----------------------------------------------------------


def _libpython() -> str | None:
    """The libpython this process runs on, or None when the interpreter is linked into the
    executable (Debian's python3.11 is, built with PGO and LTO, though its sysconfig
    describes the shared build)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1]
            if "/libpython" in path:
                return path
    return None


def python_build() -> dict[str, Any]:
    """How this interpreter was built: a build without PGO/LTO, or on a shared libpython,
    runs the same code slower (bench/README.md, tier5). `pgo` and `lto` are what
    CONFIG_ARGS says, which a distribution's static interpreter may not reflect."""
    config = sysconfig.get_config_var("CONFIG_ARGS") or ""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": os.path.realpath(sys.executable),
        "compiler": platform.python_compiler(),
        "pgo": "--enable-optimizations" in config,
        "lto": "--with-lto" in config,
        "libpython": _libpython(),
        "config_args": config,
        "dev_mode": sys.flags.dev_mode,
        "env": {name: os.environ[name] for name in SPEED_ENV if name in os.environ},
    }


def _cpuinfo() -> dict[str, str]:
    first: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first CPU is enough
            name, _, value = line.partition(":")
            first[name.strip()] = value.strip()
    return first


# AMD's family 25 (0x19) and 26 (0x1A) by model range. Machines of one kind here were each
# shown as "AMD EPYC": 25/1 (Zen 3, Milan) spent about twice the CPU a request of 25/17 (Zen 4,
# Genoa) in the tier5 benchmark (bench/README.md, "tier5: what the figure depends on").
_AMD_GENERATIONS = (
    (25, range(0x00, 0x10), "Zen 3 (Milan)"),
    (25, range(0x10, 0x20), "Zen 4 (Genoa)"),
    (25, range(0xA0, 0xB0), "Zen 4c (Bergamo)"),
    (26, range(0x00, 0x100), "Zen 5"),
)


def _generation(info: dict[str, str]) -> str | None:
    if info.get("vendor_id") != "AuthenticAMD":
        return None
    try:
        family, model = int(info["cpu family"]), int(info["model"])
    except (KeyError, ValueError):
        return None
    return next((g for f, models, g in _AMD_GENERATIONS if f == family and model in models), None)


def cpu() -> dict[str, Any]:
    """The CPU as the guest sees it. A hypervisor may show only "AMD EPYC": family, model
    and stepping tell the generation; the flags show AVX-512 (Zen 4 and later)."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "model": info.get("model name") or platform.processor(),
        "generation": _generation(info),
        "vendor": info.get("vendor_id"),
        "family_model_stepping": "/".join(
            info.get(k, "?") for k in ("cpu family", "model", "stepping")
        ),
        "mhz": info.get("cpu MHz"),
        "cores": os.cpu_count(),
        "hypervisor": "hypervisor" in flags,
        "avx512f": "avx512f" in flags,
    }


# --- yardsticks: how fast this machine runs Python now ------------------------------------


def reference_ms(additions: int = 1_000_000) -> float:
    """CPU ms of a fixed loop of a million additions: the interpreter on a hot cache (a few
    tens of ms; 33.7 on the machine the tier5 goal was met on). Fewer `additions` time a
    shorter loop, scaled to the million (a sample taken often, while other work runs)."""
    started, total = time.process_time(), 0
    for i in range(additions):
        total += i
    return round((time.process_time() - started) * 1000 * 1_000_000 / additions, 1)


def memory_ns(mib: int = 64, steps: int = 400_000) -> float:
    """CPU ns of one dependent load from a `mib` MiB table, as Python sees it, minus the same
    walk over a table that fits in the L2 cache: the memory hierarchy's cost, which a large
    Python heap (thousands of requests in flight) pays on every object it touches."""

    import numpy as np  # pandas's dependency: builds the table in milliseconds

    def walk(entries: int) -> float:
        # A full-period LCG as the table (entries a power of 2): p -> (5p + 1) mod entries,
        # a single cycle visiting every slot in an order no prefetcher follows.
        table = array.array("q", ((5 * np.arange(entries, dtype=np.int64) + 1) % entries).tobytes())
        p, started = 0, time.process_time()
        for _ in range(steps):
            p = table[p]
        return (time.process_time() - started) / steps * 1e9

    large = 1 << (mib * 2**20 // 8).bit_length() - 1
    return round(walk(large) - walk(1 << 14), 1)


def yardsticks() -> dict[str, float]:
    return {
        "python_loop_ms": min(reference_ms() for _ in range(5)),
        "memory_ns_per_load": memory_ns(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict[str, Any]:
    found = speedups()
    return {
        "packages": package_versions(),
        "speedups": found,
        "speedups_missing": missing_speedups(found),
        "python": python_build(),
        "cpu": cpu(),
        "yardsticks_at_start": yardsticks(),
        "load_average_at_start": load_average(),
    }


# --- CPU of a run's processes -------------------------------------------------------------

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _HZ


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                listed = Path(f"/proc/{pid}/task/{task}/children").read_text()
                kids += [int(k) for k in listed.split()]
    return kids


def descendants(pid: int) -> list[int]:
    out, stack = [], _children(pid)
    while stack:
        child = stack.pop()
        out.append(child)
        stack += _children(child)
    return out


def postgres_backends(database: str) -> list[int]:
    """The server processes serving `database` (their title names it), local servers only."""
    needle = f" {database} ".encode()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" "):
                    out.append(int(name))
    return out


def _machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, total, steal


@dataclass
class CpuSampler:
    """Samples, every `interval` s, the CPU seconds of each role's processes (`roles`: a
    name and a function returning its pids now) and the machine's busy, total and steal
    time. A process's last sample is kept after it exits, so a role's CPU never falls."""

    roles: dict[str, Callable[[], Iterable[int]]]
    interval: float = 0.5
    samples: list[tuple[float, dict[str, float], tuple[int, int, int]]] = field(
        default_factory=list
    )
    _last: dict[str, dict[int, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        totals: dict[str, float] = {}
        for role, pids in self.roles.items():
            seen = self._last.setdefault(role, {})
            with contextlib.suppress(Exception):  # a role's process not started yet
                for pid in pids():
                    cpu_s = _proc_cpu(pid)
                    if cpu_s is not None:
                        seen[pid] = cpu_s
            totals[role] = sum(seen.values())
        self.samples.append((time.time(), totals, _machine_jiffies()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _at(self, when: float) -> tuple[dict[str, float], tuple[float, float, float]]:
        """Each role's CPU seconds and the machine's jiffies at `when`, interpolated."""
        before = max((s for s in self.samples if s[0] <= when), key=lambda s: s[0], default=None)
        after = min((s for s in self.samples if s[0] >= when), key=lambda s: s[0], default=None)
        before = before or after
        after = after or before
        assert before is not None and after is not None, "no samples"
        span = after[0] - before[0]
        w = (when - before[0]) / span if span > 0 else 0.0
        roles = {r: before[1][r] + w * (after[1].get(r, 0.0) - before[1][r]) for r in before[1]}
        machine = tuple(b + w * (a - b) for b, a in zip(before[2], after[2], strict=True))
        return roles, machine  # type: ignore[return-value]

    def between(self, start: float, end: float) -> dict[str, Any]:
        """CPU seconds of each role from `start` to `end`, and what the machine did then:
        its CPUs' busy share, the part of it none of the roles took, and the steal."""
        r0, m0 = self._at(start)
        r1, m1 = self._at(end)
        roles = {r: round(r1[r] - r0.get(r, 0.0), 3) for r in r1}
        busy, total, steal = (b - a for a, b in zip(m0, m1, strict=True))
        cores = os.cpu_count() or 1
        seconds = max(end - start, 1e-9)
        busy_cores = busy / _HZ / seconds
        return {
            "seconds": round(seconds, 2),
            "cpu_s": roles,
            "machine_busy_cores": round(busy_cores, 2),
            "other_work_cores": round(max(0.0, busy_cores - sum(roles.values()) / seconds), 2),
            "steal_share": round(steal / total, 3) if total else 0.0,
            "cores": cores,
        }


# --- preconditions ------------------------------------------------------------------------


def precondition_warnings(
    env: dict[str, Any],
    cpu_span: dict[str, Any] | None,
    per_request_ms: dict[str, float],
    rate_limit_per_minute: float,
    transport: str | None,
    goal_share: float = GOAL_SHARE,
) -> list[str]:
    """Plain sentences, one per precondition of the figure that did not hold."""
    out: list[str] = []
    load = env["load_average_at_start"][0]
    if load >= 1.0:
        out.append(
            f"the machine was busy: load average {load} at the start (the figures assume "
            "it idle); CPU per request is the figure to compare, not the rate"
        )
    if env["speedups_missing"]:
        found = env["speedups"]
        out.append(
            "compiled speedups not in use (pure-Python fallbacks, slower per request): "
            + ", ".join(f"{n} -> {found.get(n)}" for n in env["speedups_missing"])
        )
    flags = env["python"]["env"]
    slow_env = {k: v for k, v in flags.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
    if slow_env or env["python"]["dev_mode"]:
        out.append(f"environment that slows Python or its packages: {slow_env}")
    if transport is not None and not transport.startswith("aiohttp"):
        out.append(f"the async client did not use the aiohttp transport: {transport}")
    if transport is not None and "pure Python" in transport:
        out.append(f"the aiohttp transport ran without its C parser: {transport}")
    loop_ms = env["yardsticks_at_start"]["python_loop_ms"]
    if loop_ms > 1.3 * REFERENCE_LOOP_MS:
        out.append(
            f"Python runs slower here: the yardstick loop took {loop_ms} ms of CPU "
            f"({REFERENCE_LOOP_MS} ms where the goal was met)"
        )
    if cpu_span is not None:
        if cpu_span["other_work_cores"] >= 0.25:
            out.append(
                f"other work took {cpu_span['other_work_cores']} of the "
                f"{cpu_span['cores']} cores during the API span"
            )
        if cpu_span["steal_share"] >= 0.05:
            out.append(f"the hypervisor stole {cpu_span['steal_share']:.0%} of the CPU time")
    budget_ms = 60_000 / (goal_share * rate_limit_per_minute)
    step_ms = per_request_ms.get("step")
    if step_ms is not None and step_ms > budget_ms:
        out.append(
            f"the step process spent {step_ms:.2f} ms of CPU a request: one core carries "
            f"at most {1000 / step_ms:,.0f} requests a second = "
            f"{60_000 / step_ms / rate_limit_per_minute:.2f} of R; the goal ({goal_share} of "
            f"R) needs <= {budget_ms:.2f} ms, so it cannot be met on this machine as it ran"
        )
    everything = sum(per_request_ms.values())
    if cpu_span is not None and everything > cpu_span["cores"] * budget_ms:
        out.append(
            f"the run's processes together spent {everything:.2f} ms of CPU a request "
            f"({', '.join(f'{k} {v:.2f}' for k, v in per_request_ms.items())}): the "
            f"{cpu_span['cores']} cores carry at most "
            f"{60_000 * cpu_span['cores'] / everything / rate_limit_per_minute:.2f} of R"
        )
    return out
