"""Read-side helpers for the inspection commands (thread, outbox, dlq)."""

from __future__ import annotations

from typing import Any

import redis

from common import keys
from common.contract import (
    QUEUE_REPLIES,
    QUEUE_TRIAGE,
    TASK_DRAIN,
    TASK_SEND_REPLY,
    ReplyTask,
)
from common.deadletters import DeadLetterStream
from common.settings import Settings
from worker.recovery.replay import Replayer
from worker.state.store import ThreadStore


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


def open_replayer(settings: Settings) -> Replayer:
    """A replayer wired to the producers: tasks are published by name, raw mail re-parsed."""
    from producers.enqueue import Enqueuer, Rejected
    from producers.submit import producer_app

    client = open_redis(settings)
    app = producer_app(settings)
    enqueuer = Enqueuer(settings, client)

    def publish_drain(thread_id: str) -> None:
        app.send_task(TASK_DRAIN, args=[thread_id], queue=QUEUE_TRIAGE)

    def publish_reply(reply: ReplyTask) -> None:
        app.send_task(TASK_SEND_REPLY, args=[reply.model_dump(mode="json")], queue=QUEUE_REPLIES)

    def reparse(raw: bytes, source: str) -> str:
        result = enqueuer.enqueue_bytes(raw, source)
        if isinstance(result, Rejected):
            raise ValueError(f"still rejected: {result.reason}: {result.error}")
        return f"email {result.message_id} {result.status} into thread {result.thread_id}"

    return Replayer(
        client,
        DeadLetterStream(client),
        publish_drain,
        publish_reply,
        reparse,
        settings.thread_ttl_seconds,
        settings.visibility_timeout_seconds,
    )
