"""Shared fixtures: real Redis, the emulator over HTTP, real Celery workers in subprocesses.

Redis: `TRIAGE_TEST_REDIS_URL` (default redis://127.0.0.1:6379) when reachable; otherwise a
private redis-server is started, so the suite runs on a fresh machine too. State lives in DB 15
(flushed before each test), the broker in DB 14 (flushed once per session), so flushing state
never deletes the broker's queue bindings under a running worker.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from emulator.server import EmulatorThread
from producers.enqueue import Enqueuer
from triage.localstack import Process, redis_reachable, start_redis, start_worker
from worker.settings import Settings

STATE_DB = 15
BROKER_DB = 14
TEST_KEY = "sk-test-key"


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def redis_base() -> Iterator[str]:
    base = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    if redis_reachable(base + "/0"):
        yield base
        return
    url, process = start_redis()
    try:
        yield url.rsplit("/", 1)[0]
    finally:
        process.stop()


@pytest.fixture(scope="session")
def state_url(redis_base: str) -> str:
    return f"{redis_base}/{STATE_DB}"


@pytest.fixture(scope="session")
def broker_url(redis_base: str) -> str:
    url = f"{redis_base}/{BROKER_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def r(state_url: str) -> Iterator[redis.Redis]:
    """The state Redis, empty at the start of each test."""
    client = redis.Redis.from_url(state_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorThread]:
    server = EmulatorThread()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server: EmulatorThread) -> EmulatorThread:
    emulator_server.reset()
    return emulator_server


def base_env(
    state_url: str, broker_url: str, emulator_url: str, **overrides: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    env.update(
        {
            "TRIAGE_REDIS_URL": state_url,
            "TRIAGE_BROKER_URL": broker_url,
            "ANTHROPIC_API_KEY": TEST_KEY,
            "ANTHROPIC_BASE_URL": emulator_url,
            "TRIAGE_LOG_FORMAT": "json",
            "TRIAGE_RETRY_BACKOFF_SECONDS": "0.2",
            "TRIAGE_RETRY_BACKOFF_MAX_SECONDS": "2",
            "TRIAGE_API_MAX_RETRIES": "2",
        }
    )
    env.update(overrides)
    return env


class WorkerHandle:
    """A running worker subprocess and its JSON log file."""

    def __init__(self, process: Process, log_path: Path, env: dict[str, str]) -> None:
        self.process = process
        self.log_path = log_path
        self.env = env

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                records.append(record)
        return records

    def settings(self) -> Settings:
        return settings_from_env(self.env)


def settings_from_env(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def launch_worker(env: dict[str, str], log_path: Path, concurrency: int = 8) -> WorkerHandle:
    with log_path.open("ab") as log_file:  # the child keeps its own descriptor
        process = start_worker(env, concurrency=concurrency, pool="threads", stdout=log_file)
    handle = WorkerHandle(process, log_path, env)
    wait_for(
        lambda: "ready" in log_path.read_text(errors="replace") or not process.alive(),
        30,
        "the worker to be ready",
    )
    assert process.alive(), log_path.read_text()
    return handle


@pytest.fixture(scope="session")
def worker(
    state_url: str, broker_url: str, emulator_server: EmulatorThread, tmp_path_factory: Any
) -> Iterator[WorkerHandle]:
    """One shared worker for tests that use the default settings."""
    env = base_env(state_url, broker_url, emulator_server.base_url)
    handle = launch_worker(env, tmp_path_factory.mktemp("worker") / "worker.log")
    yield handle
    handle.process.stop()


@pytest.fixture
def worker_factory(
    state_url: str, broker_url: str, emulator_server: EmulatorThread, tmp_path: Path
) -> Iterator[Callable[..., WorkerHandle]]:
    """Start a dedicated worker with extra settings (stopped after the test).

    It consumes from its own broker DB so it cannot steal tasks meant for the shared worker.
    """
    started: list[WorkerHandle] = []
    own_broker = broker_url.rsplit("/", 1)[0] + "/13"

    def factory(**overrides: str) -> WorkerHandle:
        redis.Redis.from_url(own_broker).flushdb()
        env = base_env(state_url, own_broker, emulator_server.base_url, **overrides)
        handle = launch_worker(env, tmp_path / f"worker-{len(started)}.log")
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.process.stop()


@pytest.fixture
def enqueue(r: redis.Redis, worker: WorkerHandle) -> Callable[[bytes], Any]:
    enqueuer = Enqueuer(worker.settings(), r)
    return lambda raw: enqueuer.enqueue_bytes(raw)
