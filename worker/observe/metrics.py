"""Prometheus counters and histograms, recorded where the worker already logs.

A leaf module: it imports nothing of ours, so any part of the worker may record here. The gauges
read from Redis and the HTTP server that exposes everything live in `worker.observe.metrics_server`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Histogram

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
COST = Counter(
    "triage_cost_usd",
    "USD the Claude calls that returned cost, by model (the price table's rates, batch price "
    "for batched calls), as charged to the usage ledger",
    ["model"],
)
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
WEBHOOK_ATTEMPTS = Counter(
    "triage_webhook_attempts",
    "Webhook delivery attempts by endpoint (subscription name) and outcome: delivered, retried "
    "(failed, tried again later), dead_lettered (refused for good or out of attempts)",
    ["endpoint", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "triage_webhook_request_seconds",
    "Duration of one webhook POST, by endpoint, whatever its outcome",
    ["endpoint"],
    buckets=WEBHOOK_BUCKETS,
)
WEBHOOK_DELAY = Histogram(
    "triage_webhook_event_delay_seconds",
    "From an event's commit to its delivery, by endpoint (retries and waits included)",
    ["endpoint"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)


def record_call(
    status: int | None, stop_reason: str | None, tokens: Mapping[str, int], seconds: float
) -> None:
    """One Claude call; `tokens` maps `input_tokens`, `output_tokens`, ... to counts."""
    CALLS.labels(str(status) if status is not None else "none", stop_reason or "none").inc()
    CALL_SECONDS.observe(seconds)
    for name, value in tokens.items():
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


def record_cost(model: str, usd: float) -> None:
    if usd > 0:
        COST.labels(model).inc(usd)


def record_webhook(endpoint: str, outcome: str, seconds: float, delay: float | None = None) -> None:
    """One webhook attempt; `delay`: commit to delivery, for a delivered event."""
    WEBHOOK_ATTEMPTS.labels(endpoint, outcome).inc()
    WEBHOOK_SECONDS.labels(endpoint).observe(seconds)
    if delay is not None:
        WEBHOOK_DELAY.labels(endpoint).observe(max(0.0, delay))
