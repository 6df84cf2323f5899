"""Test tooling for issue 8, each piece on its own: the misbehaving answers of the fake OpenAI
server (seen through the official ``openai`` SDK, as the project sees them), the TCP proxy
that cuts PostgreSQL away (real psycopg2 and SQLAlchemy through it), and an experiment with
a total request deadline against the trickling server."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import psycopg2
import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from kidsfin_assets.warehouse.db import normalize_url
from kidsfin_assets_tests.tcp_proxy import TcpProxy
from openai_test_server import (
    ABSURD_PROMPT_TOKENS,
    ALL_FAULT_KINDS,
    CAPTIVE_PORTAL_PAGE,
    DEFAULT_SERVER_ERROR_MESSAGE,
    FakeOpenAIServer,
    count_tokens,
    prompt_token_count,
)
from openai_test_server.server import _build_parser

NEW_FAULT_KINDS = (
    "usage_absurd",
    "usage_negative",
    "usage_missing",
    "usage_non_numeric",
    "empty_choices",
    "html_body",
    "trickle",
    "other_model",
    "500_explained",
    "401_key_echo",
)
MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "Bạn là trợ lý tài chính cho trẻ em."},
    {"role": "user", "content": "Phân tích tuần này của [[KID]]: 3 giao dịch, 120.000đ."},
]
PROMPT_TOKENS = prompt_token_count(MESSAGES)
API_KEY = "sk-proj-Abc123def456GHI789jkl012MNO345pqr"


class Report(BaseModel):
    financial_health: str
    recommendations: list[str]


# --------------------------------------------------------------------------------------
# Fixtures and small helpers
# --------------------------------------------------------------------------------------


@pytest.fixture
def server_factory() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """Start fake servers; always stop them, even when a test fails half-way."""
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


def make_client(
    srv: FakeOpenAIServer, timeout: float = 10.0, http_client: httpx2.Client | None = None
) -> openai.OpenAI:
    # max_retries=0 as the project does: one SDK call is one HTTP request.
    return openai.OpenAI(
        base_url=srv.base_url,
        api_key=API_KEY,
        max_retries=0,
        timeout=timeout,
        http_client=http_client,
    )


def create(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]


def raw_parse(client: openai.OpenAI) -> Any:
    """The project's call: the raw response first, parsed afterwards."""
    return client.chat.completions.with_raw_response.parse(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=Report,
    )


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Call:
    """An SDK call in a thread of its own, so the test can watch it while it waits."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:  # handed to the test, which asserts on it
            self.error = exc
        finally:
            self.ended = time.monotonic()

    def join(self, timeout: float) -> bool:
        """True when the call has ended within ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        assert self.ended is not None
        return self.ended - self.started


# --------------------------------------------------------------------------------------
# Fake server: the new fault kinds, one by one, through the SDK
# --------------------------------------------------------------------------------------


def test_new_kinds_are_fault_kinds() -> None:
    assert set(NEW_FAULT_KINDS) <= set(ALL_FAULT_KINDS)


def test_usage_absurd_claims_a_billion_prompt_tokens_but_bills_the_count(
    server: FakeOpenAIServer,
) -> None:
    server.script(["usage_absurd"])
    completion = create(make_client(server))
    assert completion.usage.prompt_tokens == ABSURD_PROMPT_TOKENS
    assert (
        completion.usage.total_tokens == ABSURD_PROMPT_TOKENS + completion.usage.completion_tokens
    )
    assert completion.choices[0].message.content  # otherwise an ordinary answer
    stats = server.stats
    assert stats.prompt_tokens == PROMPT_TOKENS
    assert stats.completion_tokens == completion.usage.completion_tokens > 0
    assert stats.faults_injected == {"usage_absurd": 1}


def test_usage_negative(server: FakeOpenAIServer) -> None:
    server.script(["usage_negative"])
    usage = create(make_client(server)).usage
    assert usage.prompt_tokens < 0 and usage.completion_tokens < 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert server.stats.prompt_tokens == PROMPT_TOKENS == -usage.prompt_tokens


def test_usage_missing(server: FakeOpenAIServer) -> None:
    server.script(["usage_missing"])
    raw = raw_parse(make_client(server))
    assert "usage" not in json.loads(raw.text)
    parsed = raw.parse()
    assert parsed.usage is None
    assert parsed.choices[0].message.parsed is not None  # the answer itself is fine
    assert server.stats.prompt_tokens == PROMPT_TOKENS  # billed all the same
    assert server.stats.completion_tokens > 0


def test_usage_non_numeric_reaches_the_caller_unvalidated(server: FakeOpenAIServer) -> None:
    server.script(["usage_non_numeric"])
    with pytest.warns(UserWarning):  # pydantic warns when the odd values are dumped
        usage = create(make_client(server)).usage
        assert usage.model_dump()["prompt_tokens"] == "lots"
    # The SDK does not validate: the strings and nulls arrive as they were sent.
    assert usage.prompt_tokens == "lots"
    assert usage.completion_tokens is None
    assert usage.prompt_tokens_details.cached_tokens == "some"
    assert server.stats.prompt_tokens == PROMPT_TOKENS


def test_empty_choices_bills_only_the_prompt(server: FakeOpenAIServer) -> None:
    server.script(["empty_choices", "empty_choices"])
    client = make_client(server)
    completion = create(client)
    assert completion.choices == []
    assert completion.usage.completion_tokens == 0
    parsed = raw_parse(client).parse()
    assert parsed.choices == []  # `.choices[0]` is the IndexError of issue 8
    stats = server.stats
    assert (stats.ok, stats.prompt_tokens, stats.completion_tokens) == (2, 2 * PROMPT_TOKENS, 0)


def test_html_body_is_a_200_page_the_sdk_returns_as_text(server: FakeOpenAIServer) -> None:
    server.script(["html_body", "html_body"])
    client = make_client(server)
    # .create() hands back the page as a str (no JSON to parse, no strict validation).
    assert create(client) == CAPTIVE_PORTAL_PAGE
    raw = raw_parse(client)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("text/html")
    # .parse() then fails on the str: the AttributeError of issue 8.
    with pytest.raises(AttributeError, match="choices"):
        raw.parse()
    stats = server.stats
    assert (stats.ok, stats.prompt_tokens, stats.completion_tokens) == (2, 0, 0)


def test_other_model_names_the_configured_other_model(server: FakeOpenAIServer) -> None:
    server.script(["other_model"])
    client = make_client(server)
    completion = create(client)
    assert completion.model == "gpt-4o"
    server.configure(other_model_name="llama-3.1-8b")
    server.script(["other_model"])
    assert raw_parse(client).parse().model == "llama-3.1-8b"
    assert server.stats.prompt_tokens == 2 * PROMPT_TOKENS


def test_500_explained_carries_the_servers_message(server: FakeOpenAIServer) -> None:
    server.script(["500_explained"])
    client = make_client(server)
    with pytest.raises(openai.InternalServerError) as caught:
        raw_parse(client)
    assert caught.value.status_code == 500
    assert DEFAULT_SERVER_ERROR_MESSAGE in str(caught.value)
    assert caught.value.body["message"] == DEFAULT_SERVER_ERROR_MESSAGE  # type: ignore[index]

    server.configure(server_error_message="model 'x' not loaded")
    server.script(["500_explained"])
    with pytest.raises(openai.APIStatusError, match="model 'x' not loaded"):
        create(client)
    assert server.stats.by_status == {500: 2}
    assert (server.stats.prompt_tokens, server.stats.completion_tokens) == (0, 0)


def test_401_key_echo_shows_the_key_in_altered_forms(server: FakeOpenAIServer) -> None:
    server.script(["401_key_echo"])
    with pytest.raises(openai.AuthenticationError) as caught:
        create(make_client(server))
    message = str(caught.value)
    assert API_KEY.removeprefix("sk-") in message
    assert API_KEY[-12:] in message
    assert API_KEY not in message  # a scrubber of the exact key finds nothing to hide
    assert server.stats.by_status == {401: 1}


def test_new_kinds_are_drawn_as_random_faults(server: FakeOpenAIServer) -> None:
    kinds = [k for k in NEW_FAULT_KINDS if k != "trickle"]  # trickle has its own tests
    server.configure(fault_rate=1.0, faults=kinds, seed=7)
    client = make_client(server)
    for _ in range(60):
        with contextlib.suppress(openai.APIStatusError):  # 500_explained, 401_key_echo
            create(client)
    assert set(server.stats.faults_injected) == set(kinds)
    assert sum(server.stats.faults_injected.values()) == 60


def test_config_and_cli_know_the_new_settings() -> None:
    with pytest.raises(ValueError, match="trickle_interval"):
        FakeOpenAIServer(trickle_interval=-1)
    with pytest.raises(ValueError, match="trickle_interval"):
        FakeOpenAIServer(trickle_interval=float("inf"))
    args = vars(
        _build_parser().parse_args(
            [
                "--trickle-interval=0.5",
                "--other-model-name=m2",
                "--server-error-message=nope",
                "--script=trickle,html_body",
            ]
        )
    )
    args.pop("script")
    config = FakeOpenAIServer(**args).config
    assert (config.trickle_interval, config.other_model_name) == (0.5, "m2")
    assert config.server_error_message == "nope"


# --------------------------------------------------------------------------------------
# Fake server: trickle
# --------------------------------------------------------------------------------------


def test_trickle_delivers_the_whole_answer_with_a_true_content_length(
    server_factory: Callable[..., FakeOpenAIServer],
) -> None:
    server = server_factory(trickle_interval=0.001)
    server.script(["trickle"])
    parsed = raw_parse(make_client(server)).parse()
    assert parsed.choices[0].message.parsed is not None
    assert server.stats.completion_tokens == count_tokens(parsed.choices[0].message.content)


def test_trickle_outlasts_a_per_read_timeout_and_ends_when_the_server_stops(
    server_factory: Callable[..., FakeOpenAIServer],
) -> None:
    server = server_factory(trickle_interval=0.25)
    server.script(["trickle"])
    client = make_client(server, timeout=2.0)  # per read: every read gets a byte in time
    call = Call(lambda: raw_parse(client))
    assert not call.join(4.0), "a 2 s read timeout should not end a trickled body"
    assert server.stats.in_flight == 1
    server.stop()  # the trickling handler must not keep the server (or the client) alive
    assert call.join(10.0), "the client still waits after the server stopped"
    assert isinstance(call.error, openai.APIConnectionError)  # body cut short
    assert server.stats.ok == 1  # the answer was billed before it was sent


def test_trickle_stops_when_the_client_goes_away(
    server_factory: Callable[..., FakeOpenAIServer],
) -> None:
    server = server_factory(trickle_interval=1.0)
    server.script(["trickle"])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()  # headers arrive at once, the body byte by byte
    assert response.status == 200 and int(response.headers["Content-Length"]) > 100
    assert server.stats.in_flight == 1
    conn.sock.close()  # type: ignore[union-attr]
    conn.close()
    assert wait_for(lambda: server.stats.in_flight == 0, 10.0), "the handler kept trickling"


# --------------------------------------------------------------------------------------
# Total deadline: the approach recommended to the gold layer, tried against trickle
# --------------------------------------------------------------------------------------


class _DeadlineStream(httpx2.SyncByteStream):
    """A response body that raises ``httpx2.ReadTimeout`` once the deadline has passed."""

    def __init__(
        self, inner: httpx2.SyncByteStream, deadline: float, seconds: float, request: Any
    ) -> None:
        self.inner, self.deadline, self.seconds, self.request = inner, deadline, seconds, request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if time.monotonic() > self.deadline:
                raise httpx2.ReadTimeout(
                    f"no whole response within the {self.seconds:g} s deadline",
                    request=self.request,
                )
            yield chunk

    def close(self) -> None:
        self.inner.close()


class TotalDeadlineTransport(httpx2.BaseTransport):
    """Every request, connect to last body byte, within ``seconds`` (+ at most one read).

    Each single wait (pool, connect, write, every read) is capped at the deadline, and the
    body is checked against it chunk by chunk. Raising ``httpx2.ReadTimeout`` from the body
    makes the SDK's own handling apply: ``openai.APITimeoutError`` (or its retry).
    """

    def __init__(self, seconds: float, inner: httpx2.BaseTransport | None = None) -> None:
        self.seconds = seconds
        self.inner = inner or httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + self.seconds
        timeouts = dict(request.extensions.get("timeout") or {})
        for name in ("connect", "read", "write", "pool"):
            value = timeouts.get(name)
            timeouts[name] = self.seconds if value is None else min(value, self.seconds)
        request.extensions["timeout"] = timeouts
        response = self.inner.handle_request(request)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_DeadlineStream(response.stream, deadline, self.seconds, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


def deadline_client(srv: FakeOpenAIServer, seconds: float) -> openai.OpenAI:
    http_client = openai.DefaultHttpxClient(transport=TotalDeadlineTransport(seconds))
    return make_client(srv, timeout=seconds, http_client=http_client)


@pytest.mark.parametrize("call", [raw_parse, create], ids=["with_raw_response.parse", "create"])
def test_total_deadline_approach_transport_ends_a_trickled_request(
    server_factory: Callable[..., FakeOpenAIServer], call: Callable[[openai.OpenAI], Any]
) -> None:
    server = server_factory(trickle_interval=0.25)
    client = deadline_client(server, seconds=2.0)
    server.script(["ok"])
    assert call(client) is not None  # an ordinary answer passes untouched

    server.script(["trickle"])
    attempt = Call(lambda: call(client))
    # Bound: the deadline plus one read (itself capped at the deadline), plus load margin.
    assert attempt.join(2.0 + 2.0 + 6.0), "the deadline did not end the request"
    assert isinstance(attempt.error, openai.APITimeoutError), attempt.error
    assert attempt.elapsed >= 2.0
    # The abandoned answer was paid for, and the server noticed the client leave.
    assert server.stats.ok == 2
    assert wait_for(lambda: server.stats.in_flight == 0, 5.0)
    client.close()


# --------------------------------------------------------------------------------------
# TCP proxy in front of PostgreSQL
# --------------------------------------------------------------------------------------


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = make_url(normalize_url(pg_url))
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as tcp_proxy:
        yield tcp_proxy


def proxied_dsn(proxy: TcpProxy, pg_url: str, connect_timeout: int = 3) -> str:
    url = make_url(proxy.url_for(normalize_url(pg_url)))
    return (
        f"host={url.host} port={url.port} dbname={url.database} user={url.username} "
        f"connect_timeout={connect_timeout}"
    )


def proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tcp-proxy")]


def test_url_for_points_the_url_at_the_proxy(proxy: TcpProxy) -> None:
    url = make_url(proxy.url_for("postgresql+psycopg2://u:p%40ss@db.example:5432/kidsfin"))
    assert (url.host, url.port) == ("127.0.0.1", proxy.port)
    assert (url.username, url.password, url.database) == ("u", "p@ss", "kidsfin")


def test_proxy_carries_a_sqlalchemy_pool(proxy: TcpProxy, pg_url: str) -> None:
    engine = sa.create_engine(proxy.url_for(normalize_url(pg_url)), pool_size=10)
    all_connected = threading.Barrier(10, timeout=60)
    results: list[int] = []

    def work(n: int) -> None:
        with engine.connect() as conn:  # ten connections open at once through the proxy
            results.append(conn.execute(sa.text("SELECT :n + 1"), {"n": n}).scalar_one())
            all_connected.wait()
        for _ in range(5):  # then pooled: the same connections again
            with engine.connect() as conn:
                results.append(conn.execute(sa.text("SELECT :n + 1"), {"n": n}).scalar_one())

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(n + 1 for n in range(10) for _ in range(6))
    assert proxy.connections_accepted == 10
    assert proxy.active_connections == 10
    # A large result crosses the proxy intact (many chunks each way).
    with engine.connect() as conn:
        big = conn.execute(sa.text("SELECT repeat('x', 2000000)")).scalar_one()
    assert big == "x" * 2_000_000
    engine.dispose()
    assert wait_for(lambda: proxy.active_connections == 0, 5.0)


def test_cut_breaks_open_connections_and_refuses_new_ones_until_restore(
    proxy: TcpProxy, pg_url: str
) -> None:
    dsn = proxied_dsn(proxy, pg_url)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)

    proxy.cut()
    assert proxy.is_cut
    with pytest.raises(psycopg2.OperationalError), conn.cursor() as cur:
        cur.execute("SELECT 1")
    with pytest.raises(psycopg2.OperationalError, match="refused"):
        psycopg2.connect(dsn)
    conn.close()

    proxy.restore()
    assert not proxy.is_cut
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    conn.close()


def test_cut_in_drop_mode_hangs_up_on_new_connections(proxy: TcpProxy, pg_url: str) -> None:
    dsn = proxied_dsn(proxy, pg_url)
    proxy.cut(mode="drop")
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(dsn)
    assert proxy.connections_dropped >= 1
    proxy.restore()
    psycopg2.connect(dsn).close()


def test_cut_for_restores_by_itself_and_a_pre_pinging_pool_recovers(
    proxy: TcpProxy, pg_url: str
) -> None:
    engine = sa.create_engine(proxy.url_for(normalize_url(pg_url)), pool_pre_ping=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    timer = proxy.cut_for(1.0)
    with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    timer.join(10)
    assert not proxy.is_cut
    with engine.connect() as conn:  # the pooled connection died in the cut; a new one is made
        assert conn.execute(sa.text("SELECT 3")).scalar_one() == 3
    engine.dispose()


def test_stop_leaves_no_thread_even_with_open_connections(pg_url: str) -> None:
    url = make_url(normalize_url(pg_url))
    before = proxy_threads()
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    dsn = proxied_dsn(proxy, pg_url)
    conns = [psycopg2.connect(dsn) for _ in range(4)]  # idle and open: pumps wait in recv
    assert len(proxy_threads()) >= len(before) + 1 + 2 * 4
    proxy.stop()
    assert proxy.threads == []
    assert proxy_threads() == before
    with pytest.raises(psycopg2.OperationalError), conns[0].cursor() as cur:
        cur.execute("SELECT 1")  # stop closed them
    for conn in conns:
        conn.close()


def test_stop_cancels_a_pending_restore(pg_url: str) -> None:
    url = make_url(normalize_url(pg_url))
    before = proxy_threads()
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    timer = proxy.cut_for(60.0)
    proxy.stop()
    assert not timer.is_alive()
    assert proxy_threads() == before


def test_upstream_down_looks_like_a_server_hanging_up(pg_url: str) -> None:
    with TcpProxy("127.0.0.1", 1) as proxy:  # nothing listens on port 1
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(proxied_dsn(proxy, pg_url))
        assert wait_for(lambda: proxy.active_connections == 0, 5.0)
