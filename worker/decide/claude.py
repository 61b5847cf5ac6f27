"""The one place that calls the Anthropic SDK: one call in, one result or one `TriageError` out.

SDK exceptions are translated here and nowhere else. Every call, successful or not, emits exactly
one `claude.call` log event with its token counts and request id (never the key, never a body).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import structlog

from common.errors import MissingApiKey, Permanent, RetryLater
from common.settings import Settings
from worker.observe import metrics
from worker.state.usage import Usage

log = structlog.get_logger("worker.decide.claude")

#: Statuses worth another try later; everything else 4xx is permanent.
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True)
class CallResult:
    """What the triage step needs from a response."""

    text: str
    stop_reason: str | None
    stop_details: dict[str, Any] | None
    usage: Usage
    request_id: str | None
    model: str
    latency_ms: float


def make_client(settings: Settings) -> anthropic.Anthropic:
    """An SDK client with an explicit timeout and retry budget (the SDK's retries count)."""
    if settings.anthropic_api_key is None:
        raise MissingApiKey
    return anthropic.Anthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        timeout=settings.api_timeout_seconds,
        max_retries=settings.api_max_retries,
    )


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    headers = error.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def translate(error: anthropic.AnthropicError) -> RetryLater | Permanent:
    """Map an SDK exception to what the caller must do about it."""
    if isinstance(error, anthropic.APIConnectionError):
        return RetryLater(f"Claude API unreachable: {error}", reason="api_connection")
    if isinstance(error, anthropic.APIStatusError):
        message = error.api_message or str(error)
        detail = f"Claude API {error.status_code} {error.type or ''}: {message}".replace("  ", " ")
        if error.status_code in TRANSIENT_STATUSES or error.status_code >= 500:
            return RetryLater(
                detail, reason=f"api_{error.status_code}", retry_after=_retry_after(error)
            )
        return Permanent(detail, reason=f"api_{error.status_code}")
    return Permanent(f"Claude SDK error: {error}", reason="api_error")


class ClaudeClient:
    """Sends one Messages request and logs it; knows nothing about threads or Redis."""

    def __init__(self, client: anthropic.Anthropic) -> None:
        self._client = client

    def close(self) -> None:
        """Close the SDK's HTTP connections (a worker keeps its client for its lifetime)."""
        self._client.close()

    def call(self, request: dict[str, Any], prior: Usage) -> CallResult:
        """One `messages.create`; `prior` is the thread's usage so far, for the log line."""
        started = time.perf_counter()
        fields: dict[str, Any] = {"model": request["model"], "turns": len(request["messages"])}
        try:
            raw = self._client.messages.with_raw_response.create(**request)
            message = raw.parse()
        except anthropic.AnthropicError as exc:
            error = translate(exc)
            status = getattr(exc, "status_code", None)
            metrics.record_call(status, None, {}, time.perf_counter() - started)
            log.warning(
                "claude.call",
                outcome="error",
                status=status,
                error_reason=error.reason,
                request_id=getattr(exc, "request_id", None),
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                **fields,
                **Usage().as_dict(),
                thread_input_tokens=prior.total_input_tokens,
                thread_output_tokens=prior.output_tokens,
            )
            raise error from exc
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        usage = Usage.from_mapping(message.usage.model_dump())
        metrics.record_call(
            raw.http_response.status_code, message.stop_reason, usage.as_dict(), latency_ms / 1000
        )
        total = prior + usage
        log.info(
            "claude.call",
            outcome="ok",
            status=raw.http_response.status_code,
            request_id=message._request_id,
            stop_reason=message.stop_reason,
            latency_ms=latency_ms,
            retries=raw.retries_taken,
            **fields,
            **usage.as_dict(),
            thread_input_tokens=total.total_input_tokens,
            thread_output_tokens=total.output_tokens,
        )
        return call_result(message, latency_ms)


def call_result(message: Any, latency_ms: float) -> CallResult:
    """What the triage step needs from an SDK `Message` (from a call or a batch result)."""
    text = "".join(block.text for block in message.content if block.type == "text")
    return CallResult(
        text=text,
        stop_reason=message.stop_reason,
        stop_details=message.stop_details.model_dump() if message.stop_details else None,
        usage=Usage.from_mapping(message.usage.model_dump()),
        request_id=getattr(message, "_request_id", None),
        model=message.model,
        latency_ms=latency_ms,
    )


@dataclass(frozen=True)
class BatchItem:
    """One result of a Message Batch: `kind` is succeeded, errored, canceled or expired."""

    custom_id: str
    kind: str
    result: CallResult | None
    error: str = ""


class BatchClient:
    """The Message Batches API (half price, results within 24 h), through the SDK."""

    def __init__(self, client: anthropic.Anthropic) -> None:
        self._client = client

    def create(self, requests: list[dict[str, Any]]) -> str:
        try:
            batch = self._client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        except anthropic.AnthropicError as exc:
            raise translate(exc) from exc
        log.info("claude.batch_created", batch_id=batch.id, requests=len(requests))
        return batch.id

    def status(self, batch_id: str) -> tuple[str, dict[str, int]]:
        try:
            batch = self._client.messages.batches.retrieve(batch_id)
        except anthropic.AnthropicError as exc:
            raise translate(exc) from exc
        return batch.processing_status, batch.request_counts.model_dump()

    def cancel(self, batch_id: str) -> None:
        """Ask the API to stop processing a batch (requests not yet processed are not billed)."""
        try:
            self._client.messages.batches.cancel(batch_id)
        except anthropic.AnthropicError as exc:
            raise translate(exc) from exc
        log.info("claude.batch_canceled", batch_id=batch_id)

    def results(self, batch_id: str) -> Iterator[BatchItem]:
        try:
            for item in self._client.messages.batches.results(batch_id):
                outcome = item.result
                if outcome.type == "succeeded":
                    result = call_result(outcome.message, 0.0)
                    metrics.record_call(200, result.stop_reason, result.usage.as_dict(), 0.0)
                    log.info(
                        "claude.call",
                        outcome="ok",
                        status=200,
                        batch_id=batch_id,
                        request_id=None,
                        stop_reason=result.stop_reason,
                        model=result.model,
                        custom_id=item.custom_id,
                        **result.usage.as_dict(),
                    )
                    yield BatchItem(item.custom_id, "succeeded", result)
                elif outcome.type == "errored":
                    error = getattr(getattr(outcome.error, "error", None), "message", "")
                    yield BatchItem(item.custom_id, "errored", None, str(error))
                else:
                    yield BatchItem(item.custom_id, outcome.type, None)
        except anthropic.AnthropicError as exc:
            raise translate(exc) from exc
