"""The worker's Celery app with the public ingest task on it: what `triage worker` runs.

`worker.app` cannot import the producers (they are independent layers that meet in `common`), so
the app that also takes emails as tasks is composed here, one layer up: `worker.app.create_app`
plus `triage.ingest_email`, whose body calls the producers' `Enqueuer`, and the `ingest` queue
declared. `celery -A intake.worker_app worker` consumes triage, replies and ingest; `celery -A
worker.app worker` stays as it was (and never consumes `ingest`, so no message reaches a worker
that lacks the task).
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from common.contract import QUEUE_INGEST, TASK_INGEST
from common.publish import Publisher
from common.settings import Settings
from intake import task as ingest
from producers.enqueue import Enqueuer
from worker import app as worker_app
from worker.runtime import Runtime
from worker.tasks import DeadLettered


def create_app(settings: Settings) -> Celery:
    app = worker_app.create_app(settings)
    app.conf.task_queues = [
        *app.conf.task_queues,
        Queue(QUEUE_INGEST, Exchange(QUEUE_INGEST), routing_key=QUEUE_INGEST),  # type: ignore[no-untyped-call]
    ]
    runtime: Runtime = app.triage_runtime
    built: list[Enqueuer] = []
    lock = threading.Lock()

    def enqueuer() -> Enqueuer:
        """Built on first use (in the pool process), publishing through this app."""
        with lock:
            if not built:
                built.append(Enqueuer(settings, runtime.resources.redis, publisher=Publisher(app)))
            return built[0]

    @app.task(name=TASK_INGEST, bind=True, max_retries=None, throws=(DeadLettered,))  # type: ignore[untyped-decorator]
    def ingest_email(self: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
        return ingest.ingest_email(self, runtime, enqueuer(), args, kwargs)

    return app


get_app, __getattr__ = worker_app.lazy_app(create_app)
