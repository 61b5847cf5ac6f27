"""Requests-per-minute and input-tokens-per-minute limits over a sliding 60-second window.

Only admitted requests count. Input tokens counted are the request's total input (cache reads
included: simpler, and conservative). Headers mirror the real `anthropic-ratelimit-*` set.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

WINDOW_S = 60.0


@dataclass
class Admission:
    """Outcome of a rate-limit check: allowed or not, seconds to wait, headers to send."""

    allowed: bool
    retry_after_s: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    limit_name: str = ""


def _rfc3339(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=max(0.0, seconds_from_now))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class RateLimiter:
    """Sliding-window limiter; thread-safe, clock injectable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        with self._lock:
            self._window.clear()

    def admit(self, tokens: int, rpm: int | None, itpm: int | None) -> Admission:
        """Count this request if it fits both limits; otherwise say when to come back."""
        if rpm is None and itpm is None:
            return Admission(True)
        now = self._clock()
        with self._lock:
            while self._window and self._window[0][0] <= now - WINDOW_S:
                self._window.popleft()
            used_requests = len(self._window)
            used_tokens = sum(t for _, t in self._window)
            blocked = ""
            if rpm is not None and used_requests + 1 > rpm:
                blocked = "requests"
            elif itpm is not None and used_tokens + tokens > itpm and self._window:
                blocked = "input_tokens"
            if not blocked:
                self._window.append((now, tokens))
                used_requests += 1
                used_tokens += tokens
            oldest = self._window[0][0] if self._window else now
        reset_in = max(0.0, oldest + WINDOW_S - now)
        headers: dict[str, str] = {}
        if rpm is not None:
            headers["anthropic-ratelimit-requests-limit"] = str(rpm)
            headers["anthropic-ratelimit-requests-remaining"] = str(max(0, rpm - used_requests))
            headers["anthropic-ratelimit-requests-reset"] = _rfc3339(reset_in)
        if itpm is not None:
            headers["anthropic-ratelimit-input-tokens-limit"] = str(itpm)
            headers["anthropic-ratelimit-input-tokens-remaining"] = str(max(0, itpm - used_tokens))
            headers["anthropic-ratelimit-input-tokens-reset"] = _rfc3339(reset_in)
        return Admission(
            not blocked, max(1, math.ceil(reset_in)) if blocked else 0, headers, blocked
        )
