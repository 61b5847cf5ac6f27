"""SIGTERM is a graceful shutdown: in-flight calls finish, queued work stays queued."""

from __future__ import annotations

import json
import signal
import time

from helpers import connections_to, launch_worker, make_email, wait_for, wait_settled

from common import keys
from producers.enqueue import Enqueuer

LATENCY_S = 2.5
EMAILS = 10  # the worker runs 8 at once: 8 in flight at SIGTERM, 2 still in the queue


def classified_threads(r) -> list[str]:
    return [
        fields[b"thread_id"].decode()
        for _, fields in r.xrange(keys.EVENTS)
        if fields[b"type"] == b"classified"
    ]


def test_sigterm_lets_in_flight_calls_finish_and_loses_nothing(
    r, emulator, worker_factory, tmp_path
):
    """SIGTERM lets the calls in flight finish; the queued emails wait for the next worker."""
    emulator.configure(latency_ms=LATENCY_S * 1000)
    handle = worker_factory()
    enqueuer = Enqueuer(handle.settings(), r)
    threads = [
        enqueuer.enqueue_bytes(make_email(f"<term-{i}@example.org>", "My parcel never arrived."))
        for i in range(EMAILS)
    ]
    thread_ids = [t.thread_id for t in threads]

    def running() -> int:
        flags = [r.get(keys.thread_scheduled(t)) or b"" for t in thread_ids]
        return sum(flag.startswith(b"running:") for flag in flags)

    wait_for(lambda: running() == 8, 15, "eight calls in flight")
    pid, url = handle.process.pid, emulator.base_url
    wait_for(lambda: connections_to(pid, url) >= 8, 10, "the eight requests on the wire")
    assert not classified_threads(r)
    stopped_at = time.monotonic()
    handle.process.popen.send_signal(signal.SIGTERM)
    code = handle.process.popen.wait(timeout=LATENCY_S + 15)
    took = time.monotonic() - stopped_at
    assert code == 0, handle.log_path.read_text()[-3000:]
    assert took < LATENCY_S + 8, took  # bounded by the call in flight, not by the queue

    # Every call in flight finished and was committed before the process exited.
    done = classified_threads(r)
    assert len(done) == 8 and len(set(done)) == 8
    calls = [json.loads(line) for line in handle.log_path.read_text().splitlines() if "{" in line]
    assert sum(1 for c in calls if c.get("event") == "claude.call") == 8
    # The two never started are still queued, not lost: a new worker takes them.
    # (Not worker_factory again: it would flush the broker DB, and the queued tasks with it.)
    restarted = launch_worker(handle.env, tmp_path / "restarted.log")
    try:
        wait_for(lambda: len(classified_threads(r)) >= EMAILS, 20, "the rest after a restart")
        wait_settled(r, thread_ids)
        done = classified_threads(r)
        assert sorted(done) == sorted(thread_ids)  # each exactly once
        assert len([q for q in emulator.requests if q["path"] == "/v1/messages"]) == EMAILS
    finally:
        restarted.process.stop()
