"""The weekly report as the API must answer it (KidWeeklyReport, its JSON schema), and the
placeholder that stands for the child until the nickname is put back (`personalise`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Stands for the child in everything sent to the API; replaced by the nickname after.
PLACEHOLDER = "[[KID]]"


# A text field is a sentence: at least four words, one space apart. As a `pattern`, which
# OpenAI's strict mode and llama.cpp's grammar both enforce while generating (OpenAI's
# strict mode does not support `minLength`); the grounding checker flags what is still
# not a sentence (words, not JSON fragments).
SENTENCE_PATTERN = r"^[^ ]+( [^ ]+){3,}$"
Sentence = Annotated[str, StringConstraints(pattern=SENTENCE_PATTERN)]
MIN_RECOMMENDATIONS, MAX_RECOMMENDATIONS = 2, 4


class KidWeeklyReport(BaseModel):
    """One child's weekly report for the parents (the API's response format).

    Bounds are JSON Schema keywords that strict mode keeps (minimum/maximum, minItems/
    maxItems, pattern), so the server's grammar cannot produce a score of 10^15."""

    model_config = ConfigDict(extra="forbid")

    financial_health: Sentence = Field(description="2-3 sentences on the week's financial health.")
    spending_pattern: Sentence = Field(description="2-3 sentences on how the money was spent.")
    savings_behavior: Sentence = Field(description="2-3 sentences on saving habits.")
    activity_level: Sentence = Field(description="1-2 sentences on activity in the app.")
    recommendations: list[Sentence] = Field(
        min_length=MIN_RECOMMENDATIONS,
        max_length=MAX_RECOMMENDATIONS,
        description="2-4 short, concrete recommendations.",
    )
    overall_score: int = Field(ge=0, le=10, description="Overall score, a whole number 0-10.")


def personalise(report: KidWeeklyReport | dict[str, Any], nickname: str | None) -> dict[str, Any]:
    """Put the child's nickname where the model wrote the placeholder (every field, list
    items included)."""
    name = nickname or "bé"
    data = report.model_dump() if isinstance(report, KidWeeklyReport) else report

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(PLACEHOLDER, name)
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    return {key: fill(value) for key, value in data.items()}
