"""Keeping the array within an input-token budget (pure).

The stored array is the memory and is never cut; what is *sent* may be. Policy, when the estimate
of the request exceeds `TRIAGE_HISTORY_TOKEN_BUDGET`: keep the first user turn (the original
request) and as many of the latest turns as fit, and put one assistant marker turn in between
saying how many turns were left out, so roles still alternate (user, assistant, user, …, user).
The last user turn is always kept; single turns are bounded at ingestion and in `user_turn`.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.decide.conversation import Turn

MARKER = "[{count} earlier messages of this thread were left out to stay within the size budget.]"


def marker_turn(count: int) -> Turn:
    return {"role": "assistant", "content": [{"type": "text", "text": MARKER.format(count=count)}]}


def prune(
    messages: list[Turn], budget: int, size: Callable[[list[Turn]], int]
) -> tuple[list[Turn], int]:
    """The array to send and how many turns were elided (0: sent as is).

    `messages` alternates and ends with a user turn (odd length). Candidates keep the first user
    turn, a marker, and the latest k turns starting with a user turn (k odd), for k from the
    largest down to 1; the first that fits `size(...) <= budget` wins, else the smallest.
    """
    if budget <= 0 or size(messages) <= budget or len(messages) < 5:
        return messages, 0
    head, tail_pool = messages[:1], messages[1:]
    best: list[Turn] = []
    elided = 0
    for keep in range(len(tail_pool) - 3, 0, -2):  # odd: the kept tail starts and ends with user
        elided = len(tail_pool) - keep
        candidate = [*head, marker_turn(elided), *tail_pool[-keep:]]
        best = candidate
        if size(candidate) <= budget:
            return candidate, elided
    return best, elided
