"""When to try a delivery again, and what an HTTP answer means (pure functions).

- 2xx: delivered. 408, 429 and 5xx, timeouts and connection errors: try again later. Any other
  answer (3xx: redirects are not followed; 4xx) is permanent: the delivery is dead-lettered at
  once, to be replayed once the receiver is fixed.
- The delay before attempt n+1 is drawn from [c/2, c] with c = min(cap, base * 2**(n-1))
  ("equal jitter"): spread like full jitter, but the budget keeps a known minimum length, so a
  receiver that is down for a while is still covered by the last attempts. A `Retry-After` is a
  floor (retrying sooner only earns another 429), bounded by the cap.
"""

from __future__ import annotations

import random
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "permanent"]
RETRYABLE = frozenset({408, 429})


def classify(status: int) -> Verdict:
    """What an HTTP status means for a delivery."""
    if 200 <= status < 300:
        return "delivered"
    if status in RETRYABLE or status >= 500:
        return "retry"
    return "permanent"


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt `attempt` (counted from 1)."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def budget_span(attempts: int, *, base: float, cap: float) -> tuple[float, float]:
    """The shortest and longest time from the first attempt to the last (no Retry-After)."""
    longest = sum(min(cap, base * 2 ** (n - 1)) for n in range(1, attempts))
    return longest / 2, longest


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from `now` that a `Retry-After` header asks for (delta-seconds or an HTTP date);
    None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def lease_seconds(timeout: float) -> float:
    """How long a lane holds a thread: one attempt at most (connect, send, answer, each within
    `timeout`) and a margin. Past it, another lane (or worker) takes the thread over."""
    return 3 * timeout + 5
