"""Every validation rule, seen through the SDK's typed exceptions or a plain HTTP client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from helpers import MODEL, TURN1, TURN2, assistant, user

from emulator.server import EmulatorThread
from emulator.validation import PREFILL_MESSAGE

HEADERS = {"x-api-key": "k", "anthropic-version": "2026-10-21", "content-type": "application/json"}

BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("missing model", {"max_tokens": 10, "messages": [user("hi")]}, "model: Field required"),
    (
        "missing max_tokens",
        {"model": MODEL, "messages": [user("hi")]},
        "max_tokens: Field required",
    ),
    ("missing messages", {"model": MODEL, "max_tokens": 10}, "messages: Field required"),
    (
        "max_tokens str",
        {"model": MODEL, "max_tokens": "10", "messages": [user("hi")]},
        "max_tokens: Input should be a valid integer",
    ),
    (
        "max_tokens zero",
        {"model": MODEL, "max_tokens": 0, "messages": [user("hi")]},
        "greater than or equal to 1",
    ),
    (
        "messages not list",
        {"model": MODEL, "max_tokens": 10, "messages": "hi"},
        "messages: Input should be a valid list",
    ),
    ("no messages", {"model": MODEL, "max_tokens": 10, "messages": []}, "at least one message"),
    (
        "system role",
        {
            "model": MODEL,
            "max_tokens": 10,
            "messages": [{"role": "system", "content": "be nice"}, user("hi")],
        },
        "top-level `system` parameter",
    ),
    (
        "bad role",
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "customer", "content": "hi"}]},
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        "empty string",
        {"model": MODEL, "max_tokens": 10, "messages": [user("")]},
        "all messages must have non-empty content",
    ),
    (
        "empty list",
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": []}]},
        "all messages must have non-empty content",
    ),
    (
        "empty text block",
        {
            "model": MODEL,
            "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}],
        },
        "text content blocks must be non-empty",
    ),
    (
        "assistant first",
        {"model": MODEL, "max_tokens": 10, "messages": [assistant("hello"), user("hi")]},
        'first message must use the "user" role',
    ),
    (
        "temperature",
        {"model": MODEL, "max_tokens": 10, "messages": [user("hi")], "temperature": 0.2},
        "temperature: sampling parameters",
    ),
    (
        "top_p",
        {"model": MODEL, "max_tokens": 10, "messages": [user("hi")], "top_p": 0.9},
        "top_p: sampling parameters",
    ),
    (
        "top_k",
        {"model": MODEL, "max_tokens": 10, "messages": [user("hi")], "top_k": 5},
        "top_k: sampling parameters",
    ),
    (
        "prefill",
        {"model": MODEL, "max_tokens": 10, "messages": [user("hi"), assistant("{")]},
        PREFILL_MESSAGE,
    ),
    (
        "bad format",
        {
            "model": MODEL,
            "max_tokens": 10,
            "messages": [user("hi")],
            "output_config": {"format": {"type": "xml"}},
        },
        "output_config.format.type",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [(b, m) for _, b, m in BAD_REQUESTS], ids=[n for n, _, _ in BAD_REQUESTS]
)
def test_bad_request(client: anthropic.Anthropic, body: dict[str, Any], message: str) -> None:
    """Each malformed request is a 400 naming the problem, with a request id."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", cast_to=object, body=body)
    error = caught.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.api_message is not None and message in error.api_message
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert isinstance(error.body, dict) and error.body["request_id"] == error.request_id


def test_prefill_message_is_exact(client: anthropic.Anthropic) -> None:
    """A prefill on a current model is rejected with the API's exact message."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="claude-opus-4-6", max_tokens=10, messages=[user("hi"), assistant("{")]
        )
    assert caught.value.api_message == (
        "This model does not support assistant message prefill. "
        "The conversation must end with a user message."
    )


def test_prefill_allowed_on_older_models(client: anthropic.Anthropic) -> None:
    """An older model accepts an assistant prefill."""
    message = client.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[user(TURN2), assistant("Category:")]
    )
    assert message.stop_reason == "end_turn"


def test_consecutive_user_turns_are_allowed(client: anthropic.Anthropic) -> None:
    """Two user turns in a row are accepted and read together."""
    message = client.messages.create(
        model=MODEL, max_tokens=50, messages=[user(TURN1), user(TURN2)]
    )
    assert message.content[0].type == "text" and message.content[0].text == "BILLING"


def test_unknown_model_is_404(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """An unknown model is a 404; accept_any_model lets any Claude model name through."""
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=[user("hi")])
    assert caught.value.type == "not_found_error"
    assert caught.value.api_message == "model: claude-nonexistent-9"
    emulator.configure(accept_any_model=True)
    client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=[user("hi")])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="gpt-4o", max_tokens=10, messages=[user("hi")])


def test_missing_key_and_wrong_key(
    make_client: Callable[..., anthropic.Anthropic], emulator: EmulatorThread
) -> None:
    """A missing or wrong key is a 401; the right key works in either header."""
    response = httpx2.post(
        f"{emulator.base_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": [user("hi")]},
        headers={"anthropic-version": "2026-10-21"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    emulator.configure(api_key="right")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        make_client(api_key="wrong").messages.create(
            model=MODEL, max_tokens=10, messages=[user("hi")]
        )
    assert caught.value.api_message == "invalid x-api-key"
    make_client(api_key="right").messages.create(model=MODEL, max_tokens=10, messages=[user("hi")])
    # x-api-key is accepted as well as the SDK's Authorization: Bearer
    ok = httpx2.post(
        f"{emulator.base_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": [user("hi")]},
        headers={**HEADERS, "x-api-key": "right"},
    )
    assert ok.status_code == 200


def test_missing_version_header(emulator: EmulatorThread) -> None:
    """A request without anthropic-version is a 400."""
    response = httpx2.post(
        f"{emulator.base_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": [user("hi")]},
        headers={"x-api-key": "k"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in response.json()["error"]["message"]


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_non_json_body(emulator: EmulatorThread, payload: bytes) -> None:
    """A body that is not a JSON object is a 400 in the API's error shape."""
    response = httpx2.post(f"{emulator.base_url}/v1/messages", content=payload, headers=HEADERS)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"].startswith("req_")
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["request_id"] == response.headers["request-id"]


def test_unknown_path_and_wrong_method(emulator: EmulatorThread) -> None:
    """An unknown path is a 404 and a wrong method a 405, both in the error shape."""
    missing = httpx2.post(f"{emulator.base_url}/v1/nothing", json={}, headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert missing.headers["request-id"].startswith("req_")
    wrong = httpx2.get(f"{emulator.base_url}/v1/messages", headers=HEADERS)
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "error"


def test_body_too_large(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """A body over max_body_bytes is a 413 request_too_large."""
    emulator.configure(max_body_bytes=2000)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=[user("x" * 5000)])
    assert caught.value.status_code == 413
    assert caught.value.type == "request_too_large"


def test_count_tokens_validates_without_max_tokens(client: anthropic.Anthropic) -> None:
    """count_tokens needs no max_tokens but still validates the messages."""
    counted = client.messages.count_tokens(model=MODEL, messages=[user("hello")])
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(
            model=MODEL,
            messages=[{"role": "system", "content": "x"}],  # type: ignore[list-item]
        )


def test_prompt_over_the_context_window_is_a_400(make_client, emulator):
    """A prompt longer than the context window is a 400 "prompt is too long"."""
    emulator.configure(context_window_tokens=50)
    client = make_client()
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "word " * 200}],
        )
    assert info.value.type == "invalid_request_error"
    assert "prompt is too long" in str(info.value.api_message)
