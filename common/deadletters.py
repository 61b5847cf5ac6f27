"""The dead-letter stream: work that could not be completed, with the reason, kept for replay.

Redis has no dead-letter queue, so we keep our own stream. Entries written by the thread commit
script and by `add` have the same shape: fields `reason`, `thread_id`, `payload` (JSON with reason,
error, attempts, payload, at).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from common import keys
from common.connections import as_text


@dataclass(frozen=True)
class DeadLetterEntry:
    """One entry to write: why, and enough of the work to replay it."""

    reason: str
    error: str
    payload: Any
    attempts: int = 1
    at: float = field(default_factory=lambda: round(time.time(), 3))

    def to_json(self) -> str:
        """The entry's `payload` field (the same shape `DeadLetter.body` reads back)."""
        return json.dumps(
            {
                "reason": self.reason,
                "error": self.error,
                "attempts": self.attempts,
                "payload": self.payload,
                "at": self.at,
            }
        )


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    reason: str
    thread_id: str
    body: dict[str, Any]


class DeadLetterStream:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def add(
        self, reason: str, error: str, payload: Any, *, thread_id: str = "", attempts: int = 1
    ) -> str:
        entry = DeadLetterEntry(reason, error, payload, attempts)
        fields = {"reason": reason, "thread_id": thread_id, "payload": entry.to_json()}
        entry_id = self._redis.xadd(keys.DEAD_LETTERS, fields)  # type: ignore[arg-type]
        return as_text(entry_id)

    def list(self, count: int | None = 100) -> list[DeadLetter]:
        entries = self._redis.xrange(keys.DEAD_LETTERS, count=count)
        return [_decode(entry_id, fields) for entry_id, fields in entries]  # type: ignore[union-attr,arg-type]

    def get(self, entry_id: str) -> DeadLetter | None:
        entries: list[Any] = self._redis.xrange(keys.DEAD_LETTERS, min=entry_id, max=entry_id)  # type: ignore[assignment]
        return _decode(entries[0][0], entries[0][1]) if entries else None

    def delete(self, *entry_ids: str) -> int:
        return int(self._redis.xdel(keys.DEAD_LETTERS, *entry_ids)) if entry_ids else 0

    def purge(self) -> int:
        """Drop every entry; returns how many there were."""
        size = self.size()
        self._redis.delete(keys.DEAD_LETTERS)
        return size

    def size(self) -> int:
        return int(self._redis.xlen(keys.DEAD_LETTERS))


def _decode(entry_id: Any, fields: dict[Any, Any]) -> DeadLetter:
    text = {as_text(k): as_text(v) for k, v in fields.items()}
    return DeadLetter(
        entry_id=as_text(entry_id),
        reason=text.get("reason", ""),
        thread_id=text.get("thread_id", ""),
        body=json.loads(text.get("payload", "{}")),
    )
