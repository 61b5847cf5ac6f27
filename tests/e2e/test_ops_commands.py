"""On-call commands as a user runs them: `thread list`, `events tail`, `doctor`."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from helpers import base_env, make_email, run_triage, wait_for

from common import keys
from triage.localstack import free_port

TAIL = (sys.executable, "-m", "triage", "events", "tail")


def classified(r, count: int) -> bool:
    return r.xlen(keys.EVENTS) >= count


def feed(r, enqueue) -> None:
    enqueue(make_email("<ops-1@example.org>", "My parcel never arrived.", subject="Parcel"))
    enqueue(make_email("<ops-2@example.org>", "I was charged twice for my subscription."))
    enqueue(make_email("<ops-3@example.org>", "Hi, my thing isn't working. Can you help?"))
    wait_for(lambda: classified(r, 3), 30, "three decisions")


def test_thread_list_filters_by_status_and_category(
    r, state_url, broker_url, emulator, worker, enqueue
):
    """`thread list` filters by status and category, limits, and prints JSON or a table."""
    feed(r, enqueue)
    env = base_env(state_url, broker_url, emulator.base_url)
    listed = run_triage("thread", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 3
    by_status = {row["status"] for row in rows}
    assert by_status == {"classified", "awaiting_customer"}

    billing = run_triage("thread", "list", "--category", "billing", "--json", env=env)
    rows = [json.loads(line) for line in billing.stdout.splitlines()]
    assert [row["category"] for row in rows] == ["BILLING"]

    waiting = run_triage("thread", "list", "--status", "awaiting_customer", env=env)
    lines = waiting.stdout.splitlines()
    assert lines[0].startswith("THREAD") and len(lines) == 2
    assert "awaiting_customer" in lines[1] and "Help" in lines[1]

    limited = run_triage("thread", "list", "--limit", "1", "--json", env=env)
    assert len(limited.stdout.splitlines()) == 1


def test_events_tail_with_a_consumer_group_shares_and_resumes(
    r, state_url, broker_url, emulator, worker, enqueue
):
    """`events tail --group` shares events between consumers and never delivers one twice."""
    env = base_env(state_url, broker_url, emulator.base_url)
    # The group does not exist yet, nor the stream: both are created, nothing is printed.
    first = run_triage("events", "tail", "--group", "ops", "--json", env=env)
    assert first.returncode == 0 and first.stdout == "", first.stderr
    feed(r, enqueue)

    def tail(*extra: str) -> list[dict]:
        result = run_triage("events", "tail", "--group", "ops", "--json", *extra, env=env)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    got_a = tail("--consumer", "a", "--count", "2")
    got_b = tail("--consumer", "b", "--count", "10")
    assert len(got_a) == 2 and len(got_b) == 1  # the group shares the stream
    ids = [event["id"] for event in got_a + got_b]
    assert len(set(ids)) == 3
    assert {event["type"] for event in got_a + got_b} == {"classified", "clarification"}
    assert tail("--consumer", "a") == []  # acknowledged: nothing is delivered twice
    assert r.xpending(keys.EVENTS, "ops")["pending"] == 0

    # Without a group: the last events, readable.
    plain = run_triage("events", "tail", "--count", "2", env=env)
    assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 2
    assert "thread=" in plain.stdout


def test_events_tail_follow_prints_new_events_as_they_arrive(
    r, state_url, broker_url, emulator, worker, enqueue
):
    """`events tail --follow` prints an event that arrives while it waits."""
    env = base_env(state_url, broker_url, emulator.base_url)
    follower = subprocess.Popen(
        [*TAIL, "--follow", "--group", "live", "--json", "--max-wait", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: r.exists(keys.EVENTS), 10, "the group to be created")
        enqueue(make_email("<ops-f1@example.org>", "My parcel never arrived."))
        out, err = follower.communicate(timeout=40)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [event["type"] for event in events] == ["classified"]
    assert events[0]["category"] == "SHIPPING"


def doctor(env: dict[str, str]) -> tuple[int, dict]:
    result = run_triage("doctor", "--json", env=env)
    document = json.loads(result.stdout)
    return result.returncode, {c["name"]: c for c in document["checks"]} | {
        "healthy": document["healthy"]
    }


def test_doctor_healthy(r, state_url, broker_url, emulator):
    """`doctor` reports every check ok against a healthy setup."""
    env = base_env(state_url, broker_url, emulator.base_url)
    code, checks = doctor(env)
    assert code == 0 and checks["healthy"] is True, checks
    assert checks["redis"]["status"] == "ok"
    assert checks["broker"]["status"] == "ok"
    assert checks["api"]["status"] == "ok"
    assert "tasks waiting: triage=" in checks["broker.queues"]["detail"]
    assert checks["dlq"]["status"] == "ok"
    assert "events 30d, outbox 30d, dead letters 90d" in checks["retention"]["detail"]
    assert any(req["path"].endswith("/count_tokens") for req in emulator.requests)
    readable = run_triage("doctor", env=env)
    assert readable.returncode == 0 and "healthy" in readable.stdout.splitlines()[-1]


def test_doctor_reports_backlog_as_warnings(r, state_url, broker_url, emulator):
    """`doctor` warns about a stuck thread and dead letters, and still exits 0."""
    env = base_env(state_url, broker_url, emulator.base_url, TRIAGE_DRAIN_STALE_SECONDS="1")
    r.zadd(keys.PENDING, {"t-stuck": time.time() - 60})
    # A drainer that looks alive (a fresh heartbeat), so a running worker's sweeper leaves the
    # thread alone while doctor looks at it.
    r.set(keys.worker_alive("w-doctor-test"), "1", ex=60)
    r.set(keys.thread_scheduled("t-stuck"), f"running:{time.time() - 30:.3f}:w-doctor-test", ex=60)
    r.xadd(keys.DEAD_LETTERS, {"reason": "poison", "thread_id": "t-stuck", "payload": "{}"})
    code, checks = doctor(env)
    assert code == 0, checks  # warnings do not fail
    assert (
        checks["threads.stuck"]["status"] == "warn"
        and "t-stuck" in (checks["threads.stuck"]["detail"])
    )
    assert checks["dlq"]["status"] == "warn" and "1 dead letters" in checks["dlq"]["detail"]


def test_doctor_fails_when_redis_is_down(emulator):
    """`doctor` fails when Redis is unreachable, and still runs the other checks."""
    down = f"redis://127.0.0.1:{free_port()}/0"
    env = base_env(down, down, emulator.base_url)
    code, checks = doctor(env)
    assert code == 1 and checks["healthy"] is False
    assert checks["redis"]["status"] == "fail" and "unreachable" in checks["redis"]["detail"]
    assert checks["api"]["status"] == "ok"  # the other checks still run
    readable = run_triage("doctor", env=env)
    assert readable.returncode == 1 and "UNHEALTHY" in readable.stdout


def test_doctor_fails_on_a_rejected_key(r, state_url, broker_url, emulator):
    """`doctor` fails when the API rejects the key, without printing a key."""
    emulator.configure(api_key="the-right-key")
    env = base_env(state_url, broker_url, emulator.base_url)  # uses another key
    code, checks = doctor(env)
    assert code == 1 and checks["healthy"] is False
    assert checks["api"]["status"] == "fail" and "rejected (401)" in checks["api"]["detail"]
    assert checks["redis"]["status"] == "ok"
    assert "the-right-key" not in json.dumps(checks)
