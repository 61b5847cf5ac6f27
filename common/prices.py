"""The price table (a setting): USD per million tokens, per model; `TRIAGE_PRICES` overrides it.

Cache reads cost 0.1x input, 5-minute cache writes 1.25x input, and the Batches API half of
everything: the multipliers live with the rates so a setting can change any of them. Cost
arithmetic lives in `worker.state.pricing`.
"""

from __future__ import annotations

from pydantic import BaseModel


class ModelPrice(BaseModel):
    input: float
    output: float
    cache_write_multiplier: float = 1.25
    cache_read_multiplier: float = 0.1
    batch_multiplier: float = 0.5


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-haiku-4-5": ModelPrice(input=1.0, output=5.0),
    "claude-sonnet-4-6": ModelPrice(input=3.0, output=15.0),
}
