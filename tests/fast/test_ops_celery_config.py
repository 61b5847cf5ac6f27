"""What Celery's tools and Flower are given: declared queues, task events, failure acks, and a
compose Flower that needs a password. (tests/e2e/test_ops_celery_tools.py runs them.)"""

from __future__ import annotations

from pathlib import Path

import yaml
from kombu import Connection

from common.broker import TRANSPORT
from common.celery_config import celery_config
from common.contract import QUEUE_INGEST, QUEUE_REPLIES, QUEUE_TRIAGE
from common.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def config(**overrides):
    return celery_config(load_settings(anthropic_api_key="sk-test", **overrides))


def test_every_queue_is_declared():
    """`task_queues` lists both queues, bound as the routes publish to them."""
    queues = config()["task_queues"]
    assert [(q.name, q.exchange.name, q.routing_key) for q in queues] == [
        (QUEUE_TRIAGE, QUEUE_TRIAGE, QUEUE_TRIAGE),
        (QUEUE_REPLIES, QUEUE_REPLIES, QUEUE_REPLIES),
    ]
    routed = {route["queue"] for route in config()["task_routes"].values()}
    # `ingest` is declared only by the app that registers its task (intake.worker_app), so a
    # worker without the task never consumes it; it is routed here so producers reach it.
    assert routed == {q.name for q in queues} | {QUEUE_INGEST}


def test_task_events_are_on_unless_turned_off():
    """Workers and producers send task events by default; TRIAGE_TASK_EVENTS=false stops both."""
    on, off = config(), config(task_events=False)
    assert on["worker_send_task_events"] and on["task_send_sent_event"]
    assert not off["worker_send_task_events"] and not off["task_send_sent_event"]


def test_a_failed_task_is_acked_not_redelivered():
    """Late acks with ack-on-failure: a task that raises DeadLettered is not put back."""
    settings = config()
    assert settings["task_acks_late"] and settings["task_acks_on_failure_or_timeout"]
    assert settings["task_reject_on_worker_lost"]  # only a dead worker's task is redelivered


def test_flower_sees_a_redis_broker():
    """Our transport's connection URL reads redis:// (Flower picks its broker client by it)."""
    settings = config(redis_url="redis://:pw@127.0.0.1:6390/2")
    assert settings["broker_transport"] == TRANSPORT
    connection = Connection(settings["broker_url"], transport=settings["broker_transport"])
    assert connection.as_uri(include_password=True) == "redis://:pw@127.0.0.1:6390/2"
    assert connection.transport.driver_type == "redis"


def test_compose_flower_needs_a_password_and_reads_the_workers_broker():
    """Compose Flower takes FLOWER_BASIC_AUTH from .env (refusing to start without it), listens
    on loopback only, and watches the broker the worker uses."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert all(str(port).startswith("127.0.0.1:") for port in flower["ports"])
    broker = next(arg for arg in flower["command"] if arg.startswith("--broker="))
    assert broker.removeprefix("--broker=") == services["worker"]["environment"]["TRIAGE_REDIS_URL"]
    assert "FLOWER_BASIC_AUTH=" in (ROOT / ".env.example").read_text()
