"""Backpressure: refuse new mail (503 + Retry-After) while the `triage` queue is too deep.

Providers and well-behaved clients retry later; accepting mail the workers cannot reach in time
would only move the backlog somewhere less visible. The depth is read at most once a second (one
LLEN on the broker, off the event loop); when the broker cannot be read the check lets requests
through, and the enqueue itself then fails with 503.
"""

from __future__ import annotations

import asyncio
import time

import redis
import structlog

from common.contract import QUEUE_TRIAGE
from intake import metrics

log = structlog.get_logger("intake.backpressure")

#: Seconds a depth reading is reused.
REFRESH_SECONDS = 1.0


class Backpressure:
    def __init__(self, broker: redis.Redis, max_queue: int) -> None:
        self._broker = broker
        self._max = max_queue
        self._depth = 0
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    def _read(self) -> int:
        return int(self._broker.llen(QUEUE_TRIAGE))

    async def depth(self) -> int:
        if time.monotonic() - self._read_at < REFRESH_SECONDS:
            return self._depth
        async with self._lock:
            if time.monotonic() - self._read_at >= REFRESH_SECONDS:
                try:
                    self._depth = await asyncio.to_thread(self._read)
                    metrics.QUEUE_DEPTH.set(self._depth)
                except redis.RedisError as exc:
                    log.warning("intake.queue_depth_unreadable", error=str(exc)[:200])
                    self._depth = 0
                self._read_at = time.monotonic()
        return self._depth

    async def overloaded(self) -> bool:
        """True when new mail should wait (0 = never)."""
        return self._max > 0 and await self.depth() > self._max
