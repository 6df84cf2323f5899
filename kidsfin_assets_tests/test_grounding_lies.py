"""Lies the grounding checker let through, each a sentence a model writes and a parent
would believe: a true figure said of the wrong thing or the wrong week, the wrong top
category, a goal said reached, a trend said with a verb ("chi ít hơn tuần trước"), a
change against the wrong week, an amount in spaced thousands. And the true sentences
of the same shapes, which must still pass (a rejected true report is paid again)."""

from __future__ import annotations

from typing import Any

import pytest

from kidsfin_assets.reports.prompt import prompt_data
from kidsfin_assets_tests.test_grounding import DATA, GOALS, goal, kinds, metrics

# DATA: income 200.000 (flat), spending 160.000 (prev1 100.000, prev2 180.000: up on the
# mean 140.000), saving 50.000 (prev1 80.000, prev2 60.000: down), savings rate 25 %,
# 8 transactions (6, 6), 30 events, 5 active days (5, 4), snacks 100.000 (63 %), toys
# 60.000 (38 %), balance 300.000. GOALS: goal 1 open at 71 % of 420.000, goal 2 reached
# (250.000), goal 3 completed in the week (90.000).


def assert_caught(text: str, kind: str, data: dict[str, Any] = DATA) -> None:
    assert kind in kinds(text, data, "savings_behavior"), text


def assert_passes(text: str, data: dict[str, Any] = DATA) -> None:
    assert kinds(text, data, "savings_behavior") == [], text


# --- amounts -------------------------------------------------------------------------------


@pytest.mark.parametrize("said", ["160 000 đ", "160 000đ", "160\u00a0000 đồng"])
def test_an_amount_in_spaced_thousands_is_read_whole(said: str) -> None:
    # Read as "160" and "000 đ" before: 0 đ is a value of the data, so any amount passed.
    assert_passes(f"Tuần này [[KID]] chi {said} cho các khoản mua sắm.")
    wrong = said.replace("160", "170")
    assert_caught(f"Tuần này [[KID]] chi {wrong} cho các khoản mua sắm.", "unknown_amount")


@pytest.mark.parametrize(
    "lie",
    [
        "Tuần này [[KID]] nhận 160.000 đ tiền tiêu vặt.",  # spending's amount
        "Thu nhập tuần này là 160.000 đ.",
        "[[KID]] đã rút 50.000 đ từ tiền tiết kiệm.",  # saving's, nothing was withdrawn
        "Tiền gửi tiết kiệm tuần này là 60.000 đ.",  # toys'
        "Số dư tiết kiệm hiện là 200.000 đ.",  # income's
        "Khoản chi lớn nhất là đồ ăn vặt (60.000 đ).",  # toys' amount
    ],
)
def test_a_true_amount_said_of_the_wrong_metric_is_caught(lie: str) -> None:
    assert_caught(lie, "wrong_metric")


@pytest.mark.parametrize(
    "lie",
    [
        "Chi tiêu tuần này là 180.000 đ.",  # spending two weeks ago
        "Tuần này [[KID]] nhận 200.000 đ và chi 180.000 đ.",  # two weeks ago
        "[[KID]] hoạt động 4 ngày trong tuần với 30 sự kiện.",  # W-2's days
        "[[KID]] thực hiện 6 giao dịch trong tuần.",  # W-1's count
    ],
)
def test_another_weeks_figure_said_of_this_week_is_caught(lie: str) -> None:
    found = kinds(lie, DATA, "savings_behavior")
    assert set(found) & {"wrong_metric", "not_this_week"}, (lie, found)


@pytest.mark.parametrize(
    "truth",
    [
        "Tuần này [[KID]] nhận 200.000 đ và chi 160.000 đ.",
        "[[KID]] có thu nhập 200.000 đ trong tuần, còn chi tiêu là 160.000 đ.",
        "Thu nhập tuần này đạt 200 nghìn đồng, chi tiêu 160k.",
        "Tiền tiêu vặt nhận được 200.000 đ.",
        "[[KID]] chi tiêu 160.000 đ, tức 80 % số tiền nhận được.",
        "[[KID]] để dành 25 % số tiền nhận được.",
        "[[KID]] để dành 50.000 đ trong tuần.",
        "[[KID]] đã tiết kiệm được 300.000 đ.",  # the balance: what a parent reads as saved
        "Số dư tiết kiệm hiện là 300.000 đ.",
        "Dòng tiền ròng của tuần là 40.000 đ.",
        "Tuần này [[KID]] chi tổng cộng 160.000 đ, nhiều nhất cho đồ ăn vặt (100.000 đ).",
        "[[KID]] chi 100.000 đ cho đồ ăn vặt và 60.000 đ cho đồ chơi.",
        "Tuần trước [[KID]] chi 100.000 đ, tuần này chi 160.000 đ.",
        "Chi tiêu tuần trước là 100.000 đ.",
        "Chi tiêu 160.000 đ, tăng 60.000 đ so với tuần trước.",
        "Chi tiêu tăng 20.000 đ so với trung bình hai tuần trước.",
        "Tỷ lệ tiết kiệm của [[KID]] là 25%.",
        "[[KID]] để dành được 25 % số tiền nhận được.",
        "Đồ ăn vặt chiếm 63% tổng chi tiêu.",
        "[[KID]] hoạt động 5 ngày trong tuần, bằng tuần trước.",
        "Hai tuần trước [[KID]] chỉ hoạt động 4 ngày.",
    ],
)
def test_true_figures_of_the_same_shapes_pass(truth: str) -> None:
    assert_passes(truth)


@pytest.mark.parametrize(
    "lie",
    [
        "Tỷ lệ tiết kiệm của [[KID]] là 63%.",  # snacks' share of spending
        "Tỷ lệ tiết kiệm đạt 71 %.",  # goal 1's progress
        "Đồ chơi chiếm 63% tổng chi tiêu.",  # snacks' share
        "[[KID]] để dành 80 % số tiền nhận được.",  # spending's share of the income
        "Tỷ lệ tiết kiệm là 80 %.",
        # a goal's progress said with another figure
        "[[KID]] đã để dành được 25 % cho mục tiêu 1 (420.000 đ).",  # the savings rate
        "[[KID]] đã để dành được 100 % cho mục tiêu 1 (420.000 đ).",  # goal 2's
    ],
)
def test_a_true_percentage_said_of_the_wrong_thing_is_caught(lie: str) -> None:
    assert_caught(lie, "wrong_metric", GOALS)


# --- the top category ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "lie",
    [
        "[[KID]] chi nhiều nhất cho đồ chơi.",
        "Khoản chi lớn nhất là đồ chơi, chiếm 38% tổng chi tiêu.",
        "Phần lớn tiền của [[KID]] được chi cho sách truyện.",  # no books at all
    ],
)
def test_a_wrong_top_spending_category_is_caught(lie: str) -> None:
    assert_caught(lie, "wrong_category")


@pytest.mark.parametrize(
    "truth",
    [
        "[[KID]] chi nhiều nhất cho đồ ăn vặt.",
        "Khoản chi lớn nhất là ăn vặt, chiếm 63% tổng chi tiêu.",
        "Chi tiêu chủ yếu dành cho đồ ăn vặt và đồ chơi.",
        "Đồ chơi là khoản chi thứ hai, sau đồ ăn vặt là khoản chi nhiều nhất.",
    ],
)
def test_the_true_top_category_passes(truth: str) -> None:
    assert_passes(truth)


def test_the_top_category_is_read_from_the_data_as_sent() -> None:
    other = prompt_data(
        metrics(
            spending_by_category={"Quà cho mẹ": 120000.0, "snacks": 40000.0},
            top_spending_category="Quà cho mẹ",
        )
    )  # an unknown category is sent as "khác"
    assert_passes("Khoản chi lớn nhất thuộc các danh mục khác.", other)
    assert_caught("Khoản chi lớn nhất là đồ ăn vặt.", "wrong_category", other)


# --- goals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lie",
    [
        "[[KID]] đã đạt mục tiêu 1 trong tuần này.",  # 71 %, open
        "[[KID]] đã hoàn thành mục tiêu 1 (420.000 đ).",
        "Số tiền [[KID]] để dành đã đủ cho mục tiêu 1 (420.000 đ).",
        "[[KID]] chưa đạt mục tiêu 2, còn cần cố gắng thêm.",  # reached
    ],
)
def test_a_goal_said_reached_when_it_is_not_is_caught(lie: str) -> None:
    assert_caught(lie, "wrong_goal", GOALS)


@pytest.mark.parametrize(
    "truth",
    [
        "[[KID]] đã để dành được 71 % cho mục tiêu 1 (420.000 đ).",
        "Số tiền [[KID]] để dành đã đủ cho mục tiêu 2 (250.000 đ).",
        "Tuần này [[KID]] đã hoàn thành mục tiêu 3 (90.000 đ).",
        "[[KID]] chưa đạt mục tiêu 1 nhưng đã đi được 71 % chặng đường.",
        "Để đạt mục tiêu 1 (420.000 đ), [[KID]] còn thiếu 120.000 đ.",
        "Mục tiêu 1 420.000 đ: đã đạt 71%.",
        # what is left, then the goal: not a claim that it is reached
        "Còn 120.000 đ nữa là [[KID]] đạt mục tiêu 1.",
        "Chỉ còn 29 % nữa là [[KID]] đạt mục tiêu 1.",
    ],
)
def test_true_goal_statements_pass(truth: str) -> None:
    assert_passes(truth, GOALS)


def test_a_goal_said_reached_without_any_goal_in_the_data_is_caught() -> None:
    assert_caught("[[KID]] đã đạt mục tiêu tiết kiệm của mình.", "wrong_goal")
    one_open = prompt_data(metrics(savings_goals=[goal(1)]))
    assert_caught("[[KID]] đã đạt mục tiêu tiết kiệm của mình.", "wrong_goal", one_open)
    one_reached = prompt_data(metrics(savings_goals=[goal(1, progress_percent=100, reached=True)]))
    assert_passes("[[KID]] đã đạt mục tiêu tiết kiệm của mình.", one_reached)


# --- trends and changes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "lie",
    [
        "Tuần này [[KID]] chi ít hơn tuần trước.",  # 160.000 > 100.000
        "Tuần này [[KID]] tiêu ít hơn so với tuần trước.",
        "[[KID]] đã giảm chi tiêu so với hai tuần trước.",  # up on the mean
        "Tuần này [[KID]] nhận nhiều hơn tuần trước.",  # 200.000 = 200.000
        "[[KID]] đã tăng tiết kiệm trong tuần này.",  # saving is down
    ],
)
def test_a_trend_said_with_a_verb_is_checked(lie: str) -> None:
    assert_caught(lie, "wrong_trend")


@pytest.mark.parametrize(
    "truth",
    [
        "Tuần này [[KID]] chi nhiều hơn tuần trước.",
        "[[KID]] đã tăng chi tiêu so với hai tuần trước.",
        "[[KID]] nhận được 200.000 đ, giữ nguyên như tuần trước.",
        "Bố mẹ nhận thấy chi tiêu tăng so với tuần trước.",
        "Hãy giúp con giảm chi tiêu cho đồ ăn vặt.",
    ],
)
def test_true_verb_trends_and_advice_pass(truth: str) -> None:
    assert_passes(truth)


def test_a_trend_of_something_the_data_has_no_trend_for_is_unverifiable() -> None:
    """The closed world (issue 19): what the checker cannot read is asked again."""
    assert_caught("Mục tiêu 1 tăng thêm một chút.", "unverifiable")


@pytest.mark.parametrize(
    "lie",
    [
        "Chi tiêu tăng 20.000 đ so với tuần trước.",  # +60.000 on prev1; +20.000 on the mean
        "Chi tiêu nhiều hơn tuần trước 20.000 đ.",
        "Chi tiêu tăng 60.000 đ so với trung bình hai tuần trước.",
        "Chi tiêu tăng 14% so với tuần trước.",  # +60 % on prev1; +14 % on the mean
    ],
)
def test_a_change_against_the_wrong_week_is_caught(lie: str) -> None:
    assert_caught(lie, "wrong_change")
