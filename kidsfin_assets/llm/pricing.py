"""Token prices (config/pricing.yaml) and the usage counters of one gold step."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kidsfin_assets.config.errors import SettingsError

PER_TOKENS = 1_000_000


TIERS = ("default", "batch", "flex")


class ModelPrice(BaseModel):
    """USD per 1M tokens, at the default tier; `batch` and `flex` are the prices of the
    Batch API and of flex processing where the model has them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)
    batch: ModelPrice | None = None
    flex: ModelPrice | None = None

    def at(self, tier: str) -> ModelPrice:
        """The price at the tier that served an answer ("default", "batch" or "flex")."""
        if tier in ("batch", "flex"):
            price = getattr(self, tier)
            if price is None:
                raise SettingsError(f"no {tier} price for this model in the pricing file")
            return price
        return self

    def split_cost(
        self, prompt_tokens: int, completion_tokens: int, cached_tokens: int
    ) -> tuple[float, float]:
        """(input, output) in USD: cached prompt tokens priced as cached, the rest as input."""
        fresh = max(0, prompt_tokens - cached_tokens)
        prompt_cost = fresh * self.input + cached_tokens * self.cached_input
        return prompt_cost / PER_TOKENS, completion_tokens * self.output / PER_TOKENS


FREE = ModelPrice(input=0, cached_input=0, output=0)


def load_prices(path: Path) -> dict[str, ModelPrice]:
    """Every model's price in the pricing file; a bad file fails with the key named."""
    try:
        table = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"openai.pricing_file: cannot read {path}: {exc}") from exc
    models = table.get("models") if isinstance(table, dict) else None
    if not isinstance(models, dict):
        raise SettingsError(
            f"openai.pricing_file: {path} must be a mapping with a `models:` mapping of "
            "model name to {input, cached_input, output} (USD per 1M tokens)"
        )
    prices = {}
    for model, price in models.items():
        try:
            prices[str(model)] = ModelPrice.model_validate(price)
        except ValidationError as exc:
            raise SettingsError(f"{path}: models.{model}: {exc}") from exc
    return prices


def load_price(path: Path, model: str) -> ModelPrice:
    """The price of `model`; a missing model or a bad table fails with the key named."""
    prices = load_prices(path)
    if model not in prices:
        raise SettingsError(
            f"openai.model: no price for {model!r} in {path} (known: {', '.join(sorted(prices))});"
            " add it under models: so that cost can be tracked"
        )
    return prices[model]


@dataclass
class Usage:
    """Thread-safe counters for one materialisation, reported as asset metadata."""

    price: ModelPrice = FREE
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    input_cost_usd: float = 0.0  # the prompt's share of cost_usd (cached tokens included)
    output_cost_usd: float = 0.0
    rate_limited: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_response(self, prompt: int, completion: int, cached: int) -> float:
        input_cost, output_cost = self.price.split_cost(prompt, completion, cached)
        with self._lock:
            self.requests += 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.cached_tokens += cached
            self.cost_usd += input_cost + output_cost
            self.input_cost_usd += input_cost
            self.output_cost_usd += output_cost
        return input_cost + output_cost

    def record_error(self, kind: str, *, rate_limited: bool = False) -> None:
        with self._lock:
            self.requests += 1
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
            self.rate_limited += int(rate_limited)

    def record_failed_answer(self, kind: str) -> None:
        """An answer came (and was counted) but cannot be used: refused, cut off, invalid."""
        with self._lock:
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1
