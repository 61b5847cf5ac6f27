"""Backlog mode: first-turn triage of held threads through the Message Batches API (half price).

Producers stage the backlog's emails into their threads' inboxes with the thread held for a batch
(flag `batch:<time>`, no drain task). `submit` builds each held thread's first-turn request with
the worker's own `build_request`, splits them into batches within the API's limits, and records
each batch (id, and per thread the version and email ids it was built from) in Redis, so an
interrupted run resumes. `finish` waits for a batch to end and applies each result through the
worker's fenced commit (same events, dedupe and reply tasks); anything that cannot be used there
(errored, expired, canceled, truncated, or a thread that changed meanwhile) is handed to the
normal queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog

from common import keys
from common.connections import as_text
from common.publish import TaskPublisher
from worker.decide.claude import BatchClient
from worker.decide.drain import DrainStep
from worker.decide.outcome import BatchApplied, Outcome
from worker.state import scripts

log = structlog.get_logger("worker.decide.batch")

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024


@dataclass
class BacklogReport:
    batches: list[str] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)
    requeued: int = 0

    def count(self, outcome: Outcome) -> None:
        self.applied[outcome.kind] = self.applied.get(outcome.kind, 0) + 1


class BacklogRunner:
    def __init__(
        self,
        client: redis.Redis,
        batches: BatchClient,
        drain_step: DrainStep,
        publisher: TaskPublisher,
        flag_seconds: int,
        max_requests: int = MAX_REQUESTS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._redis = client
        self._batches = batches
        self._drain_step = drain_step
        self._publisher = publisher
        self._flag_seconds = flag_seconds
        self._max_requests = min(max_requests, MAX_REQUESTS)
        self._max_bytes = min(max_bytes, MAX_BYTES)
        self._requeue_script = client.register_script(scripts.load("release_batch_hold"))

    def active(self) -> list[str]:
        """Batches submitted but not yet applied (a previous run was interrupted)."""
        return sorted(as_text(b) for b in self._redis.smembers(keys.BACKLOG_ACTIVE))

    def submit(self, thread_ids: Iterable[str]) -> list[str]:
        """Create batches for the held threads; threads that are not clean first turns go to the
        queue at once."""
        created: list[str] = []
        chunk: list[dict[str, Any]] = []
        plan: dict[str, str] = {}
        size = 0
        for thread_id in thread_ids:
            prepared = self._drain_step.first_turn_request(thread_id)
            if prepared is None:
                self.requeue(thread_id)
                continue
            request, version, email_ids = prepared
            item = {"custom_id": thread_id, "params": request}
            item_size = len(json.dumps(item).encode())
            if chunk and (len(chunk) >= self._max_requests or size + item_size > self._max_bytes):
                created.append(self._create(chunk, plan))
                chunk, plan, size = [], {}, 0
            chunk.append(item)
            plan[thread_id] = json.dumps({"version": version, "email_ids": email_ids})
            size += item_size
        if chunk:
            created.append(self._create(chunk, plan))
        return created

    def _create(self, chunk: list[dict[str, Any]], plan: dict[str, str]) -> str:
        batch_id = self._batches.create(chunk)
        pipe = self._redis.pipeline()
        pipe.hset(keys.backlog_batch(batch_id), mapping=plan)  # type: ignore[arg-type]
        pipe.sadd(keys.BACKLOG_ACTIVE, batch_id)
        pipe.execute()
        return batch_id

    def wait(
        self, batch_id: str, poll_seconds: float, on_progress: Callable[[dict[str, int]], None]
    ) -> None:
        while True:
            status, counts = self._batches.status(batch_id)
            on_progress(counts)
            if status == "ended":
                return
            time.sleep(poll_seconds)

    def finish(self, batch_id: str, report: BacklogReport) -> None:
        """Apply an ended batch's results; what cannot be applied goes to the queue."""
        plan_raw: Any = self._redis.hgetall(keys.backlog_batch(batch_id))
        plan = {as_text(k): json.loads(v) for k, v in plan_raw.items()}
        seen: set[str] = set()
        for item in self._batches.results(batch_id):
            seen.add(item.custom_id)
            based_on = plan.get(item.custom_id)
            if based_on is None:
                continue
            applied = BatchApplied(None, True)
            if item.result is not None:
                applied = self._drain_step.apply_batch_result(
                    item.custom_id, based_on["version"], based_on["email_ids"], item.result
                )
            outcome = applied.outcome
            if outcome is not None:
                report.count(outcome)
            else:
                report.requeued += 1
                log.info("backlog.requeued", thread_id=item.custom_id, result=item.kind)
            if outcome is None or applied.more_waiting:
                self.requeue(item.custom_id)
        for thread_id in set(plan) - seen:  # no result at all: let the queue decide
            report.requeued += 1
            self.requeue(thread_id)
        pipe = self._redis.pipeline()
        pipe.delete(keys.backlog_batch(batch_id))
        pipe.srem(keys.BACKLOG_ACTIVE, batch_id)
        pipe.execute()
        log.info("backlog.batch_applied", batch_id=batch_id, results=len(seen))

    def requeue(self, thread_id: str) -> None:
        """Release a held thread to the normal queue path."""
        self._requeue_script(
            keys=[keys.thread_scheduled(thread_id)], args=[f"{time.time():.3f}", self._flag_seconds]
        )
        self._publisher.drain(thread_id)
