"""The async client's HTTP transport: the SDK's aiohttp transport with its pool of
connections, and which transport (and which of its C speedups) a client really sends
through, for gold's `http_transport` metadata and the benchmarks (bench/README.md, tier5)."""

from __future__ import annotations

import importlib
import ssl
from dataclasses import dataclass

import httpx2
import openai


@dataclass(frozen=True)
class ApiAccess:
    """Where and as whom a client asks (the `openai` resource's values, passed plain)."""

    api_key: str | None
    organization: str | None
    project: str | None
    base_url: str | None
    timeout_seconds: float

    def async_client(self, http: httpx2.AsyncClient) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self.api_key,
            organization=self.organization,
            project=self.project,
            base_url=self.base_url,
            max_retries=0,  # one retry policy: ours
            timeout=self.timeout_seconds,
            http_client=http,
        )


def http_client(connections: int, timeout: float, tls: ssl.SSLContext) -> httpx2.AsyncClient:
    """The SDK's aiohttp transport (`openai[aiohttp]`, a dependency): its C parser and
    connection pool cost the event loop far less a request than httpx2's own."""
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return openai.DefaultAioHttpClient(limits=limits, timeout=timeout, verify=tls)


# aiohttp and the packages under it each fall back to pure Python, silently, when their C
# extension cannot be loaded (no wheel for this Python, AIOHTTP_NO_EXTENSIONS=1...): the
# async client then spends ~1.7x the CPU a request (bench/README.md, tier5). For each: a
# module, a name in it, and the module that name comes from when compiled.
AIOHTTP_SPEEDUPS = {
    "aiohttp": ("aiohttp.http_parser", "HttpResponseParser", "aiohttp._http_parser"),
    "multidict": ("multidict", "CIMultiDict", "multidict._multidict"),
    "yarl": ("yarl._quoting", "_Quoter", "yarl._quoting_c"),
    "propcache": ("propcache.api", "under_cached_property", "propcache._helpers_c"),
    "frozenlist": ("frozenlist", "FrozenList", "frozenlist._frozenlist"),
}


def speedup_in_use(package: str) -> str | None:
    """The module `package`'s hot code comes from here (None: not installed)."""
    module, name, _ = AIOHTTP_SPEEDUPS[package]
    try:
        return getattr(importlib.import_module(module), name).__module__
    except (ImportError, AttributeError):
        return None


def pure_python_speedups() -> list[str]:
    """The packages of the aiohttp transport running their pure-Python fallback."""
    return [
        package
        for package, (_, _, compiled) in AIOHTTP_SPEEDUPS.items()
        if speedup_in_use(package) not in (None, compiled)
    ]


def http_transport(client: openai.AsyncOpenAI) -> str:
    """What the SDK client sends its requests through, e.g. `aiohttp 3.14.5` or
    `aiohttp 3.14.5, pure Python: aiohttp, yarl`; any other transport by its class. The
    class is read from the client itself: the one a request takes, not the one asked for."""
    transport = getattr(client._client, "_transport", None)
    kind = type(transport)
    if kind.__name__ == "AiohttpTransport" and "aiohttp" in kind.__module__:
        import aiohttp

        slow = pure_python_speedups()
        return f"aiohttp {aiohttp.__version__}" + (
            f", pure Python: {', '.join(slow)}" if slow else ""
        )
    return f"{kind.__module__}.{kind.__qualname__}"
