"""Cost first: what a run will cost, live and through the Message Batches API (pure).

Input tokens are estimated from the plan (about 4 bytes a token, the estimate the rate limiter
uses, with the system prompt and schema of the run's configuration); output is counted at
`OUTPUT_TOKENS_PER_CALL` a decision (its JSON). Prices come from the price table
(`TRIAGE_PRICES`); cache reads are not counted in, so a run with a long cached system prompt
costs less than this says. One call per item, plus the truncation retries the run may need.
"""

from __future__ import annotations

from typing import Any

from common.prices import ModelPrice
from worker.state.pricing import cost_usd, price_for
from worker.state.usage import Usage

#: A decision's JSON, about: the worker's observed decisions are 70-150 tokens.
OUTPUT_TOKENS_PER_CALL = 150


def estimate(
    calls: int, input_tokens: int, model: str, prices: dict[str, ModelPrice]
) -> dict[str, Any]:
    """Calls, tokens and USD for a run of `calls` decisions (pure)."""
    usage = Usage(input_tokens=input_tokens, output_tokens=calls * OUTPUT_TOKENS_PER_CALL)
    price = price_for(model, prices)
    return {
        "calls": calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "model": model,
        "live_usd": round(cost_usd(usage, price), 4),
        "batch_usd": round(cost_usd(usage, price, batch=True), 4),
    }


def default_via(calls: int, batch_from: int) -> str:
    """Large runs go through the Message Batches API at half price; small ones live."""
    return "batch" if calls >= batch_from else "live"
