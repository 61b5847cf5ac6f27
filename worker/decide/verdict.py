"""What one Claude result means for a decision, read the way the drain step reads it (pure).

`read_result` is the part of `DrainStep._ask` that needs no Redis: the stop reason (a decision,
a refusal to escalate, a truncation to retry once with twice the budget, anything else
permanent), the decision parsed against the labels and the clarify budget with the taxonomy's
fields checked, and the category's question policy applied; plus the ledger label the call is
charged under. `triage eval` (the `evaluation` package) decides through it, so an evaluation
reads results exactly as the worker does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.errors import InvalidDecision
from common.settings import Settings
from worker.decide.bands import apply_question_policy
from worker.decide.claude import CallResult
from worker.decide.decision import Decision, parse_decision

#: Stop reasons that mean the reply was cut: never used, retried once with twice the budget.
TRUNCATED_STOPS = frozenset({"max_tokens", "model_context_window_exceeded"})
#: The largest `max_tokens` a truncation retry asks for.
MAX_TOKENS_CEILING = 64_000

VerdictKind = Literal["decision", "refusal", "truncated", "invalid", "unexpected_stop"]


@dataclass(frozen=True)
class Verdict:
    """One result read: `decision` is set for kind `decision` only; `label` is the ledger's
    category for the call (the category, CLARIFY, ESCALATED, TRUNCATED, INVALID or
    UNEXPECTED_STOP)."""

    kind: VerdictKind
    label: str
    decision: Decision | None = None
    error: str = ""


def parse(text: str, settings: Settings, may_clarify: bool) -> Decision:
    """The decision, with the taxonomy's fields checked and its question policy applied;
    `InvalidDecision` when the text is not one."""
    decision = parse_decision(text, settings.category_names, may_clarify, settings.fields)
    return apply_question_policy(decision, settings)


def read_result(result: CallResult, settings: Settings, may_clarify: bool) -> Verdict:
    """What the drain step makes of `result` (see the module docstring)."""
    if result.stop_reason == "end_turn":
        try:
            decision = parse(result.text, settings, may_clarify)
        except InvalidDecision as exc:
            return Verdict("invalid", "INVALID", error=str(exc))
        label = "CLARIFY" if decision.is_clarify else decision.category
        return Verdict("decision", label, decision)
    if result.stop_reason == "refusal":
        return Verdict("refusal", "ESCALATED")
    if result.stop_reason in TRUNCATED_STOPS:
        return Verdict("truncated", "TRUNCATED", error=f"stop_reason {result.stop_reason!r}")
    return Verdict(
        "unexpected_stop", "UNEXPECTED_STOP", error=f"unexpected stop_reason {result.stop_reason!r}"
    )


def retry_budget(max_tokens: int) -> int:
    """The `max_tokens` of the one retry after a truncation."""
    return min(max_tokens * 2, MAX_TOKENS_CEILING)
