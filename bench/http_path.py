"""The async client's HTTP path alone: CPU a request of the SDK over its transport.

N chat requests sent as the async writer sends them (`AsyncRun._post`: clients of 16
connections from `transport.http_client`, the body's bytes through the SDK's `post`, the
answer read as a stream; `--call typed`: through `chat.completions.create`, as before),
C in flight, against the suite's server in a subprocess; no Dagster, no warehouse, no
grounding. Prints this process's and the server's CPU a request, the transport the clients
used and TCP connections opened. Used to measure, one thing changed
at a time, what tier5's figure depends on (bench/README.md, tier5): the transport
(`--transport httpx2`), the C speedups (`AIOHTTP_NO_EXTENSIONS=1 ...`), the interpreter,
the packages (run it with another venv's python).

    python -m bench.http_path [--requests 3000] [--in-flight 500] [--transport aiohttp]
        [--call raw|typed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai.lib._parsing._completions import type_to_response_format_param

from bench import environment
from bench.common import API_KEY, FakeServer
from kidsfin_assets.llm.transport import http_client, http_transport
from kidsfin_assets.reports import async_writer
from kidsfin_assets.reports.report_schema import KidWeeklyReport

# A prompt of the size gold sends (~3 KB) and the report's schema as the response format.
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Bạn là trợ lý tài chính cho phụ huynh. " * 40},
        {"role": "user", "content": "[[KID]] <data>" + json.dumps(list(range(300))) + "</data>"},
    ],
    "response_format": type_to_response_format_param(KidWeeklyReport),
    "max_completion_tokens": 800,
    "temperature": 0.3,
}


def _self_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _proc_cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def _clients(base_url: str, in_flight: int, transport: str) -> list[openai.AsyncOpenAI]:
    shards = max(1, -(-in_flight // async_writer.CONNECTIONS_PER_CLIENT))
    per_client = -(-in_flight // shards)
    tls = ssl.create_default_context()

    def http() -> httpx2.AsyncClient:
        if transport == "aiohttp":
            return http_client(per_client, 30.0, tls)
        limits = httpx2.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=30.0, verify=tls)

    return [
        openai.AsyncOpenAI(
            api_key=API_KEY, base_url=base_url, max_retries=0, timeout=30.0, http_client=http()
        )
        for _ in range(shards)
    ]


async def _send(
    server: FakeServer, requests: int, in_flight: int, transport: str, call: str
) -> dict:
    clients = _clients(server.base_url, in_flight, transport)
    slots = asyncio.Semaphore(in_flight)

    async def typed(client: openai.AsyncOpenAI) -> bytearray:
        """As the async writer sent them before stop 27: the SDK's typed `create`."""
        body = dict(BODY)
        received = bytearray()
        async with client.chat.completions.with_streaming_response.create(
            model=body.pop("model"), messages=[], extra_body=body, timeout=30.0
        ) as response:
            async for chunk in response.iter_bytes():
                received.extend(chunk)
        return received

    async def raw(client: openai.AsyncOpenAI) -> bytearray:
        """As `AsyncRun._post` sends them: the body's bytes through the SDK's `post`."""
        received = bytearray()
        response = await client.post(
            "/chat/completions",
            cast_to=httpx2.Response,
            content=json.dumps(BODY, ensure_ascii=False, separators=(",", ":")).encode(),
            options={"timeout": 30.0, "headers": async_writer._STREAMED},
        )
        try:
            async for chunk in response.aiter_bytes():
                received.extend(chunk)
        finally:
            await response.aclose()
        return received

    send = typed if call == "typed" else raw

    async def one(i: int) -> None:
        try:
            json.loads(await send(clients[i % len(clients)]))
        finally:
            slots.release()

    tasks = []
    started, cpu0, server0 = time.perf_counter(), _self_cpu(), _proc_cpu(server.proc.pid)
    for i in range(requests):
        await slots.acquire()
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    cpu1, server1 = _self_cpu(), _proc_cpu(server.proc.pid)
    used = http_transport(clients[0])
    for client in clients:
        await client.close()

    def ms(a: tuple[float, float], b: tuple[float, float], k: int) -> float:
        return round(1000 * (b[k] - a[k]) / requests, 3)

    return {
        "transport": used,
        "requests_per_s": round(requests / wall, 1),
        "client_user_ms": ms(cpu0, cpu1, 0),
        "client_system_ms": ms(cpu0, cpu1, 1),
        "server_user_ms": ms(server0, server1, 0),
        "server_system_ms": ms(server0, server1, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.http_path")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.5, help="the server's, seconds")
    parser.add_argument("--transport", choices=("aiohttp", "httpx2"), default="aiohttp")
    parser.add_argument(
        "--call",
        choices=("raw", "typed"),
        default="raw",
        help="raw: the body's bytes through client.post (the writer's); typed: chat.completions",
    )
    args = parser.parse_args(argv)
    connects = 0
    connect = socket.socket.connect

    def counted(sock: socket.socket, address: Any) -> None:
        nonlocal connects
        connects += 1
        connect(sock, address)

    socket.socket.connect = counted  # type: ignore[method-assign]  # as asyncio connects
    with FakeServer() as server:
        server.configure(latency=args.latency, jitter=0.0, max_recorded=100)
        load = environment.load_average()[0]
        out = asyncio.run(_send(server, args.requests, args.in_flight, args.transport, args.call))
    out.update(
        connections_opened=connects,
        load_average=f"{load} -> {environment.load_average()[0]}",
        python_loop_ms=min(environment.reference_ms() for _ in range(3)),
    )
    print(
        f"{out['transport']}, {args.call} call: {args.requests} requests, "
        f"{args.in_flight} in flight, "
        f"{out['requests_per_s']}/s; CPU ms a request: this process "
        f"{out['client_user_ms']} user + {out['client_system_ms']} system, server "
        f"{out['server_user_ms']} + {out['server_system_ms']}; {connects} connections; "
        f"load {out['load_average']}; 1M additions {out['python_loop_ms']} ms"
    )
    return out


if __name__ == "__main__":
    main()
