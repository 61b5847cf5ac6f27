"""Re-drives work that a crash or a lost message left behind.

A thread in each worker process keeps the worker's heartbeat (a key with a
`TRIAGE_WORKER_HEARTBEAT_SECONDS` TTL, refreshed every third of it) and, every
`TRIAGE_SWEEP_INTERVAL_SECONDS`:

- re-publishes replies decided but never sent (`triage:replies:pending`, older than
  `TRIAGE_REPLY_STALE_SECONDS`): a crash between the commit and the send, a lost reply task;
- trims the streams and indexes by age and packs threads idle for `TRIAGE_COMPACT_AFTER_SECONDS`
  (`worker.state.retention`, `worker.state.compaction`);
- re-schedules threads with unprocessed email whose "scheduled" flag is missing or stale (rules in
  `worker.recovery.flags`): a drainer whose worker's heartbeat stopped (killed, crashed), or a
  drain task that was purged or never reached the broker (a `queued:` flag older than
  `TRIAGE_QUEUED_GRACE_SECONDS` while the drain queue is empty), so interrupted work resumes
  within seconds instead of the broker's visibility timeout.

Re-publishing is always safe: commits are fenced and idempotent, delivery checks the sent-record.
Several workers sweeping at once are serialised per thread by a compare-and-set on the flag.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from common import keys
from common.connections import as_text
from common.contract import ReplyTask
from common.deadletters import DeadLetterStream
from common.publish import TaskPublisher
from worker.recovery.flags import StaleAfter, is_stale, parse_flag
from worker.state import scripts
from worker.state.compaction import Compactor
from worker.state.retention import Retention, trim

log = structlog.get_logger("worker.recovery.sweeper")


@dataclass(frozen=True)
class SweepLimits:
    interval: float
    reply_stale: float
    stale_after: StaleAfter
    flag_seconds: int
    heartbeat_seconds: float
    retention: Retention
    compact_after: float  # seconds idle before a thread is packed; 0: never
    batch: int = 200


def stale_replies(
    client: redis.Redis, older_than: float, now: float | None = None
) -> list[ReplyTask]:
    """Pending replies decided before `now - older_than`.

    A record that does not parse is dead-lettered by its reply id and leaves the pending set,
    rather than being skipped on every sweep. (A reply that fails to render or send is
    dead-lettered by the reply task and leaves the pending set there: it is never re-published.)
    """
    cutoff = (now if now is not None else time.time()) - older_than
    stale = []
    pending: dict[Any, Any] = client.hgetall(keys.REPLIES_PENDING)
    for raw_id, raw in pending.items():
        try:
            reply = ReplyTask.model_validate_json(raw)
        except ValidationError:
            reply_id = as_text(raw_id)
            log.error("sweeper.invalid_pending_reply", reply_id=reply_id)
            DeadLetterStream(client).add(
                "invalid_pending_reply",
                "pending reply record does not parse",
                {"reply_id": reply_id},
            )
            client.hdel(keys.REPLIES_PENDING, raw_id)
            continue
        if reply.decided_at < cutoff:
            stale.append(reply)
    return stale


class Sweeper(threading.Thread):
    """A daemon thread in each worker process; stops with `stop()` at worker shutdown."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        broker: Callable[[], redis.Redis],
        publisher: TaskPublisher,
        limits: SweepLimits,
        worker_id: str,
        drain_queue: str,
    ) -> None:
        super().__init__(name="triage-sweeper", daemon=True)
        self._client = client
        self._broker = broker
        self._publisher = publisher
        self._limits = limits
        self._worker_id = worker_id
        self._drain_queue = drain_queue
        self._stopped = threading.Event()

    def beat(self) -> None:
        """This worker is alive: its running flags stand for live work."""
        ttl_ms = int(self._limits.heartbeat_seconds * 1000)
        self._client().set(keys.worker_alive(self._worker_id), f"{time.time():.3f}", px=ttl_ms)

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
        after = self._limits.stale_after
        youngest = min(
            after.queued_grace,
            after.queued_stale,
            after.drain_stale,
            self._limits.heartbeat_seconds,
        )
        waiting = [
            as_text(raw_id)
            for raw_id in client.zrangebyscore(
                keys.PENDING, "-inf", now - youngest, start=0, num=self._limits.batch
            )
        ]
        if not waiting:
            return 0
        raw_flags = client.mget([keys.thread_scheduled(t) for t in waiting])
        flags = [parse_flag(as_text(raw) if raw is not None else "") for raw in raw_flags]
        workers = sorted({flag.worker for flag in flags if flag.state == "running" and flag.worker})
        alive = dict(
            zip(workers, client.mget([keys.worker_alive(w) for w in workers]), strict=True)
        )
        queue_empty = self._broker().llen(self._drain_queue) == 0
        rescheduled = 0
        for thread_id, raw_flag, flag in zip(waiting, raw_flags, flags, strict=True):
            worker_alive = alive.get(flag.worker) is not None if flag.worker else None
            if not is_stale(flag, now, after, worker_alive=worker_alive, queue_empty=queue_empty):
                continue
            flag_key = keys.thread_scheduled(thread_id)
            seen = as_text(raw_flag) if raw_flag is not None else ""
            if not client.llen(keys.thread_inbox(thread_id)):
                client.zrem(keys.PENDING, thread_id)
                continue
            if claim(keys=[flag_key], args=[seen, f"{now:.3f}", self._limits.flag_seconds]):
                self._publisher.drain(thread_id)
                rescheduled += 1
                log.warning(
                    "sweeper.thread_rescheduled", thread_id=thread_id, stale_flag=seen or None
                )
        return rescheduled

    def maintain(self) -> None:
        """Memory: trim streams and indexes by age, pack threads that have been idle long."""
        client = self._client()
        trim(client, self._limits.retention, time.time())
        if self._limits.compact_after > 0:
            Compactor(client).compact_idle(self._limits.compact_after, self._limits.batch)

    def run(self) -> None:
        tick = min(self._limits.interval, self._limits.heartbeat_seconds / 3)
        next_sweep = time.monotonic() + self._limits.interval
        while True:
            try:
                self.beat()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self._limits.interval
                    self.sweep_replies()
                    self.sweep_threads()
                    self.maintain()
            except (redis.RedisError, OSError) as exc:
                log.warning("sweeper.error", error=str(exc))
            if self._stopped.wait(tick):
                return

    def stop(self) -> None:
        """Stop, and drop the heartbeat so other workers take over this one's threads at once."""
        self._stopped.set()
        with contextlib.suppress(redis.RedisError, OSError):
            self._client().delete(keys.worker_alive(self._worker_id))
