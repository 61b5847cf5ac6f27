"""Celery configuration from settings, identical for the worker and every producer.

At-least-once on Redis: late acks, reject on worker loss, prefetch 1, JSON only, and a visibility
timeout longer than the time limit plus the largest retry delay (checked in `Settings`).

What Celery's own tools see: both queues are declared (a plain `celery -A worker.app worker`
consumes them all), task events are on unless `TRIAGE_TASK_EVENTS=false` (Flower, `celery
events`), and a `rediss://` broker gets the same verified TLS options as the state client.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from common.broker import transport_for
from common.connections import client_options, ssl_options
from common.contract import (
    QUEUE_INGEST,
    QUEUE_REPLIES,
    QUEUE_TRIAGE,
    TASK_DRAIN,
    TASK_INGEST,
    TASK_SEND_REPLY,
)
from common.settings import Settings


def transport_options(settings: Settings) -> dict[str, Any]:
    return {"visibility_timeout": settings.visibility_timeout_seconds, **client_options()}


def task_queues() -> list[Queue]:
    """Every queue a worker consumes by default: `-Q` selects among these."""
    return [
        Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]
        for name in (QUEUE_TRIAGE, QUEUE_REPLIES)
    ]


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport": transport_for(settings.effective_broker_url),
        "broker_transport_options": transport_options(settings),
        # rediss://: verified like the state client (Flower reads this too); False otherwise.
        "broker_use_ssl": ssl_options(settings.effective_broker_url) or False,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task that raises (e.g. `DeadLettered`) is acked, not redelivered (Celery's default).
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_default_queue": QUEUE_TRIAGE,
        "task_queues": task_queues(),
        "task_create_missing_queues": True,
        "task_routes": {
            TASK_DRAIN: {"queue": QUEUE_TRIAGE},
            TASK_SEND_REPLY: {"queue": QUEUE_REPLIES},
            # Declared only by the app that registers it (intake.worker_app): a worker without
            # the task never consumes its queue (an unregistered task would be discarded).
            TASK_INGEST: {"queue": QUEUE_INGEST},
        },
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": max(5, settings.task_time_limit_seconds - 15),
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        # On for Flower and `celery events` (both kept on by default: what they cost, measured,
        # is in docs/operations.md, "Celery's tools and Flower").
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "enable_utc": True,
    }
