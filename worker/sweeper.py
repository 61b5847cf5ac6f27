"""Re-drives work that a crash left behind: replies decided but never sent.

A worker can die after committing a clarification and before its reply task is published or
finished. The commit left the reply in `triage:replies:pending`; every
`TRIAGE_SWEEP_INTERVAL_SECONDS` each worker re-publishes those older than
`TRIAGE_REPLY_STALE_SECONDS`. Re-publishing is safe: delivery checks the sent-record first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
import structlog
from pydantic import ValidationError

from worker import keys
from worker.contract import ReplyTask

log = structlog.get_logger("worker.sweeper")


def stale_replies(
    client: redis.Redis, older_than: float, now: float | None = None
) -> list[ReplyTask]:
    """Pending replies decided before `now - older_than` (malformed entries are skipped)."""
    cutoff = (now if now is not None else time.time()) - older_than
    stale = []
    for raw in client.hvals(keys.REPLIES_PENDING):
        try:
            reply = ReplyTask.model_validate_json(raw)
        except ValidationError:
            log.error("sweeper.invalid_pending_reply")
            continue
        if reply.decided_at < cutoff:
            stale.append(reply)
    return stale


class Sweeper(threading.Thread):
    """A daemon thread in each worker process; stops with `stop()` at worker shutdown."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        publish_reply: Callable[[ReplyTask], None],
        interval: float,
        stale_after: float,
    ) -> None:
        super().__init__(name="triage-sweeper", daemon=True)
        self._client = client
        self._publish = publish_reply
        self._interval = interval
        self._stale_after = stale_after
        self._stopped = threading.Event()

    def sweep_once(self) -> int:
        replies = stale_replies(self._client(), self._stale_after)
        for reply in replies:
            self._publish(reply)
            log.warning(
                "sweeper.reply_republished", thread_id=reply.thread_id, reply_id=reply.reply_id
            )
        return len(replies)

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.sweep_once()
            except (redis.RedisError, OSError) as exc:
                log.warning("sweeper.error", error=str(exc))

    def stop(self) -> None:
        self._stopped.set()
