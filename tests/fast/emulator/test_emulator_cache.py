"""Prompt-cache accounting: creation on the first call, reads on later turns, zeros otherwise;
several breakpoints, shared system prompts, the breakpoint limit and the lookback."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
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


def _system_tokens(system: list[dict[str, Any]]) -> int:
    return count_prompt({"system": system, "messages": []}).blocks[0].tokens


def test_system_breakpoint_is_shared_by_threads_with_automatic_caching(
    client: anthropic.Anthropic,
) -> None:
    """With a system breakpoint and top-level cache_control, a new thread reads the system
    prompt another thread stored and writes its own conversation; a later turn reads it all."""
    system: Any = [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}]
    shared = _system_tokens(system)
    first = _call(client, [user(TURN1)], system=system, cache_control=EPHEMERAL)
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens > shared >= 1024  # system + conversation stored

    other_thread = [user("My parcel never arrived and the tracking page shows nothing.")]
    other = _call(client, other_thread, system=system, cache_control=EPHEMERAL)
    assert other.cache_read_input_tokens == shared
    assert other.cache_creation_input_tokens == _total(other) - other.input_tokens - shared > 0

    next_turn = [user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)]
    second = _call(client, next_turn, system=system, cache_control=EPHEMERAL)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == _total(second) - _total(first)


def test_automatic_breakpoint_alone_is_not_shared_by_threads(client: anthropic.Anthropic) -> None:
    """Top-level cache_control alone stores only whole conversations: another thread reads 0."""
    _call(client, [user(TURN1)], system=LONG_SYSTEM, cache_control=EPHEMERAL)
    other = _call(client, [user(TURN2)], system=LONG_SYSTEM, cache_control=EPHEMERAL)
    assert other.cache_read_input_tokens == 0
    assert other.cache_creation_input_tokens > 0


def _marked(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": EPHEMERAL}


def test_at_most_four_breakpoints(client: anthropic.Anthropic) -> None:
    """At most four breakpoints; automatic caching takes a slot unless the last block has one."""
    three: Any = [_marked("a"), _marked("b"), _marked("c")]
    _call(client, [user(TURN1)], system=three, cache_control=EPHEMERAL)  # 3 + automatic
    marked_last: Any = [{"role": "user", "content": [_marked(TURN1)]}]
    _call(client, marked_last, system=three, cache_control=EPHEMERAL)  # automatic reuses it
    with pytest.raises(anthropic.BadRequestError) as caught:
        _call(client, [user(TURN1)], system=[*three, _marked("d")], cache_control=EPHEMERAL)
    assert caught.value.status_code == 400
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in str(caught.value)


def test_lookback_is_limited_to_twenty_blocks() -> None:
    """A breakpoint finds a prefix stored up to 20 blocks before it, not one further back."""
    turns = [user(f"turn {i}") if i % 2 == 0 else assistant(f"reply {i}") for i in range(30)]

    def account(cache: PromptCache, count: int) -> Any:
        body = {"model": MODEL, "messages": turns[:count], "cache_control": EPHEMERAL}
        return cache.account(MODEL, count_prompt(body), EPHEMERAL, min_tokens=1, default_ttl_s=300)

    for count, reachable in ((21, True), (22, False)):
        cache = PromptCache()
        stored = account(cache, 1).cache_creation  # a prefix ending at block 0
        assert account(cache, count).cache_read == (stored if reachable else 0)
