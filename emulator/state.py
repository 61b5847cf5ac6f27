"""Mutable server state shared by handlers and the controlling thread.

Handlers run on the server's event loop; `EmulatorThread.configure/reset/requests` run on the
caller's thread. Every piece of state is guarded by a lock (critical sections are tiny and never
await), and the config is an immutable object swapped whole, so a handler reads one consistent
config per request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from typing import Any

from emulator.batches import BatchStore
from emulator.config import EmulatorConfig
from emulator.faults import FaultPlanner
from emulator.ratelimit import RateLimiter
from emulator.tokens import PromptCache

HIDDEN_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})


class EmulatorState:
    """Config, caches, counters and the request recording of one emulator instance."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._initial = config
        self._config = config
        self._lock = threading.Lock()
        self._counter = 0
        self._records: deque[dict[str, Any]] = deque(maxlen=config.max_recorded)
        self.cache = PromptCache()
        self.limiter = RateLimiter()
        self.planner = FaultPlanner()
        self.batches = BatchStore()

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    def configure(self, **fields: Any) -> EmulatorConfig:
        """Validate and apply changed fields; fault counters restart when the rules change."""
        with self._lock:
            new = self._config.updated(**fields)
            if new.faults != self._config.faults:
                self.planner.reset()
            if new.max_recorded != self._config.max_recorded:
                self._records = deque(self._records, maxlen=new.max_recorded)
            self._config = new
            return new

    def reset(self) -> None:
        """Forget everything and go back to the config the server started with."""
        with self._lock:
            self._config = self._initial
            self._records = deque(maxlen=self._initial.max_recorded)
            self._counter = 0
            self.cache.clear()
            self.limiter.reset()
            self.planner.reset()
        # Outside `_lock`: batch processing may run while the store's own lock is held.
        self.batches.clear()

    def next_ids(self) -> tuple[str, str]:
        """Deterministic (request id, message id) from the seed and a counter."""
        with self._lock:
            self._counter += 1
            n = self._counter
            seed = self._config.seed
        request_hash = hashlib.sha256(f"{seed}:req:{n}".encode()).hexdigest()[:24]
        message_hash = hashlib.sha256(f"{seed}:msg:{n}".encode()).hexdigest()[:24]
        return f"req_{request_hash}", f"msg_{message_hash}"

    def record(self, entry: dict[str, Any]) -> None:
        """Keep the entry in memory (bounded) and append it to the JSONL file if configured."""
        with self._lock:
            self._records.append(entry)
            path = self._config.record_path
            if path is not None:
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)


def safe_headers(headers: Any) -> dict[str, str]:
    """Request headers worth recording: everything except credentials."""
    return {
        str(name).lower(): str(value)
        for name, value in headers.items()
        if str(name).lower() not in HIDDEN_HEADERS
    }
