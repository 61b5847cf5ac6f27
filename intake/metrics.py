"""Prometheus metrics of the ways in (served at the intake's /metrics; the IMAP watcher's are
counted in the same registry). A leaf: imports nothing of ours."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "triage_intake_requests",
    "HTTP requests to the intake, by route and status code",
    ["route", "status"],
)
REQUEST_SECONDS = Histogram(
    "triage_intake_request_seconds",
    "Time to answer one intake request, by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EMAILS = Counter(
    "triage_intake_emails",
    "Emails taken in, by way in (http, mailgun, sendgrid, postmark, task, imap) and outcome "
    "(enqueued, duplicate, reply_bounced, rejected)",
    ["source", "outcome"],
)
REFUSED = Counter(
    "triage_intake_refused",
    "Requests refused before reading an email, by reason (auth, signature, too_large, "
    "backpressure, unavailable)",
    ["source", "reason"],
)
QUEUE_DEPTH = Gauge(
    "triage_intake_queue_depth", "Tasks waiting on the triage queue, as the intake last read it"
)


def outcome_label(status: str) -> str:
    return status if status in ("enqueued", "duplicate", "reply_bounced") else "rejected"
