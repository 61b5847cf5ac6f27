"""The events downstream systems consume: one typed model per event type, and their JSON Schema.

The drain step builds an event for every committed decision; the commit script appends it to the
`triage:events` stream (fields `type`, `thread_id`, `category`, `payload` = the event as JSON) in
the same atomic step as the decision. The schema published at `docs/events.schema.json` is
generated from these models (`python -m worker.events > docs/events.schema.json`; a test keeps
the file in step). Adding an optional field is compatible; anything else bumps `SCHEMA_VERSION`.

A reprocessing run's decisions (`RunDecision`) go to the run's own stream, never to
`triage:events`; their schema is `docs/run-events.schema.json` (`python -m worker.events --run`).
Promoting a run's decision to a live thread is a `reclassified` event in `triage:events`.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Literal[1] = 1


class TokenUsage(BaseModel):
    """Token counts as the API reports them; total input = input + cache write + cache read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_creation_input_tokens: int = Field(ge=0)
    cache_read_input_tokens: int = Field(ge=0)


class ThreadEvent(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    thread_id: str = Field(description="The thread the event is about")


class EventBase(ThreadEvent):
    """Fields every decision event carries."""

    prompt_version: str | None = Field(
        default=None,
        description="Short hash of what shaped the decision: prompt, taxonomy, schema, model",
    )
    email_ids: list[str] = Field(description="Message-IDs of the emails this decision covers")
    model: str = Field(description="The model that answered")
    request_id: str | None = Field(description="The API's request id of the deciding call")
    usage: TokenUsage = Field(description="Tokens of this decision's calls")
    thread_usage: TokenUsage = Field(description="Tokens of the thread so far, this one included")
    clarifications: int = Field(ge=0, description="Questions asked in the thread before this one")
    no_question_reason: str | None = Field(
        description="Why this decision could not ask the customer (robot, budget), or null"
    )
    first_received_at: float = Field(description="Unix time the oldest covered email arrived")
    decided_at: float = Field(description="Unix time of the decision")
    turns: int = Field(ge=0, description="Turns in the thread's messages array after it")
    thread_join_refused: bool = Field(
        default=False,
        description="An email cited another thread whose participants the sender is not among: "
        "it started this thread instead of joining that one",
    )
    refused_thread_id: str | None = Field(
        default=None, description="The thread it cited when `thread_join_refused`, else null"
    )


class DecisionFields(BaseModel):
    """What the model says about the thread besides its category (null in older events)."""

    priority: Literal["urgent", "high", "normal", "low"] | None = None
    language: str | None = Field(default=None, description="BCP 47 code, `und` when unknown")
    sentiment: Literal["negative", "neutral", "positive"] | None = None
    summary: str | None = Field(default=None, description="One sentence for the agent")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="The taxonomy's extra fields (null when not stated)"
    )


class Classified(DecisionFields, EventBase):
    """The thread has a category; final unless `needs_review` (then a person confirms it)."""

    type: Literal["classified"] = "classified"
    category: str
    confidence: float = Field(ge=0, le=1)
    confidence_band: Literal["high", "medium", "low"] | None = None
    needs_review: bool = Field(
        default=False, description="Below the review threshold: hold automatic actions"
    )
    reason: str = Field(description="The model's one-line reason")


class Clarification(DecisionFields, EventBase):
    """We asked the customer a question (sent by the reply task) and wait for the answer."""

    type: Literal["clarification"] = "clarification"
    category: None = None
    reply_id: str
    reply_message_id: str = Field(description="Message-ID of our question; the answer cites it")
    question_replaced: bool = Field(description="The send guard replaced the model's question")
    question_replaced_reason: str | None


class Escalated(EventBase):
    """A person should look at the thread: the model refused, or a thread limit was reached
    (`limit`; then no call was made and `model` is the configured one)."""

    type: Literal["escalated"] = "escalated"
    category: None = None
    refusal_category: str | None
    explanation: str | None
    limit: str | None = Field(
        default=None, description="thread_turns or thread_input_tokens when a cap was reached"
    )


class Labelled(BaseModel):
    """A category and fields as decided or corrected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str | None
    fields: dict[str, Any] = Field(default_factory=dict)


class ReviewAccepted(ThreadEvent):
    """A person confirmed the decision of a thread in review: it is final now."""

    type: Literal["review_accepted"] = "review_accepted"
    category: str
    fields: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None
    by: str | None = Field(default=None, description="Who (the console user; null from the CLI)")
    reviewed_at: float


class Corrected(ThreadEvent):
    """A person changed a thread's category or fields; the thread is classified as corrected."""

    type: Literal["corrected"] = "corrected"
    category: str = Field(description="The corrected category")
    previous: Labelled
    new: Labelled
    note: str | None = None
    by: str | None = Field(default=None, description="Who (the console user; null from the CLI)")
    reviewed_at: float


class Reclassified(ThreadEvent):
    """A reprocessing run's decision was promoted to the thread (`triage reprocess apply`): its
    category and fields are now the run's. `previous` is what the thread had, `new` the run's."""

    type: Literal["reclassified"] = "reclassified"
    run: str = Field(description="The run whose decision was promoted")
    category: str = Field(description="The thread's category now (the run's)")
    previous: Labelled
    new: Labelled
    confidence: float = Field(ge=0, le=1)
    confidence_band: Literal["high", "medium", "low"]
    needs_review: bool = Field(description="Below the review threshold: hold automatic actions")
    reason: str = Field(description="The run's one-line reason")
    model: str = Field(description="The model that made the run's decision")
    prompt_version: str = Field(description="The run configuration's prompt version")
    reclassified_at: float


AnyEvent = Classified | Clarification | Escalated | ReviewAccepted | Corrected | Reclassified
Event = Annotated[AnyEvent, Field(discriminator="type")]
EVENT_TYPES = (
    "classified",
    "clarification",
    "escalated",
    "review_accepted",
    "corrected",
    "reclassified",
)


class LiveDecision(BaseModel):
    """What the live thread said about the same emails when a run decided (null fields: not
    decided, or no live thread)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=0, description="The thread version the run's input was read at")
    status: str = Field(description="The thread's status then (new: nothing decided)")
    action: Literal["clarify", "classify"] | None = None
    category: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    prompt_version: str | None = None


class RunDecision(DecisionFields, ThreadEvent):
    """One decision of a reprocessing run (or the shadow run), written to the run's records and
    its own stream `triage:run:{name}:events`, never to `triage:events`: nothing acts on it.

    `thread_id` is the live thread the emails belong to or, for backlog mail never seen live,
    the id the producers would give its thread (`live` is then null)."""

    type: Literal["run_decision"] = "run_decision"
    run: str = Field(description="The run's name (`shadow` for shadow mode)")
    email_ids: list[str] = Field(description="Message-IDs of the emails decided on")
    outcome: Literal["classified", "clarified", "escalated", "failed"]
    category: str | None = Field(description="The category (a question's best guess too)")
    confidence: float | None = Field(default=None, ge=0, le=1)
    confidence_band: Literal["high", "medium", "low"] | None = None
    needs_review: bool | None = None
    reason: str | None = None
    question: str | None = Field(
        default=None, description="The question that would have been sent (send guard applied)"
    )
    question_replaced: bool | None = None
    error: str | None = Field(default=None, description="Why the decision failed (`failed`)")
    model: str
    prompt_version: str = Field(description="The run configuration's prompt version")
    request_id: str | None = None
    usage: TokenUsage = Field(description="Tokens of this decision's calls")
    calls: int = Field(ge=0)
    cost_usd: float = Field(ge=0, description="What the calls cost (batch price when batched)")
    batch: bool = Field(description="Decided through the Message Batches API")
    live: LiveDecision | None = Field(description="The live decision it is compared with")
    changed: bool = Field(description="Category or fields differ from `live`'s")
    decided_at: float


_RUN_ADAPTER: TypeAdapter[RunDecision] = TypeAdapter(RunDecision)

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)


def parse_event(payload: str | bytes) -> AnyEvent:
    """An event from its stream payload (JSON), validated against its type's model."""
    return _ADAPTER.validate_json(payload)


def parse_run_decision(payload: str | bytes) -> RunDecision:
    """A run's decision from its record or stream payload (JSON)."""
    return _RUN_ADAPTER.validate_json(payload)


def run_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a run's events (`docs/run-events.schema.json`)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/triage-worker/triage-worker/docs/run-events.schema.json",
        "title": f"triage-worker reprocessing run event (schema version {SCHEMA_VERSION})",
        **_RUN_ADAPTER.json_schema(),
    }


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of an event payload (any type)."""
    schema = _ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/triage-worker/triage-worker/docs/events.schema.json",
        "title": f"triage-worker event (schema version {SCHEMA_VERSION})",
        **schema,
    }


def main() -> None:
    """`python -m worker.events` prints the events schema; `--run` the run events schema."""
    schema = run_json_schema() if "--run" in sys.argv[1:] else json_schema()
    json.dump(schema, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
