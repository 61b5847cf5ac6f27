"""The events downstream systems consume: one typed model per event type, and their JSON Schema.

The drain step builds an event for every committed decision; the commit script appends it to the
`triage:events` stream (fields `type`, `thread_id`, `category`, `payload` = the event as JSON) in
the same atomic step as the decision. The schema published at `docs/events.schema.json` is
generated from these models (`python -m worker.events > docs/events.schema.json`; a test keeps
the file in step). Adding an optional field is compatible; anything else bumps `SCHEMA_VERSION`.
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
    reviewed_at: float


class Corrected(ThreadEvent):
    """A person changed a thread's category or fields; the thread is classified as corrected."""

    type: Literal["corrected"] = "corrected"
    category: str = Field(description="The corrected category")
    previous: Labelled
    new: Labelled
    note: str | None = None
    reviewed_at: float


AnyEvent = Classified | Clarification | Escalated | ReviewAccepted | Corrected
Event = Annotated[AnyEvent, Field(discriminator="type")]
EVENT_TYPES = ("classified", "clarification", "escalated", "review_accepted", "corrected")

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)


def parse_event(payload: str | bytes) -> AnyEvent:
    """An event from its stream payload (JSON), validated against its type's model."""
    return _ADAPTER.validate_json(payload)


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
    json.dump(json_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
