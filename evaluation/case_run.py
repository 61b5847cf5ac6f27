"""One case through the worker's decision path, one user turn at a time (no Redis, no queue).

What the drain step does for a thread, with the case's scripted emails as the customer: each
email becomes a user turn (`user_turn`), whether a question is allowed is decided by the worker's
pure rules (`no_question_reason`: robots, recipient, the clarification budget; plus the loop
checks of `worker.decide.limits` that need no counters), the array is pruned like the worker's
(`prune`), the request is `build_request`'s, and each result is read by
`worker.decide.verdict.read_result` (stop reasons, parsing, fields, question policy). A truncated
reply is retried once with twice the budget; a question goes through the send guard
(`check_question`), and the next scripted email is the customer's answer. A classification
(or the last email answered by a question) ends the case. Each call is priced with the ledger's
arithmetic (`worker.state.ledger.entry`), at the batch price when batched.

`CaseRun` is a small state machine driven from outside (`evaluation.runner`): `request()` gives
the next request (None: done), `take(result)` advances, `fail(error)` ends it as an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.contract import EmailPayload
from common.errors import TriageError
from common.settings import Settings
from evaluation.dataset import Case
from worker.decide.bands import confidence_band, needs_review
from worker.decide.claude import CallResult
from worker.decide.conversation import Turn, assistant_turn, user_turn
from worker.decide.limits import quotes_our_question, subject_loop
from worker.decide.pending import no_question_reason
from worker.decide.prompt import build_request
from worker.decide.pruning import prune
from worker.decide.ratelimit import estimate_input_tokens
from worker.decide.verdict import read_result, retry_budget
from worker.reply.send_guard import check_question
from worker.state.ledger import entry
from worker.state.pricing import price_for
from worker.state.usage import Usage

STATUS_CLASSIFIED = "classified"
STATUS_ASKED = "asked"  # ended on a question no scripted email answers
STATUS_FAILED = "failed"

FAILURE_ERROR = "error"
FAILURE_TRUNCATED = "truncated"
FAILURE_REFUSED = "refused"


@dataclass(frozen=True)
class Setup:
    """What every case of a run shares."""

    settings: Settings
    template: str
    batch: bool = False


def question_block(
    emails: list[EmailPayload], clarifications: int, last_question: str, settings: Settings
) -> str | None:
    """Why this turn may not ask (None: it may), as the worker decides it for a new sender:
    `no_question_reason` and the loop checks of `Limits.no_question_reason` that need no
    counters (the per-address counters and the fast-answer check are live state, not a case's)."""
    reason = no_question_reason(emails, clarifications, settings)
    if reason is not None:
        return reason
    if any(subject_loop(email.subject) for email in emails):
        return "loop:subject"
    if last_question and any(quotes_our_question(email.text, last_question) for email in emails):
        return "loop:quoted_back"
    return None


@dataclass
class Step:
    """One decision: the turn made of email `email`, its calls and what it ended in."""

    email: int
    may_clarify: bool
    no_question_reason: str | None
    max_tokens: int
    calls: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = ""
    decision: dict[str, Any] | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "may_clarify": self.may_clarify,
            "no_question_reason": self.no_question_reason,
            "outcome": self.outcome,
            "decision": self.decision,
            "error": self.error or None,
            "calls": self.calls,
        }


class CaseRun:
    def __init__(self, case: Case, setup: Setup) -> None:
        self.case = case
        self._setup = setup
        self._settings = setup.settings
        self.messages: list[Turn] = []
        self.steps: list[Step] = []
        self.clarifications = 0
        self.last_question = ""
        self.usage = Usage()
        self.cost_micro_usd = 0
        self.done = False
        self.status = ""
        self.failure: str | None = None
        self._turn: Turn = {}
        self._sent: list[Turn] = []
        self._begin(0)

    @property
    def step(self) -> Step:
        return self.steps[-1]

    def _begin(self, position: int) -> None:
        """Start the decision on scripted email `position` (one email, one user turn)."""
        settings = self._settings
        emails = [self.case.emails[position]]
        blocked = question_block(emails, self.clarifications, self.last_question, settings)
        self._turn = user_turn(emails, settings.max_turn_chars)
        candidate = [*self.messages, self._turn]
        may_clarify = blocked is None

        def size(turns: list[Turn]) -> int:
            request = build_request(
                settings, self._setup.template, turns, may_clarify, settings.max_tokens
            )
            return estimate_input_tokens(request)

        self._sent, _ = prune(candidate, settings.history_token_budget, size)
        self.steps.append(Step(position, may_clarify, blocked, settings.max_tokens))

    def request(self) -> dict[str, Any] | None:
        """Keyword arguments for the next `messages.create` (None: the case is done)."""
        if self.done:
            return None
        step = self.step
        return build_request(
            self._settings, self._setup.template, self._sent, step.may_clarify, step.max_tokens
        )

    def take(self, result: CallResult) -> None:
        """Advance on one result, as the drain step would."""
        settings = self._settings
        step = self.step
        verdict = read_result(result, settings, step.may_clarify)
        counters = entry(result.usage, price_for(result.model, settings.prices), self._setup.batch)
        self.usage = self.usage + result.usage
        self.cost_micro_usd += counters["cost_micro_usd"]
        step.calls.append(
            {
                "request_id": result.request_id,
                "model": result.model,
                "stop_reason": result.stop_reason,
                "label": verdict.label,
                "max_tokens": step.max_tokens,
                "usage": result.usage.as_dict(),
                "cost_usd": counters["cost_micro_usd"] / 1_000_000,
                "latency_ms": None if self._setup.batch else result.latency_ms,
            }
        )
        if verdict.kind == "truncated" and len(step.calls) == 1:
            step.max_tokens = retry_budget(step.max_tokens)  # one retry, twice the budget
            return
        if verdict.decision is None:
            kind = {"truncated": FAILURE_TRUNCATED, "refusal": FAILURE_REFUSED}.get(
                verdict.kind, FAILURE_ERROR
            )
            details = result.stop_details or {}
            error = verdict.error or f"refused ({details.get('category') or 'no category'})"
            self._fail(kind, f"{verdict.kind}: {error}")
            return
        decision = verdict.decision
        described: dict[str, Any] = decision.model_dump(exclude={"dropped_fields"})
        described["dropped_fields"] = decision.dropped_fields
        self.messages = [*self.messages, self._turn, assistant_turn(result.text)]
        if decision.is_clarify:
            checked = check_question(decision.question, max_chars=settings.max_question_chars)
            described |= {
                "question_sent": checked.text,
                "question_replaced": checked.reason if checked.replaced else None,
            }
            step.outcome, step.decision = "clarified", described
            self.clarifications += 1
            self.last_question = checked.text
            if step.email + 1 < len(self.case.emails):
                self._begin(step.email + 1)
            else:
                self.done, self.status = True, STATUS_ASKED
            return
        described |= {
            "band": confidence_band(decision.confidence, settings),
            "needs_review": needs_review(decision, settings),
        }
        step.outcome, step.decision = "classified", described
        self.done, self.status = True, STATUS_CLASSIFIED

    def fail(self, error: TriageError) -> None:
        """The call failed for good (after the retries the worker would make)."""
        self._fail(FAILURE_ERROR, f"{error.reason}: {error}")

    def fail_batch(self, kind: str, error: str) -> None:
        """A batch request ended without a message (errored, expired, canceled, missing)."""
        self._fail(FAILURE_ERROR, f"batch_{kind}: {error}".rstrip(": "))

    def _fail(self, kind: str, error: str) -> None:
        self.step.outcome, self.step.error = kind, error
        self.done, self.status, self.failure = True, STATUS_FAILED, kind

    def record(self) -> dict[str, Any]:
        """The case with its decision, as report.json keeps it (see docs/evaluation.md)."""
        expected = self.case.expected.model_dump()
        final: dict[str, Any] | None = None
        if self.status != STATUS_FAILED:
            final = self.step.decision
        first = self.steps[0].decision if self.steps[0].decision is not None else None
        predicted = final["category"] if final is not None else None
        calls = [call for step in self.steps for call in step.calls]
        latencies = [c["latency_ms"] for c in calls if c["latency_ms"] is not None]
        return {
            "id": self.case.id,
            "source": self.case.source,
            "note": self.case.note,
            "subject": self.case.subject,
            "expected": expected,
            "status": self.status,
            "failure": self.failure,
            "error": self.step.error or None,
            "predicted": predicted,
            "correct": predicted == expected["category"],
            "first_move": None if first is None else first["action"],
            "confidence": None if final is None else final["confidence"],
            "band": None if final is None else final.get("band"),
            "needs_review": None if final is None else final.get("needs_review"),
            "priority": None if final is None else final["priority"],
            "language": None if final is None else final["language"],
            "fields": None if final is None else final["fields"],
            "questions": self.clarifications,
            "questions_replaced": sum(
                1 for s in self.steps if s.decision and s.decision.get("question_replaced")
            ),
            "emails_total": len(self.case.emails),
            "emails_sent": len(self.steps),
            "calls": len(calls),
            "usage": self.usage.as_dict(),
            "cost_usd": self.cost_micro_usd / 1_000_000,
            "latency_ms": round(sum(latencies), 1) if latencies else None,
            "steps": [step.as_dict() for step in self.steps],
        }
