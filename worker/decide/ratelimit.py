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

log = structlog.get_logger("worker.decide.ratelimit")

ACQUIRE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local wait = 0
local levels = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local need = tonumber(ARGV[2 * i])
  local capacity = math.max(1, limit * tonumber(ARGV[#ARGV]) / 60)
  -- Refill so that burst + refill never exceed the limit in any 60 s window.
  local rate = math.max(limit - capacity, limit / 60) / 60
  need = math.min(need, capacity)
  local state = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local level = tonumber(state[1]) or capacity
  local since = tonumber(state[2]) or now
  level = math.min(capacity, level + math.max(0, now - since) * rate)
  levels[i] = {level, need}
  if level < need then wait = math.max(wait, (need - level) / rate) end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'level', tostring(levels[i][1] - levels[i][2]), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], 3600)
end
return '0'
"""


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
        self._script = client.register_script(ACQUIRE_LUA)
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
