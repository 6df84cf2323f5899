"""What a child typed, and who the child is, reach no request to the API on any path:
sync requests, re-asks after an ungrounded answer, and Batch API input files. Secrets
(the database URL's password) reach no message, and bad settings say which key is bad."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from kidsfin_assets.config.settings import SettingsError
from kidsfin_assets.defs.resources import load_settings
from kidsfin_assets.warehouse.db import redact
from kidsfin_assets.warehouse.tables import kid_weekly_reports
from kidsfin_assets_tests.helpers import (
    SourceDB,
    local,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.test_gold_reports import API_KEY, FAST_RETRY, W
from openai_test_server import FakeOpenAIServer, running_server

KIDS = (
    (900_001, "Bé.*(Lan)?\\1 [x]"),  # regex metacharacters
    (900_002, "Hạnh\u200b"),  # a zero-width space inside
    (900_003, "Trần Văn Bảo"),
)
# Typed by a child, each with something no prompt may hold: a name or a phone number.
TYPED_CATEGORIES = (
    "snacks\u200b 0912 345 678",  # a known name hiding a phone behind a zero-width space
    "Nguyễn Thị Mai 0987654321",
)
GOAL_TITLE = "Quà cho cô Hạnh 0933 444 555"
NOTE = "trả lại bạn Minh 0944 555 666"
EVENT_TYPE = "login; Lê Thị Cúc 0911 222 333"
SECRETS = (
    "0912",
    "0987654321",
    "Nguyễn Thị Mai",
    "0933",
    "Hạnh",
    "0944",
    "Minh",
    "0911",
    "Lê Thị Cúc",
    "Trần Văn Bảo",
    "Lan)",
    *(str(kid) for kid, _ in KIDS),
)


@pytest.fixture
def liar() -> Iterator[FakeOpenAIServer]:
    """Lies in some answers (so gold asks again, quoting its findings); answers batches."""
    with running_server(
        api_key=API_KEY,
        latency=0.01,
        report_mode="lying",
        lie_rate=0.5,
        seed=3,
        batch_seconds_per_line=0.01,
    ) as srv:
        yield srv


def load_hostile_week(source: SourceDB) -> None:
    source.kids(*KIDS)
    rows = []
    for n, (kid, _) in enumerate(KIDS):
        rows += [
            (10 * n + 1, kid, "2026-03-16 08:00", "income", None, 100000 + 1000 * n),
            (10 * n + 2, kid, "2026-03-17 09:00", "spending", TYPED_CATEGORIES[0], 20000),
            (10 * n + 3, kid, "2026-03-17 10:00", "spending", TYPED_CATEGORIES[1], 15000),
            # "ăn vặt" as the app's keyboard may send it: decomposed, upper case, padded
            (10 * n + 4, kid, "2026-03-18 09:00", "spending", " ĂN VẶT ", 5000),
            (10 * n + 5, kid, "2026-03-18 10:00", "saving", None, 30000),
        ]
    source.txns(*rows)
    nfd = unicodedata.normalize("NFD", " ĂN VẶT ")
    assert nfd != " ĂN VẶT "
    with source.engine.begin() as conn:
        t = source.src.transactions
        conn.execute(t.update().where(t.c.kind == "spending").values(note=NOTE))
        conn.execute(t.update().where(t.c.category == " ĂN VẶT ").values(category=nfd))
    source.events(
        *((100 + n, kid, "2026-03-19 08:00", EVENT_TYPE) for n, (kid, _) in enumerate(KIDS))
    )
    source.insert(
        source.src.savings_goals,
        [
            {
                "goal_id": 77_000 + n,
                "kid_id": kid,
                "title": GOAL_TITLE,
                "target_amount": 200000,
                "created_at": local("2026-03-10 08:00"),
                "completed_at": None,
            }
            for n, (kid, _) in enumerate(KIDS)
        ],
    )


def _said(secret: str, sent: str) -> bool:
    """A name anywhere; a number (a phone's first digits, a kid id) where a number starts: the
    same digits inside a hex id or hash (custom_id, input_hash) are chance, not a leak."""
    if not secret.isdigit():
        return secret in sent
    return re.search(rf"(?<![0-9A-Za-z_]){secret}", sent) is not None


def everything_sent(server: FakeOpenAIServer) -> str:
    """Every request body the server received and every file uploaded to it (not the result
    files it wrote itself: their random request ids are not what the pipeline sent)."""
    bodies = [r.body for r in server.requests]
    uploaded = [f for f in server.batches.files() if f["purpose"] == "batch"]
    assert uploaded  # the premise: the Batch API's input file is among what is checked
    files = [server.batches.file_content(f["id"]).decode() for f in uploaded]
    return json.dumps(bodies, ensure_ascii=False) + "\n".join(files)


def test_typed_text_and_kid_ids_reach_no_request_reask_or_batch_file(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, liar: FakeOpenAIServer
) -> None:
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": liar.base_url, **FAST_RETRY}
    settings = use_database(monkeypatch, pg_url, **env)
    load_hostile_week(SourceDB(settings))
    assert materialize_week(settings, W, selection="group:raw or group:silver").success
    assert materialize_week(settings, W, selection="group:gold").success
    reasks = [r for r in liar.requests if len(r.body["messages"]) == 3]
    assert reasks  # the premise: findings were quoted back to the model
    # The same week again through the Batch API.
    with warehouse_engine(settings).begin() as conn:
        conn.execute(sa.delete(kid_weekly_reports))
    batch = use_database(monkeypatch, pg_url, KIDSFIN_OPENAI__API="batch")
    assert materialize_week(batch, W, selection="group:gold").success
    assert liar.stats.batches_created == 1
    sent = everything_sent(liar)
    for secret in SECRETS:
        assert not _said(secret, sent), secret
    # The known category in its configured form; the typed ones as "khác".
    content = liar.requests[0].body["messages"][-1]["content"]
    data = json.loads(content.split("<data>")[1].split("</data>")[0])
    assert data["spending_by_category"] == {"ăn vặt": 5000.0, "khác": 35000.0}


def test_a_password_holding_an_at_sign_stops_start_up_without_echoing_any_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLAlchemy splits user:p@ss@host at the first '@': "ss@host" became the host, and
    every connection error ("could not translate host name ...") printed it."""
    url = "postgresql://app:pa@Sup3rSecretPw@db.example/app"
    monkeypatch.setenv("KIDSFIN_DATABASE_URL", url)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "database_url" in message and "%40" in message
    assert "Sup3rSecretPw" not in message and "pa@" not in message
    assert redact(url) == "postgresql://app:***@db.example/app"
