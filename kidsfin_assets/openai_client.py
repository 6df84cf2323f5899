"""The OpenAI resource: shared rate limit, one retry policy, structured output, usage.

Built on dagster_openai.OpenAIResource (api_key, organization, project, base_url), but it
makes its own client with the SDK's retries off (one retry policy, not two nested) and
records usage from each response itself: dagster-openai's usage wrapper only patches
`create`, double-counts when get_client is called twice, and breaks in-process runs.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
from dataclasses import dataclass
from typing import Any

import openai
import pydantic
import tenacity
from dagster import InitResourceContext
from dagster_openai import OpenAIResource
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from kidsfin_assets.pricing import FREE, ModelPrice, Usage, load_price
from kidsfin_assets.rate_limit import RateLimiterCancelled, Reservation, SharedRateLimiter
from kidsfin_assets.reports import KidWeeklyReport, Prompt, max_prompt_bytes
from kidsfin_assets.settings import resolve_path

MAX_RETRY_AFTER_SECONDS = 300.0
RETRYABLE_STATUS = {408, 409}


# OpenAI's 401 echoes the key masked ("sk-proj-****abcd"); a proxy may echo more.
_KEY_LIKE = re.compile(r"\b(?:sk|rk|sess)-[A-Za-z0-9_*-]+")


def scrub_secrets(text: str) -> str:
    """`text` without the API key or anything shaped like one, for logs and events."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        text = text.replace(key, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


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


def classify(exc: BaseException) -> ReportError:
    """Map an SDK exception to what the retry policy should do with it."""
    if isinstance(exc, ReportError):
        return exc
    if is_quota_error(exc):
        return FatalApiError(QUOTA_ADVICE)
    if isinstance(exc, openai.APITimeoutError):
        return ReportError("request timed out", "timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ReportError(f"connection error: {exc}", "connection")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return ReportError("rate limited (429)", "rate_limited")
        if status in RETRYABLE_STATUS or status >= 500:
            return ReportError(f"server error {status}", f"http_{status}")
        advice = _FATAL_ADVICE.get(status, "the API refused the request")
        return FatalApiError(f"OpenAI answered {status}: {advice} ({exc.message})")
    if isinstance(exc, openai.LengthFinishReasonError):
        return TruncatedAnswer("the answer was cut off at max_tokens")
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return RefusedAnswer("the answer was blocked by the content filter")
    if isinstance(exc, pydantic.ValidationError | ValueError):
        return InvalidAnswer(f"the answer does not match the report schema: {exc}"[:300])
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


class _BackoffWait(tenacity.wait.wait_base):
    """Retry-After when the server gives one, else capped exponential back-off with jitter."""

    def __init__(self, initial: float, maximum: float, jitter: float) -> None:
        self.exponential = tenacity.wait_exponential_jitter(
            initial=initial, max=maximum, jitter=jitter
        )
        self.jitter = jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        server_says = retry_after_seconds(exc)
        if server_says is not None:
            return server_says + random.uniform(0, min(self.jitter, 1.0))
        return self.exponential(retry_state)


@dataclass(frozen=True)
class GeneratedReport:
    report: KidWeeklyReport
    # What the report cost, every answer paid for it included (a refused, cut-off or
    # invalid one before the good one), by kid_weekly_reports' column names:
    # prompt_tokens, completion_tokens, cached_tokens, cost_usd.
    usage: dict[str, Any]


def _total_usage(answers: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: sum(answer[key] for answer in answers) for key in answers[0]}


def estimate_tokens(utf8_bytes: int, messages: int) -> int:
    """A generous estimate (no tokenizer download here): ~3 UTF-8 bytes a token."""
    return math.ceil(utf8_bytes / 3) + 8 * messages


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    return estimate_tokens(sum(len(m["content"].encode()) for m in messages), len(messages))


class ReportSession:
    """One step's use of the API: the shared limiter, retries and usage counters."""

    def __init__(
        self,
        client: openai.OpenAI,
        resource: OpenAIReportsResource,
        limiter: SharedRateLimiter,
        usage: Usage,
        cancel: threading.Event,
    ) -> None:
        self.client, self.resource, self.limiter = client, resource, limiter
        self.usage, self.cancel = usage, cancel

    def generate(self, messages: list[dict[str, str]]) -> GeneratedReport:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.resource.retry_max_attempts),
            wait=_BackoffWait(
                self.resource.retry_initial_wait_seconds,
                self.resource.retry_max_wait_seconds,
                self.resource.retry_jitter_seconds,
            ),
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, ReportError) and e.retryable and not self.cancel.is_set()
            ),
            before_sleep=lambda _state: self.usage.record_retry(),
            sleep=self._sleep,
            reraise=True,
        )
        paid: list[dict[str, Any]] = []  # the usage of every answer received for it
        for attempt in retrying:
            with attempt:
                report = self._attempt(messages, paid)
                return GeneratedReport(report, _total_usage(paid))
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _sleep(self, seconds: float) -> None:
        # Wakes early when another worker hit a fatal error.
        if self.cancel.wait(seconds):
            raise Cancelled("run stopped by another report's fatal error")

    def _attempt(
        self, messages: list[dict[str, str]], paid: list[dict[str, Any]]
    ) -> KidWeeklyReport:
        reserve = estimate_prompt_tokens(messages) + self.resource.max_tokens
        try:
            reservation = self.limiter.acquire(reserve, cancelled=self.cancel.is_set)
        except RateLimiterCancelled as exc:
            raise Cancelled("run stopped while waiting for the rate limit") from exc
        if self.cancel.is_set():  # stopped while this worker waited: send nothing more
            self.limiter.settle(reservation, 0)
            raise Cancelled("run stopped before the request was sent")
        try:
            # The raw response first: an answer that is cut off or fails the schema is
            # still paid for, and its usage must be counted before parsing can fail.
            raw = self.client.chat.completions.with_raw_response.parse(
                model=self.resource.model,
                messages=messages,  # type: ignore[arg-type]
                response_format=KidWeeklyReport,
                max_completion_tokens=self.resource.max_tokens,
                temperature=self.resource.temperature,
            )
        except Exception as exc:  # no answer: an HTTP error, a timeout, no connection
            self._on_error(exc, reservation)
            raise classify(exc) from exc
        paid.append(self._on_usage(raw, reservation))
        try:
            message = raw.parse().choices[0].message
        except Exception as exc:
            raise self._failed_answer(classify(exc)) from exc
        if message.refusal:
            raise self._failed_answer(RefusedAnswer(f"the model refused: {message.refusal}"[:300]))
        if message.parsed is None:
            raise self._failed_answer(InvalidAnswer("the answer had no parsable content"))
        return message.parsed

    def _on_error(self, exc: Exception, reservation: Reservation) -> None:
        # What a failed request cost upstream is unknown: keep the whole reservation.
        self.limiter.settle(reservation, reservation.tokens)
        error = classify(exc)
        rate_limited = isinstance(exc, openai.RateLimitError) and not is_quota_error(exc)
        self.usage.record_error(error.kind, rate_limited=rate_limited)
        pause = retry_after_seconds(exc)
        if rate_limited:
            # Every process backs off, not only this worker.
            wait = self.resource.retry_initial_wait_seconds
            self.limiter.pause(pause if pause is not None else wait)

    def _on_usage(self, raw: Any, reservation: Reservation) -> dict[str, Any]:
        """Count what the answer cost (from the response body) and settle the bucket."""
        usage = _usage_of(raw)
        prompt = int(usage.get("prompt_tokens") or reservation.tokens)
        output = int(usage.get("completion_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        self.limiter.settle(reservation, prompt + output)
        cost = self.usage.record_response(prompt, output, cached)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "cached_tokens": cached,
            "cost_usd": cost,
        }

    def _failed_answer(self, error: ReportError) -> ReportError:
        self.usage.record_failed_answer(error.kind)
        return error


def _usage_of(raw: Any) -> dict[str, Any]:
    try:
        usage = json.loads(raw.text).get("usage")
    except (ValueError, AttributeError):
        return {}
    return usage if isinstance(usage, dict) else {}


class OpenAIReportsResource(OpenAIResource):
    """OpenAI (or any compatible server) for the weekly reports, with a budget shared by
    every process through the warehouse database. Without an API key, reports come from
    the offline writer."""

    api_key: str | None = Field(  # type: ignore[assignment]
        default=None, description="From OPENAI_API_KEY; none means the offline writer."
    )
    model: str = Field(description="Chat model, e.g. gpt-4o-mini (priced in pricing_file).")
    max_tokens: int = Field(description="Completion token cap for one report.")
    temperature: float = Field(default=0.3)
    timeout_seconds: float = Field(description="Per-request timeout.")
    requests_per_minute: int = Field(description="Shared request budget per minute.")
    tokens_per_minute: int = Field(description="Shared token budget per minute.")
    max_concurrent: int = Field(description="Requests in flight in one step.")
    batch_size: int = Field(default=20, description="Reports per progress batch in the log.")
    retry_max_attempts: int = Field(description="Attempts per report, the first included.")
    retry_initial_wait_seconds: float = 2.0
    retry_max_wait_seconds: float = 10.0
    retry_jitter_seconds: float = 1.0
    pricing_file: str = "config/pricing.yaml"
    rate_limit_period_seconds: float = Field(
        default=60.0, description="Window of the per-minute limits (tests shorten it)."
    )

    _sdk: openai.OpenAI | None = PrivateAttr(default=None)

    @property
    def offline(self) -> bool:
        return not self.api_key

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if self.offline:
            return
        self._sdk = openai.OpenAI(
            api_key=self.api_key,
            organization=self.organization,
            project=self.project,
            base_url=self.base_url,
            max_retries=0,  # tenacity is the one retry policy
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
            # The largest reservation one request can make: a full prompt plus max_tokens.
            max_request_tokens=estimate_tokens(max_prompt_bytes(prompt), 2) + self.max_tokens,
        )

    def session(
        self, engine: Engine, prompt: Prompt, usage: Usage, cancel: threading.Event
    ) -> ReportSession:
        if self._sdk is None:
            raise FatalApiError("no OpenAI client: OPENAI_API_KEY is not set")
        return ReportSession(self._sdk, self, self.limiter(engine, prompt), usage, cancel)
