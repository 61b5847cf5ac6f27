"""Decisions people can act on: taxonomy file, bands and review, prompt version (in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import make_email

from common import keys
from common.errors import ConfigError
from common.settings import Settings, load_settings
from worker.decide.bands import apply_question_policy, confidence_band
from worker.decide.decision import language_tag, parse_decision
from worker.decide.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    build_request,
    load_template,
    prompt_version,
)
from worker.events import parse_event
from worker.state.review import ReviewError, ReviewLane

BILLING = "I was charged twice for my subscription, please refund the duplicate payment."
TAXONOMY = """\
categories:
  - name: BILLING
    description: charges, invoices, refunds, payments, subscriptions
    examples: ["I was charged twice this month"]
  - name: RETURNS
    description: sending an item back, return labels, exchanges
    ask_questions: false
    review_below: 0.5
  - name: OTHER
    description: anything else
fields:
  - name: order_number
    type: string
    description: the order number, if the customer gives one
    pattern: "^[A-Z]{2}-[0-9]{4,8}$"
  - name: channel
    type: enum
    values: [app, web]
"""


@pytest.fixture
def taxonomy_file(tmp_path: Path) -> Path:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(TAXONOMY)
    return path


@pytest.fixture
def world(in_process: Any) -> Any:
    """(settings, drain step, submit) in-process with setting overrides."""

    def build(**overrides: str) -> tuple[Settings, Any, Any]:
        built = in_process(**overrides)
        return built.settings, built.step, built.submit

    return build


def events(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(fields[b"payload"]) for _, fields in r.xrange(keys.EVENTS)]


def test_a_taxonomy_file_sets_categories_fields_and_policy(taxonomy_file):
    """Categories, examples, policy and extra fields come from TRIAGE_TAXONOMY_FILE."""
    settings = Settings(_env_file=None, taxonomy_file=taxonomy_file)
    assert settings.category_names == ["BILLING", "RETURNS", "OTHER"]
    assert settings.category("RETURNS").ask_questions is False
    assert [f.name for f in settings.fields] == ["order_number", "channel"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("categories: [", "line 1"),
        ("categories:\n  - name: billing\n  - name: BILLING\n", "declared twice"),
        ("categories:\n  - name: OK\n    colour: red\n", "line 3: categories.0.colour"),
        ("categories:\n  - name: OK\nfields:\n  - name: x\n    type: enum\n", "line 4"),
        ("categories:\n  - name: OK\nfields:\n  - name: x\n    pattern: '(['\n", "line 5"),
    ],
)
def test_a_bad_taxonomy_file_is_one_message_with_file_and_line(tmp_path, text, expected):
    """A bad file stops start-up with one message naming the setting, the file, line, problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, taxonomy_file=path)
    message = str(caught.value)
    assert "TRIAGE_TAXONOMY_FILE" in message and str(path) in message and expected in message


def test_a_toml_taxonomy_works_too(tmp_path):
    """TOML is accepted as well as YAML."""
    path = tmp_path / "taxonomy.toml"
    path.write_text('[[categories]]\nname = "BILLING"\n[[categories]]\nname = "OTHER"\n')
    assert Settings(_env_file=None, taxonomy_file=path).category_names == ["BILLING", "OTHER"]


def test_changing_a_category_description_changes_the_prompt_version(tmp_path, taxonomy_file):
    """The prompt version hashes what shapes a decision: a description edit changes it."""
    before = prompt_version(
        Settings(_env_file=None, taxonomy_file=taxonomy_file), DEFAULT_SYSTEM_PROMPT
    )
    edited = tmp_path / "edited.yaml"
    edited.write_text(TAXONOMY.replace("sending an item back", "returning an item"))
    after = prompt_version(Settings(_env_file=None, taxonomy_file=edited), DEFAULT_SYSTEM_PROMPT)
    same = prompt_version(
        Settings(_env_file=None, taxonomy_file=taxonomy_file), DEFAULT_SYSTEM_PROMPT
    )
    assert before != after and before == same and len(before) == 12


def test_an_extracted_value_that_fails_its_format_is_dropped_not_the_decision(taxonomy_file):
    """A declared field with a bad value becomes null and is reported; the rest stands."""
    settings = Settings(_env_file=None, taxonomy_file=taxonomy_file)
    text = json.dumps(
        {
            "action": "classify",
            "question": "",
            "category": "BILLING",
            "confidence": 0.9,
            "reason": "r",
            "priority": "high",
            "language": "pt_br",
            "sentiment": "negative",
            "summary": "Charged twice.",
            "fields": {"order_number": "12345", "channel": "app"},
        }
    )
    decision = parse_decision(text, settings.category_names, True, settings.fields)
    assert decision.fields == {"order_number": None, "channel": "app"}
    assert decision.dropped_fields == ["order_number"] and decision.language == "pt-BR"


@pytest.mark.parametrize(
    ("value", "tag"),
    [("EN", "en"), ("de-ch", "de-CH"), ("zh-hant-tw", "zh-Hant-TW"), ("??", "und")],
)
def test_language_tags_are_normalised(value, tag):
    """Languages are BCP 47 codes in their usual case; anything else is `und`."""
    assert language_tag(value) == tag


def test_bands_and_the_no_question_policy(taxonomy_file):
    """Bands follow the thresholds; a question in a category that never asks becomes a decision."""
    settings = Settings(_env_file=None, taxonomy_file=taxonomy_file)
    assert [confidence_band(c, settings) for c in (0.9, 0.85, 0.7, 0.59)] == [
        "high",
        "high",
        "medium",
        "low",
    ]
    asked = parse_decision(
        json.dumps(
            {
                "action": "clarify",
                "question": "Which item?",
                "category": "RETURNS",
                "confidence": 0.7,
                "reason": "r",
                "priority": "normal",
                "language": "en",
                "sentiment": "neutral",
                "summary": "s",
                "fields": {},
            }
        ),
        settings.category_names,
        True,
        settings.fields,
    )
    decided = apply_question_policy(asked, settings)
    assert decided.action == "classify" and decided.category == "RETURNS" and decided.question == ""


def test_every_decision_event_carries_the_new_fields(r, world, taxonomy_file):
    """Events carry priority, language, sentiment, summary, fields, band, review flag, version."""
    _, step, submit = world(TRIAGE_TAXONOMY_FILE=str(taxonomy_file))
    step.drain(submit(make_email("<d-1@example.org>", BILLING)))
    [event] = events(r)
    assert event["prompt_version"] == step.prompt_version
    for name in ("priority", "language", "sentiment", "summary", "confidence_band"):
        assert event[name] is not None, name
    assert set(event["fields"]) == {"order_number", "channel"}
    assert event["needs_review"] is False and event["confidence_band"] == "high"
    assert parse_event(json.dumps(event)).type == "classified"


def test_a_low_confidence_classification_waits_for_review_then_is_accepted(r, world):
    """Under the review threshold: status needs_review, in the lane; accept makes it final."""
    settings, step, submit = world(TRIAGE_REVIEW_BELOW="0.95")
    thread_id = submit(make_email("<rv-1@example.org>", BILLING))
    step.drain(thread_id)
    [event] = events(r)
    assert event["needs_review"] is True and step.store.peek(thread_id).status == "needs_review"
    lane = ReviewLane(r, step.store, settings.events_maxlen)
    assert [item.thread_id for item in lane.waiting()] == [thread_id]
    accepted = lane.accept(thread_id, note="looks right")
    assert accepted.category == "BILLING"
    assert events(r)[-1]["type"] == "review_accepted"
    assert step.store.peek(thread_id).status == "classified" and lane.waiting() == []
    with pytest.raises(ReviewError, match="is classified"):
        lane.accept(thread_id)  # only threads in review can be accepted


def test_any_classified_thread_can_be_corrected_and_exported(r, world, tmp_path):
    """Correct emits previous and new values, sets the category; export writes a dataset."""
    settings, step, submit = world()
    thread_id = submit(make_email("<co-1@example.org>", BILLING, subject="Refund"))
    step.drain(thread_id)
    lane = ReviewLane(r, step.store, settings.events_maxlen)
    corrected = lane.correct(thread_id, "OTHER", note="a complaint, not billing")
    last = events(r)[-1]
    assert last["type"] == "corrected" and last["previous"]["category"] == "BILLING"
    assert last["new"]["category"] == "OTHER" and corrected.note == "a complaint, not billing"
    snapshot = step.store.peek(thread_id)
    assert (snapshot.status, snapshot.meta["category"]) == ("classified", "OTHER")
    out = tmp_path / "corrections.jsonl"
    assert lane.export(out) == 1
    [case] = [json.loads(line) for line in out.read_text().splitlines()]
    assert case["id"] == thread_id and case["expected"]["category"] == "OTHER"
    assert BILLING in case["emails"][0]["text"] and case["emails"][0]["subject"] == "Refund"
    assert case["note"] == "a complaint, not billing"


def test_corrections_join_the_prompt_as_examples_when_learning_is_on(r, world):
    """Opt-in: a corrected thread's text shows up as an example of its new category."""
    settings, step, submit = world()
    thread_id = submit(make_email("<le-1@example.org>", "My bike arrived with a bent wheel."))
    step.drain(thread_id)
    ReviewLane(r, step.store, settings.events_maxlen).correct(thread_id, "OTHER")
    _, plain, _ = world()
    _, learning, _ = world(TRIAGE_LEARN_FROM_CORRECTIONS="true")
    assert learning.prompt_version != plain.prompt_version

    def system_text(step: Any) -> str:
        messages = [{"role": "user", "content": "x"}]
        request = build_request(step.settings, load_template(step.settings), messages, True, 100)
        return str(request["system"][0]["text"])

    assert "bent wheel" in system_text(learning) and "bent wheel" not in system_text(plain)


def test_a_custom_category_and_an_extracted_order_number_reach_the_event(r, world, taxonomy_file):
    """A taxonomy's own category and a declared field found in the email are in the event."""
    _, step, submit = world(TRIAGE_TAXONOMY_FILE=str(taxonomy_file))
    body = "Hello, I want to send back the jacket from order AB-12345 for returns, it is too small."
    step.drain(submit(make_email("<cu-1@example.org>", body, subject="Returns")))
    [event] = events(r)
    assert event["category"] == "RETURNS"
    assert event["fields"] == {"order_number": "AB-12345", "channel": None}
    assert event["language"] == "en" and event["priority"] in ("urgent", "high", "normal", "low")


def test_a_german_email_gets_a_german_question(r, in_process):
    """The question is written in the customer's language."""
    built = in_process()
    step, submit, published = built.step, built.submit, built.published.replies
    step.drain(
        submit(make_email("<de-1@example.org>", "Hallo, mein Ding geht nicht. Können Sie helfen?"))
    )
    [question] = published
    [event] = events(r)
    assert event["language"] == "de"
    assert any(word in question.question for word in ("Sie", "Ihre", "bitte", "Können"))


def test_the_low_confidence_fault_sends_the_thread_to_review(r, world, emulator):
    """A classification the emulator is unsure of (confidence 0.3) waits in the review lane."""
    settings, step, submit = world()
    emulator.configure(faults=[{"kind": "low_confidence", "match": "unsure"}])
    thread_id = submit(make_email("<lc-1@example.org>", BILLING + " (unsure)"))
    step.drain(thread_id)
    [event] = events(r)
    assert event["confidence"] == 0.3 and event["confidence_band"] == "low"
    assert event["needs_review"] is True
    assert [i.thread_id for i in ReviewLane(r, step.store, settings.events_maxlen).waiting()] == [
        thread_id
    ]
