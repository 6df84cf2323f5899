"""The OpenAI resource: shared rate limit, one retry policy, structured output, usage.

Built on dagster_openai.OpenAIResource (api_key, organization, project, base_url), but it
makes its own client with the SDK's retries off (one retry policy, not two nested) and
records usage from each response itself: dagster-openai's usage wrapper only patches
`create`, double-counts when get_client is called twice, and breaks in-process runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import openai
import pydantic
from dagster import InitResourceContext
from dagster_openai import OpenAIResource
from openai.lib._parsing._completions import type_to_response_format_param
from pydantic import PrivateAttr, field_validator, model_validator
from sqlalchemy.engine import Engine

from kidsfin_assets.config.errors import SettingsError
from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.config.settings import Rule, SettingsResource, one_of, setting
from kidsfin_assets.llm.attempts import (
    FLEX_UNAVAILABLE,
    AttemptPolicy,
    Attempts,
    FailFast,
    Outcome,
    Step,
)
from kidsfin_assets.llm.bucket import RateLimiterCancelled, Reservation, SharedRateLimiter
from kidsfin_assets.llm.pricing import FREE, ModelPrice, Usage, load_price, load_prices
from kidsfin_assets.reports.grounding import Finding, describe_findings
from kidsfin_assets.reports.prompt import Prompt, load_prompt, max_prompt_bytes
from kidsfin_assets.reports.report_schema import KidWeeklyReport

MAX_RETRY_AFTER_SECONDS = 300.0
MAX_THREADS = 256  # concurrency: threads keeps at most this many requests in flight
RETRYABLE_STATUS = {408, 409}


# OpenAI's 401 echoes the key masked ("sk-proj-****abcd"); a proxy may echo more.
_KEY_LIKE = re.compile(r"\b(?:sk|rk|sess)-[A-Za-z0-9_*-]+")
# Any run of this many characters of the key is taken as the key echoed in altered form
# (without its prefix, or only its tail).
KEY_FRAGMENT_CHARS = 8


def scrub_secrets(text: str) -> str:
    """`text` without the API key, any run of 8 or more of its characters, or anything
    shaped like a key, for logs and events."""
    text = _KEY_LIKE.sub("[redacted]", text)  # first: a masked key keeps its own shape
    key = os.environ.get("OPENAI_API_KEY")
    if key and len(key) >= KEY_FRAGMENT_CHARS:
        text = _redact_fragments(text, key)
    return text


def _redact_fragments(text: str, key: str) -> str:
    grams = {key[i : i + KEY_FRAGMENT_CHARS] for i in range(len(key) - KEY_FRAGMENT_CHARS + 1)}
    hidden = [False] * len(text)
    for i in range(len(text) - KEY_FRAGMENT_CHARS + 1):
        if text[i : i + KEY_FRAGMENT_CHARS] in grams:
            hidden[i : i + KEY_FRAGMENT_CHARS] = [True] * KEY_FRAGMENT_CHARS
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append("[redacted]")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class ReportError(Exception):
    """A report could not be written; `kind` names the failure for metadata.

    Its message goes to logs, asset metadata and the step failure (stored events), so it
    is scrubbed of key-like text here, once for every path."""

    kind = "error"
    retryable = True

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(scrub_secrets(message))
        if kind:
            self.kind = kind


class FatalApiError(ReportError):
    """Retrying cannot help (bad key, no quota, bad request): stop the run at once."""

    kind = "fatal"
    retryable = False


class RefusedAnswer(ReportError):
    kind = "refusal"


class TruncatedAnswer(ReportError):
    kind = "truncated"


class InvalidAnswer(ReportError):
    kind = "invalid_answer"


class UngroundedAnswer(InvalidAnswer):
    """A valid report stating something the week's data does not say. Paid for and
    counted like any invalid answer; kept (marked not grounded) if no better one comes."""

    kind = "ungrounded"

    def __init__(self, findings: list[Finding], exchange: Exchange | None = None) -> None:
        super().__init__(
            f"{len(findings)} statements the data does not support:\n" + describe_findings(findings)
        )
        self.findings, self.exchange = findings, exchange


class Cancelled(ReportError):
    kind = "cancelled"
    retryable = False


_FATAL_ADVICE = {
    400: "the request was rejected as invalid; check openai.model and max_tokens",
    401: "the API key was rejected; set a valid OPENAI_API_KEY",
    403: "this key may not use the model or project; check OPENAI_PROJECT and the model",
    404: "model or endpoint not found; check openai.model and OPENAI_BASE_URL",
}
QUOTA_ADVICE = (
    "OpenAI says the quota is used up (insufficient_quota): add credit or raise the "
    "monthly limit in the billing settings, then re-run the week; every report already "
    "written is kept and will not be paid for again"
)


def is_quota_error(exc: BaseException) -> bool:
    return isinstance(exc, openai.RateLimitError) and "insufficient_quota" in (
        str(exc.code),
        str(exc.type),
    )


def is_flex_unavailable(exc: BaseException) -> bool:
    """Flex processing's 429 when it has no capacity: not billed, not a rate limit."""
    return isinstance(exc, openai.RateLimitError) and "resource_unavailable" in (
        str(exc.code),
        str(exc.type),
    )


def classify(exc: BaseException) -> ReportError:
    """Map an SDK exception to what the retry policy should do with it."""
    if isinstance(exc, ReportError):
        return exc
    if is_quota_error(exc):
        return FatalApiError(QUOTA_ADVICE)
    if is_flex_unavailable(exc):
        return ReportError("flex processing has no capacity now (429)", FLEX_UNAVAILABLE)
    if isinstance(exc, openai.APITimeoutError):
        return ReportError("request timed out", "timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ReportError(f"connection error: {exc}", "connection")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return ReportError("rate limited (429)", "rate_limited")
        if status in RETRYABLE_STATUS or status >= 500:
            return ReportError(f"server error {status}: {exc.message}"[:300], f"http_{status}")
        advice = _FATAL_ADVICE.get(status, "the API refused the request")
        return FatalApiError(f"OpenAI answered {status}: {advice} ({exc.message})")
    # An answer's body (cut off, refused, not a report) is read by read_answer, not here.
    return ReportError(f"unexpected error: {exc!r}"[:300], "unexpected")


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's Retry-After (retry-after-ms first), if the error carries one."""
    cause = getattr(exc, "__cause__", None) or exc
    response = getattr(cause, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, MAX_RETRY_AFTER_SECONDS)
    return None


ACCEPTED = "accepted"
# An answer body larger than this is not a report (a proxy's page, a runaway stream).
MAX_BODY_BYTES = 1_000_000


# The server may bill a request abandoned mid-answer; what it cost is not known here.
ABANDONED_NOTE = "abandoned at the deadline: the server may bill it; cost unknown"


class DeadlineExceeded(ReportError):
    kind = "deadline"


@dataclass(frozen=True)
class Exchange:
    """One request and what came back: recorded in the ledger before anything else."""

    answer_id: str
    outcome: str  # ACCEPTED, or the kind of failure
    model_answered: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    input_cost_usd: float = 0.0
    output_cost_usd: float = 0.0
    usage_note: str | None = None
    content: str | None = None
    report: KidWeeklyReport | None = None
    error: ReportError | None = None
    findings: tuple[Finding, ...] = ()
    tier: str = "default"  # the price tier that served it: default, flex or batch

    @property
    def cost_usd(self) -> float:
        return self.input_cost_usd + self.output_cost_usd

    def usage(self) -> dict[str, Any]:
        """What a report's row counts of this answer."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": self.cost_usd,
        }

    @property
    def paid(self) -> bool:
        """An answer came back (it is billed), whatever became of it."""
        return self.model_answered is not None or self.prompt_tokens > 0


def reask_message(findings: list[Finding]) -> dict[str, str]:
    """What the model is told when its report stated numbers the data does not hold."""
    return {
        "role": "user",
        "content": (
            "Báo cáo trước có những câu không khớp với dữ liệu trong <data>, hoặc không "
            "kiểm chứng được (unverifiable):\n"
            + describe_findings(findings)
            + "\nHãy viết lại toàn bộ báo cáo, chỉ dùng các con số có trong <data> "
            "(hoặc suy ra đúng từ chúng) và đúng xu hướng *_trend. Với câu không kiểm chứng "
            "được: nói rõ con số là của chỉ số nào, tuần nào, hoặc bỏ câu đó."
        ),
    }


def estimate_tokens(utf8_bytes: int, messages: int) -> int:
    """A generous estimate (no tokenizer download here): ~3 UTF-8 bytes a token."""
    return math.ceil(utf8_bytes / 3) + 8 * messages


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    return estimate_tokens(sum(len(m["content"].encode()) for m in messages), len(messages))


def largest_request_tokens(prompt: Prompt, max_tokens: int) -> int:
    """The largest reservation one request can make: a full prompt plus max_tokens."""
    return estimate_tokens(max_prompt_bytes(prompt), 2) + max_tokens


@dataclass(frozen=True)
class Tokens:
    prompt: int
    completion: int
    cached: int
    note: str | None


def _count(value: Any) -> int | None:
    """A token count as the API gives it, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def read_usage(
    body: dict[str, Any], prompt_estimate: int, content: str | None, largest: int
) -> Tokens:
    """The answer's usage; missing, negative or non-numeric figures are replaced by our
    estimate, and figures above the largest request that could have been sent are kept
    (it is what the bill will say) but flagged, so that cost stays honest and visible."""
    tokens = _read_usage(body, prompt_estimate, content)
    if tokens.prompt + tokens.completion <= largest:
        return tokens
    note = f"usage above the largest possible request ({largest} tokens)"
    note = f"{tokens.note}; {note}" if tokens.note else note
    return Tokens(tokens.prompt, tokens.completion, tokens.cached, note)


def _read_usage(body: dict[str, Any], prompt_estimate: int, content: str | None) -> Tokens:
    usage = body.get("usage")
    completion_estimate = estimate_tokens(len((content or "").encode()), 0)
    if not isinstance(usage, dict):
        return Tokens(prompt_estimate, completion_estimate, 0, "usage missing: estimated")
    notes = []
    prompt = _count(usage.get("prompt_tokens"))
    if prompt is None:
        notes.append(f"prompt_tokens {usage.get('prompt_tokens')!r}")
        prompt = prompt_estimate
    completion = _count(usage.get("completion_tokens"))
    if completion is None:
        notes.append(f"completion_tokens {usage.get('completion_tokens')!r}")
        completion = completion_estimate
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens", 0)) if isinstance(details, dict) else 0
    if cached is None or cached > prompt:
        notes.append(f"cached_tokens {details.get('cached_tokens')!r}")  # type: ignore[union-attr]
        cached = 0
    note = ("usage invalid, estimated: " + ", ".join(notes))[:300] if notes else None
    return Tokens(prompt, completion, cached, note)


def _answer_kind(body: Any) -> tuple[dict[str, Any] | None, ReportError | None]:
    """The first choice's message, or the named reason the body holds none."""
    if not isinstance(body, dict):
        return None, InvalidAnswer("the answer is not a JSON object", "not_json")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return None, InvalidAnswer("the answer has no choices", "empty_choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        return None, InvalidAnswer("the answer's choice has no message", "empty_choices")
    if message.get("refusal"):
        return None, RefusedAnswer(f"the model refused: {message['refusal']}"[:300])
    reason = choice.get("finish_reason")
    if reason == "length":
        return None, TruncatedAnswer("the answer was cut off at max_tokens")
    if reason == "content_filter":
        return None, RefusedAnswer("the answer was blocked by the content filter")
    return message, None


def parse_report(content: Any) -> tuple[KidWeeklyReport | None, ReportError | None]:
    if not isinstance(content, str) or not content.strip():
        return None, InvalidAnswer("the answer had no content")
    try:
        return KidWeeklyReport.model_validate_json(content), None
    except pydantic.ValidationError as exc:
        return None, InvalidAnswer(f"the answer does not match the report schema: {exc}"[:300])


def storable(text: Any) -> Any:
    """Text from the server with its NUL characters, raw or JSON-escaped, made U+FFFD:
    PostgreSQL's text and jsonb refuse NUL, and one such answer would fail every store
    (and every replay of the spool) it is part of."""
    if not isinstance(text, str):
        return text
    return text.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd")


class ReportSession:
    """One step's use of the API: the shared limiter, retries, deadlines, and every
    exchange handed to `record` the moment it is known (before retrying or parsing on)."""

    def __init__(
        self,
        client: openai.OpenAI,
        resource: OpenAIReportsResource,
        limiter: SharedRateLimiter,
        usage: Usage,
        cancel: threading.Event,
        prices: dict[str, ModelPrice],
    ) -> None:
        self.client, self.resource, self.limiter = client, resource, limiter
        self.usage, self.cancel, self.prices = usage, cancel, prices
        self.policy = AttemptPolicy(
            max_attempts=resource.retry_max_attempts,
            initial_wait_seconds=resource.retry_initial_wait_seconds,
            max_wait_seconds=resource.retry_max_wait_seconds,
            jitter_seconds=resource.retry_jitter_seconds,
            service_tier=resource.service_tier,
            flex_fallback=resource.flex_fallback,
        )
        self.fail_fast = FailFast(resource.fail_fast_after)
        self.response_format = type_to_response_format_param(KidWeeklyReport)  # built once

    def generate(
        self,
        messages: list[dict[str, str]],
        record: Callable[[Exchange], None],
        acquire: Callable[[Callable[[], Reservation]], Reservation],
        check: Callable[[KidWeeklyReport], list[Finding]] | None = None,
    ) -> Exchange:
        """The accepted exchange, after retries; `record` sees every exchange first,
        `acquire` runs the limiter's call (the caller waits out warehouse outages there),
        and `check` (the grounding gate) judges every valid report before it is accepted.
        An ungrounded answer is asked again, saying what was wrong."""
        attempts = self.policy.attempts(messages)
        while True:
            exchange = self.judge(self._attempt(attempts.messages, acquire, attempts.tier), check)
            record(exchange)
            step = self.next_step(attempts, exchange)
            if step.action == "accept":
                return exchange
            assert exchange.error is not None
            if not step.retry:
                raise exchange.error
            self.usage.record_retry()
            self._sleep(step.wait_seconds)

    def next_step(self, attempts: Attempts, exchange: Exchange) -> Step:
        """After an attempt has been recorded: the run stopped if its first attempts all
        failed alike (FatalApiError), else what the attempt policy says (every client)."""
        error = exchange.error
        kind = None if error is None else error.kind
        cancelled = isinstance(error, Cancelled)
        fatal = self.fail_fast.observe(kind, str(error or ""), cancelled)
        if fatal is not None:
            raise FatalApiError(fatal)
        if error is None:
            return attempts.after(Outcome(None))
        correction = reask_message(error.findings) if isinstance(error, UngroundedAnswer) else None
        outcome = Outcome(error.kind, error.retryable, retry_after_seconds(error), correction)
        return attempts.after(outcome, stopping=self.cancel.is_set())

    @staticmethod
    def judge(
        exchange: Exchange, check: Callable[[KidWeeklyReport], list[Finding]] | None
    ) -> Exchange:
        if exchange.report is None or check is None:
            return exchange
        findings = check(exchange.report)
        if not findings:
            return exchange
        judged = dataclasses.replace(exchange, outcome="ungrounded", findings=tuple(findings))
        return dataclasses.replace(judged, error=UngroundedAnswer(findings, judged))

    def _sleep(self, seconds: float) -> None:
        # Wakes early when another worker hit a fatal error.
        if self.cancel.wait(seconds):
            raise Cancelled("run stopped by another report's fatal error")

    def _reserve(
        self,
        messages: list[dict[str, str]],
        acquire: Callable[[Callable[[], Reservation]], Reservation],
    ) -> Reservation:
        reserve = estimate_prompt_tokens(messages) + self.resource.max_tokens
        try:
            return acquire(lambda: self.limiter.acquire(reserve, cancelled=self.cancel.is_set))
        except RateLimiterCancelled as exc:
            raise Cancelled("run stopped while waiting for the rate limit") from exc

    def _attempt(
        self,
        messages: list[dict[str, str]],
        acquire: Callable[[Callable[[], Reservation]], Reservation],
        tier: str = "default",
    ) -> Exchange:
        reservation = self._reserve(messages, acquire)
        answer_id = uuid.uuid4().hex
        if self.cancel.is_set():  # stopped while this worker waited: send nothing more
            self._settle(reservation, 0)
            raise Cancelled("run stopped before the request was sent")
        try:
            body = self._post(messages, tier)
        except Exception as exc:  # no answer: an HTTP error, a timeout, no connection
            return self.no_answer(answer_id, exc, reservation)
        return self.answered(answer_id, body, messages, reservation)

    def no_answer(self, answer_id: str, exc: Exception, reservation: Reservation) -> Exchange:
        """The exchange of a request that got no answer (an HTTP error, a timeout...)."""
        error = classify(exc)
        self._on_error(exc, error, reservation)
        note = ABANDONED_NOTE if isinstance(error, DeadlineExceeded) else None
        return Exchange(answer_id, error.kind, usage_note=note, error=error)

    def answered(
        self,
        answer_id: str,
        body: bytes,
        messages: list[dict[str, str]],
        reservation: Reservation,
    ) -> Exchange:
        """The exchange of an answer: read, settled with the bucket, counted."""
        exchange = self.read_answer(answer_id, body, estimate_prompt_tokens(messages))
        self._settle(reservation, exchange.prompt_tokens + exchange.completion_tokens)
        self.usage.record_response(
            exchange.prompt_tokens, exchange.completion_tokens, exchange.cached_tokens
        )
        if exchange.error is not None:
            self.usage.record_failed_answer(exchange.error.kind)
        return exchange

    def reserve_tokens(self, messages: list[dict[str, str]]) -> int:
        return estimate_prompt_tokens(messages) + self.resource.max_tokens

    def cancel_reservation(self, reservation: Reservation) -> None:
        self._settle(reservation, 0)

    def close(self) -> None:
        """Send the bucket what this session gathered (leased mode); best effort."""
        with contextlib.suppress(Exception):
            self.limiter.close()

    def request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The chat completion request, as sent (and as a batch input line's body)."""
        return {
            "model": self.resource.model,
            "messages": messages,
            "response_format": self.response_format,
            "max_completion_tokens": self.resource.max_tokens,
            "temperature": self.resource.temperature,
        }

    def _post(self, messages: list[dict[str, str]], tier: str = "default") -> bytes:
        """The answer's body, read within one deadline for connect, send and the whole
        body: the SDK's timeout applies per read, so a server trickling its body a byte
        at a time would otherwise hold the request for ever."""
        timeout = self.resource.timeout_seconds
        deadline = time.monotonic() + timeout
        flex = {"service_tier": "flex"} if tier == "flex" else {}
        with self.client.chat.completions.with_streaming_response.create(
            **self.request_body(messages),
            **flex,
            timeout=timeout,
        ) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"no complete answer within openai.timeout_seconds={timeout:g} "
                        f"({len(body)} bytes received)"
                    )
                if len(body) > MAX_BODY_BYTES:
                    raise InvalidAnswer("the answer is larger than any report", "not_json")
            return bytes(body)

    def read_answer(
        self, answer_id: str, raw: bytes | dict[str, Any], prompt_estimate: int, tier: str = ""
    ) -> Exchange:
        """Everything the answer says, priced at the tier that served it (`tier`, or what
        the answer says: flex or default); never raises (a paid answer is recorded)."""
        try:
            body = raw if isinstance(raw, dict) else json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(raw, bytes):
            raw = json.dumps(raw).encode()
        message, error = _answer_kind(body)
        content = storable(message.get("content")) if message else None
        report = None
        if error is None:
            report, error = parse_report(content)
        if body is None:
            content = storable(raw[:2000].decode("utf-8", "replace"))
        tokens = read_usage(
            body if isinstance(body, dict) else {},
            prompt_estimate,
            content,
            self.limiter.max_request_tokens,
        )
        model = storable(body.get("model")) if isinstance(body, dict) else None
        model = model if isinstance(model, str) and model else self.resource.model
        served = body.get("service_tier") if isinstance(body, dict) else None
        tier = tier or ("flex" if served == "flex" else "default")
        price, price_note = self._price_of(model)
        price = price.at(tier)
        input_cost, output_cost = price.split_cost(tokens.prompt, tokens.completion, tokens.cached)
        notes = [n for n in (tokens.note, price_note) if n]
        return Exchange(
            answer_id,
            ACCEPTED if error is None else error.kind,
            model_answered=model,
            prompt_tokens=tokens.prompt,
            completion_tokens=tokens.completion,
            cached_tokens=tokens.cached,
            input_cost_usd=input_cost,
            output_cost_usd=output_cost,
            usage_note="; ".join(notes) or None,
            content=content if isinstance(content, str) else None,
            report=report,
            error=error,
            tier=tier,
        )

    def _price_of(self, model: str) -> tuple[ModelPrice, str | None]:
        """The price of the model that answered: the configured one for it or its dated
        snapshot (gpt-4o-mini-2024-07-18), else the priced model it names."""
        asked = self.resource.model
        if model == asked or model.startswith(asked + "-"):
            return self.prices[asked], None
        named = sorted((m for m in self.prices if model == m or model.startswith(m + "-")), key=len)
        if named:
            return self.prices[named[-1]], f"answered by {model}, not {asked}"
        return self.prices[asked], f"answered by unpriced {model}, priced as {asked}"

    def _settle(self, reservation: Reservation, used: int) -> None:
        """Best effort, bounded: a usage figure outside [0, the largest request] moves the
        shared bucket by at most one request's worth; a warehouse error here costs only
        the bucket's precision, never the answer."""
        used = min(max(0, used), self.limiter.max_request_tokens)
        with contextlib.suppress(Exception):
            self.limiter.settle(reservation, used)

    def _on_error(self, exc: Exception, error: ReportError, reservation: Reservation) -> None:
        # What a failed request cost upstream is unknown: keep the whole reservation.
        self._settle(reservation, reservation.tokens)
        rate_limited = (
            isinstance(exc, openai.RateLimitError)
            and not is_quota_error(exc)
            and not is_flex_unavailable(exc)  # flex's own capacity, not our rate limit
        )
        self.usage.record_error(error.kind, rate_limited=rate_limited)
        if rate_limited:
            # Every process backs off, not only this worker.
            pause = retry_after_seconds(exc)
            wait = self.resource.retry_initial_wait_seconds
            with contextlib.suppress(Exception):
                self.limiter.pause(pause if pause is not None else wait)


class OpenAIReportsResource(SettingsResource, OpenAIResource):
    """OpenAI (or any compatible server) for the weekly reports, with a budget shared by
    every process through the warehouse database. Without an API key, reports come from
    the offline writer."""

    key: ClassVar[str] = "openai"

    # The secrets: from the environment only, shown in the UI by their variables' names.
    api_key: str | None = setting(  # type: ignore[assignment]
        None,
        env="OPENAI_API_KEY",
        in_file=False,
        secret=True,
        description="From OPENAI_API_KEY; none means the offline writer (no AI, no cost).",
    )
    base_url: str | None = setting(
        None,
        env="OPENAI_BASE_URL",
        in_file=False,
        secret=True,
        description="From OPENAI_BASE_URL: Azure, a proxy or any OpenAI-compatible server.",
    )
    organization: str | None = setting(
        None, env="OPENAI_ORG_ID", in_file=False, secret=True, description="From OPENAI_ORG_ID."
    )
    project: str | None = setting(
        None, env="OPENAI_PROJECT", in_file=False, secret=True, description="From OPENAI_PROJECT."
    )
    # The model and what one request may take.
    model: str = setting(
        "gpt-4o-mini",
        min_length=1,
        description="Chat model; it must have a price in pricing_file.",
    )
    pricing_file: str = setting(
        "config/pricing.yaml",
        description="Prices per model and tier (relative to the project).",
    )
    max_tokens: int = setting(800, gt=0, le=16384, description="Completion cap of one report.")
    temperature: float = setting(0.3, ge=0, le=2, description="Sampling temperature.")
    timeout_seconds: float = setting(
        60.0, gt=0, description="Deadline of one request: connect, send and the whole answer."
    )
    # Which API, and how one step sends.
    api: str = setting(
        "sync",
        formerly="openai.mode",
        description=(
            "Which OpenAI API writes the reports. sync: a request per report, answered "
            "now (Chat Completions); batch: the Batch API, at half price, answered within "
            "24 h; auto: batch for a week with batch_min_reports reports or more to write, "
            "else sync."
        ),
    )
    concurrency: str = setting(
        "threads",
        formerly="openai.client",
        description=(
            "How one step keeps its sync requests in flight: threads (a thread a request, "
            "max_concurrent <= 256) or async (one event loop, <= 4096: the big tiers)."
        ),
    )
    max_concurrent: int = setting(
        8, gt=0, le=4096, description="Sync requests in flight in one step at most."
    )
    service_tier: str = setting(
        "default",
        description="default, or flex: sync requests at flex prices where the model offers it.",
    )
    flex_fallback: bool = setting(
        True, description="After flex has no capacity twice, send that report at default."
    )
    # The budget every process shares (the token bucket in the warehouse).
    requests_per_minute: int = setting(
        500,
        ge=2,  # the shared bucket keeps 1 % (at least one request) as burst
        description="Request budget per minute, shared by every process on this warehouse.",
    )
    tokens_per_minute: int = setting(
        200_000,
        gt=0,
        description="Token budget per minute, shared alike; holds two of the largest requests.",
    )
    rate_limit_period_seconds: float = setting(
        60.0, gt=0, description="The window the two per-minute budgets apply to."
    )
    rate_limit_lease_seconds: float = setting(
        0.0,
        ge=0,
        le=5,
        description=(
            "> 0 (e.g. 0.25): the shared bucket leased in blocks usable this long, for "
            "hundreds of requests a second; the refill then runs over period + 2 x this."
        ),
    )
    # Attempts of one report.
    retry_max_attempts: int = setting(
        4,
        ge=1,
        le=20,
        formerly="retry.max_attempts",
        description="Attempts per report, the first included.",
    )
    # Waits are capped at an hour: a longer one is a typo, and a report would sit that long.
    retry_initial_wait_seconds: float = setting(
        2.0,
        ge=0,
        le=3600,
        formerly="retry.initial_wait_seconds",
        description="Back-off before the second attempt; it doubles after each.",
    )
    retry_max_wait_seconds: float = setting(
        10.0,
        ge=0,
        le=3600,
        formerly="retry.max_wait_seconds",
        description="The longest back-off (a Retry-After up to 300 s is honoured).",
    )
    retry_jitter_seconds: float = setting(
        1.0,
        ge=0,
        le=3600,
        formerly="retry.jitter_seconds",
        description="Random seconds added to each back-off.",
    )
    fail_fast_after: int = setting(
        5,
        ge=0,
        le=1000,
        description="Stop the run when its first N attempts all fail alike (0: never).",
    )
    # The Batch API (api: batch or auto).
    batch_min_reports: int = setting(
        1000, ge=1, description="api auto: a week with this many reports to write goes by batch."
    )
    batch_max_requests: int = setting(
        50_000,
        ge=1,
        le=50_000,
        description="Lines (requests) per batch input file (OpenAI's limit: 50,000).",
    )
    batch_max_bytes: int = setting(
        190_000_000,
        ge=10_000,
        le=200_000_000,
        description="Bytes per batch input file (OpenAI's limit: 200 MB).",
    )
    batch_queue_tokens: int = setting(
        2_000_000,
        ge=1,
        description="The model's enqueued-token limit at your tier, kept across processes.",
    )
    # The run's log.
    progress_group_size: int = setting(
        20,
        gt=0,
        formerly="openai.batch_size",
        description="Kids per 'Processing kids i-j of n (group k/m)' log line.",
    )
    progress_every_reports: int = setting(
        500, ge=1, description="A progress line every this many reports..."
    )
    progress_every_seconds: float = setting(
        5.0, gt=0, description="...or every this many seconds, whichever comes first."
    )

    _sdk: openai.OpenAI | None = PrivateAttr(default=None)

    _api_is_known = field_validator("api")(one_of("sync", "batch", "auto"))
    _concurrency_is_known = field_validator("concurrency")(one_of("threads", "async"))
    _service_tier_is_known = field_validator("service_tier")(one_of("default", "flex"))

    @model_validator(mode="after")
    def _consistent(self) -> OpenAIReportsResource:
        """max_concurrent at most 256 with concurrency threads; tokens_per_minute at least
        two of the largest requests (the prompt plus max_tokens); model priced in
        pricing_file, with a batch price for api batch or auto and a flex price for
        service_tier flex. Checked wherever the values come from (the file, the environment
        or a run's config), each naming the field to change."""
        if self.concurrency == "threads" and self.max_concurrent > MAX_THREADS:
            raise Rule(
                "max_concurrent",
                f"{self.max_concurrent} needs concurrency: async (threads: at most {MAX_THREADS})",
            )
        largest = largest_request_tokens(load_prompt(), self.max_tokens)
        if self.tokens_per_minute < 2 * largest:
            raise Rule(
                "tokens_per_minute",
                f"must be at least {2 * largest} (two of the largest requests: prompt plus "
                f"max_tokens={self.max_tokens}), got {self.tokens_per_minute}",
            )
        self._check_prices()
        return self

    def _check_prices(self) -> None:
        """Answers are priced at the tier that served them: a model, or an api or
        service_tier sending answers to a tier, without a price there could not price its
        first answer (paid for, it would never be recorded)."""
        path = resolve_path(self.pricing_file)
        try:
            prices = load_prices(path)
        except SettingsError as exc:
            raise Rule("pricing_file", str(exc).removeprefix("openai.pricing_file: ")) from None
        if self.model not in prices:
            raise Rule(
                "model",
                f"no price for {self.model!r} in {path} (known: {', '.join(sorted(prices))}); "
                "add it under models: so that cost can be tracked",
            )
        price = prices[self.model]
        for tier, field, value, without in (
            ("batch", "api", self.api, "sync"),
            ("flex", "service_tier", self.service_tier, "default"),
        ):
            if value != without and getattr(price, tier) is None:
                raise Rule(
                    field,
                    f"{value!r} needs a {tier} price for {self.model!r} and {path} has none; "
                    f"add `{tier}: {{input, cached_input, output}}` under the model, or set "
                    f"openai.{field}: {without}",
                )

    @property
    def offline(self) -> bool:
        return not self.api_key

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.offline:
            self._sdk = self.new_client()

    def new_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.api_key,
            organization=self.organization,
            project=self.project,
            base_url=self.base_url,
            max_retries=0,  # one retry policy: ours (llm/attempts.py)
            timeout=self.timeout_seconds,
        )

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._sdk is not None:
            self._sdk.close()

    def price(self) -> ModelPrice:
        return FREE if self.offline else load_price(resolve_path(self.pricing_file), self.model)

    def limiter(self, engine: Engine, prompt: Prompt) -> SharedRateLimiter:
        return SharedRateLimiter(
            engine,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            period_seconds=self.rate_limit_period_seconds,
            max_request_tokens=largest_request_tokens(prompt, self.max_tokens),
            lease_seconds=self.rate_limit_lease_seconds,
        )

    def uses_batches(self, pending: int) -> bool:
        """Whether a week with `pending` reports to write goes through the Batch API."""
        return self.api == "batch" or (self.api == "auto" and pending >= self.batch_min_reports)

    @property
    def client(self) -> openai.OpenAI:
        if self._sdk is None:
            raise FatalApiError("no OpenAI client: OPENAI_API_KEY is not set")
        return self._sdk

    def session(
        self, engine: Engine, prompt: Prompt, usage: Usage, cancel: threading.Event
    ) -> ReportSession:
        if self._sdk is None:
            raise FatalApiError("no OpenAI client: OPENAI_API_KEY is not set")
        prices = load_prices(resolve_path(self.pricing_file))
        limiter = self.limiter(engine, prompt)
        return ReportSession(self._sdk, self, limiter, usage, cancel, prices)
