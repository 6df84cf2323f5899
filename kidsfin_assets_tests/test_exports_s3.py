"""Exports to object storage (issue 22.2), against a real S3-compatible server the suite
starts on 127.0.0.1 (moto's, over HTTP: s3fs and botocore as in production, no mock of the
client), through real Dagster runs on PostgreSQL.

Credentials and the endpoint come from the environment, as in production (AWS_*); the
secret is checked to reach no event, log line or metadata."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from kidsfin_assets.defs.assets import exports
from kidsfin_assets.defs.resources import Settings
from kidsfin_assets.exports import export_store
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import kid_weekly_analysis, kid_weekly_reports
from kidsfin_assets_tests.helpers import fetch, materialize_week, use_database, warehouse_engine
from kidsfin_demo import DemoSpec, generate

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

W = "2026-03-16"
ANALYSIS = "exports/kids_analysis_json"
REPORTS = "exports/kids_reports_json"
SECRET = "kidsfin-test-secret-4f1c9"  # AWS_SECRET_ACCESS_KEY: must be nowhere in a run
MIB = 2**20


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, for this module's tests."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Bucket:
    client: Any
    name: str

    def url(self, prefix: str = "weekly") -> str:
        return f"s3://{self.name}/{prefix}"

    def body(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def etag(self, key: str) -> str:
        return self.client.head_object(Bucket=self.name, Key=key)["ETag"]

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    def open_uploads(self) -> list[dict[str, Any]]:
        return self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", [])


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, tmp_path: Path) -> Bucket:
    """A bucket of the test's own; AWS_* as an operator would set them, nothing else."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kidsfin-test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = boto3.client("s3")
    name = f"kidsfin-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(client, name)


def week_in_s3(monkeypatch: pytest.MonkeyPatch, pg_url: str, url: str, **env: str) -> Settings:
    """Six kids' demo weeks, raw and silver of W materialised; exports go to `url`."""
    settings = use_database(monkeypatch, pg_url, KIDSFIN_EXPORTS__EXPORT_DIR=url, **env)
    engine = db.create_engine(settings.warehouse.database_url)
    end = dt.date.fromisoformat(W)
    generate(engine, settings.sources, DemoSpec(kids=6, weeks=3, end_week=end, seed=11))
    engine.dispose()
    assert materialize_week(settings, W, selection="group:raw or group:silver").success
    return settings


def copy_silver_kids(settings: Settings, copies: int) -> None:
    """`copies` more kids in W's silver rows, each a copy of the first kid's row."""
    table = kid_weekly_analysis
    others = [c.name for c in table.c if c.name != "kid_id"]
    columns = ", ".join(f'"{c}"' for c in ["kid_id", *others])
    copied = ", ".join(f'a."{c}"' for c in others)
    sql = (
        f"INSERT INTO kidsfin.kid_weekly_analysis ({columns}) "
        f"SELECT 1000000 + n, {copied} FROM kidsfin.kid_weekly_analysis a, "
        "generate_series(1, :copies) n WHERE a.week_start = CAST(:week AS date) AND a.kid_id = "
        "(SELECT min(kid_id) FROM kidsfin.kid_weekly_analysis "
        "WHERE week_start = CAST(:week AS date))"
    )
    with warehouse_engine(settings).begin() as conn:
        conn.execute(sa.text(sql), {"copies": copies, "week": W})


def silver_kids(settings: Settings) -> int:
    table = kid_weekly_analysis
    query = sa.select(sa.func.count()).where(table.c.week_start == dt.date.fromisoformat(W))
    return fetch(warehouse_engine(settings), query)[0]["count_1"]


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in event.metadata.items()}


def assert_secret_kept(result: dg.ExecuteInProcessResult) -> None:
    """The secret key reaches no event of the run: logs, metadata, errors."""
    for event in result.all_events:
        assert SECRET not in str(event), event.event_type_value


def step_failure(result: dg.ExecuteInProcessResult) -> Any:
    assert not result.success
    return next(e for e in result.all_events if e.is_step_failure).event_specific_data


def test_an_export_is_written_to_s3_and_overwritten_whole(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, bucket: Bucket
) -> None:
    settings = week_in_s3(monkeypatch, pg_url, bucket.url())
    key = f"weekly/kids_analysis_{W}.json"
    first = materialize_week(settings, W, selection=ANALYSIS)
    assert first.success
    meta = metadata(first, "exports__kids_analysis_json")
    assert meta["path"] == f"s3://{bucket.name}/{key}"
    assert meta["dagster/row_count"] == silver_kids(settings) == 6
    text = bucket.body(key).decode()
    document = json.loads(text)
    assert document["week_start"] == W and document["total_kids"] == 6
    assert text == json.dumps(document, ensure_ascii=False, indent=2)  # the document's own dump
    old_etag = bucket.etag(key)

    copy_silver_kids(settings, 1)  # the week changes: the object is replaced
    second = materialize_week(settings, W, selection=ANALYSIS)
    assert second.success
    assert json.loads(bucket.body(key))["total_kids"] == 7
    assert bucket.etag(key) != old_etag
    assert bucket.keys() == [key]  # no temporary object beside it
    assert bucket.open_uploads() == []
    for result in (first, second):
        assert_secret_kept(result)


def test_a_failure_mid_upload_leaves_the_old_object_and_aborts_the_upload(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, bucket: Bucket
) -> None:
    """A week large enough for a multipart upload; the row stream fails after a part was
    uploaded. Meanwhile readers see the old object; afterwards the upload is aborted and
    the old object is still the week's file, byte for byte."""
    settings = week_in_s3(monkeypatch, pg_url, bucket.url())
    copy_silver_kids(settings, 12_000)
    monkeypatch.setattr(export_store, "REMOTE_BLOCK_BYTES", 5 * MIB)  # S3's smallest part
    key = f"weekly/kids_analysis_{W}.json"
    assert materialize_week(settings, W, selection=ANALYSIS).success
    old, old_etag = bucket.body(key), bucket.etag(key)
    assert len(old) > 2 * 5 * MIB  # it took several parts

    seen: dict[str, Any] = {}
    real = exports._analysis_items

    def failing(conn: Any, src: Any, page: list[dict[str, Any]]) -> Any:
        written = seen.get("pages", 0) * exports.PAGE_KIDS  # kids already written
        seen["pages"] = seen.get("pages", 0) + 1
        # At ~1 KB a kid, well over a part's worth, the pages read ahead of the writer too.
        if written * 1000 > 8 * MIB:
            uploads = bucket.open_uploads()
            seen["uploads"] = uploads
            seen["parts"] = [
                len(
                    bucket.client.list_parts(
                        Bucket=bucket.name, Key=u["Key"], UploadId=u["UploadId"]
                    ).get("Parts", [])
                )
                for u in uploads
            ]
            seen["etag_meanwhile"] = bucket.etag(key)
            raise RuntimeError("injected: the warehouse went away mid-export")
        return real(conn, src, page)

    monkeypatch.setattr(exports, "_analysis_items", failing)
    result = materialize_week(settings, W, selection=ANALYSIS, raise_on_error=False)
    assert "injected" in str(step_failure(result).error)
    assert [u["Key"] for u in seen["uploads"]] == [key]  # one upload under way...
    assert seen["parts"][0] >= 1  # ... with parts already in the store
    assert seen["etag_meanwhile"] == old_etag  # ... and readers saw the old object
    assert bucket.open_uploads() == []  # aborted
    assert bucket.etag(key) == old_etag and bucket.body(key) == old
    assert bucket.keys() == [key]
    assert_secret_kept(result)


def test_a_missing_bucket_fails_in_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, bucket: Bucket
) -> None:
    url = f"s3://{bucket.name}-missing/weekly"
    settings = week_in_s3(monkeypatch, pg_url, url)
    result = materialize_week(settings, W, selection=ANALYSIS, raise_on_error=False)
    failure = step_failure(result)
    described = failure.user_failure_data.description
    assert described == (
        f"exports.export_dir: cannot write {url}/kids_analysis_{W}.json: "
        "The specified bucket does not exist"
    )
    assert failure.error.cause is None  # no botocore traceback chained under it
    assert_secret_kept(result)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://files.example/weekly", "ftp:// is not a supported store"),
        (f"s3://kidsfin-test-key-id:{SECRET}@bucket/weekly", "must not hold credentials"),
        ("s3:///weekly", "names no bucket"),
        pytest.param(
            "gs://bucket/weekly",
            "gs:// needs the gcsfs package (pip install 'kidsfin[gcs]')",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed"
            ),
        ),
    ],
)
def test_a_bad_export_url_from_the_launchpad_fails_the_run_naming_it(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, bucket: Bucket, url: str, says: str
) -> None:
    settings = week_in_s3(monkeypatch, pg_url, bucket.url())
    override = {"resources": {"exports": {"config": {"export_dir": url}}}}
    result = materialize_week(
        settings, W, selection=ANALYSIS, run_config=override, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert f"exports.export_dir: {says}" in str(failure.event_specific_data)
    assert_secret_kept(result)
    assert bucket.keys() == []


def test_reports_as_json_lines_in_s3_replace_a_stale_review_file(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, bucket: Bucket
) -> None:
    """The reports export in JSON Lines: a report a line; the week's review files from an
    earlier state (in either format) are removed, since no report needs review now."""
    settings = week_in_s3(monkeypatch, pg_url, bucket.url(), KIDSFIN_EXPORTS__FORMAT="jsonl")
    assert materialize_week(settings, W, selection="group:gold").success  # offline writer
    for ext in ("json", "jsonl"):
        stale = f"weekly/needs_review_reports_{W}.{ext}"
        bucket.client.put_object(Bucket=bucket.name, Key=stale, Body=b"{}")
    result = materialize_week(settings, W, selection=REPORTS)
    assert result.success
    key = f"weekly/kids_reports_{W}.jsonl"
    assert bucket.keys() == [key]
    lines = [json.loads(line) for line in bucket.body(key).decode().splitlines()]
    gold = fetch(warehouse_engine(settings), sa.select(kid_weekly_reports.c.kid_id))
    assert [r["kid_id"] for r in lines] == sorted(r["kid_id"] for r in gold)
    assert all(r["nickname"] and r["overall_score"] is not None for r in lines)
    meta = metadata(result, "exports__kids_reports_json")
    assert meta["format"] == "jsonl" and meta["dagster/row_count"] == len(lines) == 6
    assert meta["reports_needing_review"] == 0
    assert_secret_kept(result)
