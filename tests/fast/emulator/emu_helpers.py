"""Shared constants and request builders for the emulator tests."""

from __future__ import annotations

from typing import Any

MODEL = "claude-sonnet-4-6"
WORKER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "question", "category", "confidence", "reason"],
    "properties": {
        "action": {"type": "string", "enum": ["clarify", "classify"]},
        "question": {"type": "string"},
        "category": {"type": "string", "enum": ["BILLING", "SHIPPING", "TECHNICAL", "OTHER"]},
        "confidence": {"type": "number"},
        "reason": {"type": "string"},
    },
}
TURN1 = "Hi, my thing isn't working. Can you help?"
TURN2 = "Sorry, I mean I was charged twice for my subscription this month."


def structured(schema: dict[str, Any] = WORKER_SCHEMA) -> dict[str, Any]:
    """The `output_config` argument asking for JSON valid against `schema`."""
    return {"format": {"type": "json_schema", "schema": schema}}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}
