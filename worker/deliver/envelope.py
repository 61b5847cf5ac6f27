"""What a webhook request carries: the envelope around one event, as JSON bytes, and its schema.

```json
{"id": "1795000000123-0", "type": "classified", "schema_version": 1, "thread_id": "t9fd…",
 "created_at": 1795000000.123, "test": false, "data": {…the event, as in triage:events…}}
```

`id` is the event's entry id in `triage:events`: the same on every retry and replay (the
idempotency key), and the id `triage events tail` shows. `created_at` is when the event was
committed (from the id), `data` validates against `docs/events.schema.json`. The bytes are the
same on every attempt; only the signature's timestamp changes. The published schema
(`docs/webhooks.schema.json`) is generated here: `python -m worker.deliver.envelope`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.events import (
    SCHEMA_VERSION,
    Clarification,
    Classified,
    Corrected,
    Escalated,
    Labelled,
    Reclassified,
    ReviewAccepted,
    ThreadEvent,
    TokenUsage,
)


class Envelope(BaseModel):
    """The JSON body of every webhook request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Event id, stable across retries: use it to drop duplicates")
    type: str = Field(description="The event type, as in `data.type`")
    schema_version: int = Field(description="Version of the event schema of `data`")
    thread_id: str = Field(description="The thread the event is about")
    created_at: float = Field(description="Unix time the event was committed")
    test: bool = Field(default=False, description="A sample sent by `triage webhooks test`")
    data: dict[str, Any] = Field(description="The event, as in `triage:events`")


def created_at(event_id: str) -> float:
    """Unix time of a stream entry id (`<milliseconds>-<sequence>`); 0 for other ids."""
    millis, _, _ = event_id.partition("-")
    return int(millis) / 1000 if millis.isdigit() else 0.0


def body(
    event_id: str, event_type: str, thread_id: str, event: dict[str, Any], *, test: bool = False
) -> bytes:
    """The request body: compact UTF-8 JSON, byte for byte the same for the same event."""
    envelope = {
        "id": event_id,
        "type": event_type,
        "schema_version": event.get("schema_version", SCHEMA_VERSION),
        "thread_id": thread_id,
        "created_at": created_at(event_id),
        "test": test,
        "data": event,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sample_event(
    kind: str, thread_id: str = "t-webhook-test", now: float | None = None
) -> dict[str, Any]:
    """A valid event of type `kind` with made-up values (`triage webhooks test`, tests)."""
    now = time.time() if now is None else now
    usage = TokenUsage(
        input_tokens=445, output_tokens=72, cache_creation_input_tokens=0, cache_read_input_tokens=0
    )
    decision: dict[str, Any] = {
        "thread_id": thread_id,
        "prompt_version": "sample",
        "email_ids": ["<sample-0001@example.org>"],
        "model": "claude-haiku-4-5",
        "request_id": "req_sample",
        "usage": usage,
        "thread_usage": usage,
        "clarifications": 0,
        "no_question_reason": None,
        "first_received_at": round(now - 1, 3),
        "decided_at": round(now, 3),
        "turns": 2,
    }
    traits: dict[str, Any] = {
        "priority": "normal",
        "language": "en",
        "sentiment": "neutral",
        "summary": "A sample event: the customer was charged twice.",
    }
    event: ThreadEvent
    if kind == "classified":
        event = Classified(
            **decision,
            **traits,
            category="BILLING",
            confidence=0.9,
            confidence_band="high",
            reason="A sample event sent by `triage webhooks test`.",
        )
    elif kind == "clarification":
        event = Clarification(
            **decision,
            **traits,
            reply_id=f"{thread_id}.1",
            reply_message_id="<triage.sample.1@example.com>",
            question_replaced=False,
            question_replaced_reason=None,
        )
    elif kind == "escalated":
        event = Escalated(**decision, refusal_category=None, explanation=None, limit="thread_turns")
    elif kind == "review_accepted":
        event = ReviewAccepted(thread_id=thread_id, category="BILLING", reviewed_at=round(now, 3))
    elif kind == "corrected":
        event = Corrected(
            thread_id=thread_id,
            category="SHIPPING",
            previous=Labelled(category="BILLING"),
            new=Labelled(category="SHIPPING"),
            reviewed_at=round(now, 3),
        )
    elif kind == "reclassified":
        event = Reclassified(
            thread_id=thread_id,
            run="sample-run",
            category="SHIPPING",
            previous=Labelled(category="BILLING"),
            new=Labelled(category="SHIPPING"),
            confidence=0.9,
            confidence_band="high",
            needs_review=False,
            reason="A sample event sent by `triage webhooks test`.",
            model="claude-haiku-4-5",
            prompt_version="sample",
            reclassified_at=round(now, 3),
        )
    else:
        raise ValueError(f"no event type {kind!r}")
    return event.model_dump(mode="json")


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a webhook request body."""
    schema = Envelope.model_json_schema()
    # `data` is an event: its schema is the published one, referred to rather than copied, so
    # this file changes only with the envelope.
    schema["properties"]["data"] = {
        "$ref": "events.schema.json",
        "description": schema["properties"]["data"]["description"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/triage-worker/triage-worker/docs/webhooks.schema.json",
        **schema,
        "title": f"triage-worker webhook request body (event schema version {SCHEMA_VERSION})",
    }


def main() -> None:
    json.dump(json_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
