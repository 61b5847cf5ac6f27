"""Deciding without acting: what a reprocessing run (or the shadow run) sends and records (pure).

A run decides with its own configuration (`RunSpec`: the live settings with a taxonomy, prompt,
model or decision settings changed, see `common.runconfig`) on a `Subject`: the array to send,
ending with the user turn to decide, and whether a question is allowed. The request is
`build_request`'s (pruned to the history budget like the drain step's), each result is read by
`read_result` exactly as the worker reads it (a truncated reply is retried once with twice the
budget), a question goes through the send guard (what *would* be sent is recorded, nothing is
sent), a classification gets its band and review flag. The outcome is a `RunDecision`: the
run's record and its event, compared with what the live thread said (`LiveDecision`).

- A stored thread is decided from its customer emails: every user turn of its array, oldest
  first, as one user turn (as if they had all arrived at once under the run's configuration);
  the questions live already asked count against the question budget.
- A backlog item is decided from its emails as the producers parsed them (robot flags and the
  recipient rules apply), as one user turn: what `triage backlog` sends for a new thread.
- The shadow run decides exactly what a live decision decided on: the thread's array up to the
  user turn of that decision (live history included), with the live rule on questions.

`Deciding` is driven from outside, like `evaluation.case_run.CaseRun`: `request()`, then
`take(result)` (None: call again with the bigger budget) or `fail(error)`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from common.contract import STATUS_AWAITING, STATUS_CLASSIFIED, STATUS_NEEDS_REVIEW, EmailPayload
from common.errors import ConfigError
from common.runconfig import DECISION_SETTINGS
from common.settings import Settings, load_settings
from common.taxonomy import Category, FieldSpec
from worker.decide.bands import confidence_band, needs_review
from worker.decide.claude import CallResult
from worker.decide.conversation import Turn, user_turn
from worker.decide.pending import no_question_reason
from worker.decide.prompt import build_request, load_template, prompt_version
from worker.decide.pruning import prune
from worker.decide.ratelimit import estimate_input_tokens
from worker.decide.verdict import read_result, retry_budget
from worker.events import LiveDecision, RunDecision, TokenUsage
from worker.reply.send_guard import check_question
from worker.state.ledger import entry
from worker.state.pricing import price_for
from worker.state.snapshot import Snapshot
from worker.state.usage import Usage

#: Settings a spec stores by value (the taxonomy, prompt and model are stored as resolved).
STORED_SETTINGS = tuple(
    name
    for name in DECISION_SETTINGS
    if name not in ("model", "taxonomy_file", "categories", "system_prompt_file")
)
#: Labels of decisions that have no category (diff tables, `--only FROM->TO`).
NO_DECISION = "(none)"
QUESTION = "(question)"
FAILED = "(failed)"
ESCALATED = "(escalated)"


@dataclass(frozen=True)
class RunSpec:
    """A run's configuration: settings, prompt template and the resulting prompt version."""

    settings: Settings
    template: str
    prompt_version: str
    sources: dict[str, str] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """The spec by value (run meta), so a resumed run decides exactly as it started even if
        its files changed meanwhile."""
        settings = self.settings
        return {
            "model": settings.model,
            "categories": [c.model_dump(mode="json") for c in settings.categories],
            "fields": [f.model_dump(mode="json") for f in settings.fields],
            "template": self.template,
            "settings": settings.model_dump(mode="json", include=set(STORED_SETTINGS)),
            "prompt_version": self.prompt_version,
            "sources": self.sources,
        }

    def describe(self) -> dict[str, Any]:
        """What a person needs to know about the configuration (no prompt text)."""
        return {
            "model": self.settings.model,
            "prompt_version": self.prompt_version,
            "categories": self.settings.category_names,
            "fields": [f.name for f in self.settings.fields],
            **self.sources,
        }


def derive_spec(base: Settings, overrides: Mapping[str, Any]) -> RunSpec:
    """The live settings with `overrides` (decision settings by field name) applied.

    Raises `ConfigError` naming the variable, like a bad setting at start-up.
    """
    unknown = sorted(set(overrides) - set(DECISION_SETTINGS))
    if unknown:
        raise ConfigError(f"not decision settings: {', '.join(unknown)}")
    probe = load_settings(**overrides)  # validates each value as the environment would
    update: dict[str, Any] = {name: getattr(probe, name) for name in overrides}
    if "taxonomy_file" in overrides or "categories" in overrides:
        update |= {"categories": probe.categories, "fields": probe.fields}
    settings = base.model_copy(update=update)
    if settings.confidence_low > settings.confidence_high:
        raise ConfigError("invalid setting TRIAGE_CONFIDENCE_LOW: exceeds TRIAGE_CONFIDENCE_HIGH")
    template = load_template(settings)
    sources = {
        name: str(overrides[name])
        for name in ("taxonomy_file", "system_prompt_file")
        if overrides.get(name) is not None
    }
    return RunSpec(settings, template, prompt_version(settings, template), sources)


def stored_spec(base: Settings, stored: Mapping[str, Any]) -> RunSpec:
    """A spec from its stored value (see `RunSpec.stored`), on the live settings."""
    update: dict[str, Any] = {
        "model": stored["model"],
        "categories": [Category.model_validate(c) for c in stored["categories"]],
        "fields": [FieldSpec.model_validate(f) for f in stored["fields"]],
        **{k: v for k, v in stored["settings"].items() if k in STORED_SETTINGS},
    }
    settings = base.model_copy(update=update)
    template = str(stored["template"])
    return RunSpec(
        settings, template, prompt_version(settings, template), stored.get("sources", {})
    )


def _fields(meta: Mapping[str, str]) -> dict[str, Any]:
    try:
        value = json.loads(meta.get("fields") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def live_decision(snapshot: Snapshot) -> LiveDecision | None:
    """What the live thread says now (None: no such thread)."""
    meta = snapshot.meta
    if not meta:
        return None
    status = snapshot.status
    classified = status in (STATUS_CLASSIFIED, STATUS_NEEDS_REVIEW)
    action: Literal["classify", "clarify"] | None = (
        "classify" if classified else "clarify" if status == STATUS_AWAITING else None
    )
    return LiveDecision(
        version=snapshot.version,
        status=status,
        action=action,
        category=meta.get("category") if classified else None,
        fields=_fields(meta) if classified else {},
        prompt_version=meta.get("prompt_version") or None,
    )


def live_label(live: LiveDecision | None) -> str:
    """A live decision as one label: its category, `(question)`, or `(status)`."""
    if live is None:
        return NO_DECISION
    if live.action == "classify" and live.category:
        return live.category
    if live.action == "clarify":
        return QUESTION
    return f"({live.status})"


def run_label(decision: RunDecision) -> str:
    """A run decision as one label: its category, `(question)`, `(escalated)` or `(failed)`."""
    if decision.outcome == "classified" and decision.category:
        return decision.category
    return {"clarified": QUESTION, "escalated": ESCALATED}.get(decision.outcome, FAILED)


def stated(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields with a value (null means "not stated": the same as absent)."""
    return {name: value for name, value in fields.items() if value is not None}


def changed(decision: RunDecision, live: LiveDecision | None) -> bool:
    """The run's decision says something else than live's: another label, or other fields."""
    if live is None:
        return False
    if run_label(decision) != live_label(live):
        return True
    return decision.outcome == "classified" and stated(decision.fields) != stated(live.fields)


@dataclass(frozen=True)
class Subject:
    """What a run decides on: the array to send (ending with the user turn to decide)."""

    thread_id: str
    email_ids: list[str]
    messages: list[Turn]
    no_question_reason: str | None
    live: LiveDecision | None

    @property
    def may_clarify(self) -> bool:
        return self.no_question_reason is None


def customer_turn(messages: list[Turn]) -> Turn | None:
    """Every user turn of a stored array as one user turn (None: the thread has none)."""
    blocks: list[dict[str, Any]] = []
    for turn in messages:
        if turn.get("role") != "user":
            continue
        content = turn.get("content")
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(
                {"type": "text", "text": str(block.get("text", ""))}
                for block in content
                if isinstance(block, dict) and block.get("type") == "text"
            )
    return {"role": "user", "content": blocks} if blocks else None


def thread_subject(snapshot: Snapshot, email_ids: list[str], settings: Settings) -> Subject | None:
    """A stored thread, decided from its customer emails (None: it has none)."""
    turn = customer_turn(snapshot.messages)
    if turn is None:
        return None
    asked = snapshot.clarifications >= settings.max_clarifications
    return Subject(
        snapshot.thread_id,
        email_ids,
        [turn],
        "clarification_limit" if asked else None,
        live_decision(snapshot),
    )


def backlog_subject(
    thread_id: str, emails: list[EmailPayload], settings: Settings, live: LiveDecision | None
) -> Subject:
    """Backlog emails of one thread, as the worker decides a new thread's pending emails."""
    return Subject(
        thread_id,
        [email.message_id for email in emails],
        [user_turn(emails, settings.max_turn_chars)],
        no_question_reason(emails, 0, settings),
        live,
    )


def request_for(spec: RunSpec, subject: Subject, max_tokens: int) -> dict[str, Any]:
    """The request, the array pruned to the history budget as the drain step prunes it."""
    settings = spec.settings

    def size(candidate: list[Turn]) -> int:
        built = build_request(
            settings, spec.template, candidate, subject.may_clarify, settings.max_tokens
        )
        return estimate_input_tokens(built)

    sent, _ = prune(subject.messages, settings.history_token_budget, size)
    return build_request(settings, spec.template, sent, subject.may_clarify, max_tokens)


@dataclass(frozen=True)
class Charge:
    """One call that returned: what the ledger and the run's counters add."""

    model: str
    usage: Usage
    counters: dict[str, int]


class Deciding:
    """One subject's decision under a run's spec, call by call (see the module docstring)."""

    def __init__(
        self,
        run: str,
        spec: RunSpec,
        subject: Subject,
        *,
        batch: bool = False,
        max_tokens: int | None = None,
        prior: Usage | None = None,
        prior_calls: int = 0,
        prior_cost: int = 0,
    ) -> None:
        """`max_tokens`, `prior*`: a decision resumed after its first call was truncated."""
        self.run = run
        self.spec = spec
        self.subject = subject
        self.batch = batch
        self.max_tokens = max_tokens or spec.settings.max_tokens
        self.spent = prior or Usage()
        self.calls = prior_calls
        self.cost_micro_usd = prior_cost
        self.charges: list[Charge] = []

    def request(self) -> dict[str, Any]:
        return request_for(self.spec, self.subject, self.max_tokens)

    def take(self, result: CallResult) -> RunDecision | None:
        """The decision from one result; None when it was truncated and may be retried once
        with twice the budget (`max_tokens` is raised for that call)."""
        settings = self.spec.settings
        verdict = read_result(result, settings, self.subject.may_clarify)
        counters = entry(result.usage, price_for(result.model, settings.prices), self.batch)
        self.charges.append(Charge(result.model, result.usage, counters))
        self.calls += 1
        self.spent = self.spent + result.usage
        self.cost_micro_usd += counters["cost_micro_usd"]
        if verdict.kind == "truncated" and self.max_tokens == settings.max_tokens:
            self.max_tokens = retry_budget(self.max_tokens)
            return None
        decision = verdict.decision
        if verdict.kind == "refusal":
            details = result.stop_details or {}
            return self._record(result, "escalated", reason=details.get("explanation") or "refused")
        if decision is None:
            return self._record(result, "failed", error=f"{verdict.kind}: {verdict.error}")
        described: dict[str, Any] = {
            "category": decision.category,
            "confidence": decision.confidence,
            "reason": decision.reason,
            "priority": decision.priority,
            "language": decision.language,
            "sentiment": decision.sentiment,
            "summary": decision.summary,
            "fields": decision.fields,
        }
        if decision.is_clarify:
            checked = check_question(decision.question, max_chars=settings.max_question_chars)
            return self._record(
                result,
                "clarified",
                question=checked.text,
                question_replaced=checked.replaced,
                **described,
            )
        return self._record(
            result,
            "classified",
            confidence_band=confidence_band(decision.confidence, settings),
            needs_review=needs_review(decision, settings),
            **described,
        )

    def fail(self, error: str) -> RunDecision:
        """The call failed for good (after the retries the worker would make)."""
        return self._record(None, "failed", error=error)

    def _record(self, result: CallResult | None, outcome: str, **values: Any) -> RunDecision:
        decision = RunDecision(
            thread_id=self.subject.thread_id,
            run=self.run,
            email_ids=self.subject.email_ids,
            outcome=outcome,  # type: ignore[arg-type]
            category=values.pop("category", None),
            model=result.model if result is not None else self.spec.settings.model,
            prompt_version=self.spec.prompt_version,
            request_id=result.request_id if result is not None else None,
            usage=TokenUsage(**self.spent.as_dict()),
            calls=self.calls,
            cost_usd=self.cost_micro_usd / 1_000_000,
            batch=self.batch,
            live=self.subject.live,
            changed=False,
            decided_at=round(time.time(), 3),
            **values,
        )
        return decision.model_copy(update={"changed": changed(decision, self.subject.live)})
