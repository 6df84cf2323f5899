"""What the server writes: deterministic token counts, JSON generated from a response
schema, the chat answer (with its fault applied) that the chat endpoint and the Batch API's
lines both return, and error bodies worded as OpenAI words them. Reusable by tests."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

KID_PLACEHOLDER = "[[KID]]"

_VI_PHRASES: tuple[str, ...] = (
    "chi tiêu khá hợp lý trong tháng này",
    "tiết kiệm đều đặn mỗi tuần",
    "nên đặt mục tiêu tiết kiệm rõ ràng",
    "hoạt động tài chính ổn định",
    "cần hạn chế mua đồ ăn vặt",
    "có thói quen ghi chép chi tiêu",
    "tình hình tài chính lành mạnh",
    "nên hỏi ý kiến bố mẹ trước khi mua đồ đắt tiền",
    "số dư tài khoản được theo dõi đều",  # no trend: schema-mode text stays grounded
    "thường ghi lại các khoản chi vào cuối tuần",  # no claim the data could check
    "hãy thử để dành một phần tiền tiêu vặt",
    "mức chi cho trò chơi hơi cao",
)


# --- token accounting and content generation (pure functions, reusable by tests) ---


def count_tokens(text: str | None) -> int:
    """Fake tokenizer: one token per 4 UTF-8 bytes, rounded up."""
    return math.ceil(len((text or "").encode("utf-8")) / 4)


def message_text(message: Any) -> str:
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_token_count(messages: Sequence[Any]) -> int:
    """``ceil(total UTF-8 bytes of contents / 4) + 4 per message``."""
    total_bytes = sum(len(message_text(m).encode("utf-8")) for m in messages)
    return math.ceil(total_bytes / 4) + 4 * len(messages)


def first_message_tokens(messages: Sequence[Any]) -> int:
    return count_tokens(message_text(messages[0])) + 4 if messages else 0


def messages_seed(messages: Any) -> int:
    # Why a hash of the messages: identical prompts must give identical numbers, across runs and
    # processes (``hash()`` is salted per process, so it cannot be used).
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big")


def has_kid_placeholder(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(m, Mapping) and m.get("role") == "user" and KID_PLACEHOLDER in message_text(m)
        for m in messages
    )


class _SchemaGenerator:
    """Produces a value valid against a (strict-mode style) JSON schema."""

    _MAX_DEPTH = 12

    def __init__(self, root: Mapping[str, Any], rng: random.Random, kid: bool) -> None:
        self.root = root
        self.rng = rng
        self.kid = kid

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref supported, got {ref!r}")
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _text(self, top_level: bool) -> str:
        words = self.rng.sample(_VI_PHRASES, k=self.rng.randint(1, 2))
        text = ", ".join(words)
        text = text[0].upper() + text[1:] + "."
        # The client substitutes the real child name for [[KID]] afterwards; the real model is
        # instructed to use the placeholder, so the fake echoes it where the client expects it
        # (`top_level`: a direct string property of the root, or an item of such a list).
        return (
            f"Bé {KID_PLACEHOLDER} {text[0].lower()}{text[1:]}" if top_level and self.kid else text
        )

    def _string(self, schema: Mapping[str, Any], top_level: bool) -> str:
        fmt = schema.get("format")
        if fmt == "date-time":
            value = f"2024-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}T08:30:00Z"
        elif fmt == "date":
            value = f"2024-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
        elif fmt == "email":
            value = "be@example.com"
        elif fmt == "uuid":
            value = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        else:
            value = self._text(top_level)
        min_len = int(schema.get("minLength", 0))
        max_len = schema.get("maxLength")
        if len(value) < min_len:
            value = value + " ." * ((min_len - len(value)) // 2 + 1)
        if max_len is not None and len(value) > int(max_len):
            value = value[: int(max_len)]
        return value

    def _number(self, schema: Mapping[str, Any], integer: bool) -> int | float:
        lo: float | None = schema.get("minimum")
        hi: float | None = schema.get("maximum")
        ex_lo = schema.get("exclusiveMinimum")
        ex_hi = schema.get("exclusiveMaximum")
        if integer:
            if ex_lo is not None:
                lo = math.floor(ex_lo) + 1 if lo is None else max(lo, math.floor(ex_lo) + 1)
            if ex_hi is not None:
                hi = math.ceil(ex_hi) - 1 if hi is None else min(hi, math.ceil(ex_hi) - 1)
            ilo = math.ceil(lo) if lo is not None else None
            ihi = math.floor(hi) if hi is not None else None
            if ilo is None and ihi is None:
                ilo, ihi = 0, 100
            elif ilo is None:
                ilo = ihi - 100  # type: ignore[operator]
            elif ihi is None:
                ihi = ilo + 100
            return self.rng.randint(ilo, max(ilo, ihi))  # type: ignore[arg-type]
        flo = float(lo if lo is not None else (ex_lo if ex_lo is not None else 0.0))
        fhi = float(hi if hi is not None else (ex_hi if ex_hi is not None else flo + 100.0))
        if lo is None and ex_lo is None and (hi is not None or ex_hi is not None):
            flo = fhi - 100.0
        value = round(self.rng.uniform(flo, fhi), 2)
        value = min(max(value, flo), fhi)  # rounding may step just outside the bounds
        if (ex_lo is not None and value <= ex_lo) or (ex_hi is not None and value >= ex_hi):
            value = (flo + fhi) / 2
        return value

    def generate(
        self, schema: Any, depth: int = 0, top_level: bool = False, root: bool = False
    ) -> Any:
        """``top_level``: a direct property of the root object; ``root``: the root object itself."""
        if schema is True or schema is None or schema == {}:
            return self._text(top_level)
        if not isinstance(schema, Mapping):
            raise ValueError(f"unsupported schema node: {schema!r}")
        if "$ref" in schema:
            target = self._resolve(schema["$ref"])
            return self.generate(target, depth + 1, top_level, root)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = list(schema[key])
                non_null = [
                    o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
                ]
                # Prefer a real value (more useful for tests); fall back to null to stop recursion.
                if non_null and depth < self._MAX_DEPTH:
                    return self.generate(non_null[0], depth + 1, top_level, root)
                return None
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self._resolve(part["$ref"]) if "$ref" in part else part)
            return self.generate(merged, depth + 1, top_level, root)

        typ = schema.get("type")
        if isinstance(typ, list):
            non_null_types = [t for t in typ if t != "null"]
            if not non_null_types or depth >= self._MAX_DEPTH:
                return None
            typ = non_null_types[0]
        if typ is None:
            typ = (
                "object" if "properties" in schema else ("array" if "items" in schema else "string")
            )

        if typ == "object":
            props: Mapping[str, Any] = schema.get("properties", {})
            required = set(schema.get("required", props.keys()))
            out: dict[str, Any] = {}
            for name, sub in props.items():
                if name in required or depth < self._MAX_DEPTH:
                    out[name] = self.generate(sub, depth + 1, top_level=root)
            return out
        if typ == "array":
            min_items = int(schema.get("minItems", 0))
            max_items = schema.get("maxItems")
            n = self.rng.randint(2, 3) if depth < self._MAX_DEPTH else 0
            n = max(n, min_items)
            if max_items is not None:
                n = min(n, int(max_items))
            items = schema.get("items", {"type": "string"})
            # A top-level list's strings carry the placeholder too (recommendations do, from
            # a real model); objects inside it decide for their own properties.
            return [self.generate(items, depth + 1, top_level=top_level) for _ in range(n)]
        if typ == "string":
            return self._string(schema, top_level)
        if typ == "integer":
            return self._number(schema, integer=True)
        if typ == "number":
            return self._number(schema, integer=False)
        if typ == "boolean":
            return self.rng.random() < 0.5
        if typ == "null":
            return None
        raise ValueError(f"unsupported schema type: {typ!r}")


def generate_from_schema(
    schema: Mapping[str, Any], messages: Any = None, *, seed: int | None = None
) -> Any:
    """Generate a value for ``schema``; seeded by ``messages`` unless ``seed`` is given."""
    rng = random.Random(seed if seed is not None else messages_seed(messages))
    return _SchemaGenerator(schema, rng, kid=has_kid_placeholder(messages)).generate(
        schema, root=True
    )


def json_schema_of(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    rf = body.get("response_format")
    if isinstance(rf, Mapping) and rf.get("type") == "json_schema":
        js = rf.get("json_schema")
        if isinstance(js, Mapping) and isinstance(js.get("schema"), Mapping):
            return js["schema"]
    return None


def generate_content(body: Mapping[str, Any]) -> str:
    """The exact ``message.content`` the server returns for a clean (fault-free) request."""
    messages = body.get("messages", [])
    schema = json_schema_of(body)
    if schema is not None:
        value = generate_from_schema(schema, messages)
        return json.dumps(value, ensure_ascii=False)
    rng = random.Random(messages_seed(messages))
    gen = _SchemaGenerator({}, rng, kid=has_kid_placeholder(messages))
    rf = body.get("response_format")
    if isinstance(rf, Mapping) and rf.get("type") == "json_object":
        return json.dumps({"result": gen._text(True)}, ensure_ascii=False)
    return gen._text(True)


def drop_required(content: str, schema: Mapping[str, Any] | None) -> str:
    """Valid JSON that violates the schema: drop half (at least one) of the required fields."""
    value = json.loads(content)
    if isinstance(value, dict) and schema is not None:
        required = list(schema.get("required", value.keys()))
        for name in required[: max(1, len(required) // 2)]:
            value.pop(name, None)
        if value == {} and not required:
            value = {"unexpected_field": True}  # additionalProperties=false makes this invalid
        return json.dumps(value, ensure_ascii=False)
    return json.dumps({"unexpected_field": True})


def truncate_invalid(schema: Mapping[str, Any] | None) -> str:
    """JSON cut off mid-string, like a model stopped in the middle of its answer."""
    first = next(iter((schema or {}).get("properties", {}) or {"financial_health": None}))
    return f'{{"{first}": "'


# --- the chat answer, shared by the chat endpoint and the Batch API's lines ---

REFUSAL_MESSAGE = "I'm sorry, but I can't assist with that request."


class ChatAnswer(NamedTuple):
    """What ``choices[0]`` says: the text (None for a refusal), the refusal, why it stopped."""

    content: str | None
    refusal: str | None
    finish_reason: str

    @property
    def output(self) -> str | None:
        """What the model wrote, billed as completion tokens: the content or the refusal."""
        return self.content if self.content is not None else self.refusal


def shape_answer(
    body: Mapping[str, Any],
    content: str,
    schema: Mapping[str, Any] | None,
    fault: str | None,
    enforce_max_tokens: bool,
) -> ChatAnswer:
    """``content`` as answered: with an answer fault applied (invalid_json, schema_invalid,
    refusal, length; any other fault leaves it alone), then cut at the request's
    max_(completion_)tokens when those are enforced, as a model stops at its limit."""
    refusal: str | None = None
    answer: str | None = content
    finish_reason = "stop"
    if fault == "invalid_json":
        answer = truncate_invalid(schema)
    elif fault == "schema_invalid":
        answer = drop_required(content, schema)
    elif fault == "refusal":
        answer, refusal = None, REFUSAL_MESSAGE
    elif fault == "length":
        answer, finish_reason = content[: max(1, len(content) // 2)], "length"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if (
        enforce_max_tokens
        and isinstance(limit, int)
        and answer is not None
        and count_tokens(answer) > limit
    ):
        answer = answer.encode("utf-8")[: 4 * limit].decode("utf-8", "ignore")
        finish_reason = "length"
    return ChatAnswer(answer, refusal, finish_reason)


def chat_completion(
    model: str,
    answer: ChatAnswer,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    service_tier: str = "default",
) -> dict[str, Any]:
    """A ``chat.completion`` object as OpenAI returns it, created now."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer.content,
                    "refusal": answer.refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": service_tier,
        "system_fingerprint": "fp_fake0000",
    }


# --- error bodies, worded as OpenAI words them ---


def error_body(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_BAD_KEY_MESSAGE = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."


def bad_key_message(authorization: str) -> str:
    """As OpenAI words it: the key presented, masked but for its first 8 and last 4 chars."""
    key = authorization.removeprefix("Bearer ").strip()
    if len(key) <= 12:
        return _BAD_KEY_MESSAGE
    masked = key[:8] + "*" * (len(key) - 12) + key[-4:]
    return _BAD_KEY_MESSAGE.replace("provided.", f"provided: {masked}.")


def key_echo_message(key: str) -> str:
    """``401_key_echo``: the key echoed in forms a scrubber of the exact key misses."""
    return (
        f"Incorrect API key provided: {key.removeprefix('sk-')}. "
        f"The key ending in {key[-12:]} is not valid for this organization."
    )
