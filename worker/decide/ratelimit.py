"""A rate limiter shared by every worker process and machine, kept in Redis.

Two token buckets (requests per minute, input tokens per minute) checked and taken together in
one script, on Redis's clock, before each Claude call. The buckets hold only
`TRIAGE_RATE_LIMIT_BURST_SECONDS` worth of capacity and refill at (limit - capacity) per minute, so
no 60-second window ever sees more than the limit: a fleet runs at the limit (98% of it with the
default one-second burst) instead of bursting into 429s. A caller that would wait longer than
`TRIAGE_RATE_LIMIT_MAX_WAIT_SECONDS` gets `RetryLater` instead, freeing its worker slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from common import keys
from common.errors import RetryLater
from worker.observe import metrics
from worker.state import scripts

log = structlog.get_logger("worker.decide.ratelimit")


def estimate_input_tokens(request: dict[str, Any]) -> int:
    """A cheap, slightly generous estimate (about 4 bytes a token) of what a request will count."""
    parts = [
        request.get("system") or "",
        request.get("messages") or [],
        request.get("output_config"),
    ]
    return max(1, len(json.dumps(parts, ensure_ascii=False).encode()) // 4)


class RateLimiter:
    """`acquire(tokens)` blocks until the fleet may send one request of that size."""

    def __init__(
        self,
        client: redis.Redis,
        rpm: int,
        itpm: int,
        burst_seconds: float,
        max_wait: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._script = client.register_script(scripts.load("acquire_rate"))
        self._limits = [(keys.RATE_REQUESTS, rpm, False), (keys.RATE_INPUT_TOKENS, itpm, True)]
        self._limits = [limit for limit in self._limits if limit[1] > 0]
        self._burst = burst_seconds
        self._max_wait = max_wait
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return bool(self._limits)

    def acquire(self, input_tokens: int) -> float:
        """Wait for capacity; returns the seconds waited. Raises RetryLater past the bound."""
        if not self._limits:
            return 0.0
        waited = 0.0
        args: list[float] = []
        for _, limit, is_tokens in self._limits:
            args += [limit, input_tokens if is_tokens else 1]
        args.append(self._burst)
        while True:
            wait = float(self._script(keys=[k for k, _, _ in self._limits], args=args))
            if wait <= 0:
                if waited:
                    metrics.record_ratelimit_wait(waited)
                    log.info(
                        "ratelimit.waited", waited_s=round(waited, 3), input_tokens=input_tokens
                    )
                return waited
            if waited + wait > self._max_wait:
                raise RetryLater(
                    f"rate limit: would wait {waited + wait:.1f}s",
                    reason="rate_limited",
                    retry_after=wait,
                )
            self._sleep(wait)
            waited += wait
