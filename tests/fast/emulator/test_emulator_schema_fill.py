"""The brain's rules and the generic schema filler, checked with jsonschema."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest
from helpers import MODEL, TURN1, TURN2, WORKER_SCHEMA, structured, user

from emulator import brain, schema_fill


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TURN1, None),
        (TURN2, "BILLING"),
        ("My order hasn't arrived and the tracking page shows nothing.", "SHIPPING"),
        ("The app crashes with an error message when I log in.", "TECHNICAL"),
        ("Ich wurde zweimal abgebucht, bitte um Erstattung.", "BILLING"),
        ("Mon colis n'est jamais arrivé, où est la livraison ?", "SHIPPING"),
        ("No puedo iniciar sesión, la contraseña da un fallo.", "TECHNICAL"),
        ("This thing is not working, I have an issue and a problem, help!", None),
        ("The shipping was fine but I was charged twice and the invoice is wrong.", "BILLING"),
        ("Something about chargers and prices", None),  # word boundaries: no partial hits
    ],
)
def test_topic_detection(text: str, expected: str | None) -> None:
    """Keywords in several languages pick the category; vague text or part-words clarify."""
    decision = brain.decide(text)
    assert decision.category == expected
    assert decision.action == ("clarify" if expected is None else "classify")


def test_mixed_topics_lower_confidence() -> None:
    """Two topics lower the confidence; the tie goes to the first in the fixed order."""
    single = brain.decide("I was charged twice")
    mixed = brain.decide("I was charged twice and my parcel is late")
    assert single.confidence == 0.9
    assert mixed.confidence < single.confidence
    assert mixed.category == "BILLING"  # tie broken by the fixed order
    assert "shipping" in mixed.reason


def test_ignores_assistant_turns() -> None:
    """Only user turns are read: the assistant's words do not classify a vague thread."""
    messages = [
        user(TURN1),
        {"role": "assistant", "content": "Is it about a payment or a delivery?"},
        user("Yes."),
    ]
    assert brain.decide(brain.user_text(messages)).is_clarify


CUSTOM = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"enum": ["REFUNDS", "DELIVERY", "OTHER"]}},
}

SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    ("worker", WORKER_SCHEMA),
    ("custom labels", CUSTOM),
    (
        "refs and defs",
        {
            "$defs": {
                "Category": {
                    "type": "string",
                    "enum": ["billing", "shipping", "technical", "other"],
                },
                "Evidence": {
                    "type": "object",
                    "properties": {"quote": {"type": "string", "minLength": 3}},
                    "required": ["quote"],
                    "additionalProperties": False,
                },
            },
            "type": "object",
            "required": ["category", "evidence", "needs_clarification", "confidence"],
            "additionalProperties": False,
            "properties": {
                "category": {"$ref": "#/$defs/Category"},
                "evidence": {"type": "array", "items": {"$ref": "#/$defs/Evidence"}, "minItems": 2},
                "needs_clarification": {"type": "boolean"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 0.5},
            },
        },
    ),
    (
        "unions and consts",
        {
            "type": "object",
            "required": ["kind", "priority", "note", "tags", "count", "when"],
            "properties": {
                "kind": {"const": "triage"},
                "priority": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
                "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 5}]},
                "tags": {
                    "type": "array",
                    "items": {"enum": ["a", "b", "c"]},
                    "minItems": 2,
                    "uniqueItems": True,
                },
                "count": {"oneOf": [{"type": "integer", "exclusiveMinimum": 3}]},
                "when": {"type": "string", "format": "date-time"},
                "nested": {
                    "allOf": [
                        {
                            "type": "object",
                            "properties": {"x": {"type": "integer"}},
                            "required": ["x"],
                        },
                        {"properties": {"y": {"type": "boolean"}}, "required": ["y"]},
                    ]
                },
            },
        },
    ),
    (
        "recursive",
        {
            "$defs": {
                "Node": {
                    "type": "object",
                    "required": ["name", "children"],
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                }
            },
            "$ref": "#/$defs/Node",
        },
    ),
    ("array root", {"type": "array", "items": {"type": "number", "multipleOf": 0.5}}),
]


@pytest.mark.parametrize("schema", [s for _, s in SCHEMAS], ids=[n for n, _ in SCHEMAS])
@pytest.mark.parametrize("text", [TURN1, TURN2])
def test_filled_values_validate(schema: dict[str, Any], text: str) -> None:
    """The filler's output validates against each schema, for both seed turns."""
    hints = schema_fill.analyse(schema)
    decision = brain.decide(text, custom_labels=hints.labels, can_clarify=hints.can_clarify)
    jsonschema.validate(schema_fill.fill(schema, decision), schema)


def test_schema_steers_the_values() -> None:
    """The schema's enum and maximum steer the filled category, flag and confidence."""
    refs = dict(SCHEMAS)["refs and defs"]
    vague = schema_fill.fill(refs, brain.decide(TURN1))
    clear = schema_fill.fill(refs, brain.decide(TURN2))
    assert vague["needs_clarification"] is True and vague["category"] == "other"
    assert clear["needs_clarification"] is False and clear["category"] == "billing"
    assert clear["confidence"] == 0.5  # clamped to the schema's maximum


def test_custom_label_matches_a_user_word() -> None:
    """Custom labels come from the schema, and the one the customer names is chosen."""
    hints = schema_fill.analyse(CUSTOM)
    assert hints.labels == ["REFUNDS", "DELIVERY"]
    decision = brain.decide(
        "I want to know about refunds", custom_labels=hints.labels, can_clarify=hints.can_clarify
    )
    assert schema_fill.fill(CUSTOM, decision) == {"label": "REFUNDS"}


def test_classify_only_schema_never_clarifies(client: anthropic.Anthropic) -> None:
    """A schema without clarify gets a low-confidence OTHER for a vague email."""
    schema = {
        "type": "object",
        "required": ["action", "category", "confidence"],
        "properties": {
            "action": {"type": "string", "enum": ["classify"]},
            "category": {"type": "string", "enum": ["BILLING", "SHIPPING", "OTHER"]},
            "confidence": {"type": "number"},
        },
    }
    message = client.messages.create(
        model=MODEL, max_tokens=200, messages=[user(TURN1)], output_config=structured(schema)
    )
    assert message.content[0].type == "text"
    value = json.loads(message.content[0].text)
    assert value == {"action": "classify", "category": "OTHER", "confidence": 0.3}


def test_legacy_top_level_output_format(client: anthropic.Anthropic) -> None:
    """The legacy top-level output_format still gets a structured answer."""
    body = {
        "model": MODEL,
        "max_tokens": 300,
        "messages": [user(TURN2)],
        "output_format": {"type": "json_schema", "schema": WORKER_SCHEMA},
    }
    message: Any = client.post("/v1/messages", cast_to=anthropic.types.Message, body=body)
    assert json.loads(message.content[0].text)["category"] == "BILLING"
