"""The fake OpenAI server, exercised through the real ``openai`` SDK over real HTTP."""

from __future__ import annotations

import json
import math
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field, ValidationError

from openai_test_server import (
    FakeOpenAIServer,
    count_tokens,
    generate_content,
    generate_from_schema,
    prompt_token_count,
    running_server,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Report(BaseModel):
    financial_health: str
    spending_pattern: str
    savings_behavior: str
    activity_level: str
    recommendations: list[str]
    overall_score: float = Field(ge=0, le=10)


MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "Bạn là trợ lý tài chính cho trẻ em."},
    {"role": "user", "content": "Phân tích giao dịch tuần này của [[KID]]: 3 giao dịch, 120.000đ."},
]


@pytest.fixture
def server_factory() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """Local fixture (conftest.py belongs to another module): start servers, always stop them."""
    servers: list[FakeOpenAIServer] = []

    def make(**config: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(**config).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(server_factory: Callable[..., FakeOpenAIServer]) -> FakeOpenAIServer:
    return server_factory()


def make_client(srv: FakeOpenAIServer, timeout: float = 5.0, api_key: str = "test-key"):
    return openai.OpenAI(base_url=srv.base_url, api_key=api_key, max_retries=0, timeout=timeout)


def ask(client: openai.OpenAI, messages: list[dict[str, str]] | None = None, **kwargs: Any):
    return client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=messages or MESSAGES,  # type: ignore[arg-type]
        response_format=Report,
        max_completion_tokens=kwargs.pop("max_completion_tokens", 1000),
        temperature=0.2,
        **kwargs,
    )


def http_json(url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


# ---- happy path ---------------------------------------------------------------------------


def test_parse_returns_validated_report_with_deterministic_usage(server: FakeOpenAIServer) -> None:
    completion = ask(make_client(server))
    choice = completion.choices[0]
    assert isinstance(choice.message.parsed, Report)
    assert 0 <= choice.message.parsed.overall_score <= 10
    assert choice.finish_reason == "stop"
    assert choice.message.refusal is None

    # Content and token counts are reproducible from the request alone.
    body = server.requests[-1].body
    assert body["response_format"]["json_schema"]["strict"] is True
    assert choice.message.content == generate_content(body)
    usage = completion.usage
    assert usage is not None
    total_bytes = sum(len(m["content"].encode()) for m in MESSAGES)
    assert usage.prompt_tokens == math.ceil(total_bytes / 4) + 4 * len(MESSAGES)
    assert usage.prompt_tokens == prompt_token_count(MESSAGES)
    assert usage.completion_tokens == count_tokens(choice.message.content)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == 0

    # Same prompt again -> identical numbers.
    again = ask(make_client(server)).choices[0].message.parsed
    assert again == choice.message.parsed

    stats = server.stats
    assert stats.ok == 2 and stats.by_status == {200: 2}
    assert stats.prompt_tokens == 2 * usage.prompt_tokens
    assert stats.completion_tokens == 2 * usage.completion_tokens


def test_kid_placeholder_echoed_in_every_top_level_string(server: FakeOpenAIServer) -> None:
    parsed = ask(make_client(server)).choices[0].message.parsed
    assert parsed is not None
    for field in ("financial_health", "spending_pattern", "savings_behavior", "activity_level"):
        assert "[[KID]]" in getattr(parsed, field)
    # A real model names the child in list items too: the client must replace it there.
    assert parsed.recommendations and all("[[KID]]" in r for r in parsed.recommendations)

    no_kid = [{"role": "user", "content": "Phân tích giao dịch của bé An."}]
    parsed = ask(make_client(server), messages=no_kid).choices[0].message.parsed
    assert parsed is not None and "[[KID]]" not in parsed.model_dump_json()


class Kind(BaseModel):
    label: Literal["an_uong", "do_choi", "hoc_tap"]
    amount: int | None = Field(ge=1, le=5)


class Nested(BaseModel):
    title: str
    kinds: list[Kind] = Field(min_length=4, max_length=6)
    main_kind: Kind
    flags: list[bool] = Field(max_length=1)
    count: int = Field(gt=10, lt=13)
    ratio: float = Field(ge=-1, le=1)
    note: str | None


def test_generic_schema_generation_validates() -> None:
    schema = to_strict_json_schema(Nested)
    for i in range(30):
        msgs = [{"role": "user", "content": f"case {i} [[KID]]"}]
        value = generate_from_schema(schema, msgs)
        obj = Nested.model_validate(value)  # raises if the generator breaks a constraint
        assert "[[KID]]" in obj.title and "[[KID]]" in (obj.note or "")
        assert value == generate_from_schema(schema, msgs)  # deterministic


def test_cached_tokens_for_repeated_long_system_prompt(server: FakeOpenAIServer) -> None:
    system = {"role": "system", "content": "x" * 5000}  # 1250 + 4 tokens
    msgs = [system, {"role": "user", "content": "tuần 1"}]
    first = ask(make_client(server), messages=msgs).usage
    second = ask(
        make_client(server), messages=[system, {"role": "user", "content": "tuần 2"}]
    ).usage
    assert first and second and first.prompt_tokens >= 1024
    assert first.prompt_tokens_details and first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details and second.prompt_tokens_details.cached_tokens == 1152
    assert server.stats.cached_tokens == 1152


def test_cache_threshold_lowered_caches_short_prompts(server: FakeOpenAIServer) -> None:
    # 300 + 4 tokens of system prompt: below OpenAI's 1,024 floor, cached once it is 0.
    system = {"role": "system", "content": "x" * 1200}
    msgs = [system, {"role": "user", "content": "tuần 1"}]
    ask(make_client(server), messages=msgs)
    assert server.stats.cached_tokens == 0
    ask(make_client(server), messages=msgs)
    assert server.stats.cached_tokens == 0  # the default floor: too short to be cached
    server.configure(cache_min_prompt_tokens=0)
    usage = ask(make_client(server), messages=msgs).usage
    assert usage and usage.prompt_tokens_details
    assert usage.prompt_tokens_details.cached_tokens == 256
    with pytest.raises(ValueError, match="cache_min_prompt_tokens"):
        server.configure(cache_min_prompt_tokens=-1)


def test_max_completion_tokens_truncates_with_length(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.LengthFinishReasonError) as exc:
        ask(make_client(server), max_completion_tokens=10)
    assert exc.value.completion.usage and exc.value.completion.usage.completion_tokens <= 10


def test_models_and_unknown_paths(server: FakeOpenAIServer) -> None:
    models = make_client(server).models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini"]
    with pytest.raises(urllib.error.HTTPError) as exc:
        http_json(f"{server.base_url}/nope")
    assert exc.value.code == 404
    assert json.loads(exc.value.read())["error"]["type"] == "invalid_request_error"


# ---- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exc_type", "status", "code"),
    [
        ("429", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("insufficient_quota", openai.RateLimitError, 429, "insufficient_quota"),
        ("500", openai.InternalServerError, 500, None),
        ("503", openai.InternalServerError, 503, None),
        ("400", openai.BadRequestError, 400, None),
        ("401", openai.AuthenticationError, 401, "invalid_api_key"),
    ],
)
def test_status_faults_map_to_sdk_exceptions(
    server: FakeOpenAIServer,
    kind: str,
    exc_type: type[openai.APIStatusError],
    status: int,
    code: str | None,
) -> None:
    server.script([kind])
    with pytest.raises(exc_type) as exc:
        ask(make_client(server))
    assert exc.value.status_code == status
    assert exc.value.code == code
    if kind == "429":
        assert exc.value.response.headers["retry-after"] == "1"
        assert exc.value.response.headers["retry-after-ms"] == "1000"
        assert exc.value.type == "requests"
    if kind == "insufficient_quota":
        assert exc.value.type == "insufficient_quota"
        assert "exceeded your current quota" in exc.value.message
    assert server.stats.faults_injected == {kind: 1}
    assert server.stats.over_limit == 0  # injected faults are not real limit violations
    assert ask(make_client(server)).choices[0].message.parsed  # script consumed -> healthy again


@pytest.mark.parametrize("kind", ["invalid_json", "schema_invalid"])
def test_bad_content_faults_fail_validation(server: FakeOpenAIServer, kind: str) -> None:
    server.script([kind])
    with pytest.raises((ValidationError, json.JSONDecodeError)) as exc:
        ask(make_client(server))
    errors = exc.value.errors() if isinstance(exc.value, ValidationError) else []
    expected = "json_invalid" if kind == "invalid_json" else "missing"
    assert any(e["type"] == expected for e in errors)
    assert server.stats.by_status == {200: 1}


def test_length_and_refusal_faults(server: FakeOpenAIServer) -> None:
    server.script(["length", "refusal"])
    with pytest.raises(openai.LengthFinishReasonError):
        ask(make_client(server))
    message = ask(make_client(server)).choices[0].message
    assert message.refusal and message.content is None and message.parsed is None


def test_hang_times_out_without_blocking_other_requests(
    server_factory: Callable[..., FakeOpenAIServer],
) -> None:
    srv = server_factory(hang_seconds=2)
    srv.script(["hang"])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(make_client(srv, timeout=0.5))
    assert time.monotonic() - started < 1.5
    # The hanging handler is still asleep; others are served meanwhile.
    started = time.monotonic()
    assert ask(make_client(srv)).choices[0].message.parsed
    assert time.monotonic() - started < 1.0
    assert srv.stats.faults_injected == {"hang": 1}


def test_scripted_faults_then_clean(server: FakeOpenAIServer) -> None:
    server.script(["ok", "500", "429", "ok"])
    client = make_client(server)
    outcomes: list[str] = []
    for _ in range(5):
        try:
            ask(client)
            outcomes.append("ok")
        except openai.APIStatusError as err:
            outcomes.append(str(err.status_code))
    assert outcomes == ["ok", "500", "429", "ok", "ok"]
    assert server.stats.faults_injected == {"500": 1, "429": 1}


def test_random_faults_are_seeded(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    srv = server_factory(fault_rate=0.5, faults=["500", "503"], seed=123)
    rng = random.Random(123)
    expected = [rng.choice(["500", "503"]) if rng.random() < 0.5 else "200" for _ in range(12)]
    client = make_client(srv)
    seen: list[str] = []
    for _ in range(12):
        try:
            ask(client)
            seen.append("200")
        except openai.InternalServerError as err:
            seen.append(str(err.status_code))
    assert seen == expected
    assert sum(srv.stats.faults_injected.values()) == expected.count("500") + expected.count("503")


def test_quota_after(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    srv = server_factory(quota_after=2)
    client = make_client(srv)
    ask(client)
    ask(client)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as exc:
            ask(client)
        assert exc.value.code == "insufficient_quota"
    assert srv.stats.ok == 2


def test_api_key_required_and_redacted(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    srv = server_factory(api_key="test-key")
    with pytest.raises(openai.AuthenticationError) as exc:
        ask(make_client(srv, api_key="wrong-key"))
    assert exc.value.code == "invalid_api_key"
    assert ask(make_client(srv, api_key="test-key")).choices[0].message.parsed
    recorded = json.dumps([r.headers for r in srv.requests])
    assert "test-key" not in recorded and "wrong-key" not in recorded
    assert all(r.headers["authorization"] == "[REDACTED]" for r in srv.requests)


def test_recorded_bodies_are_capped(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    srv = server_factory(max_recorded=2)
    client = make_client(srv)
    for i in range(3):
        ask(client, messages=[{"role": "user", "content": f"req {i}"}])
    assert [r.body["messages"][0]["content"] for r in srv.requests] == ["req 1", "req 2"]
    assert srv.stats.recorded_dropped == 1


# ---- rate limits --------------------------------------------------------------------------


def test_rpm_limit_over_sliding_window(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    srv = server_factory(rpm=3, window_seconds=2)
    client = make_client(srv)
    errors: list[tuple[openai.RateLimitError, float, float]] = []
    first_sent = time.monotonic()
    first_done = first_sent
    for i in range(5):
        sent = time.monotonic()
        try:
            ask(client)
        except openai.RateLimitError as err:
            errors.append((err, sent, time.monotonic()))
        if i == 0:
            first_done = time.monotonic()
        if i < 2:
            time.sleep(0.3)  # spread the admitted calls so their expiries are distinguishable
    assert len(errors) == 2
    for err, sent, answered in errors:
        assert err.code == "rate_limit_exceeded" and err.type == "requests"
        # The oldest call frees its slot 2 s after it arrived: bounds from measured times,
        # so that a loaded machine's slower calls cannot fail the test.
        waited_ms = int(err.response.headers["retry-after-ms"])
        assert (2 - (answered - first_sent)) * 1000 - 50 <= waited_ms
        assert waited_ms <= (2 - (sent - first_done)) * 1000 + 50
        assert err.response.headers["retry-after"] == str(math.ceil(waited_ms / 1000))
    stats = srv.stats
    assert stats.ok == 3 and stats.over_limit == 2 and stats.over_limit_requests == 2
    assert stats.max_requests_in_window == 5 and stats.max_admitted_requests_in_window == 3

    # Waiting exactly retry-after-ms frees one slot, and rejected calls consumed no budget.
    time.sleep(int(errors[-1][0].response.headers["retry-after-ms"]) / 1000 + 0.05)
    ask(client)
    with pytest.raises(openai.RateLimitError):
        ask(client)
    assert srv.stats.over_limit == 3 and srv.stats.ok == 4


def test_tpm_limit(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    srv = server_factory(window_seconds=2)
    usage = ask(make_client(srv)).usage
    assert usage is not None
    per_request = usage.total_tokens
    srv.reset()
    srv.configure(tpm=int(per_request * 2.5))
    client = make_client(srv)
    ask(client)
    ask(client)
    with pytest.raises(openai.RateLimitError) as exc:
        ask(client)
    assert exc.value.code == "rate_limit_exceeded" and exc.value.type == "tokens"
    assert 0 < int(exc.value.response.headers["retry-after-ms"]) <= 2000
    assert exc.value.response.headers["x-ratelimit-limit-tokens"] == str(int(per_request * 2.5))
    stats = srv.stats
    assert stats.over_limit == 1 and stats.over_limit_tokens == 1 and stats.ok == 2
    assert stats.max_admitted_tokens_in_window == 2 * per_request
    assert stats.max_tokens_in_window == 3 * per_request


def test_concurrent_requests_with_latency(server_factory: Callable[..., FakeOpenAIServer]) -> None:
    # A latency well above the time 30 client threads take to start on 2 busy CPUs
    # (~0.3 s), so that the requests really overlap at the server.
    srv = server_factory(latency=1.0, jitter=0.05, rpm=100)
    client = make_client(srv)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(lambda _: ask(client), range(30)))
    elapsed = time.monotonic() - started
    assert all(r.choices[0].message.parsed for r in results)
    assert 0.95 <= elapsed < 4.0  # served in parallel, not 30 x 1 s
    assert srv.stats.ok == 30 and srv.stats.max_in_flight >= 20


# ---- control plane ------------------------------------------------------------------------


def test_http_control_endpoints(server: FakeOpenAIServer) -> None:
    ask(make_client(server))
    stats = http_json(f"{server.url}/_stats")
    assert stats["ok"] == 1 and stats["by_status"] == {"200": 1}

    config = http_json(f"{server.url}/_config", {"rpm": 1, "script": ["500"]})
    assert config["rpm"] == 1
    with pytest.raises(openai.RateLimitError):  # rpm=1 already used by the first call
        ask(make_client(server))

    assert http_json(f"{server.url}/_reset", {}) == {"ok": True}
    assert http_json(f"{server.url}/_stats")["requests_total"] == 0
    with pytest.raises(urllib.error.HTTPError) as exc:
        http_json(f"{server.url}/_config", {"no_such_option": 1})
    assert exc.value.code == 400


def test_running_server_helper() -> None:
    with running_server(model="gpt-test") as srv:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        assert [m.id for m in make_client(srv).models.list().data] == ["gpt-test"]
    with pytest.raises(RuntimeError):
        _ = srv.base_url


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise TimeoutError("no output from subprocess")
    return proc.stdout.readline()


def test_subprocess_mode() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    cmd = [sys.executable, "-m", "openai_test_server", "--port", "0"]
    cmd += ["--rpm", "600", "--latency", "0.05", "--script", "500"]
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killer = threading.Timer(15, proc.kill)  # never let a stuck child hang the suite
    killer.start()
    try:
        line = _read_line(proc, timeout=10)
        assert line.startswith("READY http://127.0.0.1:") and line.rstrip().endswith("/v1")
        base_url = line.split()[1]
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=5)
        with pytest.raises(openai.InternalServerError):
            ask(client)
        assert ask(client).choices[0].message.parsed
        root = base_url.removesuffix("/v1")
        stats = http_json(f"{root}/_stats")
        assert stats["ok"] == 1 and stats["faults_injected"] == {"500": 1}
        assert stats["max_admitted_requests_in_window"] == 2

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        assert proc.returncode == 0
        assert out == ""  # nothing on stdout but the READY line
        assert "Traceback" not in err
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
