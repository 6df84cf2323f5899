"""The prompt: bounded, pseudonymous, data last; the offline writer's report."""

from __future__ import annotations

import json

from kidsfin_assets.reports import (
    MAX_DATA_BYTES,
    PLACEHOLDER,
    PROMPT_FIELDS,
    load_prompt,
    offline_report,
    personalise,
)


def metrics(**overrides: object) -> dict:
    row = {field: 0 for field in PROMPT_FIELDS}
    row |= {f: "flat" for f in PROMPT_FIELDS if f.endswith("_trend")}
    row |= {"savings_rate": None, "spending_by_category": {}, "top_spending_category": None}
    row |= {"kid_id": 123456789, "week_start": "2026-03-16"}
    return row | overrides


def test_prompt_is_bounded_even_with_many_long_categories() -> None:
    many = {f"danh mục rất rất dài số {i} " * 5: 1000.0 + i for i in range(200)}
    messages = load_prompt().messages(metrics(spending_by_category=many, spending_total=1e6))
    data = messages[-1]["content"].split("<data>")[-1]
    assert len(data.encode()) < MAX_DATA_BYTES
    sent = json.loads(data.replace("</data>", ""))
    assert len(sent["spending_by_category"]) == 11  # top 10 and the rest summed
    assert abs(sum(sent["spending_by_category"].values()) - sum(many.values())) < 0.01


def test_prompt_has_no_identity_and_puts_data_last() -> None:
    messages = load_prompt().messages(metrics())
    text = json.dumps(messages, ensure_ascii=False)
    assert "123456789" not in text and "kid_id" not in text
    assert PLACEHOLDER in messages[-1]["content"]
    assert messages[0]["role"] == "system"
    # Everything before the data is the same for every kid, so the prefix is cacheable.
    other = load_prompt().messages(metrics(kid_id=987, income_total=5e5, spending_total=1e5))
    assert messages[:-1] == other[:-1]
    mine, theirs = messages[-1]["content"], other[-1]["content"]
    assert mine != theirs
    prefix = mine[: mine.index("<data>")]
    assert len(prefix) > 200 and theirs.startswith(prefix)


def test_prompt_version_changes_with_the_prompt_files(tmp_path) -> None:
    (tmp_path / "system_message.txt").write_text("a")
    (tmp_path / "vietnamese_financial_report.txt").write_text("b")
    first = load_prompt(tmp_path).version
    (tmp_path / "vietnamese_financial_report.txt").write_text("c")
    load_prompt.cache_clear()
    assert load_prompt(tmp_path).version != first


def test_offline_report_is_valid_and_personalised() -> None:
    report = offline_report(
        metrics(
            income_total=100000,
            spending_total=40000,
            net_flow=60000,
            saving_total=20000,
            savings_rate=0.2,
            active_days=4,
            top_spending_category="snacks",
            spending_total_trend="up",
        )
    )
    assert 0 <= report.overall_score <= 10
    filled = personalise(report, "Bông")
    assert "Bông" in filled["financial_health"]
    assert PLACEHOLDER not in json.dumps(filled, ensure_ascii=False)
