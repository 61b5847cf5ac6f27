"""rpm/itpm limits: headers on every response, 429 with retry-after once exceeded."""

from __future__ import annotations

from datetime import datetime

import anthropic
import pytest
from helpers import MODEL, TURN2, user

from emulator.ratelimit import RateLimiter
from emulator.server import EmulatorThread


def test_rate_limit_headers_and_429(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """Every response has rate-limit headers; past the rpm limit, a 429 with retry-after."""
    emulator.configure(rpm=3, itpm=100_000)
    remaining = []
    for _ in range(3):
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=50, messages=[user(TURN2)]
        )
        headers = raw.headers
        assert headers["anthropic-ratelimit-requests-limit"] == "3"
        assert headers["anthropic-ratelimit-input-tokens-limit"] == "100000"
        datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
        datetime.fromisoformat(headers["anthropic-ratelimit-input-tokens-reset"])
        remaining.append(int(headers["anthropic-ratelimit-requests-remaining"]))
        assert int(headers["anthropic-ratelimit-input-tokens-remaining"]) < 100_000
    assert remaining == [2, 1, 0]
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=[user(TURN2)])
    error = caught.value
    assert error.type == "rate_limit_error"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-should-retry"] == "true"
    assert error.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_no_headers_without_limits(client: anthropic.Anthropic) -> None:
    """Without configured limits, no rate-limit headers are sent."""
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=[user(TURN2)]
    )
    assert "anthropic-ratelimit-requests-limit" not in raw.headers


def test_input_token_limit(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """A request past the input-tokens-per-minute limit is a 429."""
    emulator.configure(itpm=300)
    client.messages.create(model=MODEL, max_tokens=50, messages=[user("x" * 800)])
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=MODEL, max_tokens=50, messages=[user("y" * 800)])


def test_window_slides() -> None:
    """The one-minute window slides: a request is admitted once the oldest leaves it."""
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.admit(10, rpm=2, itpm=None).allowed
    now[0] = 30.0
    assert limiter.admit(10, rpm=2, itpm=None).allowed
    blocked = limiter.admit(10, rpm=2, itpm=None)
    assert not blocked.allowed and blocked.retry_after_s == 30
    now[0] = 60.5
    assert limiter.admit(10, rpm=2, itpm=None).allowed
