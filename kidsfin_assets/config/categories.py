"""The spending and income categories sent to the model by name (privacy.known_categories).

A leaf (no project imports): the settings' default, the prompt's and the report writer's.
"""

from __future__ import annotations

# The categories the demo app offers (kidsfin_demo.vocabulary: SPENDING_CATEGORIES,
# INCOME_CATEGORIES) and the category keys the prompt and the offline writer name
# (offline_writer.CATEGORY_WORDS).
DEFAULT_KNOWN_CATEGORIES = (
    "ăn vặt", "đồ chơi", "sách vở", "trò chơi", "đi lại", "đồ dùng học tập", "quà tặng",
    "tiền tiêu vặt", "tiền mừng", "việc nhà",
    "snacks", "food", "drinks", "toys", "books", "games", "transport", "stationery", "gifts",
    "gift", "clothes", "entertainment", "education", "other",
)  # fmt: skip
