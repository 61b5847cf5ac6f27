"""Driving many `CaseRun`s: live through a pool of threads, or through the Message Batches API.

Live: `concurrency` daemon threads take cases from a queue; each drives its case call by call
through `ClaudeClient.call` (the worker's one SDK caller: its timeout, its SDK retries, its
`claude.call` log line). A call that fails with `RetryLater` is retried with the worker's backoff
(`compute_backoff`) up to `TRIAGE_TASK_MAX_ATTEMPTS` attempts, as the task would be; then, or on a
`Permanent` error, the case fails (a failure, never skipped). Ctrl-C stops taking cases and stops
waiting: the cases finished so far are returned (calls in flight are abandoned with their
daemon threads).

Batch: round by round. Every unfinished case's next request goes into one batch (split at the
API's limits); when the batch ends, each result advances its case; cases that asked a question
(and have an answer scripted) or were truncated go into the next round. Ctrl-C cancels the batch
being waited for.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.errors import RetryLater, TriageError
from common.settings import Settings
from evaluation.case_run import CaseRun
from worker.decide.batch import MAX_BYTES, MAX_REQUESTS
from worker.decide.claude import BatchClient, CallResult
from worker.recovery.backoff import compute_backoff
from worker.state.usage import Usage

Call = Callable[[dict[str, Any], Usage], CallResult]
OnFinish = Callable[[CaseRun], None]
OnWait = Callable[[str, dict[str, int]], None]

#: How often the main thread wakes to notice Ctrl-C and finished cases.
TICK_SECONDS = 0.1


@dataclass(frozen=True)
class Retry:
    """The worker's retry policy for transient API errors (from settings)."""

    attempts: int
    base: float
    cap: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Retry:
        return cls(
            settings.task_max_attempts,
            settings.retry_backoff_seconds,
            settings.retry_backoff_max_seconds,
        )


def drive(run: CaseRun, call: Call, retry: Retry, stop: threading.Event) -> None:
    """Run one case to its end (or until `stop`): every call it needs, retries included."""
    attempt = 0
    while not stop.is_set():
        request = run.request()
        if request is None:
            return
        try:
            result = call(request, run.usage)
        except RetryLater as exc:
            attempt += 1
            if attempt >= retry.attempts:
                run.fail(exc)
                return
            delay = compute_backoff(
                attempt, base=retry.base, cap=retry.cap, retry_after=exc.retry_after
            )
            stop.wait(delay)
            continue
        except TriageError as exc:
            run.fail(exc)
            return
        attempt = 0
        run.take(result)


def run_live(
    runs: Sequence[CaseRun], call: Call, retry: Retry, concurrency: int, on_finish: OnFinish
) -> bool:
    """Every case through `call`; returns True when interrupted (Ctrl-C)."""
    todo: queue.Queue[CaseRun] = queue.Queue()
    for run in runs:
        todo.put(run)
    finished: queue.Queue[CaseRun] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                run = todo.get_nowait()
            except queue.Empty:
                return
            try:
                drive(run, call, retry, stop)
            except Exception as exc:  # a bug must cost one case, not the run
                run.fail(TriageError(f"{type(exc).__name__}: {exc}", reason="internal"))
            if run.done:
                finished.put(run)

    threads = [
        threading.Thread(target=work, name=f"eval-{n}", daemon=True)
        for n in range(max(1, min(concurrency, len(runs))))
    ]
    for thread in threads:
        thread.start()
    count = 0
    try:
        while count < len(runs):
            try:
                run = finished.get(timeout=TICK_SECONDS)
            except queue.Empty:
                if not any(thread.is_alive() for thread in threads) and finished.empty():
                    return False  # nothing left that could finish
                continue
            count += 1
            on_finish(run)
    except KeyboardInterrupt:
        stop.set()
        return True
    return False


def chunks(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Batches within the API's limits (requests and bytes)."""
    out: list[list[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item).encode())
        if chunk and (len(chunk) >= MAX_REQUESTS or size + item_size > MAX_BYTES):
            out.append(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        out.append(chunk)
    return out


def run_batch(
    runs: Sequence[CaseRun],
    batches: BatchClient,
    poll_seconds: float,
    on_finish: OnFinish,
    on_wait: OnWait,
) -> bool:
    """Every case through the Message Batches API, round by round; True when interrupted."""
    active: list[str] = []
    try:
        while True:
            pending: list[dict[str, Any]] = []
            for index, run in enumerate(runs):
                request = run.request()
                if request is not None:
                    pending.append({"custom_id": f"case-{index}", "params": request})
            if not pending:
                return False
            for chunk in chunks(pending):
                active[:] = [batches.create(chunk)]
                _wait(batches, active[0], poll_seconds, on_wait)
                _apply(runs, batches, active[0], chunk, on_finish)
                active.clear()
    except KeyboardInterrupt:
        for batch_id in active:
            with contextlib.suppress(TriageError):  # it ends by itself; its results go unused
                batches.cancel(batch_id)
        return True


def _wait(batches: BatchClient, batch_id: str, poll_seconds: float, on_wait: OnWait) -> None:
    while True:
        status, counts = batches.status(batch_id)
        on_wait(batch_id, counts)
        if status == "ended":
            return
        time.sleep(poll_seconds)


def _apply(
    runs: Sequence[CaseRun],
    batches: BatchClient,
    batch_id: str,
    chunk: list[dict[str, Any]],
    on_finish: OnFinish,
) -> None:
    asked = {item["custom_id"] for item in chunk}
    seen: set[str] = set()
    for item in batches.results(batch_id):
        if item.custom_id not in asked or item.custom_id in seen:
            continue
        seen.add(item.custom_id)
        run = runs[int(item.custom_id.removeprefix("case-"))]
        if item.result is not None:
            run.take(item.result)
        else:
            run.fail_batch(item.kind, item.error)
        if run.done:
            on_finish(run)
    for custom_id in sorted(asked - seen):
        run = runs[int(custom_id.removeprefix("case-"))]
        run.fail_batch("missing", "the batch returned no result for this request")
        on_finish(run)
