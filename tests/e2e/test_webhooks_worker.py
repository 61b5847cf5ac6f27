"""Webhooks from real workers: decisions delivered signed and in order, a worker killed
mid-delivery, a slow receiver against the triage work, and the `triage webhooks` commands
(list, test, serve, dead, replay) in subprocesses. Real Redis, the emulator, loopback receivers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    SEED_FIRST,
    SEED_REPLY,
    Hit,
    Receiver,
    base_env,
    closed_port_url,
    events,
    make_email,
    outbox,
    publish_event,
    run_triage,
    wait_for,
    webhook_signed,
)

from common.deadletters import DeadLetterStream
from common.webhooks import EVENT_TYPES
from producers.enqueue import Enqueuer

SECRET = "whsec_e2e_0123456789"
CLEAR = [
    "I was charged twice for my subscription.",
    "My parcel never arrived, the tracking is stuck.",
    "The app shows an error message when I log in.",
]


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start HTTP receivers on loopback (stopped after the test)."""
    started: list[Receiver] = []

    def start(respond: Any = None) -> Receiver:
        started.append(Receiver(respond))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def webhook_env(url: str, **more: str) -> dict[str, str]:
    return {
        "TRIAGE_WEBHOOK_URL": url,
        "TRIAGE_WEBHOOK_SECRET": SECRET,
        "TRIAGE_WEBHOOK_BACKOFF_SECONDS": "0.1",
        "TRIAGE_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
        **more,
    }


def serving(handle: Any) -> Any:
    """Wait until the worker's delivery threads run (its subscriptions' cursors exist)."""
    return wait_for(lambda: handle.logs("webhook.serving"), 20, "the delivery worker to start")


def test_a_workers_decisions_reach_the_webhook_signed_and_in_order(
    r, emulator, worker_factory, receivers
):
    """The seed conversation on a worker with TRIAGE_WEBHOOK_URL: its clarification and then
    its classification arrive in that order, signed, each once, ids = the stream's entry ids."""
    receiver = receivers()
    handle = worker_factory(**webhook_env(receiver.url))
    serving(handle)
    enqueuer = Enqueuer(handle.settings(), r)
    thread_id = enqueuer.enqueue_bytes(make_email("<wh-seed-1@example.org>", SEED_FIRST)).thread_id
    (sent,) = wait_for(lambda: outbox(r), 20, "our question")
    enqueuer.enqueue_bytes(
        make_email(
            "<wh-seed-2@example.org>",
            SEED_REPLY,
            subject="Re: Help",
            in_reply_to=sent["message_id"],
        )
    )
    wait_for(lambda: len(receiver.processed) == 2, 30, "both events at the receiver")
    bodies = [hit.json() for hit in receiver.processed]
    assert [b["type"] for b in bodies] == ["clarification", "classified"]
    assert {b["thread_id"] for b in bodies} == {thread_id}
    assert bodies[1]["data"]["category"] == "BILLING"
    stream_ids = [entry_id.decode() for entry_id, _ in r.xrange("triage:events")]
    assert receiver.ids() == stream_ids
    assert all(webhook_signed(hit, SECRET) for hit in receiver.processed)
    assert receiver.duplicates == 0
    assert [rec["type"] for rec in handle.logs("webhook.delivered")] == [
        "clarification",
        "classified",
    ]
    assert all("body" not in rec and SECRET not in json.dumps(rec) for rec in handle.logs())


def test_a_worker_killed_mid_delivery_delivers_after_restart(r, worker_factory, receivers):
    """kill -9 while the receiver holds the request: a restarted worker sends the event again
    once the lease ends (timeout 2 s: lease 11 s); the receiver drops the late first copy."""
    release = threading.Event()

    def respond(hit: Hit, n: int) -> tuple[int, dict[str, str], float]:
        if n == 0:
            release.wait(60)  # hold the first attempt open until the test lets go
        return 200, {}, 0.0

    receiver = receivers(respond)
    settings = webhook_env(receiver.url, TRIAGE_WEBHOOK_TIMEOUT_SECONDS="2")
    doomed = worker_factory(**settings)
    serving(doomed)
    event_id = publish_event(r, "classified", "t-kill")
    wait_for(lambda: receiver.attempts(event_id), 10, "the first attempt in flight")
    doomed.process.popen.send_signal(signal.SIGKILL)
    doomed.process.popen.wait(10)
    killed = time.monotonic()
    survivor = worker_factory(**settings)
    wait_for(lambda: receiver.ids() == [event_id], 30, "the event from the restarted worker")
    assert time.monotonic() - killed < 3 * 2 + 5 + 5
    assert survivor.logs("webhook.delivered")[0]["event_id"] == event_id
    release.set()
    wait_for(lambda: receiver.duplicates == 1, 10, "the receiver to drop the held copy")
    assert receiver.ids() == [event_id]


def test_a_slow_receiver_does_not_slow_the_triage_worker(r, emulator, worker_factory, receivers):
    """A receiver taking 1.5 s per request, one lane: every email is decided long before its
    event is delivered; then every event arrives, in order per thread."""
    receiver = receivers(lambda hit, n: (200, {}, 1.5))
    handle = worker_factory(**webhook_env(receiver.url, TRIAGE_WEBHOOK_CONCURRENCY="1"))
    serving(handle)
    enqueuer = Enqueuer(handle.settings(), r)
    started = time.monotonic()
    for n in range(6):
        enqueuer.enqueue_bytes(make_email(f"<wh-slow-{n}@example.org>", CLEAR[n % 3] + f" #{n}"))
    wait_for(lambda: len(events(r)) == 6, 30, "six decisions")
    decided = time.monotonic() - started
    assert len(receiver.processed) <= 3, "decisions waited for the receiver"
    assert decided < 6 * 1.5
    wait_for(lambda: len(receiver.processed) == 6, 30, "six deliveries")
    assert sorted(receiver.ids()) == sorted(e.decode() for e, _ in r.xrange("triage:events"))


def serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`triage webhooks serve` in a subprocess, once it serves."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "triage", "webhooks", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for(
        lambda: "webhook.serving" in log.read_text() or process.poll() is not None,
        20,
        "triage webhooks serve to start",
    )
    assert process.poll() is None, log.read_text()
    return process


def test_webhooks_list_and_test_send(r, state_url, broker_url, emulator, receivers):
    """`webhooks list` names the subscription; `webhooks test` sends a signed sample and shows
    the answer (exit 0), and exits 1 on a refused connection."""
    receiver = receivers()
    env = base_env(state_url, broker_url, emulator.base_url, **webhook_env(receiver.url + "?k=1"))
    listed = run_triage("webhooks", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout and "/hooks?…" in listed.stdout and "k=1" not in listed.stdout
    (row,) = [
        json.loads(line)
        for line in run_triage("webhooks", "list", "--json", env=env).stdout.splitlines()
    ]
    assert row["events"] == list(EVENT_TYPES) and row["dead_letters"] == 0
    sent = run_triage("webhooks", "test", "default", "--type", "escalated", env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "-> 200" in sent.stdout and "X-Triage-Signature: t=" in sent.stdout
    (hit,) = receiver.processed
    assert hit.json()["test"] is True and hit.json()["type"] == "escalated"
    assert webhook_signed(hit, SECRET)
    refused = run_triage("webhooks", "test", closed_port_url(), "--secret", "x" * 16, env=env)
    assert refused.returncode == 1 and "connection" in refused.stdout


def test_serve_dead_letters_and_replay(r, state_url, broker_url, emulator, receivers, tmp_path):
    """`webhooks serve` delivers on its own; a 410 is dead-lettered (`webhooks dead`);
    `webhooks replay --all` and `dlq replay ID` deliver again once the receiver accepts; SIGTERM
    stops it (exit 0)."""
    accept = {"now": False}
    receiver = receivers(lambda hit, n: (200 if accept["now"] else 410, {}, 0.0))
    env = base_env(state_url, broker_url, emulator.base_url, **webhook_env(receiver.url))
    process = serve(env, tmp_path / "serve.log")
    try:
        first = publish_event(r, "classified", "t-a")
        second = publish_event(r, "corrected", "t-b")
        wait_for(lambda: DeadLetterStream(r).size() == 2, 15, "two dead letters")
        dead = run_triage("webhooks", "dead", env=env)
        assert dead.returncode == 0 and first in dead.stdout and "webhook_rejected" in dead.stdout
        accept["now"] = True
        letters = {
            letter.body["payload"]["event_id"]: letter for letter in DeadLetterStream(r).list()
        }
        one = run_triage("dlq", "replay", letters[first].entry_id, env=env)
        assert one.returncode == 0, one.stdout + one.stderr
        wait_for(lambda: receiver.ids() == [first], 15, "the first replayed event")
        rest = run_triage("webhooks", "replay", "--all", env=env)
        assert rest.returncode == 0 and "1 replayed, 0 kept" in rest.stdout
        wait_for(lambda: receiver.ids() == [first, second], 15, "the second replayed event")
        assert DeadLetterStream(r).size() == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
