"""Celery's own tools tell the truth about our worker: a plain `celery -A worker.app worker`
consumes every queue, task events are on, a task whose work was dead-lettered is a failed task
(without a retry or a redelivery), and Flower's broker pages and API work behind basic auth.

The worker here is started exactly as an ops team would, without `-Q`, on its own broker DB (13).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    SEED_FIRST,
    WorkerHandle,
    base_env,
    broker_idle,
    dead_letters,
    make_email,
    outbox,
    wait_for,
)

from common.contract import QUEUE_REPLIES, QUEUE_TRIAGE, TASK_DRAIN, TASK_SEND_REPLY
from common.publish import producer_app
from common.settings import Settings
from producers.enqueue import Enqueuer
from triage.localstack import Process, free_port, http_ready
from worker.tasks import DeadLettered

PLAIN_BROKER_DB = 13
BILLING = "I was charged twice for my subscription, please refund the duplicate payment."
FLOWER_AUTH = "ops:flower-secret"


class PlainWorker(WorkerHandle):
    """A worker subprocess and its node name (for `celery inspect -d`)."""

    def __init__(self, process: Process, log_path: Path, env: dict[str, str], node: str) -> None:
        super().__init__(process, log_path, env)
        self.node = node


@pytest.fixture(scope="module")
def plain_worker(
    state_url: str, broker_url: str, emulator_server: Any, tmp_path_factory: Any
) -> Iterator[PlainWorker]:
    """`celery -A worker.app worker` with no `-Q`, as the Celery docs start a worker."""
    import redis

    own_broker = broker_url.rsplit("/", 1)[0] + f"/{PLAIN_BROKER_DB}"
    redis.Redis.from_url(own_broker).flushdb()
    env = base_env(state_url, own_broker, emulator_server.base_url)
    node = f"plain-{os.getpid()}-{free_port()}@localhost"
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-n", node]
    command += ["--without-mingle", "--without-gossip", "--pool", "threads", "-c", "4"]
    log = tmp_path_factory.mktemp("plain-worker") / "worker.log"
    with log.open("ab") as out:
        process = Process("worker", subprocess.Popen(command, env=env, stdout=out, stderr=out))
    handle = PlainWorker(process, log, env, node)
    try:
        wait_for(
            lambda: "ready" in log.read_text(errors="replace") or not process.alive(),
            30,
            "the plain celery worker to be ready",
        )
        assert process.alive(), log.read_text()
        yield handle
    finally:
        process.stop()


class EventLog:
    """Celery's own event receiver (what `celery events` and Flower use), in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = producer_app(settings)
        self.events: list[dict[str, Any]] = []
        self._iterations = 0
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(
                connection, handlers={"*": self.events.append}
            )
            self._receiver.on_iteration = self._count
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _count(self) -> None:
        self._iterations += 1

    def __enter__(self) -> EventLog:
        self._thread.start()
        # Subscribed once the first poll of the event channel has come back.
        wait_for(lambda: self._iterations >= 2, 15, "the event receiver to listen")
        return self

    def __exit__(self, *_: object) -> None:
        self._receiver.should_stop = True
        self._thread.join(10)

    def of(self, task_id: str) -> list[str]:
        """The event types seen for one task, in order."""
        return [e["type"] for e in self.events if e.get("uuid") == task_id]

    def lifecycle(self, task_id: str) -> tuple[int, list[str]]:
        """How many `task-sent` events one task had, and the worker's own events in order.

        The producer sends `task-sent` after it has published the task, on its own connection, so
        a fast worker's `task-received` may reach the event channel first: only the worker's
        events have an order to check.
        """
        types = self.of(task_id)
        return types.count("task-sent"), [t for t in types if t != "task-sent"]

    def task_id(self, name: str, argument: str) -> str | None:
        """The id of the task `name` whose (repr of its) arguments contain `argument`."""
        for event in self.events:
            if event.get("name") == name and argument in str(event.get("args", "")):
                return str(event["uuid"])
        return None

    def ended(self, task_id: str) -> dict[str, Any] | None:
        for event in self.events:
            if event.get("uuid") == task_id and event["type"] in ("task-succeeded", "task-failed"):
                return event
        return None


def test_a_plain_celery_worker_consumes_every_queue(plain_worker, r, emulator):
    """Without `-Q` the worker listens on `triage` and `replies`: a question is emailed."""
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "inspect", "active_queues"]
    inspected = subprocess.run(
        [*command, "--json", "--timeout", "10", "-d", plain_worker.node],
        env=plain_worker.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    replies = json.loads(inspected.stdout)
    queues = {queue["name"] for queue in replies[plain_worker.node]}
    assert queues == {QUEUE_TRIAGE, QUEUE_REPLIES}
    Enqueuer(plain_worker.settings(), r).enqueue_bytes(
        make_email("<plain-1@example.org>", SEED_FIRST)
    )
    [sent] = wait_for(lambda: outbox(r), 30, "the clarifying question in the outbox")
    assert sent["to"] == "dana@example.org"


def test_dead_lettered_tasks_are_failed_tasks_in_celery_events(plain_worker, r, emulator):
    """Events are on: a decided email is sent/received/started/succeeded; a drain whose email
    was dead-lettered and a malformed reply task end `task-failed` (DeadLettered), each received
    once, never retried, and acked."""
    emulator.configure(faults=[{"kind": "max_tokens", "match": "truncate me"}])
    settings = plain_worker.settings()
    enqueuer = Enqueuer(settings, r)
    with EventLog(settings) as log:
        good = enqueuer.enqueue_bytes(make_email("<events-ok@example.org>", BILLING))
        bad = enqueuer.enqueue_bytes(
            make_email("<events-dl@example.org>", "My invoice is wrong, truncate me please.")
        )
        producer_app(settings).send_task(TASK_SEND_REPLY, args=[{"reply_id": "r-broken"}])
        good_id = wait_for(lambda: log.task_id(TASK_DRAIN, good.thread_id), 30, "good's drain")
        bad_id = wait_for(lambda: log.task_id(TASK_DRAIN, bad.thread_id), 30, "bad's drain")
        reply_id = wait_for(lambda: log.task_id(TASK_SEND_REPLY, "r-broken"), 30, "the reply")
        for task_id in (good_id, bad_id, reply_id):
            wait_for(lambda t=task_id: log.ended(t), 30, f"task {task_id} to end")
        wait_for(lambda: broker_idle(settings.effective_broker_url), 15, "the broker to be idle")
    assert log.lifecycle(good_id) == (1, ["task-received", "task-started", "task-succeeded"])
    for task_id, reason in ((bad_id, "dead_lettered:truncated"), (reply_id, "invalid_payload")):
        assert log.lifecycle(task_id) == (1, ["task-received", "task-started", "task-failed"])
        failed = log.ended(task_id) or {}
        assert DeadLettered.__name__ in failed["exception"] and reason in failed["exception"]
    reasons = sorted(letter.reason for letter in dead_letters(r))
    assert reasons == ["invalid_payload", "truncated"]
    assert plain_worker.process.alive()


def flower_request(port: int, path: str, auth: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture
def flower(plain_worker, tmp_path) -> Iterator[int]:
    """Flower on our app (`celery -A worker.app flower`) with FLOWER_BASIC_AUTH, as compose."""
    try:
        import flower  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("flower is not installed: add it to the dev extra (pyproject.toml)")
        pytest.skip("flower is not installed")
    port = free_port()
    env = {**plain_worker.env, "FLOWER_BASIC_AUTH": FLOWER_AUTH}
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "flower"]
    command += [f"--port={port}", "--address=127.0.0.1"]
    log = tmp_path / "flower.log"
    with log.open("ab") as out:
        process = Process("flower", subprocess.Popen(command, env=env, stdout=out, stderr=out))
    try:
        wait_for(
            lambda: http_ready(f"http://127.0.0.1:{port}/healthcheck") or not process.alive(),
            30,
            "Flower to serve",
        )
        assert process.alive(), log.read_text()
        yield port
    finally:
        process.stop()


def test_flower_serves_broker_pages_and_api_behind_basic_auth(flower, plain_worker, r):
    """Flower needs the password; with it, its broker page and queue API read our Redis
    transport, and a dead-lettered task is listed as FAILURE."""
    assert flower_request(flower, "/api/workers", None)[0] == 401
    assert flower_request(flower, "/broker", None)[0] == 401
    status, page = flower_request(flower, "/broker", FLOWER_AUTH)
    assert status == 200 and QUEUE_TRIAGE in page and QUEUE_REPLIES in page, page[:500]
    status, body = flower_request(flower, "/api/queues/length", FLOWER_AUTH)
    assert status == 200, body
    assert {q["name"] for q in json.loads(body)["active_queues"]} == {QUEUE_TRIAGE, QUEUE_REPLIES}

    result = producer_app(plain_worker.settings()).send_task(TASK_DRAIN, args=[123, "extra"])

    def ended_state() -> str | None:
        """The task's state once Flower has seen it end (its info answers 404 before)."""
        status, body = flower_request(flower, f"/api/task/info/{result.id}", FLOWER_AUTH)
        state = json.loads(body).get("state") if status == 200 else None
        return state if state in ("FAILURE", "SUCCESS") else None

    assert wait_for(ended_state, 60, "Flower to see the task end") == "FAILURE"
    [letter] = dead_letters(r)
    assert letter.reason == "invalid_payload"
