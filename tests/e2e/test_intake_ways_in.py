"""The ways in end to end: a Celery client that imports nothing of ours sends
`triage.ingest_email` to a real worker (`celery -A intake.worker_app`), and `triage serve` in a
subprocess takes an email over HTTP; both emails are classified by that worker."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import (
    WorkerHandle,
    base_env,
    dead_letters,
    events,
    make_email,
    wait_for,
)

from emulator.server import EmulatorThread
from triage.localstack import free_port, http_ready, start_worker

#: Broker DB of this module's worker (the shared worker uses 14, the ingestion tests 13).
OWN_BROKER_DB = 12


@pytest.fixture(scope="module")
def ingest_worker(
    redis_base: str,
    state_url: str,
    emulator_server: EmulatorThread,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerHandle]:
    """A worker on triage, replies and ingest, built as `triage worker` builds it."""
    broker = f"{redis_base}/{OWN_BROKER_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = base_env(state_url, broker, emulator_server.base_url)
    log_path = tmp_path_factory.mktemp("ingest-worker") / "worker.log"
    with log_path.open("ab") as log_file:
        process = start_worker(
            env,
            concurrency=4,
            pool="threads",
            stdout=log_file,
            queues="triage,replies,ingest",
            app="intake.worker_app",
        )
    handle = WorkerHandle(process, log_path, env)
    wait_for(
        lambda: "ready" in log_path.read_text(errors="replace") or not process.alive(),
        30,
        "the worker",
    )
    assert process.alive(), log_path.read_text()
    yield handle
    process.stop()


CLIENT = textwrap.dedent(
    """
    # A producer that knows only Celery, the broker URL, and the task's name and queue.
    import json, sys
    from celery import Celery

    app = Celery(broker=sys.argv[1])
    for argument in json.loads(sys.stdin.read()):
        app.send_task("triage.ingest_email", args=[argument], queue="ingest")
    print("sent")
    """
)


def send_with_plain_celery(broker_url: str, arguments: list[object], cwd: Path) -> None:
    """Run the client above in a fresh interpreter, outside the repository (no import of ours)."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", CLIENT, broker_url],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "sent" in done.stdout, done.stderr


def classified(r: redis.Redis, message_id: str) -> list[dict[str, object]]:
    return [e for e in events(r) if message_id in json.dumps(e)]


def test_plain_celery_client_sends_emails_that_are_classified_once(
    ingest_worker: WorkerHandle, r: redis.Redis, tmp_path: Path
) -> None:
    """Base64 MIME and a JSON-schema object sent by a plain Celery client are classified; the
    same email sent twice is one classification; a bad argument is dead-lettered with a reason."""
    raw = make_email("<task-1@example.org>", "I was charged twice for my subscription.")
    record = {
        "message_id": "<task-2@example.org>",
        "from": "lee@example.org",
        "subject": "Parcel",
        "text": "My parcel has not arrived, tracking says lost.",
    }
    encoded = base64.b64encode(raw).decode()
    send_with_plain_celery(
        ingest_worker.env["TRIAGE_BROKER_URL"],
        [encoded, record, encoded, "%%% not base64"],
        tmp_path,
    )
    wait_for(
        lambda: classified(r, "<task-1@example.org>") and classified(r, "<task-2@example.org>"),
        60,
        "both emails to be classified",
    )
    wait_for(lambda: dead_letters(r), 20, "the bad argument to be dead-lettered")
    [letter] = dead_letters(r)
    assert letter.reason == "unreadable" and "invalid_task" in letter.body["error"]
    wait_for(lambda: len(ingest_worker.logs("ingest.done")) >= 3, 20, "the three good tasks")
    statuses = sorted(entry["status"] for entry in ingest_worker.logs("ingest.done"))
    assert statuses == ["duplicate", "enqueued", "enqueued"]
    assert len(classified(r, "<task-1@example.org>")) == 1


def test_triage_serve_takes_an_email_that_the_worker_classifies(
    ingest_worker: WorkerHandle, r: redis.Redis, tmp_path: Path
) -> None:
    """`triage serve --port N` answers 202 for raw MIME, the worker classifies it, and SIGTERM
    stops the server cleanly."""
    port = free_port()
    env = {**ingest_worker.env, "TRIAGE_INTAKE_TOKENS": "serve-token"}
    log_path = tmp_path / "serve.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "triage", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: http_ready(f"http://127.0.0.1:{port}/healthz") or process.poll() is not None,
            30,
            "triage serve to listen",
        )
        assert process.poll() is None, log_path.read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        raw = make_email("<serve-1@example.org>", "The app shows error 500 when I log in.")
        conn.request(
            "POST",
            "/v1/emails",
            raw,
            {"Content-Type": "message/rfc822", "Authorization": "Bearer serve-token"},
        )
        response = conn.getresponse()
        assert response.status == 202, response.read()
        conn.close()
        wait_for(lambda: classified(r, "<serve-1@example.org>"), 60, "the email to be classified")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM).
    assert code in (0, -signal.SIGTERM), log_path.read_text()
    text = log_path.read_text()
    assert "intake.request" in text and "Application shutdown complete" in text
