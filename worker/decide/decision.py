"""The model's decision, parsed and checked against what we asked for (pure)."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from common.errors import InvalidDecision
from common.taxonomy import FieldSpec
from worker.decide.prompt import ACTION_CLARIFY

#: A BCP 47 language tag, loosely: primary subtag, then optional script/region/variant subtags.
LANGUAGE_TAG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")


class Decision(BaseModel):
    """Either a clarifying question or a final category, as the schema allows."""

    action: Literal["clarify", "classify"]
    question: str = ""
    category: str
    confidence: float = 0.0
    reason: str = ""
    priority: Literal["urgent", "high", "normal", "low"] = "normal"
    language: str = "und"
    sentiment: Literal["negative", "neutral", "positive"] = "neutral"
    summary: str = ""
    fields: dict[str, Any] = {}
    #: Extracted values dropped because they failed their declared type or format.
    dropped_fields: list[str] = []

    @property
    def is_clarify(self) -> bool:
        return self.action == ACTION_CLARIFY


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace to one line and bound the length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def language_tag(value: str) -> str:
    """A normalised BCP 47 tag (`pt-br` -> `pt-BR`), or `und` when it is not one."""
    value = value.strip().replace("_", "-")
    if not LANGUAGE_TAG.match(value):
        return "und"
    primary, *rest = value.split("-")
    subtags = [s.upper() if len(s) == 2 else s.title() if len(s) == 4 else s for s in rest]
    return "-".join([primary.lower(), *subtags])


def checked_fields(values: Any, declared: list[FieldSpec]) -> tuple[dict[str, Any], list[str]]:
    """Declared fields that pass their type and format; the names of those dropped."""
    values = values if isinstance(values, dict) else {}
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for spec in declared:
        value = values.get(spec.name)
        if spec.accepts(value):
            kept[spec.name] = value
        else:
            kept[spec.name] = None
            dropped.append(spec.name)
    return kept, dropped


def parse_decision(
    text: str, labels: list[str], may_clarify: bool, declared: list[FieldSpec] | None = None
) -> Decision:
    """Parse the structured-output text; enforce the labels and the clarify budget.

    The question is kept as written: `worker.reply.send_guard` decides whether it is safe to send.
    A declared field whose value fails its type or format is dropped (set to null), never the
    whole decision.
    """
    try:
        raw = json.loads(text)
        fields, dropped = checked_fields(
            raw.get("fields") if isinstance(raw, dict) else None, declared or []
        )
        if isinstance(raw, dict):
            raw = {**raw, "fields": fields}
        decision = Decision.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise InvalidDecision(f"model output is not a valid decision: {exc}") from None
    if decision.category not in labels:
        raise InvalidDecision(f"category {decision.category!r} is not one of {labels}")
    if decision.is_clarify and not may_clarify:
        raise InvalidDecision("model asked a question although no clarification is left")
    question = decision.question.strip() if decision.is_clarify else ""
    if decision.is_clarify and not question:
        raise InvalidDecision("model chose to clarify but wrote no question")
    return decision.model_copy(
        update={
            "question": question,
            "confidence": min(1.0, max(0.0, decision.confidence)),
            "reason": one_line(decision.reason, 300),
            "summary": one_line(decision.summary, 300),
            "language": language_tag(decision.language),
            "dropped_fields": dropped,
        }
    )
