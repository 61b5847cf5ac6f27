"""Task bodies, kept thin: validate the payload, bind log context, call the core, map errors.

Every failure ends in one of three places: done, retried with backoff (`RetryLater`, Redis or
unexpected errors, bounded by `TRIAGE_TASK_MAX_ATTEMPTS`), or the dead-letter stream. A task whose
work went to the dead-letter stream then raises `DeadLettered`, so Celery's tools (Flower, `celery
events`) show it as failed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

import redis
import structlog
from pydantic import ValidationError

from common.contract import TASK_DRAIN, TASK_SEND_REPLY, ReplyTask
from common.errors import InvalidPayload, Permanent, RetryLater
from common.logging import task_context
from worker.decide.outcome import Outcome, OutcomeKind
from worker.observe import metrics
from worker.recovery.backoff import compute_backoff
from worker.reply.failed import FailedReplies, has_failed
from worker.reply.render import render_reply
from worker.runtime import Runtime

log = structlog.get_logger("worker.tasks")

THREAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


class DeadLettered(Exception):
    """The task's work is in the dead-letter stream, already committed: the task ends FAILURE.

    Raised to Celery only, after the dead letter is written, so Flower and `celery events` show
    the task as failed (`task-failed`, `DeadLettered('dead_lettered:api_404 ...')`). It is in the
    tasks' `throws` (Celery logs it at INFO without a traceback) and it never causes a retry or a
    redelivery: nothing calls `retry` for it, and a task that raises is acked
    (`task_acks_on_failure_or_timeout`; `task_reject_on_worker_lost` is for a dead worker only).
    The message carries reasons, never email content or addresses.
    """

    def __init__(self, *reasons: str) -> None:
        super().__init__(f"{', '.join(reasons)} (see `triage dlq list`)")


def thread_id_from(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The drain task's one argument, checked: a malformed task is dead-lettered."""
    values = list(args) + list(kwargs.values())
    if len(values) != 1 or set(kwargs) - {"thread_id"}:
        raise InvalidPayload(f"{TASK_DRAIN} takes exactly one argument thread_id, got {values!r}")
    thread_id = values[0]
    if not isinstance(thread_id, str) or not THREAD_ID.match(thread_id):
        raise InvalidPayload(f"{TASK_DRAIN}: invalid thread_id {thread_id!r}")
    return thread_id


def reply_from(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ReplyTask:
    """The reply task's one argument, checked; the error names fields, never their values (a
    reply carries a customer's address, subject and question)."""
    values = list(args) + list(kwargs.values())
    if len(values) != 1:
        raise InvalidPayload(
            f"{TASK_SEND_REPLY} takes exactly one argument reply, got {len(values)}"
        )
    try:
        return ReplyTask.model_validate(values[0])
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise InvalidPayload(f"{TASK_SEND_REPLY}: invalid fields {fields}") from None


def reply_reference_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a malformed reply task's dead letter keeps: its ids, if it has them."""
    values = list(args) + list(kwargs.values())
    first = values[0] if len(values) == 1 and isinstance(values[0], dict) else {}
    return {name: str(first[name]) for name in ("reply_id", "thread_id") if name in first}


def reject_task(
    runtime: Runtime,
    name: str,
    exc: InvalidPayload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """A malformed task is kept, not crashed on: dead-letter it with what it carried (a reply
    task: with its ids only)."""
    log.error("task.invalid_payload", error=str(exc))
    if name == TASK_SEND_REPLY:
        payload: dict[str, Any] = {"task": name, **reply_reference_of(args, kwargs)}
    else:
        payload = {"task": name, "args": repr(args), "kwargs": repr(kwargs)}
    runtime.resources.dead_letters.add(exc.reason, str(exc), payload)


def retry_or_give_up(
    task: Any, runtime: Runtime, exc: Exception, give_up: Callable[[str, str, int], object]
) -> NoReturn:
    """Raise Celery's Retry with a backoff countdown, or `give_up` once attempts are spent and
    raise `DeadLettered`."""
    settings = runtime.settings
    attempt = int(task.request.retries) + 1
    reason = exc.reason if isinstance(exc, RetryLater) else type(exc).__name__
    if attempt >= settings.task_max_attempts:
        log.error("task.gave_up", attempts=attempt, reason=reason, error=str(exc))
        give_up(reason, str(exc), attempt)
        raise DeadLettered(f"gave_up:{reason}") from None
    countdown = compute_backoff(
        attempt,
        base=settings.retry_backoff_seconds,
        cap=settings.retry_backoff_max_seconds,
        retry_after=exc.retry_after if isinstance(exc, RetryLater) else None,
        # A countdown longer than this would outlive the broker's visibility timeout.
        limit=settings.visibility_timeout_seconds - settings.task_time_limit_seconds - 1,
    )
    metrics.record_retry(task.name, reason)
    log.warning(
        "task.retry",
        attempt=attempt,
        reason=reason,
        countdown_s=round(countdown, 2),
        error=str(exc),
    )
    raise task.retry(countdown=countdown, exc=exc)


def drain_thread(
    task: Any, runtime: Runtime, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[str]:
    """The drain task: one string per committed outcome (Celery results are JSON); raises
    `DeadLettered` when its payload or the thread's pending emails were dead-lettered."""
    with task_context(task_id=task.request.id, task=TASK_DRAIN):
        try:
            thread_id = thread_id_from(args, kwargs)
        except InvalidPayload as exc:
            reject_task(runtime, TASK_DRAIN, exc, args, kwargs)
            raise DeadLettered(exc.reason) from None
        structlog.contextvars.bind_contextvars(thread_id=thread_id)
        try:
            resources = runtime.resources
            settings = runtime.settings
            begin = resources.store.begin_drain(thread_id, settings.visibility_timeout_seconds)
            if begin.attempts > settings.poison_max_attempts:
                died = begin.attempts - 1
                error = f"{died} drains in a row died before committing (poison email?)"
                resources.drain_step.dead_letter_pending(thread_id, "poison", error, died)
                raise DeadLettered(str(Outcome(OutcomeKind.DEAD_LETTERED, reason="poison")))
            results = resources.drain_step.drain(thread_id, begin.snapshot)
            outcomes = [str(o) for o in results]
            log.info("task.done", outcomes=outcomes)
            failed = [str(o) for o in results if o.kind is OutcomeKind.DEAD_LETTERED]
            if failed:
                raise DeadLettered(*failed)
            return outcomes
        except (RetryLater, redis.RedisError, OSError) as exc:
            # A drain that fails cleanly is bounded by the task's attempts, not counted as poison
            # (which is for drains that die without getting here).
            with contextlib.suppress(redis.RedisError, OSError):
                runtime.resources.store.mark(thread_id, drain_attempts="0")
            retry_or_give_up(
                task,
                runtime,
                exc,
                partial(runtime.resources.drain_step.dead_letter_pending, thread_id),
            )


def reply_failed(
    runtime: Runtime, reply: ReplyTask, reason: str, error: str, attempts: int
) -> None:
    """Dead-letter the reply by id with the reason, out of the pending set (the sweeper never
    re-publishes it), and mark the thread, for a human to see (`worker.reply.failed`)."""
    resources = runtime.resources
    failed = FailedReplies(
        resources.redis,
        resources.dead_letters,
        resources.store,
        runtime.settings.thread_ttl_seconds,
    )
    failed.dead_letter(reply, reason, error, attempts)
    log.error("reply.failed", reason=reason, error=error, attempts=attempts)


def send_reply(task: Any, runtime: Runtime, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """The reply task: render, deliver once. A reply that cannot be rendered or is refused for
    good is dead-lettered at once; transient failures (and unexpected errors) are retried within
    the attempt budget, then dead-lettered (the task then raises `DeadLettered`). Logs carry the
    reply id, not its content."""
    with task_context(task_id=task.request.id, task=TASK_SEND_REPLY):
        try:
            reply = reply_from(args, kwargs)
        except InvalidPayload as exc:
            reject_task(runtime, TASK_SEND_REPLY, exc, args, kwargs)
            raise DeadLettered(exc.reason) from None
        structlog.contextvars.bind_contextvars(thread_id=reply.thread_id, reply_id=reply.reply_id)
        if runtime.settings.log_addresses:
            structlog.contextvars.bind_contextvars(to=reply.to)
        attempts = int(task.request.retries) + 1
        try:
            resources = runtime.resources
            if has_failed(resources.redis, reply.reply_id):
                log.info("reply.already_failed")  # a copy re-published before it failed
                return False
            message = render_reply(
                reply, runtime.settings.support_address, resources.reply_template
            )
            return resources.transport.deliver(reply, message)
        except Permanent as exc:
            reply_failed(runtime, reply, exc.reason, str(exc), attempts)
            raise DeadLettered(exc.reason) from None
        except Exception as exc:  # transient, or a bug: bounded retries, then the DLQ
            retry_or_give_up(task, runtime, exc, partial(reply_failed, runtime, reply))
