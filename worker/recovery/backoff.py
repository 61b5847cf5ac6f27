"""Retry delay for a failed task attempt (pure): exponential, jittered, honouring retry-after."""

from __future__ import annotations

import random


def compute_backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    Full jitter over `base * 2**(attempt-1)` spreads a fleet's retries; a server's retry-after is a
    floor, and `cap` bounds everything so retries stay well inside the visibility timeout.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(cap, delay)
