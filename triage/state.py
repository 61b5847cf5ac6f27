"""Read-side helpers for the inspection commands (thread, outbox, dlq)."""

from __future__ import annotations

from typing import Any

import redis

from worker import keys
from worker.deadletters import DeadLetterStream
from worker.settings import Settings
from worker.store import ThreadStore


def open_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)


def open_store(settings: Settings) -> ThreadStore:
    return ThreadStore(open_redis(settings), settings.thread_ttl_seconds, settings.events_maxlen)


def open_dead_letters(settings: Settings) -> DeadLetterStream:
    return DeadLetterStream(open_redis(settings))


def read_outbox(settings: Settings, count: int = 1000) -> list[dict[str, Any]]:
    entries: list[Any] = open_redis(settings).xrange(keys.OUTBOX, count=count)  # type: ignore[assignment]
    return [
        {"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
        for entry_id, fields in entries
    ]
