"""The decision's other fields: language, question language, priority, sentiment, summary, extra
fields pulled from the text, and the forced low confidence."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest
from helpers import MODEL, TURN1, TURN2, assistant, structured, user

from emulator import brain, schema_fill, traits
from emulator.config import FaultRule
from emulator.respond import LOW_CONFIDENCE
from emulator.server import EmulatorThread

ORDER_PATTERN = "^[A-Z]{2}-[0-9]{4,8}$"
# The shape of the worker's decision schema with two declared extra fields.
RICH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "action",
        "question",
        "category",
        "confidence",
        "reason",
        "priority",
        "language",
        "sentiment",
        "summary",
        "fields",
    ],
    "properties": {
        "action": {"type": "string", "enum": ["clarify", "classify"]},
        "question": {"type": "string"},
        "category": {
            "type": "string",
            "enum": ["BILLING", "SHIPPING", "TECHNICAL", "ACCOUNT_ACCESS", "OTHER"],
        },
        "confidence": {"type": "number"},
        "reason": {"type": "string"},
        "priority": {"type": "string", "enum": ["urgent", "high", "normal", "low"]},
        "language": {"type": "string", "description": "BCP 47 code"},
        "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
        "summary": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": False,
            "required": ["order_number", "product"],
            "properties": {
                "order_number": {
                    "type": ["string", "null"],
                    "description": f"the order number (format: {ORDER_PATTERN})",
                },
                "product": {
                    "type": ["string", "null"],
                    "enum": ["app", "website", "hardware", None],
                    "description": "product",
                },
            },
        },
    },
}


def _decide(client: anthropic.Anthropic, *texts: str) -> dict[str, Any]:
    """One structured call over a thread of customer turns (our questions in between)."""
    messages: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        if i:
            messages.append(assistant("Could you tell us more?"))
        messages.append(user(text))
    message = client.messages.create(
        model=MODEL, max_tokens=1024, messages=messages, output_config=structured(RICH_SCHEMA)
    )
    assert message.content[0].type == "text"
    decision: dict[str, Any] = json.loads(message.content[0].text)
    jsonschema.validate(decision, RICH_SCHEMA)
    return decision


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (TURN1, "en"),
        ("Hallo, mein Paket ist leider noch nicht angekommen.", "de"),
        ("Bonjour, je n'ai toujours pas reçu mon colis.", "fr"),
        ("Hola, todavía no he recibido mi paquete.", "es"),
        ("Sehr geehrte Damen und Herren, die Rechnung stimmt nicht.", "de"),
        ("C'est la deuxième fois que j'écris !", "fr"),
        ("¿Dónde está mi pedido?", "es"),
        ("AB-12345", "und"),
        ("", "und"),
    ],
)
def test_language_detection(text: str, language: str) -> None:
    """Keyword tables give en, de, fr or es; text with no known word is `und`."""
    assert traits.detect_language(text) == language
    assert brain.decide(text).language == language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hallo, mein Ding funktioniert nicht. Können Sie mir helfen?", "de"),
        ("Bonjour, j'ai un souci avec mon truc. Pouvez-vous m'aider ?", "fr"),
        ("Hola, tengo un problema con mi cosa. ¿Me pueden ayudar?", "es"),
        (TURN1, "en"),
        ("???", "und"),
    ],
)
def test_question_in_the_customers_language(text: str, language: str) -> None:
    """A vague email is answered in its language for de, fr and es, in English otherwise."""
    decision = brain.decide(text)
    assert decision.is_clarify
    expected = traits.CLARIFY_QUESTIONS.get(language, brain.CLARIFY_QUESTION)
    assert decision.question == expected


def test_a_german_email_gets_a_german_question(client: anthropic.Anthropic) -> None:
    """Over the API, a vague German email gets the German question and language `de`."""
    decision = _decide(client, "Hallo, mein Ding funktioniert nicht. Können Sie mir helfen?")
    assert decision["action"] == "clarify"
    assert decision["language"] == "de"
    assert decision["question"] == traits.CLARIFY_QUESTIONS["de"]
    assert decision["question"].startswith("Könnten Sie")


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("URGENT: please refund me", "urgent"),
        ("I am locked out of my account, please fix this asap", "urgent"),
        ("Bitte sofort die Abbuchung stornieren.", "urgent"),
        ("Remboursez-moi immédiatement.", "urgent"),
        ("Necesito el reembolso cuanto antes.", "urgent"),
        ("I still can't log in.", "high"),
        ("This is unacceptable, where is my parcel?", "high"),  # negative sentiment
        ("My parcel should arrive on Monday.", "normal"),
        ("Just a question about your pricing.", "low"),
        ("Not urgent: a suggestion for the app.", "low"),  # "not urgent" beats "urgent"
    ],
)
def test_priority_from_words(text: str, priority: str) -> None:
    """Urgent words, blocking words or anger, question/feedback words set the priority."""
    assert brain.decide(text).priority == priority


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("I am really disappointed, the app crashes.", "negative"),
        ("Ich bin sehr enttäuscht von der Lieferung.", "negative"),
        ("The new app is great, I love it!", "positive"),
        ("I am not happy with the invoice.", "negative"),  # "not happy" is no "happy"
        ("Thanks, terrible service though.", "negative"),
        ("Please send me my invoice. Thanks!", "neutral"),  # courtesy is not sentiment
    ],
)
def test_sentiment_from_a_lexicon(text: str, sentiment: str) -> None:
    """Negative and positive lexicons (with negated phrases) give the sentiment."""
    assert brain.decide(text).sentiment == sentiment


def test_summary_is_one_sentence_quoting_the_deciding_line() -> None:
    """The summary names language and topic and quotes the sentence with the keywords."""
    text = "Hello team.\nI was charged twice for my subscription. Please help."
    decision = brain.decide(text)
    assert decision.summary == (
        'Customer writes in English about billing: "I was charged twice for my subscription."'
    )
    assert "\n" not in decision.summary
    vague = brain.decide(TURN1).summary
    assert vague.startswith("Customer writes in English without saying what the problem is")


def test_every_new_field_over_the_api(client: anthropic.Anthropic) -> None:
    """The structured answer carries priority, language, sentiment, summary and fields."""
    decision = _decide(client, TURN1, TURN2)
    assert (decision["action"], decision["category"]) == ("classify", "BILLING")
    assert decision["language"] == "en"
    assert decision["priority"] == "urgent"  # charged twice: money lost now
    assert decision["sentiment"] == "neutral"
    assert "billing" in decision["summary"] and "charged twice" in decision["summary"]
    assert decision["fields"] == {"order_number": None, "product": None}


def test_order_number_extracted_by_its_declared_format(client: anthropic.Anthropic) -> None:
    """A value matching the field's `(format: REGEX)` is extracted; without one it is null."""
    found = _decide(client, "My parcel for order AB-12345 never arrived (ordered on the website).")
    assert found["fields"] == {"order_number": "AB-12345", "product": "website"}
    assert found["category"] == "SHIPPING"

    lowercase = _decide(client, "Where is my parcel? Order ab-98765.")
    assert lowercase["fields"]["order_number"] == "AB-98765"  # normalised to the format

    absent = _decide(client, "My parcel never arrived, order 12345 / XYZ-1.")
    assert absent["fields"] == {"order_number": None, "product": None}


def test_declared_field_types_and_patterns() -> None:
    """The JSON Schema `pattern` keyword works too and integers come back as integers."""
    schema = {
        "type": "object",
        "required": ["fields"],
        "properties": {
            "fields": {
                "type": "object",
                "required": ["ticket", "vip", "note"],
                "properties": {
                    "ticket": {"type": ["integer", "null"], "pattern": "^[0-9]{6}$"},
                    "vip": {"type": ["boolean", "null"]},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
            }
        },
    }
    text = "Ticket 123456 (not 1234567) is still open."
    value = schema_fill.fill(schema, brain.decide(text), text)
    assert value == {"fields": {"ticket": 123456, "vip": None, "note": None}}
    jsonschema.validate(value, schema)


def test_attribute_enums_are_no_category_labels() -> None:
    """Priority, sentiment and field enums are not labels; custom category labels still are."""
    hints = schema_fill.analyse(RICH_SCHEMA)
    assert hints.labels == ["BILLING", "SHIPPING", "TECHNICAL", "ACCOUNT_ACCESS"]
    assert hints.can_clarify
    # "urgent" or "app" alone do not make a category; a custom label named in words does
    assert brain.decide("urgent!", custom_labels=hints.labels).is_clarify
    custom = brain.decide("My account access is gone", custom_labels=hints.labels)
    assert custom.category == "ACCOUNT_ACCESS"
    assert schema_fill.fill(RICH_SCHEMA, custom, "")["category"] == "ACCOUNT_ACCESS"


def test_low_confidence_fault_forces_a_low_confidence(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """A `low_confidence` rule keeps the classification but reports confidence 0.3."""
    emulator.configure(faults=[FaultRule(kind="low_confidence", match="parcel")])
    unsure = _decide(client, "My parcel never arrived.")
    assert (unsure["action"], unsure["category"]) == ("classify", "SHIPPING")
    assert unsure["confidence"] == LOW_CONFIDENCE == 0.3
    sure = _decide(client, TURN2)  # the rule's `match` does not apply
    assert sure["confidence"] == 0.9
    assert [entry["fault"] for entry in emulator.requests] == ["low_confidence", None]
