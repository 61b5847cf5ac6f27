"""Shared set-up for the benchmarks: Redis, worker environment, sample emails."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import redis

from triage.localstack import redis_reachable, start_redis

TOPICS = [
    "I was charged twice for my subscription.",
    "My parcel never arrived and tracking is stuck.",
    "The app shows an error when I log in.",
]


def email(i: int, tag: str = "bench") -> bytes:
    return (
        f"From: c{i}@example.org\r\nTo: support@example.com\r\nSubject: Case {i}\r\n"
        f"Message-ID: <{tag}-{i}-{time.time_ns()}@example.org>\r\n\r\n{TOPICS[i % 3]}\r\n"
    ).encode()


@contextlib.contextmanager
def redis_base() -> Iterator[str]:
    """A private Redis for the run (started here, stopped after), so a benchmark never flushes a
    server it did not start; `TRIAGE_BENCH_REDIS=redis://host:port` uses an external one instead
    (its databases 11 and 12 are flushed)."""
    external = os.environ.get("TRIAGE_BENCH_REDIS", "").strip().rstrip("/")
    if external:
        if not redis_reachable(external + "/0"):
            raise SystemExit(f"TRIAGE_BENCH_REDIS={external} does not answer")
        yield external
        return
    url, private = start_redis()
    try:
        yield url.rsplit("/", 1)[0]
    finally:
        private.stop()


def worker_env(state: str, broker: str, emulator_url: str, **extra: str) -> dict[str, str]:
    for url in (state, broker):
        redis.Redis.from_url(url).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    env |= {
        "TRIAGE_REDIS_URL": state,
        "TRIAGE_BROKER_URL": broker,
        "ANTHROPIC_API_KEY": "sk-bench",
        "ANTHROPIC_BASE_URL": emulator_url,
        "TRIAGE_LOG_LEVEL": "WARNING",
        "TRIAGE_LOG_FORMAT": "json",
        **extra,
    }
    # `TRIAGE_BENCH_SETTINGS="TRIAGE_X=1,TRIAGE_Y=2"`: worker settings to compare a knob.
    for pair in os.environ.get("TRIAGE_BENCH_SETTINGS", "").split(","):
        name, sep, value = pair.strip().partition("=")
        if sep:
            env[name] = value
    return env
