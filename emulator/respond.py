"""Turn a validated request into the Message the real API would return.

Pure apart from the prompt cache passed in: brain -> text (plain or schema JSON) -> truncation to
`max_tokens` -> usage. Faults that change the content (`max_tokens`, `refusal`, `obey_injection`,
`low_confidence`) are applied here; faults that replace the response (errors, reset) are the
server's business.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from emulator import brain, schema_fill
from emulator.tokens import CacheUsage, PromptCache, count_prompt, estimate_text
from emulator.validation import output_schema

REFUSAL_EXPLANATION = (
    "The emulator was configured to refuse this request (injected `refusal` fault)."
)
#: The confidence a `low_confidence` fault forces on the decision, whatever the keywords say.
LOW_CONFIDENCE = 0.3


def generate_text(
    body: dict[str, Any], injected_question: str | None = None, *, low_confidence: bool = False
) -> str:
    """The full, untruncated answer: schema JSON or plain text.

    With `injected_question` the "model" obeys a prompt injection and asks exactly that; with
    `low_confidence` its confidence is LOW_CONFIDENCE (the action and category stay).
    """
    schema = output_schema(body)
    text = brain.user_text(body.get("messages") or [])
    hints = schema_fill.analyse(schema) if schema is not None else None
    if hints is None:
        decision = brain.decide(text)
    else:
        decision = brain.decide(text, custom_labels=hints.labels, can_clarify=hints.can_clarify)
    if injected_question is not None and (hints is None or hints.can_clarify):
        decision = replace(decision, action="clarify", question=injected_question)
    if low_confidence:
        decision = replace(decision, confidence=LOW_CONFIDENCE)
    if schema is None:
        return decision.question if decision.is_clarify else str(decision.category)
    return json.dumps(schema_fill.fill(schema, decision, text), ensure_ascii=False)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """Cut `text` so that its estimate fits `max_tokens`, on a character boundary."""
    encoded = text.encode("utf-8")[: max_tokens * 4]
    return encoded.decode("utf-8", errors="ignore")


def usage_dict(cache: CacheUsage, output_tokens: int) -> dict[str, Any]:
    """The `usage` object with every field the SDK's `Usage` model knows about."""
    return {
        "input_tokens": cache.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache.cache_creation,
        "cache_read_input_tokens": cache.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.cache_creation_5m,
            "ephemeral_1h_input_tokens": cache.cache_creation_1h,
        },
        "server_tool_use": None,
        "service_tier": "standard",
    }


def account_input(
    body: dict[str, Any],
    cache: PromptCache,
    *,
    min_tokens: int,
    ttl_s: float,
    store: bool = True,
) -> CacheUsage:
    """Input token accounting for a request, including prompt caching."""
    top = body.get("cache_control")
    return cache.account(
        str(body["model"]),
        count_prompt(body),
        top if isinstance(top, dict) else None,
        min_tokens=min_tokens,
        default_ttl_s=ttl_s,
        store=store,
    )


def build_message(
    body: dict[str, Any],
    *,
    message_id: str,
    cache_usage: CacheUsage,
    fault: str | None = None,
    fault_text: str | None = None,
) -> dict[str, Any]:
    """The Message JSON for a validated request."""
    max_tokens = int(body["max_tokens"])
    stop_details: dict[str, Any] | None = None
    if fault == "refusal":
        text, stop_reason = "", "refusal"
        stop_details = {
            "type": "refusal",
            "category": "general_harms",
            "explanation": REFUSAL_EXPLANATION,
        }
        output_tokens = 1
    else:
        injected = (fault_text or "") if fault == "obey_injection" else None
        text = generate_text(body, injected, low_confidence=fault == "low_confidence")
        stop_reason = "end_turn"
        output_tokens = max(1, estimate_text(text))
        if fault == "max_tokens":
            limit = max(1, min(max_tokens, output_tokens) // 2)
            text, stop_reason = truncate_to_tokens(text, limit), "max_tokens"
            output_tokens = max_tokens
        elif output_tokens > max_tokens:
            text, stop_reason = truncate_to_tokens(text, max_tokens), "max_tokens"
            output_tokens = max_tokens
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": stop_details,
        "usage": usage_dict(cache_usage, output_tokens),
    }
