"""Shared fixtures: real Redis, the emulator over HTTP, real Celery workers in subprocesses.

Redis: `TRIAGE_TEST_REDIS_URL` (default redis://127.0.0.1:6379) when reachable; otherwise a
private redis-server is started, so the suite runs on a fresh machine too. State lives in DB 15
(flushed before each test), the broker in DB 14 (flushed once per session), so flushing state
never deletes the broker's queue bindings under a running worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import BROKER_DB, STATE_DB, WorkerHandle, base_env, launch_worker

from emulator.server import EmulatorThread
from producers.enqueue import Enqueuer
from triage.localstack import redis_reachable, start_redis


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
