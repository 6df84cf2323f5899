"""The grounding checker (issue 9): every number and trend a report states, against the
data the model was given; the corpus of truthful and lying reports; the schema's bounds;
the offline writer; the suite's OpenAI server in its report modes."""

from __future__ import annotations

import collections
import json
import random
from typing import Any

import openai
import pydantic
import pytest
from openai.lib._pydantic import to_strict_json_schema

from kidsfin_assets.reports.grounding import (
    Finding,
    check_report,
    closed,
    describe_findings,
    vocabulary,
)
from kidsfin_assets.reports.offline_writer import CATEGORY_WORDS, offline_report
from kidsfin_assets.reports.prompt import load_prompt, prompt_data
from kidsfin_assets.reports.report_schema import PLACEHOLDER, KidWeeklyReport
from openai_test_server import generate_content, running_server
from openai_test_server.report_corpus import (
    EDGE_CASES,
    LIE_KINDS,
    lying_report,
    random_data,
    random_metrics,
    truthful_report,
)


def metrics(**overrides: Any) -> dict[str, Any]:
    """A week: 200.000 đ in, 160.000 đ out, 50.000 đ saved, spending up, saving down."""
    row: dict[str, Any] = {
        "kid_id": 7,
        "week_start": "2026-03-16",
        "income_total": 200000.0,
        "spending_total": 160000.0,
        "saving_total": 50000.0,
        "withdrawal_total": 0.0,
        "net_flow": 40000.0,
        "savings_rate": 0.25,
        "txn_count": 8,
        "event_count": 30,
        "active_days": 5,
        "spending_by_category": {"snacks": 100000.0, "toys": 60000.0},
        "top_spending_category": "snacks",
        "savings_balance": 300000.0,
        "income_total_prev1": 200000.0,
        "income_total_prev2": 200000.0,
        "income_total_trend": "flat",
        "spending_total_prev1": 100000.0,
        "spending_total_prev2": 180000.0,
        "spending_total_trend": "up",  # mean 140.000: +14 %
        "saving_total_prev1": 80000.0,
        "saving_total_prev2": 60000.0,
        "saving_total_trend": "down",
        "txn_count_prev1": 6,
        "txn_count_prev2": 6,
        "txn_count_trend": "up",
        "active_days_prev1": 5,
        "active_days_prev2": 4,
        "active_days_trend": "flat",
    }
    return row | overrides


DATA = prompt_data(metrics())
FILLER = "Tuần này [[KID]] có một tuần bình thường."


def report(text: str, field: str = "financial_health", **extra: Any) -> dict[str, Any]:
    """A report whose only statement is `text` (in `field`); the rest says no number."""
    base: dict[str, Any] = {
        "financial_health": FILLER,
        "spending_pattern": FILLER,
        "savings_behavior": FILLER,
        "activity_level": FILLER,
        "recommendations": ["Cùng con lập bảng theo dõi chi tiêu mỗi tối.", FILLER],
        "overall_score": 7,
    }
    if field.startswith("recommendations"):
        base["recommendations"] = [text, FILLER]
    else:
        base[field] = text
    return base | extra


def kinds(text: str, data: dict[str, Any] = DATA, field: str = "financial_health") -> list[str]:
    return [f.kind for f in check_report(report(text, field), data)]


# --- money ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "said",
    [
        "160.000 đ",
        "160.000đ",
        "160.000 VND",
        "160.000 vnđ",
        "160.000 đồng",
        "160 nghìn đồng",
        "160 ngàn",
        "160k",
        "160,000 đ",
        "0,16 triệu đồng",
    ],
)
def test_every_money_form_of_a_true_amount_passes_and_of_a_wrong_one_fails(said: str) -> None:
    assert kinds(f"Tuần này [[KID]] chi {said} cho các khoản mua sắm.") == []
    wrong = said.replace("160", "170").replace("0,16", "0,17")
    assert kinds(f"Tuần này [[KID]] chi {wrong} cho các khoản mua sắm.") == ["unknown_amount"]


def test_amounts_are_checked_at_the_precision_they_are_written_in() -> None:
    data = prompt_data(metrics(savings_balance=1234567.0))
    ok = ["1,2 triệu đồng", "1,23 triệu", "1 triệu 235 nghìn đồng", "1.234.567 đ"]
    for said in ok:
        assert kinds(f"Số dư tiết kiệm hiện là {said}.", data) == [], said
    for said in ["1,3 triệu đồng", "1,25 triệu", "1 triệu 240 nghìn đồng", "1.234.000 đ"]:
        assert kinds(f"Số dư tiết kiệm hiện là {said}.", data) == ["unknown_amount"], said
    # a "nghìn" amount to the thousand
    data = prompt_data(metrics(savings_balance=159600.0))
    assert kinds("Số dư tiết kiệm hiện là 160 nghìn đồng.", data) == []
    assert kinds("Số dư tiết kiệm hiện là 162 nghìn đồng.", data) == ["unknown_amount"]


def test_a_bare_amount_with_thousands_separators_is_checked() -> None:
    assert kinds("Tuần này [[KID]] nhận 200.000 và chi 160.000 đ.") == []
    assert kinds("Tuần này [[KID]] nhận 210.000 và chi 160.000 đ.") == ["unknown_amount"]


def test_derived_amounts_are_allowed_and_others_are_not() -> None:
    # spending - prev1 = 60.000; - mean = 20.000; category amounts; saving - withdrawal
    text = "Chi tiêu tăng 60.000 đ so với tuần trước, đồ chơi 60.000 đ, ăn vặt 100.000 đ."
    assert kinds(text, field="spending_pattern") == []
    assert kinds("Con còn nhận thêm 35.000 đ tiền thưởng từ ông bà.") == ["unknown_amount"]


# --- negative amounts ----------------------------------------------------------------------

NEGATIVE = prompt_data(metrics(income_total=70000.0, net_flow=-90000.0, savings_rate=5 / 7))


@pytest.mark.parametrize(
    "text",
    [
        "Dòng tiền ròng là -90.000 đ trong tuần này.",
        "Dòng tiền ròng của tuần âm 90.000 đ.",
        "Tuần này [[KID]] chi nhiều hơn nhận 90.000 đ.",
        "Dòng tiền ròng của tuần bị hụt 90 nghìn đồng.",
    ],
)
def test_a_negative_amount_in_any_form_matches_a_negative_value(text: str) -> None:
    assert kinds(text, NEGATIVE) == []
    assert kinds(text, DATA) == ["unknown_amount"]


def test_a_negative_net_flow_said_as_positive_is_refused() -> None:
    # A parent reads "90 nghìn" as money left over; the child overspent by that much.
    assert kinds("Dòng tiền ròng của tuần là 90 nghìn đồng.", NEGATIVE) == ["wrong_sign"]


def test_a_negative_sign_on_a_positive_value_is_wrong_sign() -> None:
    assert kinds("Dòng tiền ròng là -40.000 đ trong tuần này.") == ["wrong_sign"]
    assert kinds("Tuần này [[KID]] chi nhiều hơn nhận 40.000 đ.") == ["wrong_sign"]
    assert kinds("Sau khi chi tiêu, [[KID]] còn dư 90.000 đ.", NEGATIVE) == ["wrong_sign"]
    balance = prompt_data(metrics(savings_balance=-25000.0))
    assert kinds("Số dư tiết kiệm hiện là -25.000 đ.", balance) == []
    assert kinds("Số dư tiết kiệm hiện là -300.000 đ.", DATA) == ["wrong_sign"]


# --- percentages, days, counts -------------------------------------------------------------


@pytest.mark.parametrize("said", ["25%", "25 %", "25 phần trăm"])
def test_percentages(said: str) -> None:
    assert kinds(f"Tỷ lệ tiết kiệm của [[KID]] đạt {said}.", field="savings_behavior") == []
    wrong = said.replace("25", "35")
    found = kinds(f"Tỷ lệ tiết kiệm của [[KID]] đạt {wrong}.", field="savings_behavior")
    assert found == ["unknown_percent"]


def test_percentages_to_the_unit_and_derived_ones() -> None:
    data = prompt_data(metrics(savings_rate=0.0714))
    assert kinds("Tỷ lệ tiết kiệm của [[KID]] là 7%.", data) == []
    assert kinds("Tỷ lệ tiết kiệm của [[KID]] là 7,1%.", data) == []
    assert kinds("Tỷ lệ tiết kiệm của [[KID]] là 8%.", data) == ["unknown_percent"]
    # spending vs prev1 +60 %, vs the mean +14 %; a category's share: snacks 63 %
    text = "Chi tiêu tăng 60% so với tuần trước, ăn vặt chiếm 63% tổng chi tiêu."
    assert kinds(text, field="spending_pattern") == []
    none_rate = prompt_data(metrics(income_total=0.0, savings_rate=None, net_flow=-160000.0))
    assert kinds("Tỷ lệ tiết kiệm của [[KID]] là 45%.", none_rate) == ["unknown_percent"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[KID]] hoạt động 5 ngày trong tuần.", []),
        ("[[KID]] mở ứng dụng 5/7 ngày trong tuần.", []),
        ("[[KID]] hoạt động năm ngày trong tuần.", []),
        ("[[KID]] hoạt động 6 ngày trong tuần.", ["unknown_days"]),
        ("[[KID]] mở ứng dụng 7/7 ngày trong tuần.", ["unknown_days"]),
        ("[[KID]] hoạt động sáu ngày trong tuần.", ["unknown_days"]),
        ("[[KID]] thực hiện 8 giao dịch và 30 sự kiện.", []),
        ("[[KID]] thực hiện 9 giao dịch và 30 sự kiện.", ["unknown_count"]),
        ("[[KID]] thực hiện 8 giao dịch và 31 sự kiện.", ["unknown_count"]),
        ("Số giao dịch tăng 2 giao dịch so với tuần trước.", []),
    ],
)
def test_days_and_counts(text: str, expected: list[str]) -> None:
    assert kinds(text, field="activity_level") == expected


# --- trends ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Chi tiêu tăng so với hai tuần trước.", []),
        ("Chi tiêu giảm so với hai tuần trước.", ["wrong_trend"]),
        ("Chi tiêu ổn định so với hai tuần trước.", ["wrong_trend"]),
        ("Tiền để dành giảm nhẹ so với hai tuần trước.", []),
        ("Tiền để dành tăng lên so với hai tuần trước.", ["wrong_trend"]),
        ("Thu nhập không đổi so với hai tuần trước.", []),
        ("Thu nhập tăng mạnh trong tuần này.", ["wrong_trend"]),
        ("Số giao dịch tăng trong tuần này.", []),
        ("Số ngày hoạt động giữ nguyên như trước.", []),
        ("Số ngày hoạt động giảm trong tuần này.", ["wrong_trend"]),
        ("Chi tiêu không giảm so với hai tuần trước.", []),
        ("Chi tiêu không tăng so với hai tuần trước.", ["wrong_trend"]),
        # against prev1 when the text says "tuần trước": saving 50.000 < 80.000
        ("Tiền để dành giảm so với tuần trước.", []),
        ("So với tuần trước, chi tiêu tăng đáng kể.", []),
        # an unnamed subject inherits the clause before
        ("Chi tiêu là 160.000 đ, tăng so với hai tuần trước.", []),
        ("Chi tiêu là 160.000 đ, giảm so với hai tuần trước.", ["wrong_trend"]),
        # advice, not a claim
        ("Hãy cùng con giảm chi tiêu cho đồ ăn vặt.", []),
        ("Con nên giữ chi tiêu ổn định trong tuần tới.", []),
        # two metrics compared (issue 19): 160.000 đ spent is not more than 200.000 đ received
        ("Tuần này [[KID]] chi nhiều hơn nhận một chút.", ["wrong_comparison"]),
        # words that look like directions and are not
        ("Con tiết kiệm được 50.000 đ, tương đương 25% thu nhập.", []),
        ("Thói quen tiết kiệm của con rất ổn định.", []),
        ("Tiết kiệm mới có 50.000 đ trong tuần này.", []),
        ("Chi tiêu tăng cường cho việc học là điều tốt.", []),
    ],
)
def test_trend_statements_agree_with_the_trend(text: str, expected: list[str]) -> None:
    assert kinds(text, field="spending_pattern") == expected


def test_new_trend_and_the_balance_direction() -> None:
    data = prompt_data(
        metrics(saving_total_prev1=0.0, saving_total_prev2=0.0, saving_total_trend="new")
    )
    assert kinds("Tiền để dành mới xuất hiện trong tuần này.", data) == []
    assert kinds("Tiền để dành tăng so với hai tuần trước.", data) == []
    assert kinds("Tiền để dành giảm so với hai tuần trước.", data) == ["wrong_trend"]
    assert kinds("Số dư tiết kiệm tăng 50.000 đ trong tuần.") == []
    assert kinds("Số dư tiết kiệm giảm trong tuần.") == ["wrong_trend"]


def test_a_stated_change_must_have_the_sign_of_its_direction() -> None:
    # spending 160.000: +60.000 on prev1, -30.000 on prev2 (190.000), +15.000 on the mean
    data = prompt_data(metrics(spending_total_prev2=190000.0))
    assert kinds("Chi tiêu tăng 30.000 đ so với hai tuần trước.", data) == ["wrong_sign"]
    assert kinds("Chi tiêu tăng 15.000 đ so với hai tuần trước.", data) == []
    assert kinds("Chi tiêu tăng 60.000 đ so với tuần trước.", data) == []
    assert kinds("Chi tiêu tăng 60% so với tuần trước.", data) == []
    assert kinds("Tiền để dành giảm 30.000 đ so với tuần trước.", data) == []
    assert kinds("Số dư tiết kiệm tăng 50.000 đ trong tuần.", data) == []
    withdrew = prompt_data(metrics(withdrawal_total=80000.0, saving_total_trend="down"))
    assert kinds("Số dư tiết kiệm tăng 30.000 đ trong tuần.", withdrew) == ["wrong_trend"]
    assert kinds("Số dư tiết kiệm giảm 30.000 đ trong tuần.", withdrew) == []


# --- what is not a claim, what is not a sentence ------------------------------------------


def test_targets_in_recommendations_are_not_claims() -> None:
    for tip in (
        "Đặt mục tiêu để dành ít nhất 30% tiền nhận được.",
        "Để dành thêm 5.000 đ mỗi ngày cho mục tiêu mua sách.",
        "Hãy thử 2 ngày không mua đồ ăn vặt trong tuần tới.",
        "Mỗi tuần chọn một ngày không mua đồ ăn vặt.",
    ):
        assert kinds(tip, field="recommendations[0]") == [], tip
    # the same numbers stated as facts are checked, in a recommendation too
    assert kinds("Con đã để dành 30% tiền nhận được.", field="recommendations[0]") == [
        "unknown_percent"
    ]
    assert kinds("Vì con đã chi 500.000 đ, hãy xem lại.", field="recommendations[0]") == [
        "unknown_amount"
    ]


def test_weeks_ages_scores_and_names_are_not_numbers_of_the_data() -> None:
    text = "Bé 10 tuổi đạt 8/10 điểm trong 2 tuần, tuần 3 của tháng."
    assert kinds(text, field="activity_level") == []
    # another week named with nothing the data can check (issue 19's closed world)
    compared = "So với 2 tuần trước, bé 10 tuổi đạt 8/10 điểm."
    assert kinds(compared, field="activity_level") == ["unverifiable"]
    data = prompt_data({**metrics(), "child": "Bin 2015"})
    assert kinds("Tuần này Bin 2015 chi 160.000 đ cho các khoản.", data) == []


@pytest.mark.parametrize("text", ["Tốt.", "", "Ổn", '{"financial_health": "tốt"}', "[1, 2, 3]"])
def test_a_field_that_is_not_a_sentence_is_too_thin(text: str) -> None:
    findings = check_report(report(text, "activity_level"), DATA)
    assert [(f.kind, f.field) for f in findings] == [("too_thin", "activity_level")]


def test_findings_name_the_field_the_span_and_the_nearest_value() -> None:
    bad = report("Tuần này [[KID]] nhận 210.000 đ.", recommendations=["Tốt.", FILLER])
    findings = check_report(KidWeeklyReport.model_construct(**bad), DATA)
    assert findings[0] == Finding(
        "unknown_amount",
        "financial_health",
        "210.000 đ",
        "'210.000 đ' matches no amount of the data (nearest: income_total = 200 000)",
        "Tuần này [[KID]] nhận 210.000 đ.",  # the whole sentence, for a reviewer
    )
    assert findings[1].kind == "too_thin" and findings[1].field == "recommendations[0]"
    text = describe_findings(findings)
    assert "financial_health" in text and "210.000 đ" in text and "recommendations[0]" in text
    assert describe_findings(findings * 5, limit=3).endswith("- and 7 more")


# --- the corpus -----------------------------------------------------------------------------


def test_on_a_thousand_reports_every_lie_is_caught_and_no_truth_rejected() -> None:
    rng = random.Random(9)
    rejected, missed = [], []
    caught: collections.Counter[str] = collections.Counter()
    for i in range(1200):
        data = random_data(rng, EDGE_CASES[i % len(EDGE_CASES)])
        truthful = truthful_report(data, rng)
        if check_report(truthful, data):
            rejected.append((truthful, check_report(truthful, data)))
        kind = LIE_KINDS[i % len(LIE_KINDS)]
        lie = lying_report(data, rng, kind)
        if check_report(lie, data):
            caught[kind] += 1
        else:
            missed.append((kind, lie))
    assert rejected == []
    assert missed == []
    drawn = collections.Counter(LIE_KINDS[i % len(LIE_KINDS)] for i in range(1200))
    assert caught == drawn and set(drawn) == set(LIE_KINDS)


def test_the_corpus_covers_the_edge_cases() -> None:
    rng = random.Random(3)
    rows = {case: random_metrics(rng, case) for case in EDGE_CASES}
    assert rows["negative_net"]["net_flow"] < 0
    assert rows["negative_balance"]["savings_balance"] < 0
    assert rows["no_income"]["savings_rate"] is None and rows["no_income"]["income_total"] == 0
    assert rows["no_spending"]["spending_total"] == 0
    assert rows["millions"]["income_total"] >= 1_000_000
    assert {rows["new_trends"][f"{m}_trend"] for m in ("income_total", "txn_count")} <= {
        "new",
        "flat",
    }
    assert rows["inactive"]["active_days"] == 0
    forms = " ".join(
        json.dumps(truthful_report(random_data(rng, case), rng), ensure_ascii=False)
        for case in EDGE_CASES * 40
    )
    for form in (" triệu", "nghìn", "k ", " đ", "đồng", "VND", "%", "ngày", "âm ", "-"):
        assert form in forms, form


# --- the offline writer ---------------------------------------------------------------------


def test_the_offline_writer_passes_the_checker_on_every_edge_case() -> None:
    rng = random.Random(5)
    for i in range(800):
        row = random_metrics(rng, EDGE_CASES[i % len(EDGE_CASES)])
        written = offline_report(row)
        assert check_report(written, prompt_data(row)) == [], (row, written)


def test_the_offline_writer_says_nothing_a_parent_would_find_wrong() -> None:
    bad_week = metrics(
        income_total=100000.0,
        spending_total=180000.0,
        net_flow=-80000.0,
        withdrawal_total=50000.0,
        savings_rate=0.5,
        active_days=6,
    )
    assert offline_report(bad_week).overall_score <= 5
    assert offline_report(metrics(savings_balance=-1.0, withdrawal_total=1.0)).overall_score <= 6
    assert offline_report(metrics()).overall_score > offline_report(bad_week).overall_score
    quiet = metrics(
        spending_total=0.0,
        spending_by_category={},
        top_spending_category=None,
        net_flow=200000.0,
        spending_total_trend="down",
    )
    tips = " ".join(offline_report(quiet).recommendations)
    assert "bớt" not in tips and "chi tiêu" not in tips.replace("không chi tiêu", "")
    assert "bớt" in " ".join(offline_report(metrics(net_flow=-1.0)).recommendations)
    for key, words in CATEGORY_WORDS.items():
        row = metrics(spending_by_category={key: 160000.0}, top_spending_category=key)
        text = json.dumps(offline_report(row).model_dump(), ensure_ascii=False)
        assert words in text and f"'{key}'" not in text
        assert key in words or f" {key} " not in text  # "khác" is a word of its own words


# --- the schema -------------------------------------------------------------------------------


def test_the_schema_bounds_what_a_grammar_can() -> None:
    schema = to_strict_json_schema(KidWeeklyReport)  # what the SDK sends in strict mode
    props = schema["properties"]
    assert props["overall_score"]["type"] == "integer"
    assert (props["overall_score"]["minimum"], props["overall_score"]["maximum"]) == (0, 10)
    assert (props["recommendations"]["minItems"], props["recommendations"]["maxItems"]) == (2, 4)
    for name in ("financial_health", "activity_level"):
        assert "pattern" in props[name] and "minLength" not in props[name]
    assert "pattern" in props["recommendations"]["items"]
    valid = report("Tuần này [[KID]] nhận 200.000 đ.")
    assert KidWeeklyReport.model_validate(valid).overall_score == 7
    for broken in (
        {"overall_score": 10**15},
        {"overall_score": 8.4},
        {"overall_score": -1},
        {"recommendations": ["Cùng con xem lại chi tiêu."]},
        {"recommendations": [FILLER] * 5},
        {"activity_level": "Tốt."},
        {"spending_pattern": "Con  chi tiêu hợp lý."},
    ):
        with pytest.raises(pydantic.ValidationError):
            KidWeeklyReport.model_validate(valid | broken)


# --- the suite's OpenAI server --------------------------------------------------------------


def _ask(client: openai.OpenAI, row: dict[str, Any]) -> tuple[str, KidWeeklyReport | None]:
    completion = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=load_prompt().messages(row),  # type: ignore[arg-type]
        response_format=KidWeeklyReport,
    )
    return completion.id, completion.choices[0].message.parsed


def test_the_server_writes_truthful_reports_from_the_data_block() -> None:
    rng = random.Random(11)
    with running_server(report_mode="truthful") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        rows = [random_metrics(rng, EDGE_CASES[i % len(EDGE_CASES)]) for i in range(24)]
        answers = [_ask(client, row) for row in rows]
        again = _ask(client, rows[0])
        stats = server.stats
    for row, (_, parsed) in zip(rows, answers, strict=True):
        assert parsed is not None and check_report(parsed, prompt_data(row)) == []
        assert PLACEHOLDER in parsed.model_dump_json()
    assert again[1] == answers[0][1]  # deterministic from the request
    assert (stats.reports_truthful, stats.reports_lied) == (25, 0)


def test_the_server_lies_at_its_rate_and_records_every_lie() -> None:
    rng = random.Random(12)
    with running_server(report_mode="lying", lie_rate=0.4) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        rows = [random_metrics(rng, EDGE_CASES[i % len(EDGE_CASES)]) for i in range(80)]
        answers = [(row, *_ask(client, row)) for row in rows]
        stats, lies = server.stats, server.lies
    lied_ids = {completion_id for completion_id, _, _ in lies}
    assert stats.reports_lied == len(lies) and stats.reports_truthful == 80 - len(lies)
    assert 15 <= len(lies) <= 50 and sum(stats.lie_kinds.values()) == len(lies)
    assert set(stats.lie_kinds) <= set(LIE_KINDS)
    for row, completion_id, parsed in answers:
        assert parsed is not None
        flagged = bool(check_report(parsed, prompt_data(row)))
        assert flagged == (completion_id in lied_ids), parsed


def test_the_server_answers_from_the_schema_without_a_data_block() -> None:
    with running_server(report_mode="lying", lie_rate=1.0) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        completion = client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Viết báo cáo cho [[KID]]."}],
            response_format=KidWeeklyReport,
        )
        assert completion.choices[0].message.parsed is not None
        assert server.stats.reports_lied == 0
    with pytest.raises(ValueError, match="report_mode"):
        running_server(report_mode="honest").__enter__()


def test_the_servers_schema_mode_text_states_nothing_to_check() -> None:
    """Gold tests run the server in schema mode: its phrases must not fail the gate."""
    rng = random.Random(13)
    schema = to_strict_json_schema(KidWeeklyReport)
    for i in range(200):
        row = random_metrics(rng, EDGE_CASES[i % len(EDGE_CASES)])
        body = {
            "messages": load_prompt().messages(row),
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
        }
        answer = json.loads(generate_content(body))
        assert check_report(answer, prompt_data(row)) == [], answer


# --- savings goals ----------------------------------------------------------------------------


def goal(n: int, **overrides: Any) -> dict[str, Any]:
    """Silver's entry for a goal: open, 420.000 đ; at a balance of 300.000 đ, 71 %."""
    entry = {
        "goal_id": 500 + n,
        "title": f"Mua xe đạp {n}",
        "target_amount": 420000.0,
        "open_at_week_end": True,
        "created_in_week": False,
        "completed_in_week": False,
        "progress_percent": 71,
        "reached": False,
    }
    return entry | overrides


GOALS = prompt_data(
    metrics(
        savings_goals=[
            goal(1),
            goal(2, target_amount=250000.0, progress_percent=100, reached=True),
            goal(
                3,
                target_amount=90000.0,
                open_at_week_end=False,
                completed_in_week=True,
                progress_percent=None,
                reached=None,
            ),
        ]
    )
)


@pytest.mark.parametrize(
    "said",
    [
        "[[KID]] đã để dành được 71 % cho mục tiêu 1 (420.000 đ).",
        "Mục tiêu 1 420.000 đ: đã đạt 71%, còn thiếu 120.000 đ.",
        "[[KID]] đã để dành đủ 100 % cho mục tiêu 2 (250.000 đ).",
        "Tuần này [[KID]] đã hoàn thành mục tiêu 3 (90.000 đ).",
    ],
)
def test_a_goals_target_progress_and_what_it_lacks_are_grounded(said: str) -> None:
    assert kinds(said, GOALS, "savings_behavior") == []


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        ("[[KID]] đã để dành được 72 % cho mục tiêu 1 (420.000 đ).", "unknown_percent"),
        # 80 % is a figure of the data (spending / income), not goal 1's
        ("[[KID]] đã để dành được 80 % cho mục tiêu 1 (420.000 đ).", "wrong_metric"),
        ("[[KID]] đã để dành được 71 % cho mục tiêu 1 (450.000 đ).", "unknown_amount"),
        ("Để đạt mục tiêu 1, [[KID]] còn thiếu 130.000 đ.", "unknown_amount"),
    ],
)
def test_a_lying_goal_figure_is_caught(said: str, kind: str) -> None:
    assert kinds(said, GOALS, "savings_behavior") == [kind]
    # Not grounded by the goals of another week: without them, the true sentence fails too.
    true = said.replace("72 %", "71 %").replace("80 %", "71 %").replace("450.000", "420.000")
    assert kinds(true.replace("130.000", "120.000"), DATA, "savings_behavior") != []


def test_a_trend_sentence_does_not_take_the_next_sentences_number_as_its_change() -> None:
    data = prompt_data(metrics(savings_goals=[goal(1, progress_percent=0)], savings_balance=0.0))
    text = "Tiền để dành giảm so với hai tuần trước. [[KID]] đã để dành được 0 % cho mục tiêu 1."
    assert kinds(text, data, "savings_behavior") == []


def test_the_offline_writer_speaks_of_goals_and_stays_grounded() -> None:
    rng = random.Random(12)
    spoken = 0
    for i in range(400):
        row = random_metrics(rng, EDGE_CASES[i % len(EDGE_CASES)])
        written = offline_report(row)
        assert check_report(written, prompt_data(row)) == [], (row, written)
        spoken += written.savings_behavior.count("mục tiêu")
        titles = {g["title"] for g in row["savings_goals"]}
        assert not any(t in json.dumps(written.model_dump(), ensure_ascii=False) for t in titles)
    assert spoken > 200
    three = offline_report(metrics(savings_goals=GOALS["savings_goals"]))
    assert "71 % cho mục tiêu 1 (420.000 đ)" in three.savings_behavior
    assert "đủ cho mục tiêu 2 (250.000 đ)" in three.savings_behavior
    assert "hoàn thành mục tiêu 3 (90.000 đ)" in three.savings_behavior


def test_every_word_for_a_weeks_sum_is_read_alike_by_each_reader() -> None:
    """A word the figure reader knows for income, spending or a deposit ("bỏ heo", "kiếm
    được") is read as the same metric by the trend reader and the comparison reader: the
    twentieth corpus's lies passed where one reader knew a word the others did not."""
    metric_of_subject = {
        "saving": "saving_total",
        "income": "income_total",
        "spending": "spending_total",
        "total_spending": "spending_total",
    }
    unread = []
    for word, subject in vocabulary.SUBJECT_WORDS.items():
        want = metric_of_subject.get(subject)
        if want is None:
            continue
        trend = vocabulary.METRICS.search(word)
        mention = closed._MENTIONS.search(word)
        read = (
            trend and vocabulary.METRIC_OF.get(vocabulary.SPACES.sub(" ", trend.group())),
            mention
            and mention.group("word")
            and closed._MENTION_OF.get(vocabulary.SPACES.sub(" ", mention.group("word"))),
        )
        if read != (want, want):
            unread.append((word, want, read))
    assert unread == []
