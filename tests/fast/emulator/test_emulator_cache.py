"""Prompt-cache accounting: creation on the first call, reads on later turns, zeros otherwise."""

from __future__ import annotations

from typing import Any

import anthropic
from helpers import MODEL, TURN1, TURN2, assistant, structured, user

from emulator.brain import CLARIFY_QUESTION
from emulator.server import EmulatorThread
from emulator.tokens import PromptCache, count_prompt

LONG_SYSTEM = "You are a support triage assistant. " * 160  # ~5.8 kB, ~1440 tokens
EPHEMERAL: Any = {"type": "ephemeral"}


def _call(client: anthropic.Anthropic, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.messages.create(
        model=MODEL, max_tokens=500, messages=messages, output_config=structured(), **kwargs
    ).usage


def _total(usage: Any) -> int:
    return int(
        usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    )


def test_no_cache_control_means_zero_cache_tokens(client: anthropic.Anthropic) -> None:
    """Without cache_control, no tokens are ever written to or read from the cache."""
    for _ in range(2):
        usage = _call(client, [user(TURN1)], system=LONG_SYSTEM)
        assert usage.cache_creation_input_tokens == 0
        assert usage.cache_read_input_tokens == 0


def test_short_prefix_is_not_cached(client: anthropic.Anthropic) -> None:
    """A prefix under the minimum cacheable length is not cached."""
    for _ in range(2):
        usage = _call(client, [user(TURN1)], cache_control=EPHEMERAL)
        assert usage.cache_creation_input_tokens == 0
        assert usage.cache_read_input_tokens == 0


def test_top_level_cache_control_grows_the_cached_prefix(client: anthropic.Anthropic) -> None:
    """Top-level cache_control caches the prefix; each later turn reads it and caches more."""
    turn1 = [user(TURN1)]
    first = _call(client, turn1, system=LONG_SYSTEM, cache_control=EPHEMERAL)
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens >= 1024
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert first.input_tokens > 0  # schema and request overhead are never cached

    turn2 = [*turn1, assistant(CLARIFY_QUESTION), user(TURN2)]
    second = _call(client, turn2, system=LONG_SYSTEM, cache_control=EPHEMERAL)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == _total(second) - _total(first)
    assert second.input_tokens == first.input_tokens

    repeat = _call(client, turn2, system=LONG_SYSTEM, cache_control=EPHEMERAL)
    assert repeat.cache_read_input_tokens == _total(second) - second.input_tokens
    assert repeat.cache_creation_input_tokens == 0


def test_cache_min_tokens_is_configurable(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """A lower cache_min_tokens lets a short prefix be cached and read back."""
    emulator.configure(cache_min_tokens=10)
    first = _call(client, [user(TURN1)], cache_control=EPHEMERAL)
    assert first.cache_creation_input_tokens > 0
    second = _call(
        client, [user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)], cache_control=EPHEMERAL
    )
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens


def test_block_level_breakpoint_on_system(client: anthropic.Anthropic) -> None:
    """A breakpoint on the system block caches it for any conversation after it."""
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    first = _call(client, [user(TURN1)], system=system)
    assert first.cache_creation_input_tokens >= 1024
    other = _call(client, [user(TURN2)], system=system)
    assert other.cache_read_input_tokens == first.cache_creation_input_tokens
    assert other.cache_creation_input_tokens == 0


def test_one_hour_ttl_is_reported_separately(client: anthropic.Anthropic) -> None:
    """A 1h cache write is counted under ephemeral_1h, not ephemeral_5m."""
    usage = _call(
        client, [user(TURN1)], system=LONG_SYSTEM, cache_control={"type": "ephemeral", "ttl": "1h"}
    )
    assert usage.cache_creation.ephemeral_1h_input_tokens == usage.cache_creation_input_tokens > 0
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_count_tokens_equals_total_with_caching(client: anthropic.Anthropic) -> None:
    """count_tokens equals the call's input plus cache-created plus cache-read tokens."""
    messages = [user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)]
    counted = client.messages.count_tokens(
        model=MODEL,
        messages=messages,
        system=LONG_SYSTEM,
        output_config=structured(),  # type: ignore[arg-type]
    ).input_tokens
    for _ in range(2):
        usage = _call(client, messages, system=LONG_SYSTEM, cache_control=EPHEMERAL)
        assert _total(usage) == counted


def test_entries_expire() -> None:
    """A cache entry lives while it is read within its TTL and expires once idle past it."""
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    body = {"model": MODEL, "messages": [user("x" * 8000)], "cache_control": EPHEMERAL}
    prompt = count_prompt(body)

    def account() -> Any:
        return cache.account(MODEL, prompt, EPHEMERAL, min_tokens=1024, default_ttl_s=300)

    assert account().cache_read == 0
    now[0] = 299.0
    assert account().cache_read > 0  # a read refreshes the TTL...
    now[0] = 598.0
    assert account().cache_read > 0
    now[0] = 1000.0  # ...but an idle entry expires
    assert account().cache_read == 0
