"""The fake server's Files and Batches APIs and flex processing, through the official SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema
from openai.types import Batch
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, Field

from openai_test_server import (
    FakeOpenAIServer,
    generate_content,
    prompt_token_count,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENDPOINT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
TERMINAL = ("completed", "failed", "expired", "cancelled")
# Generous: the test machine is shared and loaded; polling ends as soon as the state is reached.
WAIT_SECONDS = 30.0


class Report(BaseModel):
    financial_health: str
    spending_pattern: str
    savings_behavior: str
    activity_level: str
    recommendations: list[str]
    overall_score: float = Field(ge=0, le=10)


RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "Report", "strict": True, "schema": to_strict_json_schema(Report)},
}


@pytest.fixture
def server_factory() -> Iterator[Callable[..., FakeOpenAIServer]]:
    servers: list[FakeOpenAIServer] = []

    def make(**config: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(**config).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


def make_client(srv: FakeOpenAIServer, api_key: str = "test-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=api_key, max_retries=0, timeout=10)


def request_line(custom_id: str, week: int = 1, model: str = MODEL, **body: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "Bạn là trợ lý tài chính cho trẻ em."},
        {"role": "user", "content": f"Tuần {week}, bé [[KID]] ({custom_id}): 3 giao dịch."},
    ]
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": {"model": model, "messages": messages, "response_format": RESPONSE_FORMAT, **body},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, data: bytes, name: str = "week.jsonl") -> str:
    return client.files.create(file=(name, data), purpose="batch").id


def submit(client: openai.OpenAI, lines: list[dict[str, Any]], **kwargs: Any) -> Batch:
    file_id = upload(client, jsonl(lines))
    return client.batches.create(
        input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h", **kwargs
    )


def wait_for(
    client: openai.OpenAI,
    batch_id: str,
    done: Callable[[Batch], bool] = lambda b: b.status in TERMINAL,
) -> Batch:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch never reached the state wanted: {batch}")
        time.sleep(0.01)


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line]


def results(client: openai.OpenAI, batch: Batch) -> tuple[list[dict], list[dict]]:
    return read_lines(client, batch.output_file_id), read_lines(client, batch.error_file_id)


def http_json(url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


# ---- Files ------------------------------------------------------------------------------


def test_files_upload_retrieve_content_list_delete(server_factory) -> None:
    client = make_client(server_factory())
    data = jsonl([request_line("a"), request_line("b")])
    uploaded = client.files.create(file=("week.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data)
    assert uploaded.filename == "week.jsonl" and uploaded.status == "processed"
    assert uploaded.expires_at == uploaded.created_at + 30 * 24 * 3600
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == data  # byte for byte

    others = [client.files.create(file=(f"f{i}.txt", b"x"), purpose="user_data") for i in range(3)]
    assert [f.id for f in client.files.list(purpose="batch")] == [uploaded.id]
    newest_first = [f.id for f in client.files.list()]
    assert newest_first == [f.id for f in reversed([uploaded, *others])]
    page = client.files.list(limit=2, order="asc")
    assert [f.id for f in page.data] == [uploaded.id, others[0].id] and page.has_more
    # Iterating a page makes the SDK follow `after` to the end.
    assert [f.id for f in client.files.list(limit=2, order="asc")] == [
        f.id for f in [uploaded, *others]
    ]

    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)


def test_batch_upload_needs_a_jsonl_file_and_the_api_key(server_factory) -> None:
    server = server_factory(api_key="sk-right-key-000000000000")
    client = make_client(server, api_key="sk-right-key-000000000000")
    with pytest.raises(openai.BadRequestError, match=r"\.jsonl"):
        client.files.create(file=("week.json", b"{}\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("week.jsonl", b"{}\n"), purpose="nonsense")  # type: ignore[arg-type]
    wrong = make_client(server, api_key="sk-wrong-key-000000000000")
    with pytest.raises(openai.AuthenticationError):
        wrong.files.create(file=("week.jsonl", b"{}\n"), purpose="batch")
    with pytest.raises(openai.AuthenticationError):
        wrong.batches.list()
    assert client.files.create(file=("week.jsonl", b"{}\n"), purpose="batch").bytes == 3


# ---- a batch from start to end ------------------------------------------------------------


def test_batch_answers_every_line_with_a_report_in_shuffled_order(server_factory) -> None:
    server = server_factory(
        batch_validating_seconds=0.3, batch_seconds_per_line=0.04, batch_finalizing_seconds=0.4
    )
    client = make_client(server)
    lines = [request_line(f"w1-kid{i}-h{i:04x}") for i in range(12)]
    batch = submit(client, lines, metadata={"week": "2024-W01", "part": "1"})
    assert batch.status == "validating" and batch.endpoint == ENDPOINT
    assert batch.metadata == {"week": "2024-W01", "part": "1"}
    assert batch.expires_at == batch.created_at + 24 * 3600

    seen: list[str] = []

    def finished(b: Batch) -> bool:
        seen.append(b.status)
        return b.status in TERMINAL

    done = wait_for(client, batch.id, finished)
    assert done.status == "completed", done
    assert {"validating", "in_progress", "finalizing"} <= set(seen)
    assert seen.index("validating") < seen.index("in_progress") < seen.index("finalizing")
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.model == MODEL and done.error_file_id is None and done.errors is None
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (12, 12)
    assert done.request_counts.failed == 0

    output, errors = results(client, done)
    assert errors == []
    by_id = {line["custom_id"]: line for line in output}
    assert sorted(by_id) == sorted(line["custom_id"] for line in lines)
    # Matching by position would pair answers with the wrong kids.
    assert [line["custom_id"] for line in output] != [line["custom_id"] for line in lines]

    prompt_tokens = completion_tokens = 0
    for request in lines:
        line = by_id[request["custom_id"]]
        assert line["id"].startswith("batch_req_") and line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(response["body"])
        content = completion.choices[0].message.content
        assert content == generate_content(request["body"])  # the chat endpoint's answer
        report = Report.model_validate_json(content or "")
        assert "[[KID]]" in report.financial_health
        usage = completion.usage
        assert usage is not None
        assert usage.prompt_tokens == prompt_token_count(request["body"]["messages"])
        prompt_tokens += usage.prompt_tokens
        completion_tokens += usage.completion_tokens

    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (prompt_tokens, completion_tokens)
    output_file = client.files.retrieve(done.output_file_id or "")
    assert output_file.purpose == "batch_output"
    stats = server.stats
    assert stats.batches_created == 1 and stats.batch_lines_answered == 12
    assert stats.batch_prompt_tokens == prompt_tokens
    assert stats.batch_completion_tokens == completion_tokens
    # Batch tokens are billed at the batch price: none of them in the sync counters.
    assert (stats.prompt_tokens, stats.completion_tokens, stats.ok) == (0, 0, 0)
    assert stats.batch_lines_errored == stats.batch_lines_answered_again == 0


def test_max_completion_tokens_is_enforced_per_line(server_factory) -> None:
    client = make_client(server_factory())
    done = wait_for(client, submit(client, [request_line("short", max_completion_tokens=5)]).id)
    (line,) = results(client, done)[0]
    body = line["response"]["body"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 5


def test_the_same_lines_answered_twice_are_counted(server_factory) -> None:
    server = server_factory()
    client = make_client(server)
    lines = [request_line(f"kid{i}") for i in range(4)]
    wait_for(client, submit(client, lines).id)
    assert server.stats.batch_lines_answered_again == 0
    wait_for(client, submit(client, lines).id)
    assert server.stats.batch_lines_answered == 8
    assert server.stats.batch_lines_answered_again == 4  # paid twice
    server.reset()
    assert server.stats.batch_lines_answered_again == 0
    assert len(client.batches.list().data) == 2  # batches outlive a stats reset


# ---- validation -------------------------------------------------------------------------


LINE_BYTES = len(jsonl([request_line("a")]))  # one request of the tests, in bytes


def _bad_files() -> dict[str, tuple[bytes, str, int | None]]:
    """name -> (file, expected error code, expected line)."""
    ok = request_line("a")
    get = {**request_line("b"), "method": "GET"}
    other_url = {**request_line("b"), "url": "/v1/embeddings"}
    no_id = {k: v for k, v in request_line("b").items() if k != "custom_id"}
    no_model = request_line("b")
    del no_model["body"]["model"]
    return {
        "empty": (b"", "empty_batch", None),
        "not_json": (jsonl([ok]) + b"{not json\n", "invalid_json_line", 2),
        "duplicate_custom_id": (jsonl([ok, request_line("a")]), "duplicate_custom_id", 2),
        "other_model": (jsonl([ok, request_line("b", model="gpt-4o")]), "model_mismatch", 2),
        "other_url": (jsonl([ok, other_url]), "url_mismatch", 2),
        "get": (jsonl([ok, get]), "invalid_request", 2),
        "no_custom_id": (jsonl([ok, no_id]), "invalid_request", 2),
        "no_model": (jsonl([no_model]), "invalid_request", 1),
        "too_many": (jsonl([request_line(f"k{i}") for i in range(3)]), "too_many_tasks", None),
        "too_large": (jsonl([ok]) + b" " * LINE_BYTES * 4, "file_too_large", None),
    }


@pytest.mark.parametrize("name", sorted(_bad_files()))
def test_a_bad_input_file_fails_the_batch(server_factory, name: str) -> None:
    data, code, line = _bad_files()[name]
    server = server_factory(batch_max_requests=2, batch_max_bytes=4 * LINE_BYTES)
    client = make_client(server)
    created = client.batches.create(
        input_file_id=upload(client, data), endpoint=ENDPOINT, completion_window="24h"
    )
    assert created.status == "validating"  # checked in the background, as OpenAI does
    done = wait_for(client, created.id)
    assert done.status == "failed" and done.failed_at
    assert done.errors is not None and done.errors.data
    assert (done.errors.data[0].code, done.errors.data[0].line) == (code, line)
    assert done.output_file_id is None and done.error_file_id is None
    assert server.stats.batch_lines_answered == 0


def test_a_good_file_passes_the_same_limits(server_factory) -> None:
    """The limits above fail only what is over them (else the failures prove nothing)."""
    server = server_factory(batch_max_requests=2, batch_max_bytes=4 * LINE_BYTES)
    client = make_client(server)
    lines = [request_line("a"), request_line("b")]
    assert wait_for(client, submit(client, lines).id).status == "completed"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"completion_window": "48h"}, openai.BadRequestError),
        ({"endpoint": "/v1/embeddings"}, openai.BadRequestError),
        ({"endpoint": "/v1/nothing"}, openai.BadRequestError),
        ({"input_file_id": "file-missing"}, openai.NotFoundError),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, openai.BadRequestError),
        ({"metadata": {"k": "v" * 513}}, openai.BadRequestError),
        ({"input_file_id": "USER_DATA"}, openai.BadRequestError),
    ],
)
def test_create_rejects_bad_parameters(server_factory, changes: dict, error: type) -> None:
    server = server_factory()
    client = make_client(server)
    params: dict[str, Any] = {
        "input_file_id": upload(client, jsonl([request_line("a")])),
        "endpoint": ENDPOINT,
        "completion_window": "24h",
        **changes,
    }
    if params["input_file_id"] == "USER_DATA":  # a file that was not uploaded for batches
        params["input_file_id"] = client.files.create(
            file=("x.jsonl", b"{}"), purpose="user_data"
        ).id
    with pytest.raises(error):
        client.batches.create(**params)
    assert client.batches.list().data == [] and server.stats.batches_created == 0


# ---- faults -----------------------------------------------------------------------------


def test_line_errors_go_to_the_error_file(server_factory) -> None:
    server = server_factory(batch_line_fault_rate=0.5, batch_line_faults=["500", "400", "error"])
    client = make_client(server)
    lines = [request_line(f"kid{i}") for i in range(30)]
    done = wait_for(client, submit(client, lines).id)
    assert done.status == "completed"
    output, errors = results(client, done)
    ids = [line["custom_id"] for line in output + errors]
    assert sorted(ids) == sorted(line["custom_id"] for line in lines)  # each line exactly once
    assert output and errors
    kinds = set()
    for line in errors:
        if line["response"] is None:
            assert line["error"]["code"] == "server_error"
            kinds.add("error")
        else:
            status = line["response"]["status_code"]
            assert status in (400, 500) and line["error"] is None
            assert line["response"]["body"]["error"]["message"]
            kinds.add(str(status))
    assert kinds == {"500", "400", "error"}
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
    stats = server.stats
    assert (stats.batch_lines_answered, stats.batch_lines_errored) == (len(output), len(errors))
    billed = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in output)
    assert stats.batch_prompt_tokens == billed  # errored lines are not billed


def test_content_faults_answer_200_with_bad_reports(server_factory) -> None:
    server = server_factory(batch_line_fault_rate=1.0, batch_line_faults=["schema_invalid"])
    client = make_client(server)
    done = wait_for(client, submit(client, [request_line("a"), request_line("b")]).id)
    output, errors = results(client, done)
    assert len(output) == 2 and errors == []
    for line in output:
        content = line["response"]["body"]["choices"][0]["message"]["content"]
        with pytest.raises(ValueError):
            Report.model_validate_json(content)


def test_all_lines_failed_gives_an_error_file_only(server_factory) -> None:
    server = server_factory(batch_line_fault_rate=1.0, batch_line_faults=["500"])
    client = make_client(server)
    done = wait_for(client, submit(client, [request_line(f"k{i}") for i in range(3)]).id)
    assert done.status == "completed"
    assert done.output_file_id is None and done.error_file_id is not None
    assert len(results(client, done)[1]) == 3


def test_unanswerable_lines_are_answered_400(server_factory) -> None:
    client = make_client(server_factory())
    no_messages = request_line("no-messages")
    del no_messages["body"]["messages"]
    remote_schema = request_line("remote-schema")
    remote_schema["body"]["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "R", "schema": {"$ref": "https://example.com/r.json"}},
    }
    done = wait_for(client, submit(client, [request_line("good"), no_messages, remote_schema]).id)
    assert done.status == "completed"
    output, errors = results(client, done)
    assert [line["custom_id"] for line in output] == ["good"]
    assert sorted((line["custom_id"], line["response"]["status_code"]) for line in errors) == [
        ("no-messages", 400),
        ("remote-schema", 400),
    ]


def test_completed_without_output_file(server_factory) -> None:
    server = server_factory(batch_lose_output_rate=1.0)
    client = make_client(server)
    done = wait_for(client, submit(client, [request_line(f"k{i}") for i in range(3)]).id)
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.completed == 3
    assert done.output_file_id is None and done.error_file_id is None
    assert server.stats.batch_lines_answered == 3  # billed all the same


def test_expiry_after_part_of_the_lines(server_factory) -> None:
    server = server_factory(batch_expire_after_lines=3)
    client = make_client(server)
    lines = [request_line(f"k{i}") for i in range(8)]
    done = wait_for(client, submit(client, lines).id)
    assert done.status == "expired" and done.expired_at and done.completed_at is None
    output, errors = results(client, done)
    assert len(output) == 3 and len(errors) == 5
    assert all(line["response"]["status_code"] == 200 for line in output)
    for line in errors:
        assert line["response"] is None and line["error"]["code"] == "batch_expired"
    assert sorted(line["custom_id"] for line in output + errors) == sorted(
        line["custom_id"] for line in lines
    )
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 5)
    stats = server.stats
    assert (stats.batch_lines_answered, stats.batch_lines_unprocessed) == (3, 5)


def test_cancel_takes_effect_after_part_of_the_lines(server_factory) -> None:
    server = server_factory(batch_seconds_per_line=0.05, batch_cancel_after_lines=2)
    client = make_client(server)
    lines = [request_line(f"k{i}") for i in range(60)]
    batch = submit(client, lines)
    running = wait_for(
        client, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 3
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    done = wait_for(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    output, errors = results(client, done)
    assert running.request_counts is not None
    # Lines in flight when the cancel came are still answered, and their answers kept.
    assert running.request_counts.completed + 2 <= len(output) < len(lines)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert len(output) + len(errors) == len(lines)
    assert client.batches.cancel(batch.id).status == "cancelled"  # cancelling again: no-op


def test_cancel_while_validating_and_after_the_end(server_factory) -> None:
    server = server_factory(batch_validating_seconds=1.0)
    client = make_client(server)
    batch = submit(client, [request_line("a")])
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = wait_for(client, batch.id)
    assert done.status == "cancelled" and done.output_file_id is None
    assert server.stats.batch_lines_answered == 0

    server.configure(batch_validating_seconds=0.0)
    finished = wait_for(client, submit(client, [request_line("b")]).id)
    assert finished.status == "completed"
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.batches.cancel(finished.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_missing")


def test_enqueued_token_limit_per_model(server_factory) -> None:
    lines = [request_line(f"k{i}") for i in range(4)]
    tokens = sum(prompt_token_count(line["body"]["messages"]) for line in lines)
    # Room for one such batch per model, not two.
    server = server_factory(batch_seconds_per_line=0.5, batch_queue_tokens=tokens + tokens // 2)
    client = make_client(server)
    first = submit(client, lines)
    wait_for(client, first.id, lambda b: b.status == "in_progress")
    assert server.batches.enqueued_tokens(MODEL) == tokens

    second = wait_for(client, submit(client, lines).id)
    assert second.status == "failed" and second.errors is not None
    assert second.errors.data[0].code == "token_limit_exceeded"
    assert "Enqueued token limit reached" in (second.errors.data[0].message or "")
    other_model = submit(client, [request_line(f"o{i}", model="gpt-4o") for i in range(4)])
    assert wait_for(client, other_model.id, lambda b: b.status != "validating").status != "failed"

    assert wait_for(client, first.id).status == "completed"
    assert server.batches.enqueued_tokens(MODEL) == 0  # finished batches free the queue
    assert wait_for(client, submit(client, lines).id).status == "completed"


def test_batches_list_newest_first_with_pagination(server_factory) -> None:
    client = make_client(server_factory())
    created = [submit(client, [request_line(f"k{i}")]).id for i in range(5)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == created[::-1][:2] and page.has_more
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # follows `after`
    rest = client.batches.list(after=created[2], limit=20)
    assert [b.id for b in rest.data] == created[:2][::-1] and not rest.has_more
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


# ---- flex -------------------------------------------------------------------------------


def ask(client: openai.OpenAI, **kwargs: Any) -> ChatCompletion:
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Tuần này bé [[KID]] tiêu gì?"}],
        **kwargs,
    )


def test_flex_answers_at_the_flex_tier(server_factory) -> None:
    server = server_factory()
    client = make_client(server)
    assert ask(client).service_tier == "default"
    flex = ask(client, service_tier="flex")
    assert flex.service_tier == "flex" and flex.usage is not None
    stats = server.stats
    assert stats.flex_ok == 1 and stats.ok == 2
    assert stats.flex_prompt_tokens == flex.usage.prompt_tokens
    assert stats.flex_completion_tokens == flex.usage.completion_tokens
    assert stats.prompt_tokens == 2 * flex.usage.prompt_tokens  # flex is a subset of sync


def test_flex_unavailable_is_429_not_billed_not_rate_counted(server_factory) -> None:
    server = server_factory(flex_unavailable_rate=1.0, rpm=1)
    client = make_client(server)
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as exc:
            ask(client, service_tier="flex")
        assert exc.value.code == "resource_unavailable"
        assert exc.value.type == "resource_unavailable"
    stats = server.stats
    assert (stats.flex_unavailable, stats.prompt_tokens, stats.over_limit) == (3, 0, 0)
    assert ask(client).service_tier == "default"  # rpm=1 was not used up by the 429s
    server.configure(flex_unavailable_rate=0.0)
    with pytest.raises(openai.RateLimitError) as exc:  # now the real rpm limit answers
        ask(client, service_tier="flex")
    assert exc.value.code == "rate_limit_exceeded"


def test_flex_unavailable_share_is_seeded(server_factory) -> None:
    outcomes = []
    for _ in range(2):
        server = server_factory(flex_unavailable_rate=0.5, seed=7)
        client = make_client(server)
        run = []
        for _ in range(20):
            try:
                ask(client, service_tier="flex")
                run.append(True)
            except openai.RateLimitError:
                run.append(False)
        outcomes.append(run)
        assert server.stats.flex_unavailable == run.count(False)
    assert outcomes[0] == outcomes[1] and 0 < outcomes[0].count(False) < 20


# ---- configuration ----------------------------------------------------------------------


def test_config_over_http_and_validation(server_factory) -> None:
    server = server_factory()
    config = http_json(
        f"{server.url}/_config", {"batch_line_faults": ["error"], "batch_queue_tokens": 10}
    )
    assert config["batch_line_faults"] == ["error"] and config["batch_queue_tokens"] == 10
    assert server.config.batch_line_faults == ("error",)
    for bad in (
        {"batch_line_faults": ["nope"]},
        {"flex_unavailable_rate": 2},
        {"batch_seconds_per_line": -1},
    ):
        with pytest.raises(urllib.error.HTTPError) as exc:
            http_json(f"{server.url}/_config", bad)
        assert exc.value.code == 400
    assert "batches_created" in http_json(f"{server.url}/_stats")


def test_subprocess_mode_serves_batches() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    cmd = [sys.executable, "-m", "openai_test_server", "--port", "0"]
    cmd += ["--batch-seconds-per-line", "0.01", "--batch-expire-after-lines", "1"]
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killer = threading.Timer(30, proc.kill)  # never let a stuck child hang the suite
    killer.start()
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().split()[1]
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10)
        batch = submit(client, [request_line("a"), request_line("b")])
        done = wait_for(client, batch.id)
        assert done.status == "expired"
        assert [len(part) for part in results(client, done)] == [1, 1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
