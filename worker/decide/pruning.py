"""Keeping the array within an input-token budget, in steps that keep a stable prefix (pure).

The stored array is the memory and is never cut; what is *sent* may be. When the estimate of the
request exceeds `TRIAGE_HISTORY_TOKEN_BUDGET`, the array sent is the first user turn (the original
request), one assistant marker turn saying how many turns were left out, and the latest turns
from a user turn on, so roles still alternate (user, assistant, user, ..., user). The last user
turn is always kept; single turns are bounded at ingestion and in `user_turn`.

Why in steps: the API caches the longest prefix it has seen. Re-cutting on every call (keep "as
many of the latest turns as fit") changes the turn after the marker each time, so every call
writes the whole array to the cache at 1.25x and never reads it. Here the cut stays where it is
while the array still fits; only when the budget is exceeded again is it moved, and then far
enough to free `headroom` of the budget, so the following calls share the prefix
`[system, first turn, marker, kept turns...]` and read it from the cache at 0.1x.

The function keeps no state: the cut for an array is found by replaying the thread's history
(each odd-length prefix of the array is the state of one earlier call) with per-turn sizes, so
the same stored history always gives the same cut, in O(turns).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from worker.decide.conversation import Turn

MARKER = "[{count} earlier messages of this thread were left out to stay within the size budget.]"

#: Share of the budget a re-cut frees: the array sent then grows for several calls before the
#: next re-cut (each re-cut writes the cache once; the calls in between read it).
HEADROOM = 0.3

#: Fewer turns than this are never pruned (first user turn, marker, last user turn at least).
MIN_TURNS = 5


def marker_turn(count: int) -> Turn:
    return {"role": "assistant", "content": [{"type": "text", "text": MARKER.format(count=count)}]}


def turn_bytes(turn: Turn) -> int:
    """A turn's share of the request's JSON (the estimate behind `size` counts 4 bytes a token)."""
    return len(json.dumps(turn, ensure_ascii=False).encode()) + 2  # + the ", " between turns


def with_cut(messages: list[Turn], elided: int) -> list[Turn]:
    """The array sent when the `elided` turns after the first are left out (0: as is)."""
    if not elided:
        return messages
    return [messages[0], marker_turn(elided), *messages[1 + elided :]]


def prune(
    messages: list[Turn],
    budget: int,
    size: Callable[[list[Turn]], int],
    *,
    headroom: float = HEADROOM,
    weight: Callable[[Turn], int] = turn_bytes,
) -> tuple[list[Turn], int]:
    """The array to send and how many turns were elided (0: sent as is).

    `messages` alternates and ends with a user turn (odd length); `size` estimates the tokens of
    the request for a candidate array; `weight` is a turn's size in bytes of that estimate (4
    bytes a token). The number elided is odd (the kept tail starts with a user turn); if even
    the smallest candidate (first turn, marker, last turn) does not fit, that one is sent.
    """
    if budget <= 0 or len(messages) < MIN_TURNS:
        return messages, 0
    full = size(messages)
    if full <= budget:
        return messages, 0
    offsets = [0]
    for turn in messages:
        offsets.append(offsets[-1] + weight(turn))
    marker = weight(marker_turn(len(messages)))  # the widest count: never an underestimate

    def estimate(elided: int, end: int) -> float:
        """Tokens of the request for `messages[:end]` with `elided` turns left out."""
        kept = offsets[end] - (offsets[1 + elided] - offsets[1] - marker if elided else 0)
        return full + (kept - offsets[-1]) / 4

    elided = 0
    low_water = budget * (1 - headroom)
    for end in range(MIN_TURNS, len(messages) + 1, 2):  # the array of each call, oldest first
        if estimate(elided, end) <= budget:
            continue  # the cut made for an earlier call still fits: the prefix stays
        elided = max(elided, 1)
        while elided < end - 2 and estimate(elided, end) > low_water:
            elided += 2
    sent = with_cut(messages, elided)
    while elided < len(messages) - 2 and size(sent) > budget:  # only if `weight` misjudged
        elided += 2
        sent = with_cut(messages, elided)
    return sent, elided
