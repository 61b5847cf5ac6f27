"""The seed conversation, plain text, usage growth, count_tokens and streaming via the SDK."""

from __future__ import annotations

import json

import anthropic
import jsonschema
from helpers import MODEL, TURN1, TURN2, WORKER_SCHEMA, assistant, structured, user

from emulator.brain import CLARIFY_QUESTION
from emulator.server import EmulatorThread


def _decide(client: anthropic.Anthropic, messages: list[dict[str, object]]) -> dict[str, object]:
    message = client.messages.create(
        model=MODEL, max_tokens=1024, messages=messages, output_config=structured()
    )
    assert message.stop_reason == "end_turn"
    assert len(message.content) == 1 and message.content[0].type == "text"
    decision = json.loads(message.content[0].text)
    jsonschema.validate(decision, WORKER_SCHEMA)
    return decision


def test_seed_conversation_clarifies_then_classifies(client: anthropic.Anthropic) -> None:
    """The seed's first turn gets a clarifying question, the second a BILLING label."""
    first = _decide(client, [user(TURN1)])
    assert first["action"] == "clarify"
    assert first["question"] == CLARIFY_QUESTION

    second = _decide(client, [user(TURN1), assistant(str(first["question"])), user(TURN2)])
    assert second["action"] == "classify"
    assert second["category"] == "BILLING"
    assert second["question"] == ""
    assert "charged" in str(second["reason"]) and "subscription" in str(second["reason"])
    assert 0 < float(second["confidence"]) <= 1  # type: ignore[arg-type]


def test_each_turn_alone(client: anthropic.Anthropic) -> None:
    """Alone, the billing turn is classified and the vague turn gets a question."""
    assert _decide(client, [user(TURN2)])["category"] == "BILLING"
    assert _decide(client, [user(TURN1)])["action"] == "clarify"


def test_plain_text_without_schema(client: anthropic.Anthropic) -> None:
    """Without a schema, the answer is plain text: the question, then the label."""
    first = client.messages.create(model=MODEL, max_tokens=200, messages=[user(TURN1)])
    assert first.content[0].type == "text"
    assert first.content[0].text == CLARIFY_QUESTION
    second = client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=[user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)],
    )
    assert second.content[0].type == "text"
    assert second.content[0].text == "BILLING"


def test_response_shape_and_request_id(client: anthropic.Anthropic) -> None:
    """A response has the API's shape and a request-id header that matches the message's."""
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=[user(TURN2)]
    )
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["request-id"].startswith("req_")
    message = raw.parse()
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message._request_id == raw.headers["request-id"]
    assert message.stop_sequence is None and message.stop_details is None
    assert message.usage.service_tier == "standard"
    assert message.usage.cache_creation is not None
    body = json.loads(raw.http_response.text)
    assert body["type"] == "message" and body["role"] == "assistant"


def test_usage_grows_across_turns(client: anthropic.Anthropic) -> None:
    """Input tokens grow with the conversation, with no cache tokens when caching is off."""
    turns = [user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)]
    sizes = []
    for end in (1, 3):
        message = client.messages.create(
            model=MODEL, max_tokens=500, messages=turns[:end], output_config=structured()
        )
        assert message.usage.cache_read_input_tokens == 0
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.output_tokens > 0
        sizes.append(message.usage.input_tokens)
    assert sizes[1] > sizes[0]


def test_count_tokens_matches_total_input(client: anthropic.Anthropic) -> None:
    """count_tokens equals the call's total input tokens, cached or not."""
    messages = [user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)]
    kwargs = {"model": MODEL, "messages": messages, "system": "You triage support email."}
    counted = client.messages.count_tokens(**kwargs, output_config=structured())  # type: ignore[arg-type]
    message = client.messages.create(
        **kwargs,
        max_tokens=500,
        output_config=structured(),
        cache_control={"type": "ephemeral"},  # type: ignore[arg-type]
    )
    usage = message.usage
    total = usage.input_tokens + (usage.cache_creation_input_tokens or 0)
    total += usage.cache_read_input_tokens or 0
    assert counted.input_tokens == total


def test_streaming_matches_non_streaming(client: anthropic.Anthropic) -> None:
    """A streamed answer has the same text and output tokens as the plain one."""
    messages = [user(TURN2)]
    with client.messages.stream(
        model=MODEL, max_tokens=500, messages=messages, output_config=structured()
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert json.loads(text)["category"] == "BILLING"
    assert final.stop_reason == "end_turn"
    plain = client.messages.create(
        model=MODEL, max_tokens=500, messages=messages, output_config=structured()
    )
    assert plain.content[0].type == "text" and plain.content[0].text == text
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_recording_hides_credentials(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """A recorded request keeps headers, body and response, but no credentials."""
    client.messages.create(model=MODEL, max_tokens=50, messages=[user(TURN2)])
    (entry,) = emulator.requests
    assert entry["path"] == "/v1/messages" and entry["status"] == 200
    assert entry["headers"]["anthropic-version"] == "2026-10-21"
    assert entry["headers"]["x-stainless-retry-count"] == "0"
    assert "authorization" not in entry["headers"] and "x-api-key" not in entry["headers"]
    assert "test-key" not in json.dumps(entry)
    assert entry["body"]["messages"] == [user(TURN2)]
    assert entry["response"]["content"][0]["text"] == "BILLING"
