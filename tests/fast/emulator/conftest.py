"""Fixtures for the emulator tests: one in-process emulator, reset before every test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

from emulator.config import EmulatorConfig
from emulator.server import EmulatorThread


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig(retry_after_s=0.01)) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorThread) -> Iterator[EmulatorThread]:
    """The shared emulator, clean: no recordings, cache, rate windows or faults."""
    emulator_server.reset()
    yield emulator_server
    emulator_server.reset()


@pytest.fixture
def make_client(emulator: EmulatorThread) -> Iterator[Callable[..., anthropic.Anthropic]]:
    """Factory for SDK clients pointed at the emulator (no retries unless asked)."""
    clients: list[anthropic.Anthropic] = []

    def make(**kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("max_retries", 0)
        client = anthropic.Anthropic(base_url=emulator.base_url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., anthropic.Anthropic]) -> anthropic.Anthropic:
    return make_client()
