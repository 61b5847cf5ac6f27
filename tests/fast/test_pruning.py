"""History pruning in steps: a valid array under budget whose prefix stays put between re-cuts."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from worker.decide.conversation import check_alternation
from worker.decide.pruning import MARKER, prune


def turn(role: str, text: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def conversation(pairs: int, size: int = 100) -> list[dict]:
    messages = [turn("user", "u0 " + "x" * size)]
    for i in range(1, pairs + 1):
        messages += [turn("assistant", f"a{i} " + "y" * size), turn("user", f"u{i} " + "x" * size)]
    return messages


def estimate(messages: list[dict]) -> int:
    """What the worker's estimate does: the request's JSON at 4 bytes a token (+ a system part)."""
    return (len(json.dumps(["system prompt " * 20, messages], ensure_ascii=False).encode())) // 4


def calls(messages: list[dict], budget: int) -> list[tuple[list[dict], int]]:
    """The array sent by each call of a thread that grew to `messages`, oldest call first."""
    return [prune(messages[:end], budget, estimate) for end in range(1, len(messages) + 1, 2)]


@pytest.mark.parametrize("budget", [10, 150, 250, 350, 450, 900])
def test_pruned_array_is_valid_and_under_budget_when_possible(budget):
    """First and last turns, alternation and the marker are kept; it fits unless nothing can."""
    messages = conversation(12)
    sent, elided = prune(messages, budget, estimate)
    check_alternation(sent)
    assert sent[0] == messages[0] and sent[-1] == messages[-1]
    if elided:
        assert elided % 2 == 1
        assert sent[1]["content"][0]["text"] == MARKER.format(count=elided)
        assert sent[2:] == messages[1 + elided :]
    minimal = [messages[0], sent[1], messages[-1]] if elided else messages
    assert estimate(sent) <= budget or sent == minimal


def test_small_arrays_and_a_zero_budget_are_left_alone():
    """Fewer than five turns are never pruned, and a budget of 0 turns pruning off."""
    assert prune(conversation(1), 10, estimate) == (conversation(1), 0)
    assert prune(conversation(12), 0, estimate) == (conversation(12), 0)


def test_the_prefix_stays_put_between_re_cuts():
    """Each call's array starts with the previous call's array, except at a few re-cuts."""
    messages = conversation(25)  # a 50-turn thread
    budget = 800
    sent = calls(messages, budget)
    re_cuts = 0
    for (before, cut_before), (after, cut_after) in pairwise(sent):
        assert estimate(after) <= budget
        assert cut_after >= cut_before  # the cut only moves forward
        if cut_after == cut_before:
            assert after[: len(before)] == before  # cached prefix: only new turns appended
        else:
            re_cuts += 1
    pruned_calls = sum(1 for _, cut in sent if cut)
    assert pruned_calls >= 15 and re_cuts <= pruned_calls // 3


def test_same_history_gives_the_same_cut():
    """The cut is a function of the stored history alone (no state between calls)."""
    messages = conversation(20)
    assert prune(messages, 900, estimate) == prune(list(messages), 900, estimate)


def test_a_misjudged_weight_still_ends_under_budget():
    """If the per-turn weight underestimates, the real size decides and the array still fits."""
    messages = conversation(12)
    sent, elided = prune(messages, 600, estimate, weight=lambda _turn: 1)
    assert estimate(sent) <= 600 and elided % 2 == 1
