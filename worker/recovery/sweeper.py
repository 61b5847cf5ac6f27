"""Re-drives work that a crash or a lost message left behind.

Every `TRIAGE_SWEEP_INTERVAL_SECONDS`, a thread in each worker process:

- re-publishes replies decided but never sent (`triage:replies:pending`, older than
  `TRIAGE_REPLY_STALE_SECONDS`): a crash between the commit and the send, a lost reply task;
- re-schedules threads with unprocessed email whose "scheduled" flag is missing or stale: a
  drainer killed mid-call (`running:` flag older than `TRIAGE_DRAIN_STALE_SECONDS`, refreshed before
  every API call), or a drain task that never reached the broker (`queued:` flag older than
  `TRIAGE_QUEUED_STALE_SECONDS`), so interrupted work resumes without waiting for the broker's
  visibility timeout.

Re-publishing is always safe: commits are fenced and idempotent, delivery checks the sent-record.
Several workers sweeping at once are serialised per thread by a compare-and-set on the flag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
import structlog
from pydantic import ValidationError

from common import keys
from common.connections import as_text
from common.contract import ReplyTask
from common.publish import TaskPublisher
from worker.state import scripts

log = structlog.get_logger("worker.recovery.sweeper")

BATCH_STALE_SECONDS = 25 * 3600.0


@dataclass(frozen=True)
class SweepLimits:
    interval: float
    reply_stale: float
    drain_stale: float
    queued_stale: float
    flag_seconds: int
    batch: int = 200


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


def flag_is_stale(flag: str, now: float, limits: SweepLimits) -> bool:
    """Whether a thread's scheduled flag no longer stands for live work (pure)."""
    if not flag:
        return True
    state, _, stamp = flag.partition(":")
    try:
        since = float(stamp)
    except ValueError:
        return True
    if state == "batch":  # held for a Message Batch: results come within 24 h
        allowed = BATCH_STALE_SECONDS
    else:
        allowed = limits.drain_stale if state == "running" else limits.queued_stale
    return now - since > allowed


class Sweeper(threading.Thread):
    """A daemon thread in each worker process; stops with `stop()` at worker shutdown."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        publisher: TaskPublisher,
        limits: SweepLimits,
    ) -> None:
        super().__init__(name="triage-sweeper", daemon=True)
        self._client = client
        self._publisher = publisher
        self._limits = limits
        self._stopped = threading.Event()

    def sweep_replies(self) -> int:
        replies = stale_replies(self._client(), self._limits.reply_stale)
        for reply in replies:
            self._publisher.reply(reply)
            log.warning(
                "sweeper.reply_republished", thread_id=reply.thread_id, reply_id=reply.reply_id
            )
        return len(replies)

    def sweep_threads(self) -> int:
        client = self._client()
        claim = client.register_script(scripts.load("claim_stale"))
        now = time.time()
        oldest = now - min(self._limits.drain_stale, self._limits.queued_stale)
        waiting = client.zrangebyscore(
            keys.PENDING, "-inf", oldest, start=0, num=self._limits.batch
        )
        rescheduled = 0
        for raw_id in waiting:
            thread_id = as_text(raw_id)
            flag_key = keys.thread_scheduled(thread_id)
            raw_flag = client.get(flag_key)
            flag = as_text(raw_flag) if raw_flag is not None else ""
            if not flag_is_stale(flag, now, self._limits):
                continue
            if not client.llen(keys.thread_inbox(thread_id)):
                client.zrem(keys.PENDING, thread_id)
                continue
            if claim(keys=[flag_key], args=[flag, f"{now:.3f}", self._limits.flag_seconds]):
                self._publisher.drain(thread_id)
                rescheduled += 1
                log.warning(
                    "sweeper.thread_rescheduled", thread_id=thread_id, stale_flag=flag or None
                )
        return rescheduled

    def run(self) -> None:
        while not self._stopped.wait(self._limits.interval):
            try:
                self.sweep_replies()
                self.sweep_threads()
            except (redis.RedisError, OSError) as exc:
                log.warning("sweeper.error", error=str(exc))

    def stop(self) -> None:
        self._stopped.set()
