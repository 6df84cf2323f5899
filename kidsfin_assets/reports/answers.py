"""An answer from the API, as the engine reads it: the errors a request can end in (and
which a retry may cure), the exchange recorded for every request, what the answer's usage
and cost are, whether it holds a report; and the key never echoed into any of it."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import openai
import pydantic

from kidsfin_assets.llm.attempts import FLEX_UNAVAILABLE
from kidsfin_assets.llm.pricing import ModelPrice
from kidsfin_assets.reports.grounding import Finding, describe_findings
from kidsfin_assets.reports.prompt import Prompt, max_prompt_bytes
from kidsfin_assets.reports.report_schema import KidWeeklyReport

MAX_RETRY_AFTER_SECONDS = 300.0
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


@dataclass(frozen=True)
class AnswerReader:
    """Reads answers to requests for `model`, priced from `prices` (every priced model, so
    that an answer from another model is priced as that model)."""

    model: str
    prices: dict[str, ModelPrice]
    largest_request_tokens: int  # no answer's usage is believed above this

    def read(
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
            self.largest_request_tokens,
        )
        model = storable(body.get("model")) if isinstance(body, dict) else None
        model = model if isinstance(model, str) and model else self.model
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
        asked = self.model
        if model == asked or model.startswith(asked + "-"):
            return self.prices[asked], None
        named = sorted((m for m in self.prices if model == m or model.startswith(m + "-")), key=len)
        if named:
            return self.prices[named[-1]], f"answered by {model}, not {asked}"
        return self.prices[asked], f"answered by unpriced {model}, priced as {asked}"
