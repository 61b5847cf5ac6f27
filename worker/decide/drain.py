"""The triage step: drain a thread's inbox into one user turn, ask Claude once, commit atomically.

This is the core the Celery task wraps. It owns the decision flow (stop reasons, the truncation
retry, clarify / classify / escalate) and builds one `Commit`; `ThreadStore` makes it atomic and
fenced, so a redelivered task or a second drainer can only ever redo work, never double it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from common.contract import EmailPayload, ReplyTask
from common.errors import Permanent, RetryLater, Truncated
from common.publish import TaskPublisher
from common.settings import Settings
from worker.decide.claude import CallResult, ClaudeClient
from worker.decide.conversation import Turn, assistant_turn, check_alternation, user_turn
from worker.decide.decision import Decision, parse_decision
from worker.decide.prompt import build_request, load_template
from worker.decide.pruning import prune
from worker.decide.ratelimit import RateLimiter, estimate_input_tokens
from worker.observe import metrics
from worker.reply.headers import references_chain, reply_message_id, reply_subject
from worker.reply.send_guard import check_question
from worker.state.ledger import Charge, Ledger
from worker.state.store import Commit, Snapshot, ThreadStore
from worker.state.usage import Usage

log = structlog.get_logger("worker.decide.drain")

STATUS_AWAITING = "awaiting_customer"
STATUS_CLASSIFIED = "classified"
STATUS_ESCALATED = "escalated"
TRUNCATED_STOPS = frozenset({"max_tokens", "model_context_window_exceeded"})
MAX_ROUNDS = 25
MAX_TOKENS_CEILING = 64_000
#: A rate-limit wait longer than this refreshes the drainer's flag before the call.
REFRESH_AFTER_WAIT_SECONDS = 1.0


@dataclass
class Pending:
    """The inbox split into emails to decide on and entries to dead-letter."""

    emails: list[EmailPayload] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True)
class Answer:
    """Claude's reply to one thread state: a decision, or a refusal (decision None)."""

    result: CallResult
    decision: Decision | None
    spent: Usage
    calls: int


def dead_letter(reason: str, error: str, payload: Any, attempts: int = 1) -> dict[str, Any]:
    """A dead-letter entry: why, and enough of the work to replay it."""
    return {
        "reason": reason,
        "error": error,
        "attempts": attempts,
        "payload": payload,
        "at": round(time.time(), 3),
    }


def no_question_reason(
    emails: list[EmailPayload], clarifications: int, settings: Settings
) -> str | None:
    """Why this decision may not ask the customer anything (None: it may)."""
    flags = sorted({flag for email in emails for flag in email.flags})
    if flags:
        return "robot:" + ",".join(flags)  # never auto-reply to robots: mail loops start there
    if clarifications >= settings.max_clarifications:
        return "clarification_limit"
    return None


def customer_text(messages: list[Turn]) -> str:
    """Everything the customer wrote in the thread (what a question may quote back)."""
    parts: list[str] = []
    for turn in messages:
        if turn["role"] != "user":
            continue
        content = turn["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(str(block.get("text", "")) for block in content)
    return "\n".join(parts)


def partition(snapshot: Snapshot) -> Pending:
    """Valid new emails (oldest first), malformed entries, and already-applied duplicates."""
    pending = Pending()
    seen: set[str] = set()
    for item in snapshot.inbox:
        if item.applied:
            pending.duplicates += 1
            continue
        try:
            email = EmailPayload.model_validate_json(item.raw)
        except ValidationError as exc:
            error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            pending.dead_letters.append(dead_letter("invalid_payload", error, item.raw))
            continue
        if email.message_id in seen:
            pending.duplicates += 1
            continue
        seen.add(email.message_id)
        pending.emails.append(email)
    return pending


class DrainStep:
    """Drains one thread at a time into decisions; clarifications go to `publisher.reply`."""

    def __init__(
        self,
        settings: Settings,
        store: ThreadStore,
        claude: ClaudeClient,
        publisher: TaskPublisher,
        limiter: RateLimiter,
        ledger: Ledger,
    ) -> None:
        self._settings = settings
        self._store = store
        self._claude = claude
        self._publisher = publisher
        self._limiter = limiter
        self._ledger = ledger
        self._template = load_template(settings)

    @property
    def store(self) -> ThreadStore:
        return self._store

    def drain(self, thread_id: str, first: Snapshot | None = None) -> list[str]:
        """Process everything pending for the thread; returns one outcome per commit.

        `first` is the snapshot read when the drain began (saves a round trip); later rounds
        read again, refreshing the drainer's flag since a call may follow.
        """
        outcomes: list[str] = []
        flag_seconds = self._settings.visibility_timeout_seconds
        for _ in range(MAX_ROUNDS):
            snapshot = first or self._store.snapshot(thread_id, refresh_flag_seconds=flag_seconds)
            first = None
            if not snapshot.inbox:
                if self._store.release(thread_id):
                    return outcomes
                continue
            outcome, finished = self._step(snapshot)
            if outcome:
                outcomes.append(outcome)
            if finished:  # the commit emptied the inbox and cleared the flag itself
                return outcomes
        raise RetryLater(f"thread {thread_id} kept changing for {MAX_ROUNDS} rounds", reason="busy")

    def dead_letter_pending(self, thread_id: str, reason: str, error: str, attempts: int) -> int:
        """Move everything pending to the dead-letter stream (the retry budget is spent)."""
        for _ in range(MAX_ROUNDS):
            snapshot = self._store.snapshot(thread_id)
            if not snapshot.inbox:
                self._store.release(thread_id)
                return 0
            pending = partition(snapshot)
            letters = pending.dead_letters + [
                dead_letter(reason, error, email.model_dump(mode="json"), attempts)
                for email in pending.emails
            ]
            change = Commit(snapshot.version, len(snapshot.inbox), dead_letters=letters)
            if self._store.commit(thread_id, change).ok:
                metrics.record_emails("dead_lettered", len(letters))
                log.error("triage.dead_lettered", reason=reason, count=len(letters), error=error)
                return len(letters)
        raise RetryLater(f"thread {thread_id} kept changing while dead-lettering", reason="busy")

    def _step(self, snapshot: Snapshot) -> tuple[str | None, bool]:
        """One decision; returns its outcome and whether the thread is now idle (flag cleared)."""
        pending = partition(snapshot)
        if pending.duplicates:
            log.info("triage.duplicate_email", count=pending.duplicates)
        if pending.dead_letters:
            log.error("triage.invalid_payload", count=len(pending.dead_letters))
        if not pending.emails:
            change = Commit(
                snapshot.version, len(snapshot.inbox), dead_letters=pending.dead_letters
            )
            result = self._store.commit(snapshot.thread_id, change)
            if result.ok:
                metrics.record_emails("duplicate", pending.duplicates)
                metrics.record_emails("dead_lettered", len(pending.dead_letters))
            return None, result.ok and result.remaining == 0
        structlog.contextvars.bind_contextvars(email_ids=[e.message_id for e in pending.emails])
        turn = user_turn(pending.emails, self._settings.max_turn_chars)
        messages = [*snapshot.messages, turn]
        no_question = no_question_reason(pending.emails, snapshot.clarifications, self._settings)
        may_clarify = no_question is None
        charges: list[Charge] = []  # billed calls, written by the commit below
        try:
            check_alternation(messages[:-1])
            answer = self._ask(snapshot.thread_id, messages, may_clarify, snapshot.usage, charges)
        except (Permanent, ValueError) as exc:
            reason = exc.reason if isinstance(exc, Permanent) else "corrupt_thread"
            letters = pending.dead_letters + [
                dead_letter(reason, str(exc), email.model_dump(mode="json"))
                for email in pending.emails
            ]
            change = Commit(
                snapshot.version, len(snapshot.inbox), dead_letters=letters, charges=charges
            )
            result = self._store.commit(snapshot.thread_id, change)
            if result.ok:
                metrics.record_emails("duplicate", pending.duplicates)
                metrics.record_emails("dead_lettered", len(letters))
                log.error("triage.dead_lettered", reason=reason, error=str(exc), count=len(letters))
                return f"dead_lettered:{reason}", result.remaining == 0
            return None, False
        except BaseException:
            # The step will be retried; the calls it made were billed all the same.
            with contextlib.suppress(redis.RedisError):
                self._ledger.write(snapshot.thread_id, charges)
            raise
        change = self._decision_commit(snapshot, pending, messages, answer, no_question)
        change.charges = charges
        result = self._store.commit(snapshot.thread_id, change)
        if not result.ok:
            log.warning("triage.commit_rejected", status=result.status, version=snapshot.version)
            return None, False
        outcome = self._log_outcome(answer, result.version)
        kind, _, category = outcome.partition(":")
        received = [email.received_at for email in pending.emails]
        metrics.record_emails(kind, len(pending.emails), category or None, received)
        metrics.record_emails("duplicate", pending.duplicates)
        metrics.record_emails("dead_lettered", len(pending.dead_letters))
        if change.reply is not None:
            self._publisher.reply(ReplyTask.model_validate(change.reply))
        return outcome, result.remaining == 0

    def first_turn_request(self, thread_id: str) -> tuple[dict[str, Any], int, list[str]] | None:
        """For the Batches API: the request a new thread's first decision needs, with the version
        and email ids it is based on; None when the thread is not a clean first turn (the queue
        path handles those)."""
        snapshot = self._store.snapshot(thread_id)
        if snapshot.messages or not snapshot.inbox:
            return None
        pending = partition(snapshot)
        if not pending.emails or pending.dead_letters or pending.duplicates:
            return None
        no_question = no_question_reason(pending.emails, 0, self._settings)
        messages = [user_turn(pending.emails, self._settings.max_turn_chars)]
        request = build_request(
            self._settings, self._template, messages, no_question is None, self._settings.max_tokens
        )
        return request, snapshot.version, [email.message_id for email in pending.emails]

    def apply_batch_result(
        self, thread_id: str, version: int, email_ids: list[str], result: CallResult
    ) -> tuple[str | None, bool]:
        """Commit a batch result through the same fenced commit as the queue path.

        Returns (outcome, more work waiting); outcome None means the result could not be used
        (the thread changed, truncation, an invalid decision): the caller sends it to the queue.
        """
        snapshot = self._store.snapshot(thread_id)
        pending = partition(snapshot)
        if snapshot.version != version or [e.message_id for e in pending.emails] != email_ids:
            # Billed all the same: the thread moved on while the batch ran; the queue redoes it.
            self._ledger.record(thread_id, result.model, "STALE", result.usage, batch=True)
            return None, True
        no_question = no_question_reason(pending.emails, snapshot.clarifications, self._settings)
        decision: Decision | None = None
        if result.stop_reason == "end_turn":
            try:
                decision = parse_decision(
                    result.text, self._settings.category_names, no_question is None
                )
            except Permanent:
                self._ledger.record(thread_id, result.model, "INVALID", result.usage, batch=True)
                return None, True
            label = "CLARIFY" if decision.is_clarify else decision.category
            self._ledger.record(thread_id, result.model, label, result.usage, batch=True)
        elif result.stop_reason == "refusal":
            self._ledger.record(thread_id, result.model, "ESCALATED", result.usage, batch=True)
        else:
            self._ledger.record(thread_id, result.model, "TRUNCATED", result.usage, batch=True)
            return None, True
        answer = Answer(result, decision, result.usage, 1)
        messages = [user_turn(pending.emails, self._settings.max_turn_chars)]
        with structlog.contextvars.bound_contextvars(thread_id=thread_id, email_ids=email_ids):
            change = self._decision_commit(snapshot, pending, messages, answer, no_question)
            committed = self._store.commit(thread_id, change)
            if not committed.ok:
                return None, True
            outcome = self._log_outcome(answer, committed.version)
        kind, _, category = outcome.partition(":")
        received = [email.received_at for email in pending.emails]
        metrics.record_emails(kind, len(pending.emails), category or None, received)
        if change.reply is not None:
            self._publisher.reply(ReplyTask.model_validate(change.reply))
        return outcome, committed.remaining > 0

    def _ask(
        self,
        thread_id: str,
        messages: list[Turn],
        may_clarify: bool,
        prior: Usage,
        charges: list[Charge],
    ) -> Answer:
        """One call; a truncated reply is never used: one retry with twice the budget, then fail.

        Every call that returns is appended to `charges` (the caller writes them to the ledger).
        """
        budget = self._settings.max_tokens
        spent = Usage()
        sent = self._within_budget(messages, may_clarify)
        for calls in (1, 2):
            request = build_request(self._settings, self._template, sent, may_clarify, budget)
            waited = self._limiter.acquire(estimate_input_tokens(request))
            if calls > 1 or waited > REFRESH_AFTER_WAIT_SECONDS:
                # The snapshot before the first call refreshed the flag; this is later.
                self._store.touch_schedule(thread_id, self._settings.visibility_timeout_seconds)
            result = self._claude.call(request, prior + spent)
            spent = spent + result.usage
            if result.stop_reason == "end_turn":
                try:
                    decision = parse_decision(
                        result.text, self._settings.category_names, may_clarify
                    )
                except Permanent:
                    charges.append(self._ledger.charge(result.model, "INVALID", result.usage))
                    raise
                label = "CLARIFY" if decision.is_clarify else decision.category
                charges.append(self._ledger.charge(result.model, label, result.usage))
                return Answer(result, decision, spent, calls)
            if result.stop_reason == "refusal":
                charges.append(self._ledger.charge(result.model, "ESCALATED", result.usage))
                return Answer(result, None, spent, calls)
            truncated = result.stop_reason in TRUNCATED_STOPS
            label = "TRUNCATED" if truncated else "UNEXPECTED_STOP"
            charges.append(self._ledger.charge(result.model, label, result.usage))
            if not truncated:
                raise Permanent(
                    f"unexpected stop_reason {result.stop_reason!r}", reason="unexpected_stop"
                )
            log.warning("triage.truncated", stop_reason=result.stop_reason, max_tokens=budget)
            budget = min(budget * 2, MAX_TOKENS_CEILING)
        raise Truncated(f"reply truncated twice (stop_reason {result.stop_reason!r})")

    def _within_budget(self, messages: list[Turn], may_clarify: bool) -> list[Turn]:
        """The array to send: pruned (see `worker.decide.pruning`) when over the history budget."""

        def size(candidate: list[Turn]) -> int:
            request = build_request(
                self._settings, self._template, candidate, may_clarify, self._settings.max_tokens
            )
            return estimate_input_tokens(request)

        sent, elided = prune(messages, self._settings.history_token_budget, size)
        if elided:
            log.info("triage.pruned", elided_turns=elided, turns_sent=len(sent))
        return sent

    def _decision_commit(
        self,
        snapshot: Snapshot,
        pending: Pending,
        messages: list[Turn],
        answer: Answer,
        no_question: str | None,
    ) -> Commit:
        emails = pending.emails
        latest = emails[-1]
        email_ids = [email.message_id for email in emails]
        chain = references_chain(snapshot.references, email_ids)
        total = snapshot.usage + answer.spent
        change = Commit(
            expected_version=snapshot.version,
            consumed=len(snapshot.inbox),
            email_ids=email_ids,
            dead_letters=pending.dead_letters,
            previous_status=snapshot.status,
            meta={
                "subject": snapshot.meta.get("subject") or emails[0].subject,
                "customer": latest.recipient,
                **total.as_dict(),
                "calls": snapshot.calls + answer.calls,
            },
        )
        decision = answer.decision
        event_base = {
            "thread_id": snapshot.thread_id,
            "email_ids": email_ids,
            "model": answer.result.model,
            "request_id": answer.result.request_id,
            "usage": answer.spent.as_dict(),
            "thread_usage": total.as_dict(),
            "clarifications": snapshot.clarifications,
            "no_question_reason": no_question,
            "first_received_at": min(email.received_at for email in emails),
            "decided_at": round(time.time(), 3),
        }
        if decision is None:
            details = answer.result.stop_details or {}
            change.meta |= {"status": STATUS_ESCALATED, "references": json.dumps(chain)}
            change.event = event_base | {
                "type": "escalated",
                "category": None,
                "refusal_category": details.get("category"),
                "explanation": details.get("explanation"),
                "turns": len(snapshot.messages),
            }
            return change
        change.turns = [messages[-1], assistant_turn(answer.result.text)]
        turns = len(snapshot.messages) + 2
        if decision.is_clarify:
            version = snapshot.version + 1
            message_id = reply_message_id(
                snapshot.thread_id, version, self._settings.support_address
            )
            checked = check_question(
                decision.question, customer_text(messages), self._settings.max_question_chars
            )
            if checked.replaced:
                log.warning("triage.question_replaced", reason=checked.reason)
            reply = ReplyTask(
                reply_id=f"{snapshot.thread_id}.{version}",
                thread_id=snapshot.thread_id,
                message_id=message_id,
                to=latest.recipient,
                subject=reply_subject(snapshot.meta.get("subject") or emails[0].subject),
                question=checked.text,
                in_reply_to=latest.message_id,
                references=chain,
                email_ids=email_ids,
            )
            change.reply = reply.model_dump(mode="json")
            change.reply_id = reply.reply_id
            change.reply_message_id = message_id
            change.meta |= {
                "status": STATUS_AWAITING,
                "clarifications": snapshot.clarifications + 1,
                "references": json.dumps([*chain, message_id]),
            }
            change.event = event_base | {
                "type": "clarification",
                "category": None,
                "reply_id": reply.reply_id,
                "reply_message_id": message_id,
                "question_replaced": checked.replaced,
                "question_replaced_reason": checked.reason,
                "turns": turns,
            }
            return change
        change.meta |= {
            "status": STATUS_CLASSIFIED,
            "category": decision.category,
            "references": json.dumps(chain),
        }
        change.event = event_base | {
            "type": "classified",
            "category": decision.category,
            "confidence": decision.confidence,
            "reason": decision.reason,
            "turns": turns,
        }
        return change

    def _log_outcome(self, answer: Answer, version: int) -> str:
        decision = answer.decision
        if decision is None:
            details = answer.result.stop_details or {}
            log.warning(
                "triage.escalated", refusal_category=details.get("category"), version=version
            )
            return "escalated"
        log.info(
            "triage.decision",
            action=decision.action,
            category=None if decision.is_clarify else decision.category,
            confidence=decision.confidence,
            version=version,
        )
        return "clarified" if decision.is_clarify else f"classified:{decision.category}"
