"""Emulator configuration: one validated object, swappable at runtime.

Pydantic validates both the Python keyword API (`EmulatorThread.configure`) and the JSON admin
endpoint with the same rules, so a bad value is rejected the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "rate_limit",
    "overloaded",
    "api_error",
    "reset",
    "max_tokens",
    "refusal",
    "obey_injection",
    "low_confidence",
    "expired",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

DEFAULT_PREFILL_MODELS: tuple[str, ...] = (
    "claude-3",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
    "claude-opus-4-1",
    "claude-opus-4-0",
    "claude-sonnet-4-0",
)


class FaultRule(BaseModel):
    """One injected fault: fires with probability `rate`, at most `times` times.

    `match` restricts the rule to requests whose user text contains that substring
    (case-insensitive), so one conversation can be made to fail while others succeed.
    `obey_injection` plays a model that fell for a prompt injection: it asks `text` as its
    clarifying question (whatever that contains), so callers can test what they let through.
    `low_confidence` plays an unsure model: the decision keeps its action and category but its
    confidence is 0.3 (`emulator.respond.LOW_CONFIDENCE`), e.g. to send a thread to review.
    `expired` only applies to Message Batch requests (the request ends `expired`); `reset` only
    applies to /v1/messages (a batch has no connection to drop).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    match: str | None = None
    times: int | None = Field(default=None, ge=0)
    text: str | None = None


class EmulatorConfig(BaseModel):
    """Every knob of the emulator, with defaults that behave like a healthy API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0.0)
    jitter_ms: float = Field(default=0.0, ge=0.0)
    faults: tuple[FaultRule, ...] = ()
    retry_after_s: float = Field(default=1.0, ge=0.0)
    rpm: int | None = Field(default=None, ge=1)
    itpm: int | None = Field(default=None, ge=1)
    record_path: Path | None = None
    max_recorded: int = Field(default=10_000, ge=0)
    cache_min_tokens: int = Field(default=1024, ge=0)
    cache_ttl_s: float = Field(default=300.0, gt=0.0)
    api_key: str | None = None
    accept_any_model: bool = False
    prefill_models: tuple[str, ...] = DEFAULT_PREFILL_MODELS
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    #: Prompts larger than this are answered 400 "prompt is too long", as the real API does.
    context_window_tokens: int = Field(default=200_000, ge=1)
    #: A Message Batch ends this many seconds after it is created (0: at once).
    batch_delay_s: float = Field(default=2.0, ge=0.0)
    #: Limits of POST /v1/messages/batches (the real API's: 256 MB, 100,000 requests).
    batch_max_body_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    batch_max_requests: int = Field(default=100_000, ge=1)
    #: Batches kept in memory; the oldest are forgotten beyond this.
    max_batches: int = Field(default=1_000, ge=1)

    def updated(self, **fields: Any) -> EmulatorConfig:
        """Return a re-validated copy with `fields` changed (unknown names are rejected)."""
        data = self.model_dump()
        data.update(fields)
        return EmulatorConfig.model_validate(data)

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe view for the admin endpoint; the API key itself is never shown."""
        data = self.model_dump(mode="json")
        data["api_key"] = None if self.api_key is None else "***"
        return data


def parse_fault_spec(spec: str) -> FaultRule:
    """Parse the CLI form `KIND:RATE` (or just `KIND`, meaning rate 1.0)."""
    kind, _, rate = spec.partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return FaultRule.model_validate({"kind": kind, "rate": float(rate) if rate else 1.0})
