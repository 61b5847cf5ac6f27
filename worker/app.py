"""The Celery application: `create_app(settings)` for code, and a lazy `app` for the celery CLI.

`celery -A worker.app worker` and `triage worker` both work; the settings are read when the app is
first asked for, not at import time.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery, signals

from common.celery_config import celery_config
from common.connections import redis_client
from common.contract import QUEUE_TRIAGE, TASK_DRAIN, TASK_SEND_REPLY
from common.errors import ConfigError, MissingApiKey
from common.logging import configure_logging
from common.publish import Publisher
from common.settings import Settings, load_settings
from worker import tasks
from worker.deliver.service import build_service
from worker.observe import metrics_server
from worker.recovery.flags import StaleAfter
from worker.recovery.sweeper import Sweeper, SweepLimits
from worker.runtime import Runtime
from worker.shadow import build_shadow
from worker.state.retention import Retention


def create_app(settings: Settings) -> Celery:
    """A configured Celery app with the triage tasks registered on it.

    Fails at once (ConfigError) without an API key, rather than on the first email.
    """
    if settings.anthropic_api_key is None:
        raise MissingApiKey
    app = Celery("triage", set_as_current=False)
    app.conf.update(celery_config(settings))

    publisher = Publisher(app)
    # Who runs the drains: the process that starts here (prefork children inherit it), whose
    # heartbeat the sweepers of every worker check before taking its threads over.
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    runtime = Runtime(settings, publisher, worker_id)
    app.triage_runtime = runtime

    # `throws`: a task whose work was dead-lettered raises DeadLettered and ends FAILURE (Flower,
    # `celery events`); Celery logs an expected error at INFO without a traceback.
    dead_lettered = (tasks.DeadLettered,)

    @app.task(name=TASK_DRAIN, bind=True, max_retries=None, throws=dead_lettered)  # type: ignore[untyped-decorator]
    def drain_thread(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        return tasks.drain_thread(self, runtime, args, kwargs)

    @app.task(name=TASK_SEND_REPLY, bind=True, max_retries=None, throws=dead_lettered)  # type: ignore[untyped-decorator]
    def send_reply(self: Any, *args: Any, **kwargs: Any) -> bool:
        return tasks.send_reply(self, runtime, args, kwargs)

    def setup_logging(**_: Any) -> None:
        configure_logging(settings)

    limits = SweepLimits(
        interval=settings.sweep_interval_seconds,
        reply_stale=settings.reply_stale_seconds,
        stale_after=StaleAfter(
            drain_stale=settings.drain_stale_seconds,
            alive_stale=2.0 * settings.task_time_limit_seconds,
            queued_grace=settings.queued_grace_seconds,
            queued_stale=settings.queued_stale_seconds,
        ),
        flag_seconds=settings.visibility_timeout_seconds,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        retention=Retention(
            events_days=settings.events_retention_days,
            outbox_days=settings.outbox_retention_days,
            dead_letter_days=settings.dead_letter_retention_days,
            thread_ttl_seconds=settings.thread_ttl_seconds,
        ),
        compact_after=settings.compact_after_seconds,
    )
    broker: list[redis.Redis] = []

    def broker_client() -> redis.Redis:
        if not broker:
            broker.append(redis_client(settings.effective_broker_url))
        return broker[0]

    sweeper = Sweeper(
        lambda: runtime.resources.redis, broker_client, publisher, limits, worker_id, QUEUE_TRIAGE
    )

    # Outbound webhooks: a reader of the events stream in this process (docs/webhooks.md).
    deliveries = (
        build_service(settings, lambda: runtime.resources.redis)
        if settings.webhook_in_worker
        else None
    )

    # Shadow mode: a reader of the events stream deciding a sample again (docs/reprocessing.md).
    shadow = build_shadow(settings, lambda: runtime.resources.redis, worker_id)

    def start_sweeper(**_: Any) -> None:
        sweeper.start()
        metrics_server.start(settings)
        if deliveries is not None:
            deliveries.start()
        if shadow is not None:
            shadow.start()

    def stop_sweeper(**_: Any) -> None:
        sweeper.stop()
        if deliveries is not None:
            deliveries.stop()
        if shadow is not None:
            shadow.stop()

    signals.setup_logging.connect(setup_logging, weak=False)
    signals.worker_ready.connect(start_sweeper, weak=False)
    signals.worker_shutdown.connect(stop_sweeper, weak=False)
    return app


def lazy_app(
    create: Callable[[Settings], Celery],
) -> tuple[Callable[[], Celery], Callable[[str], Celery]]:
    """`get_app` and the module `__getattr__` that give `celery -A MODULE` its `app` (or
    `celery`): the process-wide app, built from the environment on first use rather than at
    import; a setting error exits 2 naming it."""
    built: list[Celery] = []

    def get_app() -> Celery:
        if not built:
            try:
                built.append(create(load_settings()))
            except ConfigError as exc:
                print(f"triage: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
        return built[0]

    def module_getattr(name: str) -> Celery:
        if name in ("app", "celery"):
            return get_app()
        raise AttributeError(name)

    return get_app, module_getattr


get_app, __getattr__ = lazy_app(create_app)
