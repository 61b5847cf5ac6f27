"""Helpers shared by the top-level tests (a plain module: conftest files are not importable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.settings import Settings
from triage.localstack import Process, start_worker

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
            "TRIAGE_METRICS_PORT": "0",
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


def run_triage(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The `triage` command in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "triage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
