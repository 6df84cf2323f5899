"""A fake, OpenAI-compatible HTTP server for tests and benchmarks.

Standard library only (``http.server``), so it can run in-process (``FakeOpenAIServer``
/ ``running_server``) or as a subprocess::

    python -m openai_test_server --port 0 --rpm 600 --latency 0.5

which prints exactly one stdout line ``READY <base_url>`` once listening and serves until
SIGTERM/SIGINT.

Endpoints
---------
* ``POST /v1/chat/completions`` -- returns a ``chat.completion`` whose content is JSON generated
  from ``response_format.json_schema.schema`` (objects, ``$defs``/``$ref``, strings, numbers and
  integers within ``minimum``/``maximum``, arrays within ``minItems``/``maxItems``, ``enum``,
  ``const``, ``anyOf``/``oneOf`` with null, booleans).  Strings are short Vietnamese phrases; when
  a user message contains ``[[KID]]`` every top-level string field, and every string item of a
  top-level list (e.g. recommendations), contains ``[[KID]]`` too, as a real model writes it.
  Content is deterministic: it is seeded by a SHA-256 of the request's ``messages``
  (see :func:`generate_content`), so tests can reproduce it.
  With ``report_mode="truthful"`` or ``"lying"``, a request whose user message holds a
  ``<data>{...}</data>`` block is answered with a report written from that data
  (``report_corpus``); ``"lying"`` puts one lie in ``lie_rate`` of them and counts them
  (``stats.reports_lied``, ``stats.lie_kinds``, ``server.lies``).
* ``GET /v1/models`` -- lists the configured model.
* ``/v1/files`` and ``/v1/batches`` (OpenAI's Files and Batch APIs), and flex processing
  (``service_tier: "flex"``, ``flex_unavailable_rate``) -- see
  :mod:`openai_test_server.batches` for their endpoints, faults, config fields
  (``batch_*``, ``flex_*``) and stats.
* ``GET /_stats``, ``GET /_requests``, ``POST /_reset``, ``POST /_config`` -- control plane for
  benchmarks running in another process (no auth).
* Anything else -- 404 with an OpenAI-style error body.

Token accounting (deterministic)
--------------------------------
* ``prompt_tokens = ceil(total UTF-8 bytes of all message contents / 4) + 4 * len(messages)``
  (list-of-parts contents count the concatenated ``text`` parts).
* ``completion_tokens = ceil(UTF-8 bytes of the returned content (or refusal) / 4)``.
* ``cached_tokens``: if ``prompt_tokens >= cache_min_prompt_tokens`` (1024 by default, OpenAI's
  threshold) and the first message's content was already seen by this server (since the last
  reset), ``cached_tokens`` is the largest multiple of 128 that is
  ``<= ceil(bytes of first message / 4) + 4``; otherwise 0.
* If ``max_completion_tokens``/``max_tokens`` is smaller than ``completion_tokens`` (and
  ``enforce_max_tokens`` is on) the content is cut to ``4 * limit`` bytes with
  ``finish_reason="length"``, as OpenAI would.

Rate limits
-----------
``rpm`` and ``tpm`` (``None`` = unlimited) are enforced over a strict sliding window of
``window_seconds`` (default 60).  A request's token cost is ``prompt_tokens + completion_tokens``
and is charged at arrival.  A request that would exceed a limit gets 429
(``code="rate_limit_exceeded"``, ``type="requests"|"tokens"``, ``retry-after`` and
``retry-after-ms`` headers telling exactly when the window frees enough budget), is counted in
``stats.over_limit`` and does not consume budget.

Request pipeline (order matters for scripted tests)
---------------------------------------------------
1. record the request (Authorization and similar headers redacted);
2. auth (``api_key``) -> 401 ``invalid_api_key``;
3. malformed body -> 400;
4. choose a fault: next scripted entry (``server.script([...])``), else ``quota_after``
   exhaustion (-> ``insufficient_quota``), else a random fault with probability ``fault_rate``;
5. rejection faults (``429``, ``insufficient_quota``, ``400``, ``401``, ``401_key_echo``,
   ``html_body``) answer immediately;
6. real rate limit check (rpm, then tpm);
7. ``500``/``503``/``500_explained`` answer after the latency; ``hang`` sleeps ``hang_seconds``
   first; everything else answers 200 after ``latency +- jitter``.

Misbehaving answers
-------------------
Each is a fault kind like the others (``server.script([...])`` or random ``faults``).  The
server's stats always bill what it counted, whatever the answer claims:

* ``usage_absurd`` -- usage claims ``prompt_tokens = 10**9`` (``total_tokens`` to match);
* ``usage_negative`` -- negative ``prompt_tokens``, ``completion_tokens`` and total;
* ``usage_missing`` -- no ``usage`` key at all;
* ``usage_non_numeric`` -- usage values ``"lots"`` / ``null``;
* ``empty_choices`` -- ``choices: []``; only the prompt is billed;
* ``html_body`` -- a 200 ``text/html`` login page, as a captive proxy sends; billed nothing;
* ``trickle`` -- a normal answer (billed in full) whose body, with a true Content-Length, comes
  one byte per ``trickle_interval`` seconds (default 1.0), so no per-read timeout fires; the
  handler stops when the server stops or the client disconnects;
* ``other_model`` -- ``model`` names ``other_model_name`` (default ``gpt-4o``);
* ``500_explained`` -- a 500 whose message is ``server_error_message`` (default: what a local
  server says when it refuses ``json_schema``);
* ``401_key_echo`` -- a 401 whose message echoes the presented key without its ``sk-`` prefix
  and its last 12 characters: forms a scrubber of the exact key does not recognise.

``quota_after=N`` counts every 200 response (content faults and ``hang`` included, ``html_body``
not: the API never saw it); a request
rejected by the rate limiter gives its unit back.  ``server.requests`` keeps the most recent
``max_recorded`` requests (``stats.recorded_dropped`` counts the rest).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import random
import select
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from openai_test_server.batches import (
    BatchService,
    flex_unavailable_body,
    handles_path,
    validate_config,
)
from openai_test_server.content import (
    bad_key_message,
    chat_completion,
    count_tokens,
    error_body,
    first_message_tokens,
    generate_content,
    json_schema_of,
    key_echo_message,
    message_text,
    prompt_token_count,
    shape_answer,
)
from openai_test_server.report_corpus import LIE_KINDS, corpus_answer

#: Every fault kind understood by ``faults`` / ``script``.  ``"ok"`` is only valid in scripts.
ALL_FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "hang",
    "invalid_json",
    "schema_invalid",
    "insufficient_quota",
    "400",
    "401",
    "refusal",
    "length",
    # Misbehaving answers (issue 8): odd usage, odd shapes, slow bodies, telling errors.
    "usage_absurd",
    "usage_negative",
    "usage_missing",
    "usage_non_numeric",
    "empty_choices",
    "html_body",
    "trickle",
    "other_model",
    "500_explained",
    "nul_in_text",
    "401_key_echo",
)
# Faults answered before the rate limiter: they model the API refusing the call outright
# (``html_body``: a captive proxy answering in the API's place).
_REJECTION_FAULTS = frozenset(
    {"429", "insufficient_quota", "400", "401", "401_key_echo", "html_body"}
)
_SERVER_ERROR_FAULTS = frozenset({"500", "503", "500_explained"})
# Default for random faults: the transient ones a retrying client is expected to survive.
_DEFAULT_RANDOM_FAULTS: tuple[str, ...] = ("429", "500", "503")
# Headers never stored verbatim in ``server.requests`` (privacy tests inspect the recordings).
_REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
)
REDACTED = "[REDACTED]"
#: What a local OpenAI-compatible server (llama.cpp) says when it refuses ``json_schema``.
DEFAULT_SERVER_ERROR_MESSAGE = "response_format.type: Input should be 'text' or 'json_object'"
#: ``usage_absurd``: the prompt token count claimed.
ABSURD_PROMPT_TOKENS = 10**9


def _corpus_content(messages: Any, cfg: FakeOpenAIConfig, content: str) -> tuple[str, str | None]:
    """report_mode truthful/lying: a report written from the request's <data> block
    (report_corpus), lying at lie_rate; the schema's content when there is no block."""
    answer = corpus_answer(messages, cfg.report_mode, cfg.lie_rate, cfg.lie_kinds)
    return answer if answer is not None else (content, None)


# --------------------------------------------------------------------------------------
# Config, stats, recordings
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class FakeOpenAIConfig:
    """Run-time tunables (change them with ``server.configure(...)`` or ``POST /_config``)."""

    model: str = "gpt-4o-mini"
    api_key: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    window_seconds: float = 60.0
    latency: float = 0.0
    jitter: float = 0.0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = _DEFAULT_RANDOM_FAULTS
    seed: int = 0
    fault_retry_after: float = 1.0
    hang_seconds: float = 30.0
    trickle_interval: float = 1.0  # seconds between two bytes of a "trickle" body
    other_model_name: str = "gpt-4o"  # what an "other_model" answer says it is
    server_error_message: str = DEFAULT_SERVER_ERROR_MESSAGE  # a "500_explained" message
    quota_after: int | None = None
    max_recorded: int = 10000
    enforce_max_tokens: bool = True
    # Prompts shorter than this get no cached tokens (OpenAI caches from 1,024 tokens on);
    # tests lower it so that the project's shorter prompts exercise cached pricing.
    cache_min_prompt_tokens: int = 1024
    # Reports from the data block (report_corpus): "schema" (generated from the schema),
    # "truthful", or "lying" at lie_rate.
    report_mode: str = "schema"
    lie_rate: float = 0.0
    lie_kinds: tuple[str, ...] = LIE_KINDS  # the kinds a lie is drawn from
    # Batch API and flex processing: see openai_test_server.batches for what each one does.
    batch_validating_seconds: float = 0.0
    batch_seconds_per_line: float = 0.0
    batch_finalizing_seconds: float = 0.0
    batch_line_fault_rate: float = 0.0
    batch_line_faults: tuple[str, ...] = ("500",)
    batch_expire_after_lines: int | None = None
    batch_cancel_after_lines: int = 0
    batch_lose_output_rate: float = 0.0
    batch_queue_tokens: int | None = None
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200 * 1024 * 1024
    flex_unavailable_rate: float = 0.0

    def validate(self) -> None:
        unknown = [f for f in self.faults if f not in ALL_FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; valid: {ALL_FAULT_KINDS}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        if self.fault_rate > 0 and not self.faults:
            raise ValueError("fault_rate > 0 needs at least one fault kind")
        if self.max_recorded < 0:
            raise ValueError("max_recorded must be >= 0")
        if self.report_mode not in ("schema", "truthful", "lying"):
            raise ValueError("report_mode must be schema, truthful or lying")
        if not 0.0 <= self.lie_rate <= 1.0:
            raise ValueError("lie_rate must be within [0, 1]")
        if not self.lie_kinds or set(self.lie_kinds) - set(LIE_KINDS):
            raise ValueError(f"lie_kinds must be some of {', '.join(LIE_KINDS)}")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if not 0.0 <= self.trickle_interval < math.inf:
            raise ValueError("trickle_interval must be finite and >= 0")
        if self.cache_min_prompt_tokens < 0:
            raise ValueError("cache_min_prompt_tokens must be >= 0")
        for name in ("rpm", "tpm", "quota_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")
        validate_config(self)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["faults"] = list(self.faults)
        data["batch_line_faults"] = list(self.batch_line_faults)
        data["api_key"] = REDACTED if self.api_key else None
        return data


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(FakeOpenAIConfig))


@dataclasses.dataclass(frozen=True)
class ServerStats:
    """Immutable snapshot of the server counters (``server.stats`` / ``GET /_stats``).

    ``*_in_window`` maxima are over any sliding window of ``window_seconds``: the ``max_requests``/
    ``max_tokens`` ones count every chat-completion arrival (the load the client offered, including
    rejected calls); the ``max_admitted_*`` ones only what passed the rate limiter.
    """

    requests_total: int = 0  # every /v1/* request
    ok: int = 0  # 200 responses to /v1/chat/completions
    by_status: dict[int, int] = dataclasses.field(default_factory=dict)
    over_limit: int = 0  # real rpm/tpm violations (injected "429" faults are not counted)
    over_limit_requests: int = 0
    over_limit_tokens: int = 0
    faults_injected: dict[str, int] = dataclasses.field(default_factory=dict)
    prompt_tokens: int = 0  # billed on 200 responses
    completion_tokens: int = 0
    cached_tokens: int = 0
    max_requests_in_window: int = 0
    max_tokens_in_window: int = 0
    max_admitted_requests_in_window: int = 0
    max_admitted_tokens_in_window: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    recorded_dropped: int = 0
    window_seconds: float = 60.0
    reports_truthful: int = 0  # report_mode truthful/lying: 200 answers written from data
    reports_lied: int = 0
    lie_kinds: dict[str, int] = dataclasses.field(default_factory=dict)
    # Batch API (billed at the batch price, so kept out of the token counts above) and flex
    # (a subset of the counts above); see openai_test_server.batches.
    batches_created: int = 0
    batch_lines_answered: int = 0
    batch_lines_answered_again: int = 0
    batch_lines_errored: int = 0
    batch_lines_unprocessed: int = 0
    batch_prompt_tokens: int = 0
    batch_completion_tokens: int = 0
    flex_ok: int = 0
    flex_prompt_tokens: int = 0
    flex_completion_tokens: int = 0
    flex_cached_tokens: int = 0
    flex_unavailable: int = 0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["by_status"] = {str(k): v for k, v in self.by_status.items()}
        return data


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names, secrets redacted
    body: Any  # parsed JSON, or the raw text if it was not JSON
    timestamp: float


class _SlidingWindow:
    """Events (time, tokens) within the last ``window`` seconds; not thread-safe on its own."""

    def __init__(self) -> None:
        self.events: collections.deque[tuple[float, int]] = collections.deque()
        self.tokens = 0

    def prune(self, now: float, window: float) -> None:
        while self.events and self.events[0][0] <= now - window:
            _, tok = self.events.popleft()
            self.tokens -= tok

    def add(self, now: float, tokens: int) -> None:
        self.events.append((now, tokens))
        self.tokens += tokens

    def clear(self) -> None:
        self.events.clear()
        self.tokens = 0


@dataclasses.dataclass
class _Admission:
    admitted: bool
    limit_type: str = ""  # "requests" | "tokens"
    retry_after: float = 0.0
    limit: int = 0
    used: int = 0
    requested: int = 0
    cached_tokens: int = 0


# --------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Why: don't join handler threads on close -- a "hang" handler may still be sleeping.
    block_on_close = False
    allow_reuse_address = True
    # Why: the default backlog (5) drops connects when benchmarks open ~30 at once.
    request_queue_size = 256
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # clients that time out or disconnect are normal here
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = (
        "HTTP/1.1"  # keep-alive, like the real API; every response has Content-Length
    )
    server_version = "fake-openai/1.0"
    timeout = 300  # reap idle keep-alive connections eventually

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without TCP_NODELAY, Nagle + delayed ACK add
        # ~40 ms to every response, which would distort latency benchmarks.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # Quiet: stdout must only ever carry the READY line.
    def log_message(self, format: str, *args: Any) -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:
        return

    # ---- plumbing -------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(
        self,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        *,
        api: bool = True,
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if api:
            self.server.fake._count_status(status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client gave up (e.g. timed out on a "hang"); nothing to report.
            self.close_connection = True

    def _send_html(self, status: int, page: str) -> None:
        """An HTML page where JSON was expected (``html_body``: a captive proxy's answer)."""
        data = page.encode("utf-8")
        self.server.fake._count_status(status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _send_trickle(self, payload: Any, headers: Mapping[str, str], interval: float) -> None:
        """A 200 whose body (with a true Content-Length) comes one byte per ``interval``.

        Every read gets a byte in time, so a per-read timeout never fires. Stops when the
        server stops or the client goes away, whichever comes first.
        """
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        fake = self.server.fake
        fake._count_status(200)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            for i in range(len(data)):
                if fake._stop_event.wait(interval) or _peer_closed(self.connection):
                    self.close_connection = True
                    return
                self.wfile.write(data[i : i + 1])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _parsed_body(self) -> tuple[Any, bool]:
        raw = self._read_body()
        if not raw:
            return None, True
        try:
            return json.loads(raw), True
        except (UnicodeDecodeError, json.JSONDecodeError):
            return raw.decode("utf-8", "replace"), False

    # ---- routing ----------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        fake = self.server.fake
        if path == "/_stats":
            self._send_json(200, fake.stats.to_json(), api=False)
        elif path == "/_requests":
            self._send_json(200, [dataclasses.asdict(r) for r in fake.requests], api=False)
        elif path == "/_config":
            self._send_json(200, fake.config.to_json(), api=False)
        elif handles_path(path):
            self._api(lambda: fake.batches.handle(self, "GET"))
        else:
            self._api(lambda: self._get_api(path))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        fake = self.server.fake
        if path == "/_reset":
            self._read_body()
            fake.reset()
            self._send_json(200, {"ok": True}, api=False)
        elif path == "/_config":
            body, is_json = self._parsed_body()
            try:
                if not is_json or not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                script = body.pop("script", None)
                fake.configure(**body)
                if script:
                    fake.script(script)
            except (TypeError, ValueError) as exc:
                self._send_json(400, error_body(str(exc), "invalid_request_error", None), api=False)
                return
            self._send_json(200, fake.config.to_json(), api=False)
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self._api(self._chat)
        elif handles_path(path):
            self._api(lambda: fake.batches.handle(self, "POST"))
        else:
            self._api(lambda: self._not_found("POST", path))

    def do_PUT(self) -> None:
        self._api(lambda: self._not_found("PUT", urlsplit(self.path).path))

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if handles_path(path):
            self._api(lambda: self.server.fake.batches.handle(self, "DELETE"))
        else:
            self._api(lambda: self._not_found("DELETE", path))

    def _api(self, handler: Any) -> None:
        fake = self.server.fake
        fake._enter()
        try:
            handler()
        finally:
            fake._leave()

    def _not_found(self, method: str, path: str) -> None:
        self._read_body()
        self._send_json(
            404, error_body(f"Invalid URL ({method} {path})", "invalid_request_error", None)
        )

    def _get_api(self, path: str) -> None:
        fake = self.server.fake
        if path in ("/v1/models", "/models"):
            model = fake.config.model
            listing = {"object": "list", "data": [_model_obj(model)]}
            self._send_json(200, listing)
        elif path.startswith("/v1/models/") and path.split("/")[-1] == fake.config.model:
            self._send_json(200, _model_obj(fake.config.model))
        else:
            self._not_found("GET", path)

    # ---- chat completions -----------------------------------------------------------

    def _chat(self) -> None:
        fake = self.server.fake
        body, is_json = self._parsed_body()
        headers = {
            k.lower(): (REDACTED if k.lower() in _REDACTED_HEADERS else v)
            for k, v in self.headers.items()
        }
        fake._record(RecordedRequest("POST", self.path, headers, body, time.time()))
        cfg = fake.config  # snapshot: consistent view for this request

        if (
            cfg.api_key is not None
            and self.headers.get("Authorization", "") != f"Bearer {cfg.api_key}"
        ):
            self._send_bad_key()
            return
        if not is_json or not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            msg = (
                "We could not parse the JSON body of your request."
                if not is_json
                else "'messages' is required."
            )
            self._send_json(400, error_body(msg, "invalid_request_error", None, "messages"))
            return
        if body.get("stream"):
            self._send_json(
                400,
                error_body(
                    "stream=true is not supported by the fake server.",
                    "invalid_request_error",
                    None,
                    "stream",
                ),
            )
            return

        flex = body.get("service_tier") == "flex"
        if flex and fake.batches.flex_unavailable(cfg):
            # No flex capacity: refused before anything else, so not billed nor rate-counted.
            self._send_json(429, flex_unavailable_body(str(body.get("model") or cfg.model)))
            return

        fault, quota_reserved = fake._next_fault()
        if fault in _REJECTION_FAULTS:
            self._send_rejection(fault, cfg)
            return

        messages: list[Any] = body["messages"]
        content = generate_content(body)
        lie: str | None = None
        if cfg.report_mode != "schema" and fault is None:
            content, lie = _corpus_content(messages, cfg, content)
        answer = shape_answer(body, content, json_schema_of(body), fault, cfg.enforce_max_tokens)

        prompt_tokens = prompt_token_count(messages)
        completion_tokens = (
            0
            if fault in _SERVER_ERROR_FAULTS or fault == "empty_choices"  # no output to bill
            else count_tokens(answer.output)
        )
        adm = fake._admit(
            cfg,
            prompt_tokens + completion_tokens,
            messages,
            prompt_tokens,
            quota_reserved=quota_reserved,
        )
        rate_headers = fake._rate_headers(cfg)
        if not adm.admitted:
            self._send_rate_limited(adm, cfg, rate_headers)
            return

        if fault == "hang":
            # Sleep on the stop event so stop() never waits for a hanging handler.
            fake._stop_event.wait(cfg.hang_seconds)
        fake._stop_event.wait(fake._latency(cfg))

        if fault in _SERVER_ERROR_FAULTS:
            if fault == "500_explained":
                err = error_body(cfg.server_error_message, "server_error", None)
            elif fault == "500":
                err = error_body(
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                )
            else:
                err = error_body(
                    "The engine is currently overloaded, please try again later.",
                    "server_error",
                    None,
                )
            self._send_json(500 if fault == "500_explained" else int(fault), err, rate_headers)
            return

        completion = chat_completion(
            str(body.get("model") or cfg.model),
            answer,
            prompt_tokens,
            completion_tokens,
            cached_tokens=adm.cached_tokens,
            service_tier="flex" if flex else "default",
        )
        # Billed as counted, whatever the answer claims: the server's stats are the truth.
        fake._bill(prompt_tokens, completion_tokens, adm.cached_tokens)
        if cfg.report_mode != "schema" and fault is None:
            fake._count_report(str(completion["id"]), lie, answer.content)
        if flex:
            fake.batches.bill_flex(prompt_tokens, completion_tokens, adm.cached_tokens)
        if fault in _ANSWER_FAULTS:
            _ANSWER_FAULTS[fault](completion, cfg)
        if fault == "trickle":
            self._send_trickle(completion, rate_headers, cfg.trickle_interval)
        else:
            self._send_json(200, completion, rate_headers)

    def _send_rejection(self, fault: str, cfg: FakeOpenAIConfig) -> None:
        if fault == "429":
            seconds = cfg.fault_retry_after
            msg = (
                f"Rate limit reached for {cfg.model} in organization org-fake on requests "
                f"per min (RPM). Please try again in {seconds:g}s."
            )
            self._send_json(
                429, error_body(msg, "requests", "rate_limit_exceeded"), _retry_headers(seconds)
            )
        elif fault == "insufficient_quota":
            msg = (
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors."
            )
            self._send_json(429, error_body(msg, "insufficient_quota", "insufficient_quota"))
        elif fault == "400":
            msg = "Invalid value for 'messages': the request was rejected by the fake server."
            self._send_json(400, error_body(msg, "invalid_request_error", None, "messages"))
        elif fault == "401_key_echo":
            key = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            self._send_json(
                401,
                error_body(key_echo_message(key), "invalid_request_error", "invalid_api_key"),
            )
        elif fault == "html_body":
            self._send_html(200, CAPTIVE_PORTAL_PAGE)
        else:  # "401"
            self._send_bad_key()

    def _send_bad_key(self) -> None:
        """401 as OpenAI answers a wrong key, naming the key presented (masked)."""
        message = bad_key_message(self.headers.get("Authorization", ""))
        self._send_json(401, error_body(message, "invalid_request_error", "invalid_api_key"))

    def _send_rate_limited(
        self, adm: _Admission, cfg: FakeOpenAIConfig, rate_headers: Mapping[str, str]
    ) -> None:
        unit = "requests per min (RPM)" if adm.limit_type == "requests" else "tokens per min (TPM)"
        wait = (
            f"{adm.retry_after * 1000:.0f}ms" if adm.retry_after < 1 else f"{adm.retry_after:.3f}s"
        )
        msg = (
            f"Rate limit reached for {cfg.model} in organization org-fake on {unit}: "
            f"Limit {adm.limit}, Used {adm.used}, Requested {adm.requested}. "
            f"Please try again in {wait}. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        )
        headers = {**rate_headers, **_retry_headers(adm.retry_after)}
        self._send_json(429, error_body(msg, adm.limit_type, "rate_limit_exceeded"), headers)


CAPTIVE_PORTAL_PAGE = """<!DOCTYPE html>
<html><head><title>Network login</title></head>
<body><h1>Sign in to continue</h1>
<p>You must log in to this network before you can access the Internet.</p>
<form method="post" action="/login"><input name="user"><input type="submit"></form>
</body></html>
"""


def _usage_absurd(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    usage = completion["usage"]
    usage["prompt_tokens"] = ABSURD_PROMPT_TOKENS
    usage["total_tokens"] = ABSURD_PROMPT_TOKENS + usage["completion_tokens"]


def _usage_negative(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    usage = completion["usage"]
    usage["prompt_tokens"] = -max(1, usage["prompt_tokens"])
    usage["completion_tokens"] = -max(1, usage["completion_tokens"])
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]


def _usage_missing(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    del completion["usage"]


def _usage_non_numeric(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    usage = completion["usage"]
    usage["prompt_tokens"] = "lots"
    usage["completion_tokens"] = None
    usage["total_tokens"] = "lots"
    usage["prompt_tokens_details"]["cached_tokens"] = "some"


def _empty_choices(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    completion["choices"] = []


def _other_model(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    completion["model"] = cfg.other_model_name


def _nul_in_text(completion: dict[str, Any], cfg: FakeOpenAIConfig) -> None:
    """A NUL character in the report's first text field (JSON-escaped, as a server sends
    it): valid JSON and schema, but PostgreSQL's text and jsonb refuse it."""
    message = completion["choices"][0]["message"]
    report = json.loads(message["content"])
    field = next(k for k, v in report.items() if isinstance(v, str))
    report[field] += "\u0000"
    message["content"] = json.dumps(report, ensure_ascii=False)


#: 200 answers worded wrongly: each rewrites the ``chat.completion`` about to be sent.
_ANSWER_FAULTS: dict[str, Callable[[dict[str, Any], FakeOpenAIConfig], None]] = {
    "usage_absurd": _usage_absurd,
    "usage_negative": _usage_negative,
    "usage_missing": _usage_missing,
    "usage_non_numeric": _usage_non_numeric,
    "empty_choices": _empty_choices,
    "other_model": _other_model,
    "nul_in_text": _nul_in_text,
}


def _peer_closed(sock: socket.socket) -> bool:
    """True once the client has closed its end (readable, and reading gives EOF)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _retry_headers(seconds: float) -> dict[str, str]:
    # Round up: a client that waits exactly retry-after must then be admitted.
    return {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }


def _model_obj(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "fake-openai"}


# --------------------------------------------------------------------------------------
# Public server object
# --------------------------------------------------------------------------------------


def _fault_tuple(faults: Iterable[str] | str) -> tuple[str, ...]:
    """Accept ``["500", "503"]`` or ``"500,503"`` (CLI and /_config convenience)."""
    if isinstance(faults, str):
        return tuple(f.strip() for f in faults.split(",") if f.strip())
    return tuple(faults)


class FakeOpenAIServer:
    """OpenAI-compatible fake server on ``127.0.0.1`` (port 0 = pick a free one).

    Use as ``with FakeOpenAIServer(rpm=60) as srv: OpenAI(base_url=srv.base_url, ...)``.
    Keyword arguments other than ``host``/``port`` are :class:`FakeOpenAIConfig` fields;
    ``server.requests`` holds the recorded requests, ``server.stats`` a :class:`ServerStats`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        window_seconds: float = 60.0,
        latency: float = 0.0,
        jitter: float = 0.0,
        fault_rate: float = 0.0,
        faults: Iterable[str] | str | None = None,
        seed: int = 0,
        fault_retry_after: float = 1.0,
        hang_seconds: float = 30.0,
        trickle_interval: float = 1.0,
        other_model_name: str = "gpt-4o",
        server_error_message: str = DEFAULT_SERVER_ERROR_MESSAGE,
        quota_after: int | None = None,
        max_recorded: int = 10000,
        enforce_max_tokens: bool = True,
        cache_min_prompt_tokens: int = 1024,
        report_mode: str = "schema",
        lie_rate: float = 0.0,
        lie_kinds: Iterable[str] = LIE_KINDS,
        batch_validating_seconds: float = 0.0,
        batch_seconds_per_line: float = 0.0,
        batch_finalizing_seconds: float = 0.0,
        batch_line_fault_rate: float = 0.0,
        batch_line_faults: Iterable[str] | str = ("500",),
        batch_expire_after_lines: int | None = None,
        batch_cancel_after_lines: int = 0,
        batch_lose_output_rate: float = 0.0,
        batch_queue_tokens: int | None = None,
        batch_max_requests: int = 50_000,
        batch_max_bytes: int = 200 * 1024 * 1024,
        flex_unavailable_rate: float = 0.0,
    ) -> None:
        self._host = host
        self._port = port
        self._config = FakeOpenAIConfig(
            model=model,
            api_key=api_key,
            rpm=rpm,
            tpm=tpm,
            window_seconds=window_seconds,
            latency=latency,
            jitter=jitter,
            fault_rate=fault_rate,
            faults=_fault_tuple(faults) if faults is not None else _DEFAULT_RANDOM_FAULTS,
            seed=seed,
            fault_retry_after=fault_retry_after,
            hang_seconds=hang_seconds,
            trickle_interval=trickle_interval,
            other_model_name=other_model_name,
            server_error_message=server_error_message,
            quota_after=quota_after,
            max_recorded=max_recorded,
            enforce_max_tokens=enforce_max_tokens,
            cache_min_prompt_tokens=cache_min_prompt_tokens,
            report_mode=report_mode,
            lie_rate=lie_rate,
            lie_kinds=tuple(lie_kinds),
            batch_validating_seconds=batch_validating_seconds,
            batch_seconds_per_line=batch_seconds_per_line,
            batch_finalizing_seconds=batch_finalizing_seconds,
            batch_line_fault_rate=batch_line_fault_rate,
            batch_line_faults=_fault_tuple(batch_line_faults),
            batch_expire_after_lines=batch_expire_after_lines,
            batch_cancel_after_lines=batch_cancel_after_lines,
            batch_lose_output_rate=batch_lose_output_rate,
            batch_queue_tokens=batch_queue_tokens,
            batch_max_requests=batch_max_requests,
            batch_max_bytes=batch_max_bytes,
            flex_unavailable_rate=flex_unavailable_rate,
        )
        self._config.validate()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._fault_rng = random.Random(seed)
        self._latency_rng = random.Random(
            seed + 1
        )  # separate stream: latency must not shift faults
        #: Files, batches and flex capacity (``openai_test_server.batches``); they survive reset().
        self.batches = BatchService(self)
        self._init_state()

    def _init_state(self) -> None:
        # Caller holds the lock (or we're in __init__).
        self._counters = ServerStats(window_seconds=self._config.window_seconds)
        self._by_status: collections.Counter[int] = collections.Counter()
        self._faults: collections.Counter[str] = collections.Counter()
        self._arrivals = _SlidingWindow()
        self._admitted = _SlidingWindow()
        self._seen_first_messages: set[str] = set()
        self._script: collections.deque[str] = collections.deque()
        self._quota_used = 0
        self._in_flight = 0
        self._batch_answered_ids: set[str] = set()  # custom_ids answered 200 in a batch
        self._recorded: collections.deque[RecordedRequest] = collections.deque(
            maxlen=self._config.max_recorded
        )
        self._lie_kinds: collections.Counter[str] = collections.Counter()
        self._lies: collections.deque[tuple[str, str, str]] = collections.deque(
            maxlen=self._config.max_recorded
        )

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._stop_event.clear()
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        # Short poll interval so stop() returns quickly.
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop_event.set()  # wakes handlers sleeping for latency/hang
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL without ``/v1`` (for ``/_stats`` etc.)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``OpenAI(base_url=...)``."""
        return f"{self.url}/v1"

    # ---- control ----------------------------------------------------------------------

    @property
    def config(self) -> FakeOpenAIConfig:
        """A copy of the current configuration."""
        with self._lock:
            return dataclasses.replace(self._config)

    def configure(self, **changes: Any) -> FakeOpenAIConfig:
        """Change settings at run time (same names as the constructor, except host/port)."""
        unknown = set(changes) - _CONFIG_FIELDS
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        for name in ("faults", "batch_line_faults"):
            if name in changes:
                changes[name] = _fault_tuple(changes[name])
        if "lie_kinds" in changes:
            changes["lie_kinds"] = tuple(changes["lie_kinds"])
        with self._lock:
            new = dataclasses.replace(self._config, **changes)
            new.validate()
            self._config = new
            if "seed" in changes:
                self._fault_rng = random.Random(new.seed)
                self._latency_rng = random.Random(new.seed + 1)
            if "max_recorded" in changes:
                self._recorded = collections.deque(self._recorded, maxlen=new.max_recorded)
            if "window_seconds" in changes:
                self._counters = dataclasses.replace(
                    self._counters, window_seconds=new.window_seconds
                )
            return dataclasses.replace(new)

    def script(self, kinds: Iterable[str]) -> None:
        """Queue outcomes, one per chat request, used before random faults (``"ok"``: none)."""
        kinds = list(kinds)
        bad = [k for k in kinds if k != "ok" and k not in ALL_FAULT_KINDS]
        if bad:
            raise ValueError(
                f"unknown scripted kinds {bad}; valid: ok, {', '.join(ALL_FAULT_KINDS)}"
            )
        with self._lock:
            self._script.extend(kinds)

    def reset(self) -> None:
        """Clear stats, recordings, rate windows, prompt-cache memory, script and quota usage."""
        with self._lock:
            in_flight = self._in_flight
            self._init_state()
            self._in_flight = in_flight

    @property
    def stats(self) -> ServerStats:
        with self._lock:
            return dataclasses.replace(
                self._counters,
                by_status=dict(self._by_status),
                faults_injected=dict(self._faults),
                in_flight=self._in_flight,
                lie_kinds=dict(self._lie_kinds),
            )

    @property
    def lies(self) -> list[tuple[str, str, str]]:
        """(completion id, lie kind, content) of every lying answer (report_mode lying)."""
        with self._lock:
            return list(self._lies)

    def _count_report(self, completion_id: str, lie: str | None, content: str | None) -> None:
        with self._lock:
            if lie is None:
                self._bump(reports_truthful=1)
                return
            self._bump(reports_lied=1)
            self._lie_kinds[lie] += 1
            self._lies.append((completion_id, lie, content or ""))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._recorded)

    # ---- internals used by the handler -------------------------------------------------

    def _bump(self, **deltas: int) -> None:
        c = self._counters
        self._counters = dataclasses.replace(c, **{k: getattr(c, k) + v for k, v in deltas.items()})

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._bump(requests_total=1)
            if self._in_flight > self._counters.max_in_flight:
                self._counters = dataclasses.replace(self._counters, max_in_flight=self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _count_status(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1
            if status == 200:
                self._bump(ok=1)

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            maxlen = self._recorded.maxlen or 0
            if len(self._recorded) >= maxlen:
                self._bump(recorded_dropped=1)  # the deque drops the oldest (or, at 0, this one)
            self._recorded.append(rec)

    def _next_fault(self) -> tuple[str | None, bool]:
        """Pick this request's fault; also says whether a ``quota_after`` unit was reserved."""
        with self._lock:
            cfg = self._config
            kind: str | None
            if self._script:
                kind = self._script.popleft()
                kind = None if kind == "ok" else kind
            elif cfg.quota_after is not None and self._quota_used >= cfg.quota_after:
                kind = "insufficient_quota"
            elif cfg.fault_rate > 0 and self._fault_rng.random() < cfg.fault_rate:
                kind = self._fault_rng.choice(cfg.faults)
            else:
                kind = None
            if kind is not None:
                self._faults[kind] += 1
            if (
                cfg.quota_after is not None
                and kind not in _REJECTION_FAULTS
                and kind not in _SERVER_ERROR_FAULTS
            ):
                # Reserve quota now (not at response time) so concurrent calls can't overshoot;
                # released again if the rate limiter rejects the call.
                self._quota_used += 1
                return kind, True
            return kind, False

    def _admit(
        self,
        cfg: FakeOpenAIConfig,
        tokens: int,
        messages: Sequence[Any],
        prompt_tokens: int,
        *,
        quota_reserved: bool,
    ) -> _Admission:
        """Rate-limit check + budget charge, atomically."""
        window = cfg.window_seconds
        with self._lock:
            now = time.monotonic()
            # Offered load (every arrival), for benchmarks judging client pacing.
            self._arrivals.prune(now, window)
            self._arrivals.add(now, tokens)
            c = self._counters
            self._counters = dataclasses.replace(
                c,
                max_requests_in_window=max(c.max_requests_in_window, len(self._arrivals.events)),
                max_tokens_in_window=max(c.max_tokens_in_window, self._arrivals.tokens),
            )

            adm = self._admitted
            adm.prune(now, window)
            if cfg.rpm is not None and len(adm.events) + 1 > cfg.rpm:
                # The (len - rpm)-th oldest request must expire before one more fits.
                k = len(adm.events) - cfg.rpm
                retry = adm.events[k][0] + window - now if cfg.rpm > 0 else window
                self._bump(over_limit=1, over_limit_requests=1)
                self._quota_used -= quota_reserved  # a rejected call consumes no quota
                return _Admission(False, "requests", retry, cfg.rpm, len(adm.events), 1)
            if cfg.tpm is not None and adm.tokens + tokens > cfg.tpm:
                if tokens > cfg.tpm:
                    retry = window  # can never fit; OpenAI still answers 429
                else:
                    need, freed, retry = adm.tokens + tokens - cfg.tpm, 0, window
                    for ts, tok in adm.events:
                        freed += tok
                        if freed >= need:
                            retry = ts + window - now
                            break
                self._bump(over_limit=1, over_limit_tokens=1)
                self._quota_used -= quota_reserved
                return _Admission(False, "tokens", retry, cfg.tpm, adm.tokens, tokens)

            adm.add(now, tokens)
            c = self._counters
            self._counters = dataclasses.replace(
                c,
                max_admitted_requests_in_window=max(
                    c.max_admitted_requests_in_window, len(adm.events)
                ),
                max_admitted_tokens_in_window=max(c.max_admitted_tokens_in_window, adm.tokens),
            )

            cached = 0
            if messages:
                key = hashlib.sha256(message_text(messages[0]).encode("utf-8")).hexdigest()
                seen = key in self._seen_first_messages
                if prompt_tokens >= cfg.cache_min_prompt_tokens and seen:
                    cached = (first_message_tokens(messages) // 128) * 128
                self._seen_first_messages.add(key)
            return _Admission(True, cached_tokens=cached)

    def _rate_headers(self, cfg: FakeOpenAIConfig) -> dict[str, str]:
        # Mirrors OpenAI's x-ratelimit-* headers so adaptive clients have something to read.
        headers: dict[str, str] = {}
        with self._lock:
            used_req, used_tok = len(self._admitted.events), self._admitted.tokens
        if cfg.rpm is not None:
            headers["x-ratelimit-limit-requests"] = str(cfg.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(0, cfg.rpm - used_req))
        if cfg.tpm is not None:
            headers["x-ratelimit-limit-tokens"] = str(cfg.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, cfg.tpm - used_tok))
        return headers

    def _latency(self, cfg: FakeOpenAIConfig) -> float:
        if cfg.latency <= 0 and cfg.jitter <= 0:
            return 0.0
        with self._lock:
            delta = self._latency_rng.uniform(-cfg.jitter, cfg.jitter) if cfg.jitter > 0 else 0.0
        return max(0.0, cfg.latency + delta)

    def _bill(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> None:
        with self._lock:
            self._bump(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cached_tokens=cached_tokens,
            )


@contextlib.contextmanager
def running_server(**config: Any) -> Iterator[FakeOpenAIServer]:
    """``with running_server(rpm=60) as srv: ...`` -- starts and always stops the server."""
    server = FakeOpenAIServer(**config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m openai_test_server", description=__doc__.splitlines()[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--api-key", default=None)
    p.add_argument("--rpm", type=int, default=None)
    p.add_argument("--tpm", type=int, default=None)
    p.add_argument("--window-seconds", type=float, default=60.0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--faults", type=_csv, default=None, help="comma-separated fault kinds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault-retry-after", type=float, default=1.0)
    p.add_argument("--hang-seconds", type=float, default=30.0)
    p.add_argument("--trickle-interval", type=float, default=1.0)
    p.add_argument("--other-model-name", default="gpt-4o")
    p.add_argument("--server-error-message", default=DEFAULT_SERVER_ERROR_MESSAGE)
    p.add_argument("--quota-after", type=int, default=None)
    p.add_argument("--max-recorded", type=int, default=10000)
    p.add_argument("--enforce-max-tokens", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--cache-min-prompt-tokens", type=int, default=1024)
    p.add_argument("--report-mode", choices=("schema", "truthful", "lying"), default="schema")
    p.add_argument("--lie-rate", type=float, default=0.0)
    p.add_argument("--batch-validating-seconds", type=float, default=0.0)
    p.add_argument("--batch-seconds-per-line", type=float, default=0.0)
    p.add_argument("--batch-finalizing-seconds", type=float, default=0.0)
    p.add_argument("--batch-line-fault-rate", type=float, default=0.0)
    p.add_argument("--batch-line-faults", type=_csv, default=["500"])
    p.add_argument("--batch-expire-after-lines", type=int, default=None)
    p.add_argument("--batch-cancel-after-lines", type=int, default=0)
    p.add_argument("--batch-lose-output-rate", type=float, default=0.0)
    p.add_argument("--batch-queue-tokens", type=int, default=None)
    p.add_argument("--batch-max-requests", type=int, default=50_000)
    p.add_argument("--batch-max-bytes", type=int, default=200 * 1024 * 1024)
    p.add_argument("--flex-unavailable-rate", type=float, default=0.0)
    p.add_argument("--script", type=_csv, default=None, help="comma-separated scripted outcomes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(_build_parser().parse_args(argv))
    script = args.pop("script")
    server = FakeOpenAIServer(**args)
    if script:
        server.script(script)
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    print(f"READY {server.base_url}", flush=True)
    try:
        # Timed waits keep the main thread responsive to signals.
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
