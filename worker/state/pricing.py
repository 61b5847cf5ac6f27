"""Cost of a call (pure), from the price table in settings (`common.prices`)."""

from __future__ import annotations

from common.prices import ModelPrice
from worker.state.usage import Usage

#: Used for a model missing from the table (priced like the most expensive known one, to be safe).
FALLBACK = "claude-sonnet-4-6"


def price_for(model: str, prices: dict[str, ModelPrice]) -> ModelPrice:
    """Exact id, else the longest table key the id starts with (dated ids), else the fallback."""
    if model in prices:
        return prices[model]
    prefixes = [key for key in prices if model.startswith(key)]
    if prefixes:
        return prices[max(prefixes, key=len)]
    return prices.get(FALLBACK) or max(prices.values(), key=lambda p: p.input)


def cost_usd(usage: Usage, price: ModelPrice, batch: bool = False) -> float:
    per_token = price.input / 1_000_000
    cost = (
        usage.input_tokens * per_token
        + usage.cache_creation_input_tokens * per_token * price.cache_write_multiplier
        + usage.cache_read_input_tokens * per_token * price.cache_read_multiplier
        + usage.output_tokens * price.output / 1_000_000
    )
    return cost * (price.batch_multiplier if batch else 1.0)


def cache_saving_usd(usage: Usage, price: ModelPrice) -> float:
    """What the cache reads saved against paying full input price for those tokens."""
    per_token = price.input / 1_000_000
    return usage.cache_read_input_tokens * per_token * (1 - price.cache_read_multiplier)
