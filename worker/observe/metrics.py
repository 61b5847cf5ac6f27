"""Prometheus metrics: counters and histograms recorded where the worker already logs, and
gauges (backlog, DLQ, threads awaiting the customer) read from Redis when Prometheus scrapes.

`start_server(settings)` serves them on `TRIAGE_METRICS_PORT` from the worker's main process
(`worker_ready`). With the default `threads` pool every task runs in that process. With
`prefork`, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory (prometheus-client's own
multi-process mode): children write their samples there and the server aggregates them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common import keys
from common.contract import QUEUE_REPLIES, QUEUE_TRIAGE
from common.settings import Settings
from worker.state.usage import Usage

log = structlog.get_logger("worker.observe.metrics")

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
END_TO_END_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)

EMAILS = Counter(
    "triage_emails",
    "Emails processed, by outcome (classified, clarified, escalated, dead_lettered, duplicate) "
    "and category (none unless classified)",
    ["outcome", "category"],
)
CALLS = Counter(
    "triage_claude_calls",
    "Claude API calls, by HTTP status (none: no answer) and stop reason (none on errors)",
    ["status", "stop_reason"],
)
TOKENS = Counter(
    "triage_tokens",
    "Tokens billed, by kind (input, output, cache_creation_input, cache_read_input)",
    ["kind"],
)
CALL_SECONDS = Histogram(
    "triage_claude_call_seconds",
    "Duration of one Claude call, SDK retries included",
    buckets=LATENCY_BUCKETS,
)
END_TO_END_SECONDS = Histogram(
    "triage_email_end_to_end_seconds",
    "From an email's enqueue to the committed decision that covers it",
    buckets=END_TO_END_BUCKETS,
)
RETRIES = Counter(
    "triage_task_retries",
    "Task retries scheduled with backoff, by task and reason",
    ["task", "reason"],
)
RATELIMIT_WAIT = Counter(
    "triage_ratelimit_wait_seconds", "Seconds spent waiting for the fleet-wide rate limiter"
)


def record_call(status: int | None, stop_reason: str | None, usage: Usage, seconds: float) -> None:
    CALLS.labels(str(status) if status is not None else "none", stop_reason or "none").inc()
    CALL_SECONDS.observe(seconds)
    for name, value in usage.as_dict().items():
        if value:
            TOKENS.labels(name.removesuffix("_tokens")).inc(value)


def record_emails(
    outcome: str, count: int, category: str | None = None, received: Iterable[float] = ()
) -> None:
    if count:
        EMAILS.labels(outcome, category or "none").inc(count)
    now = time.time()
    for received_at in received:
        END_TO_END_SECONDS.observe(max(0.0, now - received_at))


def record_retry(task: str, reason: str) -> None:
    RETRIES.labels(task, reason).inc()


def record_ratelimit_wait(seconds: float) -> None:
    RATELIMIT_WAIT.inc(seconds)


class BacklogCollector(Collector):
    """Gauges read from Redis at scrape time, so every worker reports the same fleet-wide view."""

    def __init__(
        self,
        state: Callable[[], redis.Redis],
        broker: Callable[[], redis.Redis],
        thread_ttl: int,
    ) -> None:
        self._state = state
        self._broker = broker
        self._ttl = thread_ttl

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("triage_redis_up", "1 if the backlog gauges could be read")
        try:
            state, broker = self._state(), self._broker()
            now = time.time()
            dlq = state.xlen(keys.DEAD_LETTERS)
            pending = state.zcard(keys.PENDING)
            awaiting = state.zcount(keys.AWAITING, now - self._ttl, "+inf")
            replies = state.hlen(keys.REPLIES_PENDING)
            depths = {queue: broker.llen(queue) for queue in (QUEUE_TRIAGE, QUEUE_REPLIES)}
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics.redis_error", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("triage_dlq_size", "Entries in the dead-letter stream", value=dlq)
        queue = GaugeMetricFamily(
            "triage_queue_depth", "Tasks waiting in the broker queue", labels=["queue"]
        )
        for name, depth in depths.items():
            queue.add_metric([name], float(depth))
        yield queue
        yield GaugeMetricFamily(
            "triage_threads_pending",
            "Threads with emails not yet decided",
            value=float(pending),
        )
        yield GaugeMetricFamily(
            "triage_threads_awaiting_customer",
            "Threads whose last decision asked the customer a question",
            value=float(awaiting),
        )
        yield GaugeMetricFamily(
            "triage_replies_pending",
            "Replies decided but not yet delivered",
            value=float(replies),
        )


_started = threading.Lock()
_server: Any = None


def start_server(settings: Settings) -> bool:
    """Serve /metrics on `TRIAGE_METRICS_PORT` (0: off). A port in use is logged, not fatal."""
    global _server
    if not settings.metrics_port:
        return False
    with _started:
        if _server is not None:
            return True
        registry: CollectorRegistry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus-client's own switch
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        from worker.runtime import redis_client

        state = redis_client(settings.redis_url)
        broker = redis_client(settings.effective_broker_url)
        registry.register(
            BacklogCollector(lambda: state, lambda: broker, settings.thread_ttl_seconds)
        )
        try:
            _server = start_http_server(
                settings.metrics_port, addr=settings.metrics_address, registry=registry
            )
        except OSError as exc:
            log.warning("metrics.unavailable", port=settings.metrics_port, error=str(exc))
            return False
        log.info("metrics.serving", address=settings.metrics_address, port=settings.metrics_port)
        return True
