"""Retry delay for a failed task attempt (pure): exponential with full jitter, honouring the
server's retry-after."""

from __future__ import annotations

import random


def compute_backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    limit: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    Full jitter (uniform over 0 .. min(cap, base * 2**(attempt-1)), AWS's "full jitter") spreads a
    fleet's retries. A server's retry-after is a floor that `cap` does not cut: retrying earlier
    than the server asked only earns another 429. `limit` bounds everything (the caller passes
    what the broker's visibility timeout leaves, so a retry is never redelivered twice).
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay if limit is None else min(limit, delay)
