"""The calls of a run: live under the fleet rate limiter, or through the Message Batches API.

Both read the plan in chunks (flat memory), skip what the run already decided, and record each
decision as soon as it is made (`RunStore.record`: once per item), so an interrupted run resumed
with `--resume` never pays again for an item it finished.

- Live: `concurrency` threads, each call through `ClaudeClient.call` (the worker's timeout, SDK
  retries and `claude.call` log line) after the fleet rate limiter (`TRIAGE_RATE_LIMIT_*`: a run
  shares the API's limits with the workers); a transient error is retried with the worker's
  backoff up to `TRIAGE_TASK_MAX_ATTEMPTS`, then the item is recorded as failed. Ctrl-C stops
  taking items and lets the calls in flight finish and be recorded (a second Ctrl-C abandons
  them: those few are paid again on resume).
- Batch: the pending items' requests in batches of at most `max_requests` (and the API's 256 MB),
  each batch id and what it holds recorded before it is waited for; results are applied as they
  come. A truncated, errored, expired or missing result is tried once more in the next round
  (a truncation with twice the budget), then recorded as failed. Ctrl-C stops waiting and leaves
  the batches to finish on the API's side: `--resume` collects their results.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from common import keys
from common.errors import RetryLater, TriageError
from evaluation.runner import Retry
from reprocess.plan import KIND_BACKLOG, applied_ids, backlog_emails
from worker.decide.batch import MAX_BYTES
from worker.decide.claude import BatchClient, BatchItem, CallResult
from worker.decide.ratelimit import RateLimiter, estimate_input_tokens
from worker.decide.rerun import (
    Deciding,
    RunSpec,
    Subject,
    backlog_subject,
    live_decision,
    thread_subject,
)
from worker.events import LiveDecision, RunDecision
from worker.recovery.backoff import compute_backoff
from worker.state.compaction import Compactor
from worker.state.runs import RunStore
from worker.state.store import ThreadStore
from worker.state.usage import Usage

log = structlog.get_logger("reprocess.execute")

Call = Callable[[dict[str, Any], Usage], CallResult]
OnDecided = Callable[[RunDecision], None]
OnWait = Callable[[str, dict[str, int]], None]

#: Tries of one item through batches (the first, and one more after a truncation or an error).
BATCH_TRIES = 2
#: A run's batches are kept smaller than the API allows: a batch's body is built in memory.
DEFAULT_BATCH_REQUESTS = 2_000


@dataclass(frozen=True)
class Pending:
    """An item to decide, with its plan and (None: nothing to decide any more) its subject."""

    item: str
    plan: dict[str, Any]
    subject: Subject | None


class Executor:
    def __init__(
        self,
        name: str,
        runs: RunStore,
        threads: ThreadStore,
        client: redis.Redis,
        spec: RunSpec,
        ledger_label: str,
    ) -> None:
        self.name = name
        self._runs = runs
        self._threads = threads
        self._redis = client
        self._spec = spec
        self._label = ledger_label
        self._compactor = Compactor(client)

    # --- reading the plan --------------------------------------------------------------------

    def remaining(self) -> int:
        """Items not decided yet (about: a plan being written moves it)."""
        return max(0, self._runs.todo_count(self.name) - self._runs.decision_count(self.name))

    def pending(self, in_batches: set[str] | None = None) -> Iterator[list[Pending]]:
        """Undecided items in chunks, with their subjects; items in `in_batches` are left out."""
        for chunk in self._runs.scan_todo(self.name):
            decided = self._runs.decided(self.name, [item for item, _ in chunk])
            todo = [
                (item, plan)
                for (item, plan), done in zip(chunk, decided, strict=True)
                if not done and (in_batches is None or plan.get("batch") not in in_batches)
            ]
            if todo:
                yield self._subjects(todo)

    def _subjects(self, todo: list[tuple[str, dict[str, Any]]]) -> list[Pending]:
        settings = self._spec.settings
        backlog = [item for item, plan in todo if plan.get("kind") == KIND_BACKLOG]
        stored = [item for item, plan in todo if plan.get("kind") != KIND_BACKLOG]
        payloads = dict(zip(backlog, self._runs.inputs(self.name, backlog), strict=True))
        ids = dict(zip(stored, applied_ids(self._redis, self._compactor, stored), strict=True))
        result = []
        for item, plan in todo:
            snapshot = self._threads.peek(item)
            subject: Subject | None
            if plan.get("kind") == KIND_BACKLOG:
                emails = payloads.get(item)
                live = live_decision(snapshot)
                subject = (
                    None
                    if not emails
                    else backlog_subject(item, backlog_emails(emails), settings, live)
                )
            else:
                subject = thread_subject(snapshot, ids.get(item, []), settings)
            result.append(Pending(item, plan, subject))
        return result

    def _deciding(self, pending: Pending, subject: Subject, batch: bool) -> Deciding:
        prior = pending.plan.get("prior") or {}
        return Deciding(
            self.name,
            self._spec,
            subject,
            batch=batch,
            max_tokens=pending.plan.get("max_tokens"),
            prior=Usage.from_mapping(prior.get("usage") or {}),
            prior_calls=int(prior.get("calls") or 0),
            prior_cost=int(prior.get("cost") or 0),
        )

    def _gone(self, pending: Pending) -> RunDecision:
        """An item with nothing left to decide on (its thread expired): recorded as failed."""
        subject = Subject(pending.item, [], [], None, None)
        return Deciding(self.name, self._spec, subject).fail("gone: the thread has expired")

    # --- recording ---------------------------------------------------------------------------

    def finish(self, deciding: Deciding, decision: RunDecision | None) -> bool:
        """Record the decision (once) with the calls it made, in one step; True when it was
        recorded (a killed run has paid for nothing it did not record)."""
        charges = [(c.model, c.usage, c.counters) for c in deciding.charges]
        deciding.charges = []
        if decision is None:
            self._runs.charge(self.name, charges, self._label)
            return False
        return self._runs.record(self.name, decision, charges, self._label)

    # --- live --------------------------------------------------------------------------------

    def run_live(
        self,
        call: Call,
        limiter: RateLimiter,
        retry: Retry,
        concurrency: int,
        on_decided: OnDecided,
    ) -> bool:
        """Every pending item through `call`; True when interrupted (Ctrl-C)."""
        stop = threading.Event()
        slots = threading.BoundedSemaphore(concurrency * 2)
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"reprocess-{self.name}")
        futures: set[Future[None]] = set()

        def work(pending: Pending) -> None:
            try:
                if pending.subject is None:
                    gone = self._gone(pending)
                    if self._runs.record(self.name, gone):
                        on_decided(gone)
                    return
                deciding = self._deciding(pending, pending.subject, batch=False)
                decision = drive(deciding, call, limiter, retry, stop)
                if self.finish(deciding, decision) and decision is not None:
                    on_decided(decision)
            except Exception as exc:  # a bug costs one item, not the run
                log.exception("reprocess.error", item=pending.item, error=str(exc))
            finally:
                slots.release()

        try:
            for chunk in self.pending():
                for pending in chunk:
                    while not slots.acquire(timeout=0.2):
                        pass
                    future = pool.submit(work, pending)
                    futures.add(future)
                    future.add_done_callback(futures.discard)
            pool.shutdown(wait=True)
            return False
        except KeyboardInterrupt:
            stop.set()
            log.warning("reprocess.interrupted", in_flight=len(futures))
            pool.shutdown(wait=True, cancel_futures=True)  # a second Ctrl-C abandons them
            return True

    # --- batch -------------------------------------------------------------------------------

    def run_batch(
        self,
        batches: BatchClient,
        poll_seconds: float,
        max_requests: int,
        on_decided: OnDecided,
        on_wait: OnWait,
        on_submit: Callable[[str, int], None],
    ) -> bool:
        """Every pending item through Message Batches, round by round; True when interrupted
        (the batches go on; `--resume` collects them)."""
        try:
            waiting = self._runs.batch_ids(self.name)  # submitted before an interruption
            while True:
                for batch_id in waiting:
                    self._wait(batches, batch_id, poll_seconds, on_wait)
                    self._apply(
                        batches, batch_id, self._runs.batch_plan(self.name, batch_id), on_decided
                    )
                waiting = self._submit(batches, max_requests, on_submit)
                if not waiting:
                    return False
        except KeyboardInterrupt:
            return True

    def _submit(
        self, batches: BatchClient, max_requests: int, on_submit: Callable[[str, int], None]
    ) -> list[str]:
        """Every pending item into batches, each recorded (its plan in Redis, not kept here:
        flat memory) before the next is built; returns their ids."""
        active = set(self._runs.batch_ids(self.name))
        submitted: list[str] = []
        requests: list[dict[str, Any]] = []
        plan: dict[str, dict[str, Any]] = {}
        size = 0
        shared: dict[str, Any] = {}

        def flush() -> None:
            nonlocal requests, plan, size
            if requests:
                batch_id = batches.create(requests)
                self._runs.add_batch(self.name, batch_id, plan)
                self._mark(plan, batch_id)
                on_submit(batch_id, len(requests))
                submitted.append(batch_id)
            requests, plan, size = [], {}, 0

        for chunk in self.pending(active):
            for pending in chunk:
                if pending.subject is None:
                    decision = self._gone(pending)
                    self._runs.record(self.name, decision)
                    continue
                deciding = self._deciding(pending, pending.subject, batch=True)
                params = _shared(deciding.request(), shared)
                item_size = len(json.dumps(params).encode()) + 64
                if requests and (len(requests) >= max_requests or size + item_size > MAX_BYTES):
                    flush()
                custom_id = f"r{len(requests)}"  # the item's id may not be a valid custom_id
                requests.append({"custom_id": custom_id, "params": params})
                size += item_size
                subject = pending.subject
                plan[custom_id] = {
                    "item": pending.item,
                    "live": None if subject.live is None else subject.live.model_dump(mode="json"),
                    "email_ids": subject.email_ids,
                    "no_question_reason": subject.no_question_reason,
                    "max_tokens": deciding.max_tokens,
                    "tries": int(pending.plan.get("tries") or 0),
                    "prior": pending.plan.get("prior") or {},
                }
        flush()
        return submitted

    def _mark(self, plan: dict[str, dict[str, Any]], batch_id: str) -> None:
        """Note in each item's plan the batch it is in (so a resumed run does not send it
        again while the batch is pending)."""
        todo = self._todo([entry["item"] for entry in plan.values()])
        for current in todo.values():
            current["batch"] = batch_id
        self._runs.add_todo(self.name, todo)

    def _todo(self, items: list[str]) -> dict[str, dict[str, Any]]:
        raw: list[Any] = self._redis.hmget(keys.run_todo(self.name), items) if items else []
        return {item: json.loads(value) for item, value in zip(items, raw, strict=True) if value}

    def _wait(
        self, batches: BatchClient, batch_id: str, poll_seconds: float, on_wait: OnWait
    ) -> None:
        while True:
            status, counts = batches.status(batch_id)
            on_wait(batch_id, counts)
            if status == "ended":
                return
            time.sleep(poll_seconds)

    def _apply(
        self,
        batches: BatchClient,
        batch_id: str,
        plan: dict[str, dict[str, Any]],
        on_decided: OnDecided,
    ) -> None:
        seen: set[str] = set()
        retry: dict[str, dict[str, Any]] = {}
        for result in batches.results(batch_id):
            entry = plan.get(result.custom_id)
            if entry is None or result.custom_id in seen:
                continue
            seen.add(result.custom_id)
            self._take(result, entry, retry, on_decided)
        for custom_id in sorted(set(plan) - seen):
            missing = BatchItem(custom_id, "missing", None, "no result for this request")
            self._take(missing, plan[custom_id], retry, on_decided)
        if retry:
            todo = self._todo(list(retry))
            for item, update in retry.items():
                todo[item] = {**todo.get(item, {}), **update}
                todo[item].pop("batch", None)
            self._runs.add_todo(self.name, todo)
        self._runs.end_batch(self.name, batch_id)
        log.info("reprocess.batch_applied", batch_id=batch_id, results=len(seen))

    def _take(
        self,
        result: BatchItem,
        entry: dict[str, Any],
        retry: dict[str, dict[str, Any]],
        on_decided: OnDecided,
    ) -> None:
        item = entry["item"]
        # The baseline is the thread as it was when the request was built: `apply` is fenced by
        # its version, so a thread that got mail while the batch ran is never overwritten.
        live = None if entry.get("live") is None else LiveDecision.model_validate(entry["live"])
        subject = Subject(item, entry["email_ids"], [], entry["no_question_reason"], live)
        prior = entry.get("prior") or {}
        deciding = Deciding(
            self.name,
            self._spec,
            subject,
            batch=True,
            max_tokens=entry["max_tokens"],
            prior=Usage.from_mapping(prior.get("usage") or {}),
            prior_calls=int(prior.get("calls") or 0),
            prior_cost=int(prior.get("cost") or 0),
        )
        tries = int(entry.get("tries") or 0) + 1
        decision: RunDecision | None = None
        if result.result is not None:
            decision = deciding.take(result.result)
            error = "truncated: stop_reason max_tokens"
        else:
            error = f"batch_{result.kind}: {result.error}".rstrip(": ")
        if decision is None and tries >= BATCH_TRIES:
            decision = deciding.fail(error)
        if decision is None:
            retry[item] = {
                "tries": tries,
                "max_tokens": deciding.max_tokens,
                "prior": {
                    "usage": deciding.spent.as_dict(),
                    "calls": deciding.calls,
                    "cost": deciding.cost_micro_usd,
                },
            }
        if self.finish(deciding, decision) and decision is not None:
            on_decided(decision)


def _shared(request: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """The request with its system prompt and schema as objects shared by every request of the
    batch (they are the same for all): a batch's requests then hold little beyond their turns."""
    for key in ("system", "output_config"):
        value = request.get(key)
        if value is not None:
            marker = f"{key}:{json.dumps(value, sort_keys=True)}"
            request[key] = shared.setdefault(marker, value)
    return request


def drive(
    deciding: Deciding,
    call: Call,
    limiter: RateLimiter,
    retry: Retry,
    stop: threading.Event,
) -> RunDecision | None:
    """Every call one decision needs (None: stopped before it was made)."""
    attempt = 0
    while not stop.is_set():
        request = deciding.request()
        try:
            limiter.acquire(estimate_input_tokens(request))
            result = call(request, deciding.spent)
        except RetryLater as exc:
            attempt += 1
            if attempt >= retry.attempts:
                return deciding.fail(f"{exc.reason}: {exc}")
            delay = compute_backoff(
                attempt, base=retry.base, cap=retry.cap, retry_after=exc.retry_after
            )
            stop.wait(delay)
            continue
        except TriageError as exc:
            return deciding.fail(f"{exc.reason}: {exc}")
        attempt = 0
        decision = deciding.take(result)
        if decision is not None:
            return decision
    return None
