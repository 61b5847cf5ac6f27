"""Put a parsed email into its thread's inbox, exactly once, and schedule the thread's drainer.

One script does the dedupe (the Message-ID index, shared with threading), the inbox push and the
`SET NX` "scheduled" flag; only the caller that set the flag publishes a drain task, so each thread
has at most one drainer queued. Producers publish by task name and share only `common.contract`,
`common.keys` and the Celery settings with the worker.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis

from common import keys
from common.contract import EmailPayload
from common.publish import Publisher
from common.settings import Settings
from producers.parse import ParsedEmail

SUBMIT_LUA = """
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3])
if fresh then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local schedule = false
if fresh or redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[5], ARGV[1])
  schedule = redis.call('SET', KEYS[3], ARGV[6] .. ':' .. ARGV[5], 'NX', 'EX', ARGV[4])
end
local status = 'duplicate'
if fresh then status = 'enqueued' end
if schedule then return {status, 1} end
return {status, 0}
"""


#: How long a thread may be held for a batch (results come within 24 h).
BATCH_HOLD_SECONDS = 25 * 3600


@dataclass(frozen=True)
class Submitted:
    status: str  # "enqueued" or "duplicate"
    thread_id: str
    message_id: str
    scheduled: bool


def thread_id_for(message_id: str) -> str:
    """A new thread is named after its first email's Message-ID (hashed: ids hold any bytes)."""
    return "t" + hashlib.sha256(message_id.encode()).hexdigest()[:20]


class Submitter:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        publisher: Publisher,
        hold_for_batch: bool = False,
    ) -> None:
        """With `hold_for_batch`, a new thread is held for the Batches API (flag `batch:<t>`)
        instead of getting a drain task; `Submitted.scheduled` then means "held"."""
        self._settings = settings
        self._redis = client
        self._publisher = publisher
        self._submit = client.register_script(SUBMIT_LUA)
        self._hold = hold_for_batch

    def resolve_thread(self, email: ParsedEmail) -> str:
        """In-Reply-To, then References newest first, against the index; else a new thread.

        The index holds every Message-ID seen, customers' and ours (the worker records the
        Message-ID of each clarification it sends), so an answer to our question joins its
        thread. The subject is never used: "Re: Help" says nothing about which thread.
        """
        candidates = [email.in_reply_to] if email.in_reply_to else []
        candidates += [ref for ref in reversed(email.references) if ref not in candidates]
        if candidates:
            found = self._redis.mget([keys.message_index(c) for c in candidates])
            for thread_id in found:
                if thread_id:
                    return thread_id.decode() if isinstance(thread_id, bytes) else str(thread_id)
        return thread_id_for(email.message_id)

    def submit(self, email: ParsedEmail) -> Submitted:
        thread_id = self.resolve_thread(email)
        payload = EmailPayload(
            message_id=email.message_id,
            thread_id=thread_id,
            from_addr=email.from_addr,
            reply_to=email.reply_to,
            subject=email.subject,
            date=email.date,
            text=email.text,
            in_reply_to=email.in_reply_to,
            references=email.references,
            to=email.to,
            attachments=email.attachments,
            flags=email.flags,
            received_at=time.time(),
        )
        status, scheduled = self._submit(
            keys=[
                keys.message_index(email.message_id),
                keys.thread_inbox(thread_id),
                keys.thread_scheduled(thread_id),
                keys.PENDING,
            ],
            args=[
                thread_id,
                payload.model_dump_json(),
                self._settings.thread_ttl_seconds,
                BATCH_HOLD_SECONDS if self._hold else self._settings.visibility_timeout_seconds,
                f"{time.time():.3f}",
                "batch" if self._hold else "queued",
            ],
        )
        if scheduled and not self._hold:
            self._publish_drain(thread_id)
        status = status.decode() if isinstance(status, bytes) else str(status)
        return Submitted(status, thread_id, email.message_id, bool(scheduled))

    def _publish_drain(self, thread_id: str) -> None:
        try:
            self._publisher.drain(thread_id)
        except Exception:
            # Free the flag so the next submission (or a re-run) schedules the thread again.
            self._redis.delete(keys.thread_scheduled(thread_id))
            raise
