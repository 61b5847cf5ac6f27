"""Serving /metrics: the counters of `worker.observe.metrics`, plus gauges (backlog, dead letters,
threads awaiting the customer or in review) read from Redis when Prometheus scrapes.

`start(settings)` serves them on `TRIAGE_METRICS_PORT` from the worker's main process
(`worker_ready`). With the default `threads` pool every task runs in that process. With
`prefork`, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory (prometheus-client's own
multi-process mode): children write their samples there and the server aggregates them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common import keys
from common.connections import redis_client
from common.contract import QUEUE_REPLIES, QUEUE_TRIAGE
from common.settings import Settings

log = structlog.get_logger("worker.observe.metrics_server")


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
            review = state.zcard(keys.REVIEW)
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
            "triage_threads_in_review",
            "Threads whose decision waits for a person (the review lane, status needs_review)",
            value=float(review),
        )
        yield GaugeMetricFamily(
            "triage_replies_pending",
            "Replies decided but not yet delivered",
            value=float(replies),
        )


_started = threading.Lock()
_server: Any = None


def start(settings: Settings) -> bool:
    """Serve /metrics on `TRIAGE_METRICS_PORT` (0: off). A port in use is logged, not fatal.

    The port is bound before the Redis gauges are registered, so a failed start leaves the
    registry untouched and a later start can still succeed.
    """
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
        try:
            server = start_http_server(
                settings.metrics_port, addr=settings.metrics_address, registry=registry
            )
        except OSError as exc:
            log.warning("metrics.unavailable", port=settings.metrics_port, error=str(exc))
            return False
        state = redis_client(settings.redis_url)
        broker = redis_client(settings.effective_broker_url)
        registry.register(
            BacklogCollector(lambda: state, lambda: broker, settings.thread_ttl_seconds)
        )
        _server = (server,)  # None on old prometheus-client versions: still "started"
        log.info("metrics.serving", address=settings.metrics_address, port=settings.metrics_port)
        return True
