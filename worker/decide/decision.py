"""The model's decision, parsed and checked against what we asked for (pure)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ValidationError

from common.errors import InvalidDecision
from worker.decide.prompt import ACTION_CLARIFY


class Decision(BaseModel):
    """Either a clarifying question or a final category, as the schema allows."""

    action: Literal["clarify", "classify"]
    question: str = ""
    category: str
    confidence: float = 0.0
    reason: str = ""

    @property
    def is_clarify(self) -> bool:
        return self.action == ACTION_CLARIFY


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace to one line and bound the length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def parse_decision(text: str, labels: list[str], may_clarify: bool) -> Decision:
    """Parse the structured-output text; enforce the labels and the clarify budget.

    The question is kept as written: `worker.reply.send_guard` decides whether it is safe to send.
    """
    try:
        decision = Decision.model_validate(json.loads(text))
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
        }
    )
