"""The public task `triage.ingest_email`: one email in, through the producers' path.

One positional argument: the raw MIME message as a base64 string, or one record of our JSON
schema as an object (docs/intake.md). Whatever arrives is parsed, threaded, deduplicated and
submitted exactly like a file or an HTTP request; a redelivered task (at least once) is answered
as a duplicate. What cannot be used is dead-lettered with the reason and the task ends FAILURE
(`DeadLettered`), never retried; Redis or the broker failing is retried with backoff and, once
the attempts are spent, dead-lettered with the input.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import partial
from typing import Any

import structlog

from common.contract import TASK_INGEST
from common.logging import task_context
from producers.enqueue import Enqueuer, Rejected
from producers.parse import REASON_TOO_LARGE
from producers.sources import Item
from producers.submit import Submitted
from worker.runtime import Runtime
from worker.tasks import DeadLettered, retry_or_give_up

log = structlog.get_logger("intake.task")

SOURCE = f"task:{TASK_INGEST}"
REASON_INVALID_TASK = "invalid_task"


def item_from(args: tuple[Any, ...], kwargs: dict[str, Any], max_bytes: int) -> Item:
    """The task's argument as an item; what is not an email is an `unreadable` item, dead-lettered
    by the producers with the reason (the task's shape is checked here, the email there)."""
    values = list(args) + list(kwargs.values())
    if len(values) != 1 or set(kwargs) - {"email"}:
        error = (
            f"{TASK_INGEST} takes one argument (base64 MIME or a JSON object), got {len(values)}"
        )
        return _bad(error, repr(values)[:1000].encode())
    value = values[0]
    if isinstance(value, dict):
        data = json.dumps(value, ensure_ascii=False).encode("utf-8")
        return Item(SOURCE, "", "jsonl", data, len(data))
    if not isinstance(value, str):
        return _bad(f"expected a base64 string or an object, got {type(value).__name__}", b"")
    if len(value) > (max_bytes * 4) // 3 + 8:
        head = value[:4096].encode("ascii", "replace")
        return Item(SOURCE, "", "oversize", head, (len(value) * 3) // 4)
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        return _bad(f"not base64: {exc}", value[:4096].encode("utf-8", "replace"))
    return Item(SOURCE, "", "email", raw, len(raw))


def _bad(error: str, data: bytes) -> Item:
    return Item(SOURCE, "", "unreadable", data, len(data), f"{REASON_INVALID_TASK}: {error}")


def ingest_email(
    task: Any, runtime: Runtime, enqueuer: Enqueuer, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, str]:
    """The task body; returns the outcome (`status`, `thread_id`, `message_id`)."""
    with task_context(task_id=task.request.id, task=TASK_INGEST):
        item = item_from(args, kwargs, runtime.settings.max_email_bytes)
        item = Item(SOURCE, str(task.request.id or ""), item.kind, item.data, item.size, item.error)
        try:
            outcome = enqueuer.enqueue_item(item)
        except Exception as exc:  # Redis or the broker: bounded retries, then the dead letters
            retry_or_give_up(
                task,
                runtime,
                exc,
                partial(_give_up, enqueuer, item),
            )
        if isinstance(outcome, Rejected):
            raise DeadLettered(outcome.reason)
        assert isinstance(outcome, Submitted)
        log.info(
            "ingest.done",
            status=outcome.status,
            thread_id=outcome.thread_id,
            message_id=outcome.message_id,
        )
        return outcome.as_dict()


def _give_up(enqueuer: Enqueuer, item: Item, reason: str, error: str, attempts: int) -> None:
    enqueuer.reject(item.source, item.position, f"gave_up:{reason}", error, item.data)


__all__ = ["REASON_INVALID_TASK", "REASON_TOO_LARGE", "ingest_email", "item_from"]
