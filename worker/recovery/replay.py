"""Replaying dead letters through the normal path, once their cause is fixed.

An email goes back into its thread's inbox (the thread's applied-set makes that idempotent: an
email that was applied meanwhile is skipped); a reply goes back to the reply queue (its sent-record
makes that idempotent), its task read back from where `worker.reply.failed` kept it. A raw email
that failed to parse is handed to the caller's `reparse` (the producers' enqueue), a webhook
delivery to the caller's `webhook` (`worker.deliver.store.requeue_dead_letter`: back at the head of
its thread for its subscription). Entries that
cannot be replayed (a malformed task, a reply whose kept task expired) are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from common import keys
from common.contract import EmailPayload, ReplyTask
from common.deadletters import DeadLetter, DeadLetterStream
from common.publish import TaskPublisher
from worker.reply.failed import failed_reply, forget_failed_reply
from worker.state import scripts

log = structlog.get_logger("worker.recovery.replay")


@dataclass(frozen=True)
class ReplayResult:
    entry_id: str
    outcome: str  # "replayed" or "kept"
    detail: str


class Replayer:
    def __init__(
        self,
        client: redis.Redis,
        dead_letters: DeadLetterStream,
        publisher: TaskPublisher,
        reparse: Callable[[bytes, str], str] | None,
        ttl_seconds: int,
        flag_seconds: int,
        webhook: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self._redis = client
        self._dead_letters = dead_letters
        self._publisher = publisher
        self._reparse = reparse
        self._webhook = webhook
        self._requeue = client.register_script(scripts.load("requeue_email"))
        self._ttl = ttl_seconds
        self._flag_seconds = flag_seconds

    def replay(self, letter: DeadLetter) -> ReplayResult:
        payload: Any = letter.body.get("payload")
        try:
            detail = self._dispatch(payload)
        except ValueError as exc:
            log.warning("dlq.replay_kept", entry_id=letter.entry_id, reason=str(exc))
            return ReplayResult(letter.entry_id, "kept", str(exc))
        self._dead_letters.delete(letter.entry_id)
        log.info("dlq.replayed", entry_id=letter.entry_id, detail=detail)
        return ReplayResult(letter.entry_id, "replayed", detail)

    def _dispatch(self, payload: Any) -> str:
        if isinstance(payload, dict) and "webhook" in payload:
            if self._webhook is None:
                raise ValueError("webhook deliveries need the subscriptions to replay")
            return self._webhook(payload)
        if isinstance(payload, dict) and "reply_id" in payload:
            return self._replay_reply(payload)
        if isinstance(payload, dict) and "message_id" in payload:
            return self._replay_email(payload)
        if isinstance(payload, dict) and "raw" in payload:
            if self._reparse is None:
                raise ValueError("raw emails need the producers to replay")
            return self._reparse(str(payload["raw"]).encode(), str(payload.get("source", "dlq")))
        raise ValueError("nothing replayable in this entry (a malformed task or inbox entry)")

    def _replay_email(self, payload: dict[str, Any]) -> str:
        try:
            email = EmailPayload.model_validate(payload)
        except ValidationError as exc:
            raise ValueError(f"not a valid email payload: {exc.error_count()} errors") from None
        scheduled = self._requeue(
            keys=[
                keys.thread_inbox(email.thread_id),
                keys.thread_scheduled(email.thread_id),
                keys.PENDING,
            ],
            args=[
                email.model_dump_json(),
                f"{time.time():.3f}",
                self._ttl,
                email.thread_id,
                self._flag_seconds,
            ],
        )
        if scheduled:
            self._publisher.drain(email.thread_id)
        return f"email {email.message_id} back in thread {email.thread_id}"

    def _replay_reply(self, payload: dict[str, Any]) -> str:
        """A reply's dead letter names it by id; the task itself is kept under its failed key
        (`worker.reply.failed`). Older dead letters carry the whole task."""
        if "to" not in payload:
            kept = failed_reply(self._redis, str(payload["reply_id"]))
            if kept is None:
                raise ValueError(f"reply {payload['reply_id']}: its task is no longer kept")
            payload = kept.model_dump(mode="json")
        try:
            reply = ReplyTask.model_validate(payload)
        except ValidationError as exc:
            raise ValueError(f"not a valid reply payload: {exc.error_count()} errors") from None
        forget_failed_reply(self._redis, reply.reply_id)
        self._redis.hset(keys.REPLIES_PENDING, reply.reply_id, reply.model_dump_json())
        self._redis.hset(keys.thread_meta(reply.thread_id), "status", "awaiting_customer")
        self._publisher.reply(reply)
        return f"reply {reply.reply_id} queued again"
