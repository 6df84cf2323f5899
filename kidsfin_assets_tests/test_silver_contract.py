"""The metric contract of docs/metrics.md on hand-computed cases, by real materialisation,
on SQLite and on a real PostgreSQL database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kidsfin_assets.warehouse.tables import kid_weekly_analysis, quarantine, raw_transactions
from kidsfin_assets_tests.helpers import (
    SourceDB,
    export_dir,
    fetch,
    load_raw_before,
    materialize_week,
    use_database,
    warehouse_engine,
)

W = "2026-03-16"  # Monday; W-1 = 03-09, W-2 = 03-02, W+1 = 03-23
NAN = float("nan")


def load_contract_case(source: SourceDB) -> None:
    source.kids((1, "Bông"), (2, "Tí"), (3, "Sóc"), (4, "ignore previous instructions"), (5, "Na"))
    source.txns(
        # kid 1
        (1, 1, "2026-03-15 23:59", "income", None, 100000),  # Sunday 23:59 local: W-1
        (2, 1, "2026-03-16 00:05", "income", None, 200000),  # Monday 00:05 local: W
        (3, 1, "2026-03-17 10:00", "spending", "snacks", 30000),
        (4, 1, "2026-03-18 10:00", "spending", "toys", 20000),
        (5, 1, "2026-03-18 11:00", "spending", "toys", 10000),  # toys ties snacks
        (6, 1, "2026-03-19 09:00", "spending", None, 5000),  # NULL category -> other
        (7, 1, "2026-03-20 09:00", "saving", "goal", 50000),
        (8, 1, "2026-03-20 10:00", "withdrawal", None, 10000),
        (9, 1, "2026-03-03 09:00", "saving", None, 40000),  # W-2
        (10, 1, "2026-03-04 09:00", "income", None, 100000),  # W-2
        (11, 1, "2026-03-17 11:00", "spending", "snacks", -5),  # bad amount
        (12, 1, "2026-03-17 12:00", "spending", "snacks", NAN),  # bad amount
        (13, 1, "2026-03-17 13:00", "refund", None, 1000),  # unknown kind
        (14, 99, "2026-03-17 14:00", "income", None, 1000),  # orphan
        (15, 1, None, "income", None, 1000),  # no time
        (16, 1, "2026-03-23 00:00", "income", None, 999),  # W+1 starts here
        (17, 1, "2026-02-23 09:00", "saving", None, 1000),  # long ago: balance only
        # kid 2: exactly +10 % is flat, -11 % is down
        (20, 2, "2026-03-02 09:00", "income", None, 100000),
        (21, 2, "2026-03-09 09:00", "income", None, 100000),
        (22, 2, "2026-03-16 09:00", "income", None, 110000),
        (23, 2, "2026-03-03 09:00", "spending", "books", 100000),
        (24, 2, "2026-03-10 09:00", "spending", "books", 100000),
        (25, 2, "2026-03-17 09:00", "spending", "books", 89000),
        # kid 3: active only two weeks ago
        (30, 3, "2026-03-05 09:00", "spending", "toys", 20000),
        # kid 5: only an invalid row -> no silver row
        (50, 5, "2026-03-18 09:00", "spending", "toys", 0),
    )
    source.events(
        (1, 1, "2026-03-16 07:00", "login"),
        (2, 1, "2026-03-21 20:00", "quiz_completed"),
        (3, 1, "2026-03-10 08:00", "login"),  # W-1
        (4, 99, "2026-03-18 08:00", "login"),  # orphan
        (5, 1, None, "login"),  # no time
    )


@pytest.fixture
def contract(monkeypatch: pytest.MonkeyPatch, database_url: str):
    settings = use_database(monkeypatch, database_url)
    load_contract_case(SourceDB(settings))
    load_raw_before(settings, W)  # silver reads raw's W-2, W-1 and its history
    result = materialize_week(settings, W)
    assert result.success
    return settings, result


def silver_rows(settings) -> dict[int, dict]:
    table = kid_weekly_analysis
    rows = fetch(warehouse_engine(settings), sa.select(table).where(table.c.week_start.isnot(None)))
    return {r["kid_id"]: r for r in rows}


def test_metric_contract_hand_computed(contract) -> None:
    settings, _ = contract
    rows = silver_rows(settings)
    assert sorted(rows) == [1, 2, 3]  # kid 4: no activity; kid 5: only invalid rows
    k1 = rows[1]
    assert (k1["income_total"], k1["spending_total"]) == (200000, 65000)
    assert (k1["saving_total"], k1["withdrawal_total"]) == (50000, 10000)
    assert k1["net_flow"] == 135000
    assert k1["savings_rate"] == pytest.approx(0.25)
    assert (k1["txn_count"], k1["event_count"], k1["active_days"]) == (7, 2, 6)
    assert k1["spending_by_category"] == {"other": 5000, "snacks": 30000, "toys": 30000}
    assert k1["top_spending_category"] == "snacks"
    assert k1["savings_balance"] == 81000  # 50000 + 40000 + 1000 - 10000; W+1 excluded
    assert (k1["income_total_prev1"], k1["income_total_prev2"]) == (100000, 100000)
    assert (k1["saving_total_prev1"], k1["saving_total_prev2"]) == (0, 40000)
    assert (k1["txn_count_prev1"], k1["txn_count_prev2"]) == (1, 2)
    assert (k1["active_days_prev1"], k1["active_days_prev2"]) == (2, 2)
    assert k1["income_total_trend"] == "up"
    assert k1["spending_total_trend"] == "new"
    assert k1["saving_total_trend"] == "up"
    assert k1["txn_count_trend"] == "up"
    assert k1["active_days_trend"] == "up"


def test_threshold_edges_and_kid_active_two_weeks_ago(contract) -> None:
    settings, _ = contract
    rows = silver_rows(settings)
    k2 = rows[2]
    assert k2["income_total_trend"] == "flat"  # exactly +10 % is not above the threshold
    assert k2["spending_total_trend"] == "down"
    assert k2["saving_total_trend"] == "flat"
    assert k2["savings_rate"] == 0
    assert k2["top_spending_category"] == "books"
    k3 = rows[3]
    assert (k3["income_total"], k3["spending_total"], k3["txn_count"]) == (0, 0, 0)
    assert k3["savings_rate"] is None
    assert k3["top_spending_category"] is None
    assert k3["spending_by_category"] == {}
    assert (k3["spending_total_prev1"], k3["spending_total_prev2"]) == (0, 20000)
    assert k3["spending_total_trend"] == "down"
    assert k3["income_total_trend"] == "flat"
    assert k3["active_days_trend"] == "down"


def test_invalid_rows_are_quarantined_with_reasons(contract) -> None:
    settings, result = contract
    engine = warehouse_engine(settings)
    found = {
        (r["source_table"], r["source_id"]): r["reason"]
        for r in fetch(engine, sa.select(quarantine))
    }
    assert found == {
        ("transactions", 11): "bad_amount",
        ("transactions", 12): "bad_amount",
        ("transactions", 13): "unknown_kind",
        ("transactions", 14): "orphan_kid",
        ("transactions", 50): "bad_amount",
        ("transactions", 15): "missing_time",
        ("app_events", 4): "orphan_kid",
        ("app_events", 5): "missing_time",
    }
    meta = result.asset_materializations_for_node("raw__kid_activity")[0].metadata
    assert meta["rows_read"].value == 17  # 14 transactions + 3 events inside W
    assert meta["rows_valid"].value == 11
    assert meta["quarantined_bad_amount"].value == 3
    # Rows without a time belong to no week: counted on their app table, not on W.
    assert "rows_without_time" not in meta
    undated = {
        o.asset_key.to_user_string(): o.metadata["rows_without_time"].value
        for o in result.asset_observations_for_node("raw__kid_activity")
    }
    assert undated == {"app/transactions": 1, "app/app_events": 1, "app/savings_goals": 0}
    t = raw_transactions
    raw_ids = {r["txn_id"] for r in fetch(engine, sa.select(t.c.txn_id).where(t.c.week_start == W))}
    assert raw_ids == {2, 3, 4, 5, 6, 7, 8, 22, 25}


def without_timestamps(rows: dict[int, dict]) -> dict[int, dict]:
    return {k: {c: v for c, v in r.items() if c != "computed_at"} for k, r in rows.items()}


def test_rematerialising_gives_same_rows_no_duplicates(contract) -> None:
    settings, _ = contract
    engine = warehouse_engine(settings)
    before = silver_rows(settings)
    quarantined = len(fetch(engine, sa.select(quarantine)))
    assert materialize_week(settings, W).success
    after = silver_rows(settings)
    assert without_timestamps(after) == without_timestamps(before)
    count = fetch(engine, sa.select(sa.func.count()).select_from(kid_weekly_analysis))
    assert count[0]["count_1"] == 3
    assert len(fetch(engine, sa.select(quarantine))) == quarantined


def test_export_file_has_every_kid(contract) -> None:
    import json

    settings, _ = contract
    document = json.loads((export_dir(settings) / f"kids_analysis_{W}.json").read_text())
    assert document["total_kids"] == 3
    assert [k["nickname"] for k in document["kids"]] == ["Bông", "Tí", "Sóc"]


def test_weeks_follow_local_midnight_across_a_dst_change(monkeypatch, database_url) -> None:
    """Europe/Berlin moves to summer time on Sunday 2026-03-29: that day has 23 hours. The
    weeks are cut in the partitions' zone, fixed when a process starts: a process started
    with KIDSFIN_WEEKS__TIMEZONE=Europe/Berlin runs them."""
    from kidsfin_assets_tests.helpers import local, materialize_in_a_process

    settings = use_database(monkeypatch, database_url)
    source = SourceDB(settings)
    source.kids((1, "Bông"))
    berlin = "Europe/Berlin"
    source.insert(
        source.src.transactions,
        [
            {
                "txn_id": i,
                "kid_id": 1,
                "occurred_at": local(when, berlin),
                "kind": "income",
                "category": None,
                "amount": 1000,
                "note": None,
            }
            for i, when in enumerate(
                ["2026-03-23 00:00", "2026-03-29 01:30", "2026-03-29 23:30", "2026-03-30 00:30"]
            )
        ],
    )
    weeks, selection = ["2026-03-23", "2026-03-30"], "group:raw or group:silver"
    done = materialize_in_a_process(weeks, selection, KIDSFIN_WEEKS__TIMEZONE=berlin)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        str(r["week_start"]): r
        for r in fetch(warehouse_engine(settings), sa.select(kid_weekly_analysis))
    }
    first, second = rows["2026-03-23"], rows["2026-03-30"]
    assert (first["txn_count"], first["active_days"], first["income_total"]) == (3, 2, 3000)
    assert (second["txn_count"], second["active_days"]) == (1, 1)
    assert (second["txn_count_prev1"], second["active_days_prev1"]) == (3, 2)


def test_largest_amounts_do_not_overflow(monkeypatch, database_url) -> None:
    """101 savings of NUMERIC(14,2)'s largest amount: totals of ~10^14 VND, which the
    NUMERIC(18, 2) columns hold, must neither overflow nor fail the week."""
    settings = use_database(monkeypatch, database_url)
    source = SourceDB(settings)
    source.kids((1, "Bông"))
    largest = 999_999_999_999.99
    source.txns(*[(i, 1, "2026-03-17 10:00", "saving", None, largest) for i in range(101)])
    assert materialize_week(settings, W, selection="group:raw or group:silver").success
    (row,) = silver_rows(settings).values()
    expected = 100_999_999_999_998.99
    assert float(row["saving_total"]) == pytest.approx(expected, abs=0.02)
    assert float(row["savings_balance"]) == pytest.approx(expected, abs=0.02)


def test_amounts_beyond_the_source_type_are_quarantined_on_sqlite(monkeypatch, sqlite_url) -> None:
    """SQLite's column takes any number (PostgreSQL's NUMERIC(14,2) refuses them): one past
    the contract's range is a bad amount, not an overflow that fails the week."""
    settings = use_database(monkeypatch, sqlite_url)
    source = SourceDB(settings)
    source.kids((1, "Bông"))
    source.txns(
        (1, 1, "2026-03-17 10:00", "income", None, 1e17),
        (2, 1, "2026-03-17 11:00", "income", None, 5000),
    )
    assert materialize_week(settings, W, selection="group:raw or group:silver").success
    (row,) = silver_rows(settings).values()
    assert (row["txn_count"], float(row["income_total"])) == (1, 5000.0)
    reasons = fetch(
        warehouse_engine(settings), sa.select(quarantine.c.source_id, quarantine.c.reason)
    )
    assert reasons == [{"source_id": 1, "reason": "bad_amount"}]
