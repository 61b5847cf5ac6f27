"""Celery configuration from settings, identical for the worker and every producer.

At-least-once on Redis: late acks, reject on worker loss, prefetch 1, JSON only, and a visibility
timeout longer than the time limit plus the largest retry delay (checked in `Settings`).
"""

from __future__ import annotations

from typing import Any

from common.broker import transport_for
from common.connections import client_options
from common.contract import QUEUE_REPLIES, QUEUE_TRIAGE, TASK_DRAIN, TASK_SEND_REPLY
from common.settings import Settings


def transport_options(settings: Settings) -> dict[str, Any]:
    return {"visibility_timeout": settings.visibility_timeout_seconds, **client_options()}


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport": transport_for(settings.effective_broker_url),
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_default_queue": QUEUE_TRIAGE,
        "task_create_missing_queues": True,
        "task_routes": {
            TASK_DRAIN: {"queue": QUEUE_TRIAGE},
            TASK_SEND_REPLY: {"queue": QUEUE_REPLIES},
        },
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": max(5, settings.task_time_limit_seconds - 15),
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }
