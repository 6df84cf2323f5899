"""Gold's promises under concurrency and faults (issue: pay once, keep every paid answer,
never hang, never delete what was paid for): real PostgreSQL, real HTTP to the suite's
OpenAI-compatible server, real Dagster runs (in process and through the CLI)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from kidsfin_assets.warehouse.tables import (
    kid_weekly_analysis,
    quarantine,
    report_claims,
    report_ledger,
)
from kidsfin_assets_tests.helpers import (
    SourceDB,
    export_dir,
    fetch,
    materialize_range,
    materialize_week,
    use_database,
    warehouse_engine,
)
from kidsfin_assets_tests.test_gold_processes import (
    cli_env,
    gold_count,
    materialize_gold_cli,
    prepare_week,
)
from kidsfin_assets_tests.test_gold_reports import (
    API_KEY,
    W,
    gold_meta,
    reports,
    setup_week,
    step_failure_message,
)
from openai_test_server import running_server

ALLOW_SHRINK = {"ops": {"silver__kid_weekly_analysis": {"config": {"allow_shrink": True}}}}


def ledger(settings) -> list[dict]:
    return fetch(warehouse_engine(settings), sa.select(report_ledger))


@pytest.mark.timeout(300)
def test_two_runs_of_one_week_at_once_pay_once(monkeypatch, pg_url, tmp_path) -> None:
    kids = 24
    settings, week = prepare_week(monkeypatch, pg_url, kids)
    # 24 answers of 1 s, 2 at a time: ~12 s of asking, so the two CLI runs overlap.
    with running_server(api_key=API_KEY, latency=1.0) as api:
        # A DAGSTER_HOME each: two CLI processes initialising one SQLite instance race.
        envs = [
            cli_env(tmp_path, pg_url, api.base_url, KIDSFIN_OPENAI__MAX_CONCURRENT="2")
            for _ in range(2)
        ]
        runs = [materialize_gold_cli(week, env) for env in envs]
        logs = [run.communicate(timeout=240)[1].decode() for run in runs]
        assert [run.returncode for run in runs] == [0, 0], "\n".join(
            line for log in logs for line in log.splitlines() if " DEBUG " not in line
        )[-6000:]
        paid = api.stats.ok
    assert any("waits for their answers" in log for log in logs)  # they did overlap
    assert paid == kids == gold_count(settings)  # answers paid ÷ reports = 1.00
    answers = ledger(settings)
    assert len(answers) == kids and {a["outcome"] for a in answers} == {"accepted"}
    rows = reports(settings)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sum(a["cost_usd"] for a in answers))
    assert fetch(warehouse_engine(settings), sa.select(report_claims)) == []  # all released


def test_a_shrinking_silver_week_fails_and_paid_reports_are_never_deleted(
    monkeypatch, pg_url, server
) -> None:
    settings, _ = setup_week(monkeypatch, pg_url, server, 6)
    assert materialize_week(settings, W, selection="group:gold").success
    paid = server.stats.ok
    source = SourceDB(settings)
    with source.engine.begin() as conn:  # the app's kids table, briefly empty
        kids_backup = [dict(r._mapping) for r in conn.execute(sa.select(source.src.kids))]
        conn.execute(sa.delete(source.src.kids))

    # Raw loaded again copies none of W-2..W's rows (every kid missing): silver refuses.
    assert materialize_range(settings, "2026-03-02", W).success
    refused = materialize_week(settings, W, selection="group:silver", raise_on_error=False)
    assert not refused.success
    assert "from 6 to 0 kid rows" in step_failure_message(refused)
    silver = fetch(warehouse_engine(settings), sa.select(kid_weekly_analysis))
    assert len(silver) == 6  # nothing written

    # The operator allows it: silver empties, gold keeps every paid report, superseded.
    allowed = materialize_week(
        settings,
        W,
        selection="group:silver or group:gold or group:exports",
        run_config=ALLOW_SHRINK,
    )
    assert allowed.success
    assert gold_meta(allowed)["reports_superseded"] == 6
    rows = reports(settings)
    assert len(rows) == 6 and all(r["superseded_at"] is not None for r in rows)
    export = json.loads(next(export_dir(settings).glob("kids_reports_*.json")).read_text())
    assert export["total_reports"] == 0  # a superseded report is not sent to parents

    # The table comes back: the kept reports count again and nothing is paid twice.
    source.insert(source.src.kids, kids_backup)
    assert materialize_range(settings, "2026-03-02", W).success
    assert materialize_week(settings, W, selection="group:silver or group:gold").success
    assert server.stats.ok == paid
    assert all(r["superseded_at"] is None for r in reports(settings))


def test_the_same_failure_for_every_request_stops_the_run_with_the_servers_words(
    monkeypatch, pg_url, server
) -> None:
    server.configure(fault_rate=1.0, faults=["500"])
    settings, _ = setup_week(monkeypatch, pg_url, server, 10, KIDSFIN_OPENAI__MAX_CONCURRENT="1")
    result = materialize_week(settings, W, selection="group:gold", raise_on_error=False)
    assert not result.success
    assert server.stats.requests_total == 5  # openai.fail_fast_after, not 10 kids × 8 tries
    message = step_failure_message(result)
    assert "all failed the same way" in message
    assert "The server had an error while processing your request" in message


def test_every_paid_answer_is_in_the_record_across_a_step_retry(
    monkeypatch, pg_url, server
) -> None:
    # The first kid's two answers are invalid: it runs out of attempts and the step fails;
    # Dagster retries the step, which asks for that kid again.
    server.script(["schema_invalid", "schema_invalid"])
    settings, ids = setup_week(
        monkeypatch,
        pg_url,
        server,
        3,
        KIDSFIN_OPENAI__MAX_CONCURRENT="1",
        KIDSFIN_OPENAI__RETRY_MAX_ATTEMPTS="2",
        KIDSFIN_STEP_RETRY__MAX_RETRIES="1",
        KIDSFIN_STEP_RETRY__DELAY_SECONDS="0",
    )
    result = materialize_week(settings, W, selection="group:gold")
    assert result.success
    meta, stats = gold_meta(result), server.stats
    assert meta["requests"] == stats.requests_total == 5
    assert meta["answers_paid"] == stats.ok == 5
    assert meta["prompt_tokens"] == stats.prompt_tokens
    assert meta["completion_tokens"] == stats.completion_tokens
    assert meta["errors_invalid_answer"] == 2
    rows = {r["kid_id"]: r for r in reports(settings)}
    assert sum(r["cost_usd"] for r in rows.values()) == pytest.approx(meta["cost_usd"])
    first = [a for a in ledger(settings) if a["kid_id"] == ids[0]]
    assert sorted(a["outcome"] for a in first) == ["accepted", "invalid_answer", "invalid_answer"]
    assert rows[ids[0]]["prompt_tokens"] == sum(a["prompt_tokens"] for a in first)


def test_raw_and_silver_of_one_week_twice_at_once(monkeypatch, pg_url) -> None:
    settings = use_database(monkeypatch, pg_url)
    source = SourceDB(settings)
    source.kids((1, "A"), (2, "B"))
    source.txns(
        (1, 1, "2026-03-16 08:00", "income", None, 100000),
        (2, 2, "2026-03-17 08:00", "spending", "snacks", 20000),
        (3, 9, "2026-03-17 08:00", "spending", "snacks", 20000),  # orphan
        *((100 + i, 1, None, "income", None, 1000) for i in range(20)),  # undated
    )
    weeks = ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-16"]
    with ThreadPoolExecutor(len(weeks)) as pool:
        results = list(
            pool.map(
                lambda week: materialize_week(
                    settings, week, selection="group:raw or group:silver", raise_on_error=False
                ),
                weeks,
            )
        )
    assert all(r.success for r in results), [
        step_failure_message(r) for r in results if not r.success
    ]
    rows = fetch(warehouse_engine(settings), sa.select(quarantine))
    keys = [(r["source_table"], r["source_id"], r["week_start"]) for r in rows]
    assert len(keys) == len(set(keys)) == 21  # 20 undated + 1 orphan, none twice
    silver = fetch(warehouse_engine(settings), sa.select(kid_weekly_analysis))
    assert sorted((str(r["week_start"]), r["kid_id"]) for r in silver) == [
        ("2026-03-16", 1),
        ("2026-03-16", 2),
    ]


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_missing_app_table_is_one_line_naming_it(monkeypatch, request, db) -> None:
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    settings = use_database(monkeypatch, url)
    SourceDB(settings)
    settings = use_database(monkeypatch, url, KIDSFIN_SOURCES__TRANSACTIONS="txns_gone")
    for layer in ("raw",):  # silver reads raw's copy, no app table
        result = materialize_week(settings, W, selection=f"group:{layer}", raise_on_error=False)
        message = step_failure_message(result)
        assert "the app table 'txns_gone' does not exist" in message, message
        assert "Traceback" not in message


def test_a_duplicated_txn_id_is_quarantined_and_counted_alike_in_raw_and_silver(
    monkeypatch, database_url
) -> None:
    settings = use_database(monkeypatch, database_url)
    source = SourceDB(settings)
    with source.engine.begin() as conn:  # an app table that lost its primary key
        ts = "TEXT" if database_url.startswith("sqlite") else "TIMESTAMPTZ"
        conn.exec_driver_sql("DROP TABLE transactions")
        conn.exec_driver_sql(
            f"CREATE TABLE transactions (txn_id BIGINT, kid_id BIGINT, occurred_at {ts}, "
            "kind TEXT, category TEXT, amount NUMERIC(14,2), note TEXT)"
        )
    source.kids((1, "A"))
    source.txns(
        (1, 1, "2026-03-16 08:00", "income", None, 100000),
        (2, 1, "2026-03-17 08:00", "spending", "snacks", 20000),
        (2, 1, "2026-03-18 08:00", "spending", "snacks", 20000),  # the same id twice
    )
    result = materialize_week(settings, W, selection="group:raw or group:silver")
    assert result.success
    raw_meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node("raw__kid_activity")[0].metadata.items()
    }
    # both copies out of raw and silver alike; one quarantine row for the id
    assert raw_meta["quarantined_duplicate_id"] == 1 and raw_meta["transactions_valid"] == 1
    engine = warehouse_engine(settings)
    reasons = [r["reason"] for r in fetch(engine, sa.select(quarantine))]
    assert reasons == ["duplicate_id"]
    (silver,) = fetch(engine, sa.select(kid_weekly_analysis))
    assert (silver["income_total"], silver["spending_total"], silver["txn_count"]) == (
        100000,
        0,
        1,
    )


def test_superseding_is_an_anti_join_when_the_week_outgrows_work_mem(
    monkeypatch, pg_url, tmp_path
) -> None:
    """A week whose kids do not fit in work_mem (here 64 kB and 12,000 kids; 4 MB and
    ~100,000 kids by default): `NOT IN (silver)` would rescan the kids for every report
    (quadratic); the statement gold runs first is planned as an anti-join."""
    from kidsfin_assets.config.weeks import Week
    from kidsfin_assets.reports import ledger, planning
    from kidsfin_assets_tests.test_exports_s3 import copy_silver_kids, week_in_s3

    settings = week_in_s3(monkeypatch, pg_url, str(tmp_path))  # six kids' W, a local folder
    copy_silver_kids(settings, 12_000)
    engine = warehouse_engine(settings)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE kidsfin.kid_weekly_analysis")
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    week = Week.from_key(W, "UTC")
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            ledger.supersede_missing(conn, week.start, planning.silver_kids(week))
            conn.rollback()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    updates = [(s, p) for s, p in statements if s.lstrip().upper().startswith("UPDATE")]
    assert updates
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL work_mem = '64kB'")
        for statement, parameters in updates:
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            )
            assert "SubPlan" not in plan, plan


def test_batch_ingest_reads_a_chunks_kids_by_index_without_autovacuum(
    monkeypatch, pg_url, tmp_path
) -> None:
    """A chunk of Batch API lines reads the silver rows of its 500 kids. On a server
    without autovacuum the week's rows were never analysed, and PostgreSQL planned that read
    as every row of the week with the kids a filter (100,000 kids: 100,000 rows read a
    chunk, and likewise every report and ledger row stored so far): the ingest analyses the
    tables it reads before its first chunk, and the kids are an index condition."""
    import logging
    import types

    from kidsfin_assets.config.weeks import Week
    from kidsfin_assets.reports import planning
    from kidsfin_assets.reports.batches import WeekBatches
    from kidsfin_assets_tests.test_exports_s3 import copy_silver_kids, week_in_s3

    settings = week_in_s3(monkeypatch, pg_url, str(tmp_path))
    copy_silver_kids(settings, 12_000)  # never analysed (autovacuum off in the suite)
    engine = warehouse_engine(settings)
    week = Week.from_key(W, "UTC")
    resource = types.SimpleNamespace(resource=None)
    owner = "test:0:0"
    batches = WeekBatches(None, resource, engine, W, week.start, "run", logging, owner, "k")
    batches._store([], lambda lines: None)  # what the ingest does before its first chunk
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    # 50 kids scattered over the week (a chunk's 500 of 100,000, as a share of the week)
    kids = list(range(1_000_001, 1_012_000, 240))
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            assert len(planning.silver_rows_of(conn, week, kids)) == 50
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    (statement, parameters), *_ = statements
    with engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    conds = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("kid_id = ANY" in line for line in conds), plan
