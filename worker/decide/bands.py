"""Confidence bands, the review threshold and per-category question policy (pure).

Model confidence is poorly calibrated, so it is read in bands: `high` from
`TRIAGE_CONFIDENCE_HIGH` (0.85), `low` under `TRIAGE_CONFIDENCE_LOW` (0.6), `medium` between. A
classification under the review threshold (`TRIAGE_REVIEW_BELOW`, 0.6, or its category's own
`review_below`) is not final: the thread waits in the review lane with status `needs_review`.
"""

from __future__ import annotations

from typing import Literal

from common.settings import Settings
from worker.decide.decision import Decision

Band = Literal["high", "medium", "low"]


def confidence_band(confidence: float, settings: Settings) -> Band:
    if confidence >= settings.confidence_high:
        return "high"
    if confidence < settings.confidence_low:
        return "low"
    return "medium"


def review_threshold(category: str, settings: Settings) -> float:
    """The category's own threshold when its taxonomy entry sets one, else the setting."""
    declared = settings.category(category)
    if declared is not None and declared.review_below is not None:
        return declared.review_below
    return settings.review_below


def needs_review(decision: Decision, settings: Settings) -> bool:
    """A classification a person should confirm before anything automatic happens."""
    if decision.is_clarify:
        return False
    return decision.confidence < review_threshold(decision.category, settings)


def apply_question_policy(decision: Decision, settings: Settings) -> Decision:
    """A question in a category that never asks becomes a classification in that category."""
    declared = settings.category(decision.category)
    if not decision.is_clarify or declared is None or declared.ask_questions:
        return decision
    return decision.model_copy(
        update={
            "action": "classify",
            "question": "",
            "reason": f"(no questions in {decision.category}) {decision.reason}".strip(),
        }
    )
