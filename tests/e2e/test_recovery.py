"""Recovery at default settings: a dead worker's threads and purged tasks resume in seconds,
and a live but slow worker's calls are never redone. Real workers, real Redis, the emulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from helpers import api_requests, base_env, events, make_email, settings_from_env, wait_for

from common import keys
from producers.enqueue import Enqueuer

TEXTS = [
    "I was charged twice for my subscription.",
    "My parcel never arrived, the tracking is stuck.",
    "The app shows an error message when I log in.",
    "Please refund the duplicate payment on my invoice.",
]


def emails(tag: str, count: int) -> list[bytes]:
    return [
        make_email(f"<{tag}-{i}@example.org>", f"{TEXTS[i % 4]} ({tag} {i})", subject=f"Case {i}")
        for i in range(count)
    ]


def running(r, thread_ids: list[str]) -> int:
    flags = [r.get(keys.thread_scheduled(t)) or b"" for t in thread_ids]
    return sum(flag.startswith(b"running:") for flag in flags)


def test_a_killed_workers_threads_resume_within_30_seconds(r, emulator, worker_factory):
    """kill -9 mid-call: another worker takes the threads over once the heartbeat stops (< 30 s)."""
    emulator.configure(latency_ms=4000)
    doomed = worker_factory()
    enqueuer = Enqueuer(doomed.settings(), r)
    thread_ids = [enqueuer.enqueue_bytes(raw).thread_id for raw in emails("hb", 4)]
    wait_for(lambda: running(r, thread_ids) == 4, 20, "four calls in flight")
    survivor = worker_factory()  # started first, so only the heartbeat and the sweep are timed
    doomed.process.popen.send_signal(signal.SIGKILL)
    doomed.process.popen.wait(10)
    killed = time.monotonic()
    emulator.configure(latency_ms=0)
    wait_for(lambda: len(events(r)) >= 4, 45, "the killed worker's threads to be decided")
    assert time.monotonic() - killed < 30
    assert sorted(e["thread_id"] for e in events(r)) == sorted(thread_ids)
    # Rescheduled by a sweeper: the survivor's, or that of a worker other tests left running.
    assert survivor.process.alive()


def test_a_live_but_slow_workers_calls_are_not_redone(r, emulator, worker_factory):
    """Calls slower than a sweep interval and a heartbeat TTL: nobody takes them over."""
    emulator.configure(latency_ms=20_000)
    slow = worker_factory()
    other = worker_factory()
    enqueuer = Enqueuer(slow.settings(), r)
    thread_ids = [enqueuer.enqueue_bytes(raw).thread_id for raw in emails("slow", 2)]
    wait_for(lambda: len(events(r)) >= 2, 60, "the slow calls to finish")
    assert len(api_requests(emulator)) == 2  # no second call for the same email
    assert not slow.logs("sweeper.thread_rescheduled")
    assert not other.logs("sweeper.thread_rescheduled")
    assert sorted(e["thread_id"] for e in events(r)) == sorted(thread_ids)


def test_purged_drain_tasks_are_detected_within_a_minute(
    r, state_url, broker_url, emulator, worker_factory
):
    """`celery purge` drops the drain tasks: the sweeper re-publishes them within a minute."""
    own_broker = broker_url.rsplit("/", 1)[0] + "/13"  # the broker DB worker_factory uses
    env = base_env(state_url, own_broker, emulator.base_url)
    enqueuer = Enqueuer(settings_from_env(env), r)
    thread_ids = [enqueuer.enqueue_bytes(raw).thread_id for raw in emails("purge", 3)]
    purge = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "purge", "-f", "-Q", "triage"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert purge.returncode == 0, purge.stderr
    assert "3 messages" in purge.stdout, purge.stdout
    purged = time.monotonic()
    worker = worker_factory()
    wait_for(lambda: len(events(r)) >= 3, 90, "the purged threads to be decided")
    assert time.monotonic() - purged < 60
    assert sorted(e["thread_id"] for e in events(r)) == sorted(thread_ids)
    assert worker.process.alive()  # (any running worker's sweeper may have re-published them)
