"""Publishing tasks by name: the one place that sends work to the broker.

Producers, the CLI and the worker itself (reply tasks, the sweeper) publish through a `Publisher`.
Queues come from the Celery routes in `common.celery_config`, never from the call site, so moving a
task to another queue is one change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from celery import Celery

from common.celery_config import celery_config
from common.contract import TASK_DRAIN, TASK_SEND_REPLY, ReplyTask
from common.settings import Settings


def producer_app(settings: Settings) -> Celery:
    """A Celery app used only to publish, with the worker's own broker configuration."""
    app = Celery("triage-producer", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


class TaskPublisher(Protocol):
    """What the worker's parts need to hand work on (tests pass a recorder)."""

    def drain(self, thread_id: str) -> None: ...

    def reply(self, reply: ReplyTask) -> None: ...


class Publisher:
    """Sends the drain and reply tasks; routing is the Celery configuration's business."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    @classmethod
    def for_settings(cls, settings: Settings) -> Publisher:
        return cls(producer_app(settings))

    def drain(self, thread_id: str) -> None:
        """Ask a worker to drain the thread's inbox (the caller holds its scheduled flag)."""
        self._app.send_task(TASK_DRAIN, args=[thread_id])

    def drain_many(self, thread_ids: Iterable[str]) -> Iterator[str]:
        """`drain` for many threads over one producer (one pool checkout for the lot); yields
        each thread id once its task is published, so a caller knows where a failure struck."""
        with self._app.producer_or_acquire() as producer:
            for position, thread_id in enumerate(thread_ids):
                # The argument's repr given (Celery's saferepr is a third of a publish's CPU)
                # and the queue declared by the first publish only: on Redis the task goes to
                # the queue's list by name either way (the worker declares its queues too).
                options: dict[str, Any] = {"argsrepr": repr([thread_id]), "kwargsrepr": "{}"}
                if position:
                    options["declare"] = []
                self._app.send_task(TASK_DRAIN, args=[thread_id], producer=producer, **options)
                yield thread_id

    def reply(self, reply: ReplyTask) -> None:
        """Ask a worker to deliver a committed clarification (Celery's own log lines show the
        task's argument as the reply id, never the address, subject or question)."""
        self._app.send_task(
            TASK_SEND_REPLY,
            args=[reply.model_dump(mode="json")],
            argsrepr=repr([{"reply_id": reply.reply_id}]),
            kwargsrepr="{}",
        )
