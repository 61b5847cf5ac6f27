"""One attempt: the request's headers, the POST and how it ended, and `triage webhooks test`'s
signed sample (used by the lanes of `worker.deliver.service` and by the CLI)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

from common.errors import Permanent, RetryLater
from common.webhooks import Subscription
from worker.deliver import envelope
from worker.deliver.http import Answer, HttpSender
from worker.deliver.signing import SIGNATURE_HEADER, signature_header

USER_AGENT = "triage-worker-webhooks/1"


def request_headers(
    subscription: Subscription,
    event_id: str,
    event_type: str,
    body: bytes,
    attempt: int,
    now: float,
) -> dict[str, str]:
    """The headers of one attempt: the subscription's own, then ours (which win)."""
    return {
        **subscription.headers,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": event_id,
        "X-Triage-Event-Id": event_id,
        "X-Triage-Event-Type": event_type,
        "X-Triage-Delivery-Attempt": str(attempt),
        SIGNATURE_HEADER: signature_header(subscription.signing_secrets(), int(now), body),
    }


@dataclass(frozen=True)
class Attempt:
    """How one POST ended."""

    outcome: Literal["delivered", "retry", "dead"]
    seconds: float
    status: int | None = None
    reason: str = ""  # timeout, connection, http_<status>, bad_url
    error: str = ""
    retry_after: float | None = None


def post(
    sender: HttpSender,
    subscription: Subscription,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> tuple[Attempt, Answer | None]:
    """One POST, its failure classified (never raises for the receiver's sake)."""
    started = time.monotonic()
    try:
        answer = sender.post(subscription.url, body, headers, timeout)
    except RetryLater as exc:
        return Attempt(
            "retry",
            time.monotonic() - started,
            _status(exc.reason),
            exc.reason,
            str(exc),
            exc.retry_after,
        ), None
    except Permanent as exc:
        seconds = time.monotonic() - started
        return Attempt("dead", seconds, _status(exc.reason), exc.reason, str(exc)), None
    return Attempt("delivered", time.monotonic() - started, answer.status), answer


def _status(reason: str) -> int | None:
    code = reason.removeprefix("http_")
    return int(code) if code != reason and code.isdigit() else None


@dataclass(frozen=True)
class SampleSend:
    """What `triage webhooks test` sent and got back."""

    event_id: str
    headers: dict[str, str]
    attempt: Attempt
    answer: str


def send_test(subscription: Subscription, event_type: str, timeout: float) -> SampleSend:
    """POST a signed sample event (marked `"test": true`, never queued or retried)."""
    event_id = f"test-{uuid.uuid4().hex}"
    event = envelope.sample_event(event_type)
    body = envelope.body(event_id, event_type, str(event["thread_id"]), event, test=True)
    headers = request_headers(subscription, event_id, event_type, body, 1, time.time())
    sender = HttpSender(max_connections=1)
    try:
        result, answer = post(sender, subscription, body, headers, timeout)
    finally:
        sender.close()
    return SampleSend(event_id, headers, result, answer.snippet if answer else result.error)
