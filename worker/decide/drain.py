"""The drain step: take a thread's pending emails as one user turn, ask Claude once, commit.

This is the core the Celery task wraps. It owns the decision flow (stop reasons, the truncation
retry, clarify / classify / escalate); `worker.decide.plan` turns a decision into one `Commit`,
and `ThreadStore` applies it atomically and fenced, so a redelivered task or a second drainer can
only ever redo work, never double it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
import structlog

from common.errors import InvalidDecision, Permanent, RetryLater, Truncated
from common.publish import TaskPublisher
from common.settings import Settings
from worker.decide.claude import CallResult, ClaudeClient
from worker.decide.conversation import check_alternation, user_turn
from worker.decide.limits import Limits, thread_cap
from worker.decide.outcome import BatchApplied, Outcome, OutcomeKind, StepResult
from worker.decide.pending import Pending, no_question_reason, partition
from worker.decide.plan import Answer, dead_letter_commit, decision_commit, limit_commit
from worker.decide.prompt import build_request, load_template, prompt_version
from worker.decide.pruning import prune
from worker.decide.ratelimit import RateLimiter, estimate_input_tokens
from worker.decide.verdict import read_result, retry_budget
from worker.observe import metrics
from worker.state.commit import Commit, CommitResult
from worker.state.ledger import Charge, Ledger
from worker.state.snapshot import Snapshot, Turn
from worker.state.store import ThreadStore
from worker.state.usage import Usage

log = structlog.get_logger("worker.decide.drain")

MAX_ROUNDS = 25
#: A rate-limit wait longer than this refreshes the drainer's flag before the call.
REFRESH_AFTER_WAIT_SECONDS = 1.0


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
        limits: Limits,
    ) -> None:
        self._settings = settings
        self._store = store
        self._claude = claude
        self._publisher = publisher
        self._limiter = limiter
        self._ledger = ledger
        self._limits = limits
        self._template = load_template(settings)
        self.prompt_version = prompt_version(settings, self._template)

    @property
    def store(self) -> ThreadStore:
        return self._store

    def close(self) -> None:
        """Release the SDK client's connections (tools and tests that build many drain steps)."""
        self._claude.close()

    @property
    def settings(self) -> Settings:
        """The settings decisions are made with (learned examples included, when on)."""
        return self._settings

    def drain(self, thread_id: str, first: Snapshot | None = None) -> list[Outcome]:
        """Process everything pending for the thread; returns one outcome per commit.

        `first` is the snapshot read when the drain began (saves a round trip); later rounds
        read again, refreshing the drainer's flag since a call may follow.
        """
        outcomes: list[Outcome] = []
        flag_seconds = self._settings.visibility_timeout_seconds
        for _ in range(MAX_ROUNDS):
            snapshot = first or self._store.snapshot(thread_id, refresh_flag_seconds=flag_seconds)
            first = None
            if not snapshot.inbox:
                if self._store.release(thread_id):
                    return outcomes
                continue
            step = self.step(snapshot)
            if step.outcome is not None:
                outcomes.append(step.outcome)
            if step.idle:  # the commit emptied the inbox and cleared the flag itself
                return outcomes
        raise RetryLater(f"thread {thread_id} kept changing for {MAX_ROUNDS} rounds", reason="busy")

    def dead_letter_pending(self, thread_id: str, reason: str, error: str, attempts: int) -> int:
        """Move everything pending to the dead-letter stream (the retry budget is spent)."""
        for _ in range(MAX_ROUNDS):
            snapshot = self._store.snapshot(thread_id)
            if not snapshot.inbox:
                self._store.release(thread_id)
                return 0
            change = dead_letter_commit(snapshot, partition(snapshot), reason, error, attempts)
            if self._store.commit(thread_id, change).ok:
                metrics.record_emails("dead_lettered", len(change.dead_letters))
                log.error(
                    "drain.dead_lettered",
                    reason=reason,
                    count=len(change.dead_letters),
                    error=error,
                )
                return len(change.dead_letters)
        raise RetryLater(f"thread {thread_id} kept changing while dead-lettering", reason="busy")

    def step(self, snapshot: Snapshot) -> StepResult:
        """One decision on everything pending in `snapshot`, committed (or rejected as stale)."""
        pending = partition(snapshot)
        if pending.duplicates:
            log.info("drain.duplicate_email", count=pending.duplicates)
        if pending.dead_letters:
            log.error("drain.invalid_payload", count=len(pending.dead_letters))
        if not pending.emails:
            change = Commit(
                snapshot.version, len(snapshot.inbox), dead_letters=pending.dead_letters
            )
            result = self._store.commit(snapshot.thread_id, change)
            if result.ok:
                self._count(pending, None)
            return StepResult(None, result.ok and result.remaining == 0)
        structlog.contextvars.bind_contextvars(
            email_ids=pending.email_ids, prompt_version=self.prompt_version
        )
        cap = thread_cap(snapshot, self._settings)
        if cap is not None:
            return self._escalate_at_cap(snapshot, pending, cap)
        turn = user_turn(pending.emails, self._settings.max_turn_chars)
        messages = [*snapshot.messages, turn]
        no_question = self._limits.no_question_reason(pending.emails, snapshot)
        charges: list[Charge] = []  # billed calls, written by the commit below
        try:
            check_alternation(messages[:-1])
            answer = self._ask(
                snapshot.thread_id, messages, no_question is None, snapshot.usage, charges
            )
        except Permanent as exc:
            change = dead_letter_commit(snapshot, pending, exc.reason, str(exc), charges=charges)
            result = self._store.commit(snapshot.thread_id, change)
            if not result.ok:
                return StepResult(None, False)
            outcome = Outcome(OutcomeKind.DEAD_LETTERED, reason=exc.reason)
            self._count(pending, outcome, dead_lettered=len(change.dead_letters))
            log.error(
                "drain.dead_lettered",
                reason=exc.reason,
                error=str(exc),
                count=len(change.dead_letters),
            )
            return StepResult(outcome, result.remaining == 0)
        except BaseException:
            # The step will be retried; the calls it made were billed all the same.
            with contextlib.suppress(redis.RedisError):
                self._ledger.write(snapshot.thread_id, charges)
            raise
        change = decision_commit(
            snapshot,
            pending,
            messages,
            answer,
            no_question,
            self._settings,
            self.prompt_version,
        )
        change.charges = charges
        result = self._store.commit(snapshot.thread_id, change)
        if not result.ok:
            log.warning(
                "drain.commit_rejected", status=str(result.status), version=snapshot.version
            )
            return StepResult(None, False)
        return StepResult(self._committed(pending, answer, change, result), result.remaining == 0)

    def _escalate_at_cap(self, snapshot: Snapshot, pending: Pending, cap: str) -> StepResult:
        """The thread reached a cap: escalate its pending emails without calling Claude."""
        change = limit_commit(snapshot, pending, cap, self._settings)
        result = self._store.commit(snapshot.thread_id, change)
        if not result.ok:
            return StepResult(None, False)
        log.warning("drain.thread_limit", limit=cap, turns=len(snapshot.messages))
        outcome = Outcome(OutcomeKind.ESCALATED)
        self._count(pending, outcome)
        return StepResult(outcome, result.remaining == 0)

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
        return request, snapshot.version, pending.email_ids

    def apply_batch_result(
        self, thread_id: str, version: int, email_ids: list[str], result: CallResult
    ) -> BatchApplied:
        """Commit a batch result through the same fenced commit as the queue path.

        An outcome of None means the result could not be used (the thread changed, truncation,
        an invalid decision): the caller sends the thread to the queue.
        """
        snapshot = self._store.snapshot(thread_id)
        pending = partition(snapshot)
        if snapshot.version != version or pending.email_ids != email_ids:
            # Billed all the same: the thread moved on while the batch ran; the queue redoes it.
            self._ledger.record(thread_id, result.model, "STALE", result.usage, batch=True)
            return BatchApplied(None, True)
        no_question = no_question_reason(pending.emails, snapshot.clarifications, self._settings)
        verdict = read_result(result, self._settings, no_question is None)
        self._ledger.record(thread_id, result.model, verdict.label, result.usage, batch=True)
        if verdict.kind not in ("decision", "refusal"):
            return BatchApplied(None, True)  # the queue redoes it (truncated, invalid, ...)
        decision = verdict.decision
        answer = Answer(result, decision, result.usage, 1)
        messages = [user_turn(pending.emails, self._settings.max_turn_chars)]
        with structlog.contextvars.bound_contextvars(thread_id=thread_id, email_ids=email_ids):
            change = decision_commit(
                snapshot,
                pending,
                messages,
                answer,
                no_question,
                self._settings,
                self.prompt_version,
            )
            committed = self._store.commit(thread_id, change)
            if not committed.ok:
                return BatchApplied(None, True)
            outcome = self._committed(pending, answer, change, committed)
        return BatchApplied(outcome, committed.remaining > 0)

    def _committed(
        self, pending: Pending, answer: Answer, change: Commit, result: CommitResult
    ) -> Outcome:
        """After a decision's commit: log it, count it, hand its question to the reply task."""
        outcome = answer.outcome
        if answer.decision is None:
            details = answer.result.stop_details or {}
            log.warning(
                "drain.escalated", refusal_category=details.get("category"), version=result.version
            )
        else:
            log.info(
                "drain.decision",
                action=answer.decision.action,
                category=outcome.category,
                confidence=answer.decision.confidence,
                version=result.version,
            )
        self._count(pending, outcome)
        if change.reply is not None:
            with contextlib.suppress(redis.RedisError):  # a limit counter, not the decision
                self._limits.record_question(change.reply.to)
            self._publisher.reply(change.reply)
        return outcome

    def _count(self, pending: Pending, outcome: Outcome | None, dead_lettered: int = 0) -> None:
        """Metrics for one committed step: its emails by outcome, duplicates, bad entries."""
        if outcome is not None and outcome.kind is not OutcomeKind.DEAD_LETTERED:
            received = [email.received_at for email in pending.emails]
            metrics.record_emails(outcome.kind, len(pending.emails), outcome.category, received)
        metrics.record_emails("duplicate", pending.duplicates)
        metrics.record_emails("dead_lettered", dead_lettered or len(pending.dead_letters))

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
            verdict = read_result(result, self._settings, may_clarify)
            charges.append(self._ledger.charge(result.model, verdict.label, result.usage))
            if verdict.kind == "decision" and verdict.decision is not None:
                if verdict.decision.dropped_fields:
                    log.warning("drain.field_dropped", fields=verdict.decision.dropped_fields)
                return Answer(result, verdict.decision, spent, calls)
            if verdict.kind == "refusal":
                return Answer(result, None, spent, calls)
            if verdict.kind == "invalid":
                raise InvalidDecision(verdict.error)
            if verdict.kind == "unexpected_stop":
                raise Permanent(verdict.error, reason="unexpected_stop")
            log.warning("drain.truncated", stop_reason=result.stop_reason, max_tokens=budget)
            budget = retry_budget(budget)
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
            log.info("drain.pruned", elided_turns=elided, turns_sent=len(sent))
        return sent
