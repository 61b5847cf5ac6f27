"""What a decision changes (pure): the `Commit` for a classification, a question, an escalation,
or for emails that must go to the dead-letter stream instead."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import structlog

from common.contract import (
    STATUS_AWAITING,
    STATUS_CLASSIFIED,
    STATUS_ESCALATED,
    STATUS_NEEDS_REVIEW,
    EmailPayload,
    ReplyTask,
)
from common.deadletters import DeadLetterEntry
from common.errors import InvalidDecision
from common.settings import Settings
from worker.decide.bands import confidence_band, needs_review
from worker.decide.claude import CallResult
from worker.decide.conversation import assistant_turn
from worker.decide.decision import Decision
from worker.decide.outcome import Outcome, OutcomeKind
from worker.decide.pending import Pending, question_recipient
from worker.events import Clarification, Classified, Escalated, TokenUsage
from worker.reply.headers import (
    new_reply_tag,
    references_chain,
    reply_message_id,
    reply_subject,
)
from worker.reply.send_guard import check_question
from worker.state.commit import Commit
from worker.state.ledger import Charge
from worker.state.snapshot import Snapshot, Turn
from worker.state.usage import Usage

log = structlog.get_logger("worker.decide.plan")


@dataclass(frozen=True)
class Answer:
    """Claude's reply to one thread state: a decision, or a refusal (decision None)."""

    result: CallResult
    decision: Decision | None
    spent: Usage
    calls: int

    @property
    def outcome(self) -> Outcome:
        if self.decision is None:
            return Outcome(OutcomeKind.ESCALATED)
        if self.decision.is_clarify:
            return Outcome(OutcomeKind.CLARIFIED)
        return Outcome(OutcomeKind.CLASSIFIED, category=self.decision.category)


def dead_letter_commit(
    snapshot: Snapshot,
    pending: Pending,
    reason: str,
    error: str,
    attempts: int = 1,
    charges: list[Charge] | None = None,
) -> Commit:
    """Consume the inbox into the dead-letter stream: every pending email with `reason`."""
    letters = pending.dead_letters + [
        DeadLetterEntry(reason, error, email.model_dump(mode="json"), attempts)
        for email in pending.emails
    ]
    return Commit(
        snapshot.version, len(snapshot.inbox), dead_letters=letters, charges=charges or []
    )


def limit_commit(snapshot: Snapshot, pending: Pending, limit: str, settings: Settings) -> Commit:
    """The thread reached a cap: apply its pending emails as an escalation, without a call."""
    emails = pending.emails
    chain = references_chain(snapshot.references, pending.email_ids)
    none = _tokens(Usage())
    return Commit(
        expected_version=snapshot.version,
        consumed=len(snapshot.inbox),
        email_ids=pending.email_ids,
        dead_letters=pending.dead_letters,
        previous_status=snapshot.status,
        meta={"status": STATUS_ESCALATED, "references": json.dumps(chain), "limit": limit},
        event=Escalated(
            thread_id=snapshot.thread_id,
            email_ids=pending.email_ids,
            model=settings.model,
            request_id=None,
            usage=none,
            thread_usage=_tokens(snapshot.usage),
            clarifications=snapshot.clarifications,
            no_question_reason=limit,
            first_received_at=min(email.received_at for email in emails),
            decided_at=round(time.time(), 3),
            turns=len(snapshot.messages),
            **join_refused(emails),
            refusal_category=None,
            explanation=f"thread limit reached ({limit}): no call was made",
            limit=limit,
        ),
    )


def join_refused(emails: list[EmailPayload]) -> dict[str, Any]:
    """The event fields of emails refused by the thread they cited (`producers.membership`)."""
    refused = next((email.refused_thread_id for email in emails if email.refused_thread_id), None)
    return {"thread_join_refused": refused is not None, "refused_thread_id": refused}


def _tokens(usage: Usage) -> TokenUsage:
    return TokenUsage(**usage.as_dict())


def decision_commit(
    snapshot: Snapshot,
    pending: Pending,
    messages: list[Turn],
    answer: Answer,
    no_question: str | None,
    settings: Settings,
    prompt_version: str | None = None,
) -> Commit:
    """The commit for a decision on `pending` (its user turn is `messages[-1]`)."""
    emails = pending.emails
    latest = emails[-1]
    email_ids = pending.email_ids
    chain = references_chain(snapshot.references, email_ids)
    total = snapshot.usage + answer.spent
    subject = snapshot.meta.get("subject") or emails[0].subject
    change = Commit(
        expected_version=snapshot.version,
        consumed=len(snapshot.inbox),
        email_ids=email_ids,
        dead_letters=pending.dead_letters,
        previous_status=snapshot.status,
        meta={
            "subject": subject,
            "customer": question_recipient(latest, settings).address or latest.from_addr,
            **total.as_dict(),
            "calls": snapshot.calls + answer.calls,
        },
    )
    common: dict[str, Any] = {
        "thread_id": snapshot.thread_id,
        "prompt_version": prompt_version,
        "email_ids": email_ids,
        "model": answer.result.model,
        "request_id": answer.result.request_id,
        "usage": _tokens(answer.spent),
        "thread_usage": _tokens(total),
        "clarifications": snapshot.clarifications,
        "no_question_reason": no_question,
        "first_received_at": min(email.received_at for email in emails),
        "decided_at": round(time.time(), 3),
        **join_refused(emails),
    }
    decision = answer.decision
    if decision is None:
        details = answer.result.stop_details or {}
        change.meta |= {"status": STATUS_ESCALATED, "references": json.dumps(chain)}
        change.event = Escalated(
            **common,
            refusal_category=details.get("category"),
            explanation=details.get("explanation"),
            turns=len(snapshot.messages),
        )
        return change
    change.turns = [messages[-1], assistant_turn(answer.result.text)]
    turns = len(snapshot.messages) + 2
    described: dict[str, Any] = {
        "priority": decision.priority,
        "language": decision.language,
        "sentiment": decision.sentiment,
        "summary": decision.summary,
        "fields": decision.fields,
    }
    change.meta |= {
        **{name: value for name, value in described.items() if name != "fields"},
        "fields": json.dumps(decision.fields),
        "prompt_version": prompt_version or "",
    }
    if not decision.is_clarify:
        band = confidence_band(decision.confidence, settings)
        review = needs_review(decision, settings)
        change.meta |= {
            "status": STATUS_NEEDS_REVIEW if review else STATUS_CLASSIFIED,
            "category": decision.category,
            "confidence": decision.confidence,
            "confidence_band": band,
            "references": json.dumps(chain),
        }
        change.event = Classified(
            **common,
            **described,
            category=decision.category,
            confidence=decision.confidence,
            confidence_band=band,
            needs_review=review,
            reason=decision.reason,
            turns=turns,
        )
        return change
    recipient = question_recipient(latest, settings).address
    if recipient is None:  # no_question_reason forbade this; a decision must not get here
        raise InvalidDecision("a question was decided for an email with no valid recipient")
    version = snapshot.version + 1
    message_id = reply_message_id(
        snapshot.thread_id, version, settings.support_address, new_reply_tag()
    )
    checked = check_question(decision.question, max_chars=settings.max_question_chars)
    if checked.replaced:
        log.warning("drain.question_replaced", reason=checked.reason)
    change.reply = ReplyTask(
        reply_id=f"{snapshot.thread_id}.{version}",
        thread_id=snapshot.thread_id,
        message_id=message_id,
        to=recipient,
        subject=reply_subject(subject),
        question=checked.text,
        in_reply_to=latest.message_id,
        references=chain,
        email_ids=email_ids,
    )
    change.meta |= {
        "status": STATUS_AWAITING,
        "last_question": checked.text,  # an answer that quotes it back is a robot's
        "clarifications": snapshot.clarifications + 1,
        "references": json.dumps([*chain, message_id]),
    }
    change.event = Clarification(
        **common,
        **described,
        reply_id=change.reply.reply_id,
        reply_message_id=message_id,
        question_replaced=checked.replaced,
        question_replaced_reason=checked.reason,
        turns=turns,
    )
    return change
