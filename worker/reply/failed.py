"""Replies that will not be sent: dead-lettered once, by reply id, and never picked up again.

A failed reply leaves the pending hash (so the sweeper never re-publishes it), its thread is
marked `reply_failed`, and the dead letter names only the reply (`reply_id`, `thread_id`) with the
reason: never the recipient, the subject or the question. The reply task itself is kept under
`triage:reply:<id>:failed` (thread TTL) for `triage dlq replay`; while that key exists, a copy of
the task still in flight (re-published before it failed) is dropped instead of sent or
dead-lettered again.
"""

from __future__ import annotations

from typing import Any

import redis

from common import keys
from common.connections import as_text
from common.contract import STATUS_REPLY_FAILED, ReplyTask
from common.deadletters import DeadLetterStream
from common.logging import redact_addresses
from worker.state.store import ThreadStore


def reply_reference(reply: ReplyTask) -> dict[str, Any]:
    """What a dead letter says about a reply: which one, nothing of its content."""
    return {"reply_id": reply.reply_id, "thread_id": reply.thread_id}


class FailedReplies:
    def __init__(
        self,
        client: redis.Redis,
        dead_letters: DeadLetterStream,
        store: ThreadStore,
        ttl_seconds: int,
    ) -> None:
        self._redis = client
        self._dead_letters = dead_letters
        self._store = store
        self._ttl = ttl_seconds

    def dead_letter(self, reply: ReplyTask, reason: str, error: str, attempts: int) -> str:
        """Give the reply up for good; returns the dead letter's entry id."""
        error = redact_addresses(error)
        self._redis.set(keys.reply_failed(reply.reply_id), reply.model_dump_json(), ex=self._ttl)
        entry_id = self._dead_letters.add(
            reason, error, reply_reference(reply), thread_id=reply.thread_id, attempts=attempts
        )
        self._store.mark(
            reply.thread_id, status=STATUS_REPLY_FAILED, reply_error=f"{reason}: {error}"
        )
        self._redis.hdel(keys.REPLIES_PENDING, reply.reply_id)
        return entry_id


def has_failed(client: redis.Redis, reply_id: str) -> bool:
    """Whether the reply was given up (and not replayed since)."""
    return bool(client.exists(keys.reply_failed(reply_id)))


def failed_reply(client: redis.Redis, reply_id: str) -> ReplyTask | None:
    """The reply task kept for replay (None once its TTL has passed)."""
    raw = client.get(keys.reply_failed(reply_id))
    return ReplyTask.model_validate_json(as_text(raw)) if raw is not None else None


def forget_failed_reply(client: redis.Redis, reply_id: str) -> None:
    """Replay sends it again: a new failure writes a new record."""
    client.delete(keys.reply_failed(reply_id))
