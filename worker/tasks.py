"""Task bodies, kept thin: validate the payload, bind log context, call the core, map errors.

Every failure ends in one of three places: done, retried with backoff (`RetryLater`, Redis or
unexpected errors, bounded by `TRIAGE_TASK_MAX_ATTEMPTS`), or the dead-letter stream.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from common import keys
from common.contract import TASK_DRAIN, TASK_SEND_REPLY, ReplyTask
from common.errors import InvalidPayload, Permanent, RetryLater
from common.logging import task_context
from worker.decide.outcome import Outcome, OutcomeKind
from worker.observe import metrics
from worker.recovery.backoff import compute_backoff
from worker.reply.render import render_reply
from worker.runtime import Runtime

log = structlog.get_logger("worker.tasks")

THREAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


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
    values = list(args) + list(kwargs.values())
    if len(values) != 1:
        raise InvalidPayload(f"{TASK_SEND_REPLY} takes exactly one argument reply, got {values!r}")
    try:
        return ReplyTask.model_validate(values[0])
    except ValidationError as exc:
        raise InvalidPayload(f"{TASK_SEND_REPLY}: {exc}") from None


def reject_task(
    runtime: Runtime,
    name: str,
    exc: InvalidPayload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """A malformed task is kept, not crashed on: dead-letter it with what it carried."""
    log.error("task.invalid_payload", error=str(exc))
    payload = {"task": name, "args": repr(args), "kwargs": repr(kwargs)}
    runtime.resources.dead_letters.add(exc.reason, str(exc), payload)


def retry_or_give_up(
    task: Any, runtime: Runtime, exc: Exception, give_up: Callable[[str, str, int], object]
) -> None:
    """Raise Celery's Retry with a backoff countdown, or `give_up` once attempts are spent."""
    settings = runtime.settings
    attempt = int(task.request.retries) + 1
    reason = exc.reason if isinstance(exc, RetryLater) else type(exc).__name__
    if attempt >= settings.task_max_attempts:
        log.error("task.gave_up", attempts=attempt, reason=reason, error=str(exc))
        give_up(reason, str(exc), attempt)
        return
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
    """The drain task: one string per committed outcome (Celery results are JSON)."""
    with task_context(task_id=task.request.id, task=TASK_DRAIN):
        try:
            thread_id = thread_id_from(args, kwargs)
        except InvalidPayload as exc:
            reject_task(runtime, TASK_DRAIN, exc, args, kwargs)
            return []
        structlog.contextvars.bind_contextvars(thread_id=thread_id)
        try:
            resources = runtime.resources
            settings = runtime.settings
            begin = resources.store.begin_drain(thread_id, settings.visibility_timeout_seconds)
            if begin.attempts > settings.poison_max_attempts:
                died = begin.attempts - 1
                error = f"{died} drains in a row died before committing (poison email?)"
                resources.drain_step.dead_letter_pending(thread_id, "poison", error, died)
                return [str(Outcome(OutcomeKind.DEAD_LETTERED, reason="poison"))]
            outcomes = [str(o) for o in resources.drain_step.drain(thread_id, begin.snapshot)]
            log.info("task.done", outcomes=outcomes)
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
            return [str(OutcomeKind.DEAD_LETTERED)]


def reply_failed(
    runtime: Runtime, reply: ReplyTask, reason: str, error: str, attempts: int
) -> None:
    """Dead-letter the reply with the server's answer and mark the thread, for a human to see."""
    resources = runtime.resources
    payload = reply.model_dump(mode="json")
    resources.dead_letters.add(reason, error, payload, thread_id=reply.thread_id, attempts=attempts)
    resources.store.mark(reply.thread_id, status="reply_failed", reply_error=f"{reason}: {error}")
    resources.redis.hdel(keys.REPLIES_PENDING, reply.reply_id)
    log.error("reply.failed", reason=reason, error=error, attempts=attempts)


def send_reply(task: Any, runtime: Runtime, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    with task_context(task_id=task.request.id, task=TASK_SEND_REPLY):
        try:
            reply = reply_from(args, kwargs)
        except InvalidPayload as exc:
            reject_task(runtime, TASK_SEND_REPLY, exc, args, kwargs)
            return False
        structlog.contextvars.bind_contextvars(thread_id=reply.thread_id, reply_id=reply.reply_id)
        try:
            resources = runtime.resources
            message = render_reply(
                reply, runtime.settings.support_address, resources.reply_template
            )
            return resources.transport.deliver(reply, message)
        except Permanent as exc:
            reply_failed(runtime, reply, exc.reason, str(exc), int(task.request.retries) + 1)
            return False
        except (RetryLater, redis.RedisError, OSError) as exc:
            retry_or_give_up(task, runtime, exc, partial(reply_failed, runtime, reply))
            return False
