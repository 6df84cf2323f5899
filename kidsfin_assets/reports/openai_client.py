"""The OpenAI resource, and a step's session with the API: the shared rate limit, the one
attempt policy (llm/attempts.py), structured output, usage. What an answer says is read in
`answers.py`.

Built on dagster_openai.OpenAIResource (api_key, organization, project, base_url), but it
makes its own client with the SDK's retries off (one retry policy, not two nested) and
records usage from each response itself: dagster-openai's usage wrapper only patches
`create`, double-counts when get_client is called twice, and breaks in-process runs.

`OpenAIReportsResource` is ~315 lines (above the engine's ~250): most of it is its ~30
settings, each declared once with its default, rule and description (`setting()`, from
which docs/settings.md is written), and the rules between them; its behaviour is small
(`session`, `new_client`, `price`, `uses_batches`, `lease_seconds`, `in_flight`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import openai
from dagster import InitResourceContext
from dagster_openai import OpenAIResource
from openai.lib._parsing._completions import type_to_response_format_param
from pydantic import PrivateAttr, field_validator, model_validator
from sqlalchemy.engine import Engine

from kidsfin_assets.config.errors import SettingsError
from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.config.settings import Rule, SettingsResource, one_of, setting
from kidsfin_assets.llm.attempts import (
    AttemptPolicy,
    Attempts,
    FailFast,
    Outcome,
    Step,
)
from kidsfin_assets.llm.bucket import Reservation, SharedRateLimiter
from kidsfin_assets.llm.in_flight import MAX_IN_FLIGHT, InFlight, auto_lease_seconds
from kidsfin_assets.llm.pricing import FREE, ModelPrice, Usage, load_price, load_prices
from kidsfin_assets.reports.answers import (
    ABANDONED_NOTE,
    AnswerReader,
    Cancelled,
    DeadlineExceeded,
    Exchange,
    FatalApiError,
    ReportError,
    UngroundedAnswer,
    classify,
    estimate_prompt_tokens,
    is_flex_unavailable,
    is_quota_error,
    largest_request_tokens,
    reask_message,
    retry_after_seconds,
)
from kidsfin_assets.reports.grounding import Finding
from kidsfin_assets.reports.prompt import Prompt, load_prompt
from kidsfin_assets.reports.report_schema import KidWeeklyReport


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
        self.reader = AnswerReader(resource.model, prices, limiter.max_request_tokens)
        self.response_format = type_to_response_format_param(KidWeeklyReport)  # built once

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

    def read_answer(
        self, answer_id: str, raw: bytes | dict[str, Any], prompt_estimate: int, tier: str = ""
    ) -> Exchange:
        """Everything the answer says, priced (`answers.AnswerReader.read`)."""
        return self.reader.read(answer_id, raw, prompt_estimate, tier)

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
    max_concurrent: int | None = setting(
        None,
        gt=0,
        le=4096,
        description=(
            "Sync requests in flight in one step at most. auto (null in a run's config): "
            "sized from the limits and the answers' observed latency (Little's law: "
            "requests a second x seconds an answer), at most 4,096."
        ),
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
    rate_limit_lease_seconds: float | None = setting(
        None,
        le=5,
        description=(
            "The shared bucket leased in blocks usable this long (a grant is sent by then or "
            "asked for again); the refill runs over period + 2 x this. auto (null in a run's "
            "config): 0.25 (a quarter of rate_limit_period_seconds at most)."
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
    _service_tier_is_known = field_validator("service_tier")(one_of("default", "flex"))

    @field_validator("max_concurrent", "rate_limit_lease_seconds", mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        """auto, or a number.

        `auto` (from the file or the environment) is None: sized by the step."""
        return None if isinstance(value, str) and value.strip().lower() == "auto" else value

    @field_validator("rate_limit_lease_seconds")
    @classmethod
    def _leased(cls, value: float | None) -> float | None:
        """auto, or more than 0.

        0 (a transaction a grant) was the threaded client's: the event loop sends a grant
        when its task next runs, so only a leased grant, sent by its deadline or asked for
        again, keeps every window at the server within the limit (bench/README.md)."""
        if value is not None and value <= 0:
            raise ValueError(
                f"must be auto or more than 0, got {value:g}: an unleased grant (0, the "
                "threaded client's) can reach the server late and exceed the limit"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OpenAIReportsResource:
        """tokens_per_minute at least two of the largest requests (the prompt plus
        max_tokens); model priced in pricing_file, with a batch price for api batch or auto
        and a flex price for service_tier flex. Checked wherever the values come from (the
        file, the environment or a run's config), each naming the field to change."""
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
            lease_seconds=self.lease_seconds(),
        )

    def lease_seconds(self) -> float:
        """rate_limit_lease_seconds, `auto` resolved from the request limit."""
        if self.rate_limit_lease_seconds is not None:
            return self.rate_limit_lease_seconds
        return auto_lease_seconds(self.rate_limit_period_seconds)

    def in_flight(self, prompt: Prompt) -> InFlight:
        """The step's in-flight bound: max_concurrent, or sized as answers come back."""
        period = self.rate_limit_period_seconds
        return InFlight(
            requests_per_second=self.requests_per_minute / period,
            tokens_per_second=self.tokens_per_minute / period,
            request_tokens=largest_request_tokens(prompt, self.max_tokens),
            cap=MAX_IN_FLIGHT,
            fixed=self.max_concurrent,
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
