"""Files and Batches APIs, and flex processing, for the suite's fake OpenAI server.

:mod:`openai_test_server.server` routes ``/v1/files`` and ``/v1/batches`` here and asks
this module about flex requests; everything runs in the same server (in-process or
``python -m openai_test_server``), so the official ``openai`` SDK works unmodified:
``client.files.create/retrieve/content/delete/list`` and
``client.batches.create/retrieve/list/cancel``.

Endpoints (shapes as OpenAI's; errors as ``{"error": {message, type, param, code}}``)
------------------------------------------------------------------------------------------
* ``POST /v1/files`` -- multipart upload (``file``, ``purpose``). ``purpose="batch"`` needs a
  ``.jsonl`` file name (400 otherwise, as OpenAI). Answers a ``file`` object (``status``
  ``processed``; batch files ``expires_at`` 30 days on).
* ``GET /v1/files`` (``purpose``, ``order`` (default ``desc``), ``limit`` (default 10,000),
  ``after``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (the bytes),
  ``DELETE /v1/files/{id}``. Unknown ids: 404.
* ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window``, ``metadata``) --
  checked at once (400: a missing parameter, a window other than ``"24h"``, an endpoint other
  than ``"/v1/chat/completions"``, metadata beyond 16 string pairs of 64/512 characters, a
  file whose purpose is not ``batch``; 404: no such file), then answered ``validating``; the
  input is checked in the background, as OpenAI does, and a bad file makes the batch
  ``failed`` with ``errors.data`` (below).
* ``GET /v1/batches/{id}``; ``GET /v1/batches`` (newest first, ``limit`` 1..100, default 20,
  ``after`` = a batch id; ``has_more``, ``first_id``, ``last_id``).
* ``POST /v1/batches/{id}/cancel`` -- ``validating``/``in_progress``/``finalizing`` batches go
  ``cancelling`` and then ``cancelled``; already ``cancelling``/``cancelled`` ones are answered
  as they are; ``completed``/``failed``/``expired`` ones get 400.

Lifecycle of a batch
--------------------
``validating`` (``batch_validating_seconds``) -> ``failed`` | ``in_progress`` (one line every
``batch_seconds_per_line``) -> ``finalizing`` (``batch_finalizing_seconds``) -> ``completed``;
or ``expired`` / ``cancelling`` -> ``cancelled`` part-way. Lines are answered in a shuffled
order (seeded by ``seed`` and the batch's ordinal), never input order when there are two
lines or more, and the output file lists them in the order answered: clients must match by
``custom_id``.

Input file checks (in ``validating``; each error ``{code, line (1-based), message, param}``;
codes as the service documents them): ``empty_batch``; ``file_too_large`` (over
``batch_max_bytes``, 200 MB); ``too_many_tasks`` (over ``batch_max_requests``, 50,000);
``invalid_json_line``; ``invalid_request`` (``custom_id`` not a non-empty string, ``method`` not
``POST``, ``body`` not an object, no ``body.model``); ``url_mismatch`` (``url`` other than the
batch's endpoint); ``model_mismatch`` (another model than line 1's); ``duplicate_custom_id``.
At most 100 errors are listed. Then the queue: a batch's estimated tokens are its lines'
prompt tokens (the server's tokenizer); if those of the model's batches already
``in_progress``/``finalizing``/``cancelling`` plus this one's exceed ``batch_queue_tokens``,
the batch is ``failed`` with ``token_limit_exceeded`` ("Enqueued token limit reached ...").

Result files (``purpose="batch_output"``)
----------------------------------------
* Output file, one line per answered request:
  ``{"id": "batch_req_...", "custom_id", "response": {"status_code": 200, "request_id",
  "body": <a full chat.completion with its own usage>}, "error": null}``. The content is what
  the chat endpoint answers for the same body (:func:`.content.generate_content`), so it is
  a valid report; ``max_completion_tokens`` is enforced as there; ``cached_tokens`` is 0.
* Error file: a request the API refused, ``"response": {"status_code": 400|500, "request_id",
  "body": {"error": {...}}}, "error": null``; a request failed outside the API,
  ``"response": null, "error": {"code", "message"}`` -- ``server_error`` (fault ``error``),
  ``batch_expired``, ``batch_cancelled``.
* No output file when no line succeeded (``output_file_id`` null), no error file when no line
  failed. ``request_counts``: ``total`` lines, ``completed`` (200), ``failed`` (every other
  line, expired and cancelled ones included). ``usage`` sums the answered lines.

Faults and timing (fields of ``FakeOpenAIConfig``; ``server.configure(...)``/``POST /_config``)
-------------------------------------------------------------------------------------------
* ``batch_validating_seconds`` / ``batch_seconds_per_line`` / ``batch_finalizing_seconds``
  (default 0): processing time.
* ``batch_line_fault_rate`` (0) and ``batch_line_faults`` (``("500",)``): the share of lines
  given one of these faults, seeded: ``"500"``/``"400"`` (an error response), ``"error"`` (an
  ``error`` object), or content faults answered 200 and billed as in the chat endpoint:
  ``"invalid_json"``, ``"schema_invalid"``, ``"refusal"``, ``"length"``. A body without a
  ``messages`` list always gets a 400 line.
* ``batch_expire_after_lines`` (None): the completion window runs out after that many lines;
  the batch ends ``expired``, the lines done so far in its output file, the rest in its error
  file with ``batch_expired``.
* ``batch_cancel_after_lines`` (0): how many more lines are answered after a cancel request
  (those in flight); the batch ends ``cancelled``, partial output kept, the rest
  ``batch_cancelled``.
* ``batch_lose_output_rate`` (0): the share of batches that end ``completed`` with
  ``output_file_id`` null although lines succeeded (as OpenAI has done); their answers are
  billed all the same.
* ``batch_queue_tokens`` (None = no limit): enqueued tokens allowed per model.
* ``batch_max_requests`` (50,000) / ``batch_max_bytes`` (209,715,200): input file limits.

Flex processing
---------------
A chat completion with ``service_tier: "flex"`` answers with ``"service_tier": "flex"`` (all
others ``"default"``). ``flex_unavailable_rate`` (0) is the share of flex requests answered 429
``{"type": "resource_unavailable", "code": "resource_unavailable"}`` before anything else
happens: not billed, not counted against ``rpm``/``tpm``, no scripted fault used up.

Stats (``server.stats`` / ``GET /_stats``)
-----------------------------------------
``batches_created``; ``batch_lines_answered`` (200 lines) and ``batch_lines_answered_again``
(200 lines whose ``custom_id`` had already been answered 200 since the last reset: paid
twice); ``batch_lines_errored`` (lines answered with an error); ``batch_lines_unprocessed``
(expired or cancelled lines); ``batch_prompt_tokens`` / ``batch_completion_tokens`` (billed at
the batch price, so NOT in ``prompt_tokens``/``completion_tokens``). Flex: ``flex_ok``,
``flex_prompt_tokens``, ``flex_completion_tokens``, ``flex_cached_tokens`` (a subset of the
sync counters, which bill every 200 chat answer) and ``flex_unavailable``. Files and Batches
requests count in ``requests_total`` only, not in ``ok``/``by_status`` (chat answers). While a
batch runs, its ``request_counts`` move line by line but these stats in chunks of 256 lines;
they are complete once the batch has ended.
Files and batches survive ``reset()``, like an account's; they live in memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

from openai_test_server.content import (
    bad_key_message,
    chat_completion,
    count_tokens,
    error_body,
    generate_content,
    json_schema_of,
    prompt_token_count,
    shape_answer,
)

__all__ = [
    "BATCH_LINE_FAULT_KINDS",
    "BATCH_MAX_BYTES",
    "BATCH_MAX_REQUESTS",
    "BatchService",
    "handles_path",
    "validate_config",
]

SUPPORTED_ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
#: OpenAI's limits for one batch input file.
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 200 * 1024 * 1024
#: Every kind understood by ``batch_line_faults``.
BATCH_LINE_FAULT_KINDS: tuple[str, ...] = (
    "500",
    "400",
    "error",
    "invalid_json",
    "schema_invalid",
    "refusal",
    "length",
)
_UPLOAD_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_ALL_ENDPOINTS = frozenset(
    {
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    }
)
# Batches whose tokens count against the model's enqueued-token limit.
_ENQUEUED_STATUSES = frozenset({"in_progress", "finalizing", "cancelling"})
_CANCELLABLE_STATUSES = frozenset({"validating", "in_progress", "finalizing"})
_MAX_LISTED_ERRORS = 100
_BILLING_CHUNK = 256  # lines added to the server's stats at once
_BATCH_FILE_LIFETIME = 30 * 24 * 3600  # OpenAI keeps batch files 30 days by default
_WINDOW_SECONDS = 24 * 3600
_EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
_CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."


def handles_path(path: str) -> bool:
    """True for the paths this module serves (with or without the ``/v1`` prefix)."""
    bare = path.removeprefix("/v1")
    return bare in ("/files", "/batches") or bare.startswith(("/files/", "/batches/"))


def validate_config(cfg: Any) -> None:
    """Checks the batch and flex fields of a ``FakeOpenAIConfig`` (called by its ``validate``)."""
    for name in ("batch_line_fault_rate", "batch_lose_output_rate", "flex_unavailable_rate"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} must be within [0, 1]")
    for name in ("batch_validating_seconds", "batch_seconds_per_line", "batch_finalizing_seconds"):
        if not 0.0 <= getattr(cfg, name) < math.inf:
            raise ValueError(f"{name} must be finite and >= 0")
    unknown = [k for k in cfg.batch_line_faults if k not in BATCH_LINE_FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown batch_line_faults {unknown}; valid: {BATCH_LINE_FAULT_KINDS}")
    if cfg.batch_line_fault_rate > 0 and not cfg.batch_line_faults:
        raise ValueError("batch_line_fault_rate > 0 needs at least one batch_line_faults kind")
    if cfg.batch_cancel_after_lines < 0:
        raise ValueError("batch_cancel_after_lines must be >= 0")
    if cfg.batch_max_requests < 1 or cfg.batch_max_bytes < 1:
        raise ValueError("batch_max_requests and batch_max_bytes must be >= 1")
    for name in ("batch_expire_after_lines", "batch_queue_tokens"):
        value = getattr(cfg, name)
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or None")


# --------------------------------------------------------------------------------------
# Stored objects
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclasses.dataclass
class BatchJob:
    id: str
    ordinal: int  # creation order: list order and the seed of its shuffles
    input_file_id: str
    input_data: bytes  # read at creation, so deleting the input file later changes nothing
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    status: str = "validating"
    model: str | None = None
    estimated_tokens: int = 0
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cancel_requested: bool = False
    lines_after_cancel: int = 0
    timestamps: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        stamp = self.timestamps.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": list(self.errors)} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress_at"),
            "expires_at": self.created_at + _WINDOW_SECONDS,
            "finalizing_at": stamp("finalizing_at"),
            "completed_at": stamp("completed_at"),
            "failed_at": stamp("failed_at"),
            "expired_at": stamp("expired_at"),
            "cancelling_at": stamp("cancelling_at"),
            "cancelled_at": stamp("cancelled_at"),
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": dict(self.metadata) if self.metadata is not None else None,
        }


@dataclasses.dataclass(frozen=True)
class _InputLine:
    number: int  # 1-based, as in OpenAI's errors
    custom_id: str
    body: dict[str, Any]


class _ApiError(Exception):
    """An HTTP error answer: ``raise _ApiError(400, message, param=..., code=...)``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_, code, param)


# --------------------------------------------------------------------------------------
# Input validation and line answers (pure functions)
# --------------------------------------------------------------------------------------


def _line_error(code: str, line: int | None, message: str, param: str | None = None) -> dict:
    return {"code": code, "line": line, "message": message, "param": param}


def validate_input_file(
    data: bytes, endpoint: str, *, max_requests: int, max_bytes: int
) -> tuple[list[_InputLine], list[dict[str, Any]]]:
    """The batch's lines, or the errors that fail it (as OpenAI lists them in ``errors``)."""
    if len(data) > max_bytes:
        msg = f"The batch input file is larger than the {max_bytes} maximum."
        return [], [_line_error("file_too_large", None, msg)]
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1].strip() == b"":
        raw_lines.pop()  # the final newline
    if not raw_lines:
        msg = (
            "The batch input file is empty. Please ensure that the batch contains at least "
            "one request."
        )
        return [], [_line_error("empty_batch", None, msg)]
    if len(raw_lines) > max_requests:
        msg = (
            f"The batch input file contains {len(raw_lines)} requests, more than the "
            f"{max_requests} allowed."
        )
        return [], [_line_error("too_many_tasks", None, msg)]

    lines: list[_InputLine] = []
    errors: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    first_model: str | None = None
    for number, raw in enumerate(raw_lines, start=1):
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            obj = None
        if not isinstance(obj, dict):
            errors.append(
                _line_error(
                    "invalid_json_line", number, "This line is not parseable as valid JSON."
                )
            )
            continue
        custom_id, body = obj.get("custom_id"), obj.get("body")
        problem: dict[str, Any] | None = None
        if not isinstance(custom_id, str) or not custom_id:
            problem = _line_error(
                "invalid_request", number, "'custom_id' must be a non-empty string.", "custom_id"
            )
        elif obj.get("method") != "POST":
            problem = _line_error(
                "invalid_request", number, "Only the POST method is supported.", "method"
            )
        elif obj.get("url") != endpoint:
            problem = _line_error(
                "url_mismatch",
                number,
                f"The URL provided for this request does not match the batch endpoint {endpoint}.",
                "url",
            )
        elif not isinstance(body, dict):
            problem = _line_error("invalid_request", number, "'body' must be an object.", "body")
        elif not isinstance(body.get("model"), str) or not body["model"]:
            problem = _line_error(
                "invalid_request", number, "'body.model' is required.", "body.model"
            )
        elif first_model is not None and body["model"] != first_model:
            problem = _line_error(
                "model_mismatch",
                number,
                f"The provided model '{body['model']}' does not match the model "
                f"'{first_model}' of the other requests in the batch.",
                "body.model",
            )
        elif custom_id in seen_ids:
            problem = _line_error(
                "duplicate_custom_id",
                number,
                "The custom_id for this request is a duplicate of another request. The "
                "custom_id parameter must be unique for each request in a batch.",
                "custom_id",
            )
        if problem is not None:
            errors.append(problem)
            continue
        assert isinstance(body, dict) and isinstance(custom_id, str)
        first_model = first_model or body["model"]
        seen_ids.add(custom_id)
        lines.append(_InputLine(number, custom_id, body))
    return lines, errors[:_MAX_LISTED_ERRORS]


def _answer_order(count: int, rng: random.Random) -> list[int]:
    """A shuffled processing order that is never the input order (for two lines or more)."""
    order = list(range(count))
    rng.shuffle(order)
    if count > 1 and order == sorted(order):
        order = (
            order[1:] + order[:1]
        )  # a shuffle may draw the identity; clients must not rely on it
    return order


@dataclasses.dataclass(frozen=True)
class _LineAnswer:
    status_code: int | None  # None: no response, ``error`` set instead
    body: dict[str, Any] | None
    error: dict[str, str] | None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code == 200


def answer_line(
    body: Mapping[str, Any], fault: str | None, enforce_max_tokens: bool
) -> _LineAnswer:
    """What the chat endpoint would answer for ``body`` (with ``fault`` applied)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        err = error_body("'messages' is required.", "invalid_request_error", None, "messages")
        return _LineAnswer(400, err, None)
    if fault == "500":
        err = error_body(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )
        return _LineAnswer(500, err, None)
    if fault == "400":
        err = error_body(
            "Invalid value for 'messages': the request was rejected by the fake server.",
            "invalid_request_error",
            None,
            "messages",
        )
        return _LineAnswer(400, err, None)
    if fault == "error":
        error = {
            "code": "server_error",
            "message": "The server had an error processing this request.",
        }
        return _LineAnswer(None, None, error)

    try:
        content = generate_content(body)
    except (ValueError, KeyError, TypeError) as exc:  # a schema the generator cannot follow
        err = error_body(
            f"Invalid schema for response_format: {exc}", "invalid_request_error", None
        )
        return _LineAnswer(400, err, None)
    answer = shape_answer(body, content, json_schema_of(body), fault, enforce_max_tokens)
    prompt_tokens = prompt_token_count(messages)
    completion_tokens = count_tokens(answer.output)
    completion = chat_completion(str(body.get("model")), answer, prompt_tokens, completion_tokens)
    return _LineAnswer(200, completion, None, prompt_tokens, completion_tokens)


def _result_line(custom_id: str, answer: _LineAnswer) -> bytes:
    response = (
        None
        if answer.status_code is None
        else {
            "status_code": answer.status_code,
            "request_id": f"req_{uuid.uuid4().hex}",
            "body": answer.body,
        }
    )
    line = {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": response,
        "error": answer.error,
    }
    return json.dumps(line, ensure_ascii=False).encode("utf-8")


def _estimated_tokens(lines: Sequence[_InputLine]) -> int:
    # OpenAI's queue counts input tokens; the server's own tokenizer stands in for the model's.
    return sum(
        prompt_token_count(line.body["messages"])
        for line in lines
        if isinstance(line.body.get("messages"), list)
    )


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (file name or None, bytes)}`` of a ``multipart/form-data`` body."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValueError("expected multipart/form-data with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    parts: dict[str, tuple[str | None, bytes]] = {}
    pos = body.find(delimiter)
    if pos < 0:
        raise ValueError("multipart body without its boundary")
    pos += len(delimiter)
    while not body.startswith(b"--", pos):
        pos += 2 if body.startswith(b"\r\n", pos) else 0
        head_end = body.find(b"\r\n\r\n", pos)
        next_delim = body.find(b"\r\n" + delimiter, head_end + 4)
        if head_end < 0 or next_delim < 0:
            raise ValueError("truncated multipart body")
        part = Message()
        for raw in body[pos:head_end].decode("utf-8", "replace").split("\r\n"):
            name, _, value = raw.partition(":")
            part[name.strip()] = value.strip()
        field = part.get_param("name", header="content-disposition")
        if isinstance(field, str):
            parts[field] = (part.get_filename(), body[head_end + 4 : next_delim])
        pos = next_delim + 2 + len(delimiter)
    return parts


def _check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise _ApiError(400, "'metadata' must be an object of at most 16 pairs.", param="metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            raise _ApiError(
                400,
                "Metadata keys must be strings of at most 64 characters and values strings "
                "of at most 512 characters.",
                param="metadata",
            )
    return dict(metadata)


def _int_param(query: Mapping[str, list[str]], name: str, default: int, top: int) -> int:
    raw = query.get(name, [str(default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise _ApiError(400, f"Invalid '{name}': expected an integer.", param=name) from None
    if not 1 <= value <= top:
        raise _ApiError(400, f"Invalid '{name}': must be between 1 and {top}.", param=name)
    return value


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """One cursor page as OpenAI lists them: the ``limit`` items after the one named ``after``."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


# --------------------------------------------------------------------------------------
# The service: state, HTTP handling, background processing, flex
# --------------------------------------------------------------------------------------


class BatchService:
    """Files, batches and flex capacity of one fake server (``server.batches``).

    ``server`` is the :class:`~openai_test_server.server.FakeOpenAIServer`: its config,
    stop event, stats lock and counters are shared.
    """

    def __init__(self, server: Any) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._batches: dict[str, BatchJob] = {}
        self._ordinals = 0
        self._flex_rng = random.Random(server._config.seed + 2)

    # ---- public accessors (tests and benchmarks) ---------------------------------------

    def file_content(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id].data

    def files(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._files.values()]

    def batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._batches[batch_id].to_json()

    def batches(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b.to_json() for b in self._batches.values()]

    def enqueued_tokens(self, model: str) -> int:
        """Estimated tokens of the model's batches that count against ``batch_queue_tokens``."""
        with self._lock:
            return self._enqueued_tokens(model)

    def _enqueued_tokens(self, model: str) -> int:
        return sum(
            b.estimated_tokens
            for b in self._batches.values()
            if b.model == model and b.status in _ENQUEUED_STATUSES
        )

    # ---- flex --------------------------------------------------------------------------

    def flex_unavailable(self, cfg: Any) -> bool:
        """Draws whether this flex request finds no capacity (and counts it if so)."""
        if cfg.flex_unavailable_rate <= 0:
            return False
        with self._lock:
            unavailable = self._flex_rng.random() < cfg.flex_unavailable_rate
        if unavailable:
            self._bump(flex_unavailable=1)
        return unavailable

    def bill_flex(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> None:
        self._bump(
            flex_ok=1,
            flex_prompt_tokens=prompt_tokens,
            flex_completion_tokens=completion_tokens,
            flex_cached_tokens=cached_tokens,
        )

    def _bump(self, **deltas: int) -> None:
        with self._server._lock:
            self._server._bump(**deltas)

    # ---- HTTP --------------------------------------------------------------------------

    def handle(self, handler: Any, method: str) -> None:
        """Answers one Files/Batches request (``handler`` is the server's request handler)."""
        split = urlsplit(handler.path)
        parts = split.path.rstrip("/").removeprefix("/v1").strip("/").split("/")
        query = parse_qs(split.query)
        cfg = self._server.config
        raw = handler._read_body()
        try:
            auth = handler.headers.get("Authorization", "")
            if cfg.api_key is not None and auth != f"Bearer {cfg.api_key}":
                raise _ApiError(401, bad_key_message(auth), code="invalid_api_key")
            if parts[0] == "files":
                self._files_api(handler, method, parts[1:], query, raw)
            else:
                self._batches_api(handler, method, parts[1:], query, raw)
        except _ApiError as exc:
            handler._send_json(exc.status, exc.body, api=False)

    def _files_api(
        self, handler: Any, method: str, rest: list[str], query: Mapping[str, list[str]], raw: bytes
    ) -> None:
        if method == "POST" and not rest:
            handler._send_json(
                200, self._upload(handler.headers.get("Content-Type", ""), raw), api=False
            )
            return
        if method == "GET" and not rest:
            purpose = query.get("purpose", [None])[-1]
            order = query.get("order", ["desc"])[-1]
            if order not in ("asc", "desc"):
                raise _ApiError(400, "Invalid 'order': must be 'asc' or 'desc'.", param="order")
            limit = _int_param(query, "limit", 10_000, 10_000)
            with self._lock:
                items = [
                    f.to_json()
                    for f in self._files.values()
                    if purpose is None or f.purpose == purpose
                ]
            if order == "desc":
                items.reverse()
            handler._send_json(200, _page(items, query.get("after", [None])[-1], limit), api=False)
            return
        if len(rest) in (1, 2) and method in ("GET", "DELETE"):
            file_id = rest[0]
            with self._lock:
                stored = self._files.get(file_id)
                if stored is not None and method == "DELETE" and len(rest) == 1:
                    del self._files[file_id]
            if stored is None:
                raise _ApiError(404, f"No such File object: {file_id}", param="id")
            if method == "DELETE" and len(rest) == 1:
                handler._send_json(
                    200, {"id": file_id, "object": "file", "deleted": True}, api=False
                )
            elif method == "GET" and len(rest) == 1:
                handler._send_json(200, stored.to_json(), api=False)
            elif method == "GET" and rest[1] == "content":
                _send_bytes(handler, stored.data)
            else:
                raise _ApiError(404, f"Invalid URL ({method} {handler.path})")
            return
        raise _ApiError(404, f"Invalid URL ({method} {handler.path})")

    def _upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        try:
            fields = parse_multipart(content_type, raw)
        except ValueError as exc:
            raise _ApiError(400, f"Could not parse the multipart body: {exc}.") from None
        if "file" not in fields:
            raise _ApiError(
                400,
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        if "purpose" not in fields:
            raise _ApiError(
                400,
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        purpose = fields["purpose"][1].decode("utf-8", "replace")
        if purpose not in _UPLOAD_PURPOSES:
            raise _ApiError(
                400,
                f"Invalid value for purpose: '{purpose}'.",
                param="purpose",
                code="invalid_value",
            )
        filename, data = fields["file"]
        filename = filename or "upload"
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise _ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        return self._store_file(filename, purpose, data).to_json()

    def _store_file(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        now = int(time.time())
        expires = now + _BATCH_FILE_LIFETIME if purpose in ("batch", "batch_output") else None
        stored = StoredFile(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, data, now, expires)
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def _batches_api(
        self, handler: Any, method: str, rest: list[str], query: Mapping[str, list[str]], raw: bytes
    ) -> None:
        if method == "POST" and not rest:
            handler._send_json(200, self._create(raw), api=False)
        elif method == "GET" and not rest:
            limit = _int_param(query, "limit", 20, 100)
            with self._lock:
                items = [
                    b.to_json()
                    for b in sorted(self._batches.values(), key=lambda b: b.ordinal, reverse=True)
                ]
            handler._send_json(200, _page(items, query.get("after", [None])[-1], limit), api=False)
        elif method == "GET" and len(rest) == 1:
            with self._lock:
                job = self._batches.get(rest[0])
                answer = job.to_json() if job is not None else None
            if answer is None:
                raise _ApiError(404, f"No batch found with id '{rest[0]}'.", param="batch_id")
            handler._send_json(200, answer, api=False)
        elif method == "POST" and len(rest) == 2 and rest[1] == "cancel":
            handler._send_json(200, self._cancel(rest[0]), api=False)
        else:
            raise _ApiError(404, f"Invalid URL ({method} {handler.path})")

    def _create(self, raw: bytes) -> dict[str, Any]:
        try:
            params = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            params = None
        if not isinstance(params, dict):
            raise _ApiError(400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(params.get(name), str):
                raise _ApiError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        if params["completion_window"] != COMPLETION_WINDOW:
            raise _ApiError(
                400,
                f"Invalid value: '{params['completion_window']}'. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        endpoint = params["endpoint"]
        if endpoint not in _ALL_ENDPOINTS:
            raise _ApiError(
                400, f"Invalid value: '{endpoint}'.", param="endpoint", code="invalid_value"
            )
        if endpoint != SUPPORTED_ENDPOINT:
            raise _ApiError(
                400,
                f"The fake server batches only {SUPPORTED_ENDPOINT}, not {endpoint}.",
                param="endpoint",
                code="invalid_value",
            )
        metadata = _check_metadata(params.get("metadata"))
        with self._lock:
            stored = self._files.get(params["input_file_id"])
            if stored is None:
                raise _ApiError(
                    404, f"No such File object: {params['input_file_id']}", param="input_file_id"
                )
            if stored.purpose != "batch":
                raise _ApiError(
                    400,
                    "The input file must be uploaded with purpose 'batch'.",
                    param="input_file_id",
                )
            self._ordinals += 1
            job = BatchJob(
                id=f"batch_{uuid.uuid4().hex}",
                ordinal=self._ordinals,
                input_file_id=stored.id,
                input_data=stored.data,
                endpoint=endpoint,
                completion_window=COMPLETION_WINDOW,
                metadata=metadata,
                created_at=int(time.time()),
            )
            self._batches[job.id] = job
            answer = job.to_json()
        self._bump(batches_created=1)
        threading.Thread(
            target=self._run, args=(job.id,), name=f"fake-{job.id}", daemon=True
        ).start()
        return answer

    def _cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._batches.get(batch_id)
            if job is None:
                raise _ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            if job.status in _CANCELLABLE_STATUSES:
                job.cancel_requested = True
                job.status = "cancelling"
                job.timestamps["cancelling_at"] = int(time.time())
            elif job.status not in ("cancelling", "cancelled"):
                raise _ApiError(400, f"Cannot cancel a batch with status '{job.status}'.")
            return job.to_json()

    # ---- background processing ----------------------------------------------------------

    def _run(self, batch_id: str) -> None:
        try:
            self._validate_and_process(batch_id)
        except Exception as exc:
            # A bug here must not leave the batch in_progress for ever, tests waiting on it.
            with self._lock:
                job = self._batches[batch_id]
                job.errors = [_line_error("server_error", None, f"The fake server failed: {exc!r}")]
                self._finish(job, "failed")
            raise

    def _validate_and_process(self, batch_id: str) -> None:
        server = self._server
        stop = server._stop_event
        cfg = server.config
        if cfg.batch_validating_seconds > 0 and stop.wait(cfg.batch_validating_seconds):
            return
        with self._lock:
            job = self._batches[batch_id]
            data, endpoint, ordinal = job.input_data, job.endpoint, job.ordinal
            if job.cancel_requested:
                self._finish(job, "cancelled")
                return
        lines, errors = validate_input_file(
            data, endpoint, max_requests=cfg.batch_max_requests, max_bytes=cfg.batch_max_bytes
        )
        model = lines[0].body["model"] if lines else None
        estimated = _estimated_tokens(lines)
        with self._lock:
            if job.cancel_requested:
                self._finish(job, "cancelled")
                return
            if errors:
                job.errors = errors
                self._finish(job, "failed")
                return
            assert model is not None
            limit = cfg.batch_queue_tokens
            if limit is not None and self._enqueued_tokens(model) + estimated > limit:
                job.errors = [
                    _line_error("token_limit_exceeded", None, _token_limit_message(model, limit))
                ]
                self._finish(job, "failed")
                return
            job.model, job.estimated_tokens, job.total = model, estimated, len(lines)
            job.status = "in_progress"
            job.timestamps["in_progress_at"] = int(time.time())
        self._process(job, lines, random.Random(f"{cfg.seed}:{ordinal}"))

    def _process(self, job: BatchJob, lines: Sequence[_InputLine], rng: random.Random) -> None:
        server = self._server
        stop = server._stop_event
        output: list[bytes] = []
        failures: list[bytes] = []
        to_bill: list[tuple[str, _LineAnswer]] = []
        order = _answer_order(len(lines), rng)
        ended_as = "completed"
        done = 0
        for done, index in enumerate(order):
            # Re-read each line (tests change faults or speed mid-batch); configure() swaps the
            # whole object, so no copy is needed.
            cfg = server._config
            with self._lock:
                if job.cancel_requested:
                    if job.lines_after_cancel >= cfg.batch_cancel_after_lines:
                        ended_as = "cancelled"
                        break
                    job.lines_after_cancel += 1
            if cfg.batch_expire_after_lines is not None and done >= cfg.batch_expire_after_lines:
                ended_as = "expired"
                break
            if stop.is_set() or (
                cfg.batch_seconds_per_line > 0 and stop.wait(cfg.batch_seconds_per_line)
            ):
                self._bill_lines(to_bill)
                return  # the server stopped: the batch stays where it is, as after a crash
            fault = None
            if cfg.batch_line_fault_rate > 0 and rng.random() < cfg.batch_line_fault_rate:
                fault = rng.choice(list(cfg.batch_line_faults))
            line = lines[index]
            answer = answer_line(line.body, fault, cfg.enforce_max_tokens)
            (output if answer.ok else failures).append(_result_line(line.custom_id, answer))
            with self._lock:  # request_counts move line by line, as clients poll them
                if answer.ok:
                    job.completed += 1
                    job.input_tokens += answer.prompt_tokens
                    job.output_tokens += answer.completion_tokens
                else:
                    job.failed += 1
            to_bill.append((line.custom_id, answer))
            if len(to_bill) >= _BILLING_CHUNK:
                self._bill_lines(to_bill)
        else:
            done = len(order)
        self._bill_lines(to_bill)
        unprocessed = order[done:] if ended_as != "completed" else []
        if unprocessed:
            code, message = (
                ("batch_expired", _EXPIRED_MESSAGE)
                if ended_as == "expired"
                else ("batch_cancelled", _CANCELLED_MESSAGE)
            )
            for index in unprocessed:
                gone = _LineAnswer(None, None, {"code": code, "message": message})
                failures.append(_result_line(lines[index].custom_id, gone))
            with self._lock:
                job.failed += len(unprocessed)
            self._bump(batch_lines_unprocessed=len(unprocessed))
        self._finalize(job, output, failures, ended_as, rng)

    def _bill_lines(self, answers: list[tuple[str, _LineAnswer]]) -> None:
        """Adds answered lines to the server's stats (in chunks: each update copies them)."""
        server = self._server
        deltas = dict.fromkeys(
            (
                "batch_lines_answered",
                "batch_lines_answered_again",
                "batch_lines_errored",
                "batch_prompt_tokens",
                "batch_completion_tokens",
            ),
            0,
        )
        with server._lock:
            for custom_id, answer in answers:
                if not answer.ok:
                    deltas["batch_lines_errored"] += 1
                    continue
                deltas["batch_lines_answered"] += 1
                deltas["batch_lines_answered_again"] += custom_id in server._batch_answered_ids
                server._batch_answered_ids.add(custom_id)
                deltas["batch_prompt_tokens"] += answer.prompt_tokens
                deltas["batch_completion_tokens"] += answer.completion_tokens
            server._bump(**deltas)
        answers.clear()

    def _finalize(
        self,
        job: BatchJob,
        output: list[bytes],
        failures: list[bytes],
        ended_as: str,
        rng: random.Random,
    ) -> None:
        cfg = self._server.config
        if ended_as == "completed":
            with self._lock:
                if job.status == "in_progress":  # not if a cancel came in meanwhile
                    job.status = "finalizing"
                    job.timestamps["finalizing_at"] = int(time.time())
            if cfg.batch_finalizing_seconds > 0 and self._server._stop_event.wait(
                cfg.batch_finalizing_seconds
            ):
                return
            with self._lock:
                if job.cancel_requested:
                    ended_as = "cancelled"  # cancelled while finalizing: every answer kept
        lose_output = ended_as == "completed" and rng.random() < cfg.batch_lose_output_rate
        output_file = (
            self._store_file(f"{job.id}_output.jsonl", "batch_output", _jsonl(output))
            if output and not lose_output
            else None
        )
        error_file = (
            self._store_file(f"{job.id}_error.jsonl", "batch_output", _jsonl(failures))
            if failures
            else None
        )
        with self._lock:
            job.output_file_id = output_file.id if output_file else None
            job.error_file_id = error_file.id if error_file else None
            self._finish(job, ended_as)

    def _finish(self, job: BatchJob, status: str) -> None:
        """Caller holds the lock. A terminal status and its timestamp."""
        job.status = status
        job.timestamps[f"{status}_at"] = int(time.time())


def _token_limit_message(model: str, limit: int) -> str:
    return (
        f"Enqueued token limit reached for {model} in organization org-fake. "
        f"Limit: {limit:,} enqueued tokens. Please try again once some in_progress batches "
        "have been completed."
    )


def _jsonl(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _send_bytes(handler: Any, data: bytes) -> None:
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        handler.close_connection = True


def flex_unavailable_body(model: str) -> dict[str, Any]:
    """The 429 OpenAI answers when flex processing has no capacity (not billed)."""
    return error_body(
        f"Resource unavailable: flex processing for {model} has no capacity at the moment. "
        "Please try again later, or send the request at the default service tier.",
        "resource_unavailable",
        "resource_unavailable",
    )
