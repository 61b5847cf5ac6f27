"""Token economy: the usage ledger, cache savings, history pruning and `triage stats`."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from helpers import (
    SEED_FIRST,
    SEED_REPLY,
    base_env,
    events,
    make_email,
    outbox,
    run_triage,
    wait_for,
)

from common.prices import DEFAULT_PRICES, ModelPrice
from producers.enqueue import Enqueuer
from worker.decide.conversation import check_alternation
from worker.decide.pruning import MARKER, prune
from worker.state.ledger import Ledger
from worker.state.pricing import cost_usd, price_for
from worker.state.store import ThreadStore
from worker.state.usage import Usage

TODAY = dt.datetime.now(dt.UTC).date()


def turn(role: str, text: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def conversation(pairs: int, size: int = 100) -> list[dict]:
    messages = [turn("user", "u0 " + "x" * size)]
    for i in range(1, pairs + 1):
        messages += [turn("assistant", f"a{i} " + "y" * size), turn("user", f"u{i} " + "x" * size)]
    return messages


def estimate(messages: list[dict]) -> int:
    return len(json.dumps(messages)) // 4


@pytest.mark.parametrize("budget", [10, 150, 250, 350, 450])
def test_pruning_keeps_the_array_valid_and_under_budget_when_possible(budget):
    """Pruning keeps first and last turns, alternation and a marker, and fits if it can."""
    messages = conversation(6)
    sent, elided = prune(messages, budget, estimate)
    check_alternation(sent)
    assert sent[-1] == messages[-1] and sent[0] == messages[0]
    assert sent[-1]["role"] == "user"
    if elided:
        assert sent[1]["content"][0]["text"] == MARKER.format(count=elided)
        assert len(sent) == len(messages) - elided + 1
    minimal = [messages[0], sent[1], messages[-1]] if elided else messages
    assert estimate(sent) <= budget or sent == minimal


def test_pruning_leaves_small_arrays_alone():
    """Pruning leaves a three-turn array alone, and a budget of 0 turns it off."""
    messages = conversation(1)
    assert prune(messages, 10, estimate) == (messages, 0)
    assert prune(conversation(6), 0, estimate)[1] == 0  # budget 0 = off


def test_cost_from_the_price_table():
    """Cost comes from the price table, halved for batches, matched by model prefix."""
    haiku = DEFAULT_PRICES["claude-haiku-4-5"]
    usage = Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert cost_usd(usage, haiku) == pytest.approx(1 + 5 + 1.25 + 0.1)
    assert cost_usd(usage, haiku, batch=True) == pytest.approx((1 + 5 + 1.25 + 0.1) / 2)
    assert price_for("claude-haiku-4-5-20251001", DEFAULT_PRICES) is haiku
    custom = {"m": ModelPrice(input=2, output=4)}
    assert price_for("unknown", custom).input == 2


def test_ledger_totals_equal_the_emulators_usage(r, emulator, worker, enqueue):
    """The ledger's totals equal the emulator's reported usage, by category, with savings."""
    emulator.configure(cache_min_tokens=50)  # so later turns of a thread read from the cache
    first = enqueue(make_email("<led-1@example.org>", SEED_FIRST))
    for i, text in enumerate(["My parcel never arrived.", "The app crashes at log in."]):
        enqueue(make_email(f"<led-c{i}@example.org>", text))
    [question] = wait_for(lambda: outbox(r), what="the question")
    enqueue(
        make_email(
            "<led-2@example.org>",
            SEED_REPLY,
            subject="Re: Help",
            in_reply_to=question["message_id"],
        )
    )
    wait_for(lambda: len(events(r)) == 3, what="three classifications")
    calls = [q for q in emulator.requests if q["path"] == "/v1/messages" and q["status"] == 200]
    expected = Usage()
    for call in calls:
        expected = expected + Usage.from_mapping(call["response"]["usage"])
    ledger = Ledger(r, DEFAULT_PRICES, 3600)
    totals = ledger.totals(TODAY)
    assert totals.usage == expected and totals.total["calls"] == len(calls) == 4
    expected_cost = cost_usd(expected, DEFAULT_PRICES["claude-haiku-4-5"])
    assert totals.total["cost_micro_usd"] == pytest.approx(expected_cost * 1e6, abs=4)
    assert set(totals.by_category) == {"CLARIFY", "BILLING", "SHIPPING", "TECHNICAL"}
    seed = ledger.thread(first.thread_id)
    assert seed["calls"] == 2
    assert seed["cache_read_input_tokens"] > 0 and seed["saving_micro_usd"] > 0  # turn 2 hit


def test_stats_command_reports_the_run(r, state_url, broker_url, emulator, worker, enqueue):
    """`triage stats` reports emails, outcomes, calls and cost; a bad --since is an error."""
    enqueue(make_email("<stats-1@example.org>", SEED_FIRST))
    enqueue(make_email("<stats-2@example.org>", "I was charged twice."))
    wait_for(lambda: outbox(r) and events(r), what="a question and a classification")
    env = base_env(state_url, broker_url, emulator.base_url)
    result = run_triage("stats", "--since", "1h", "--json", env=env)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["emails"] == 2 and stats["threads"] == 2
    assert stats["outcomes"] == {"clarification": 1, "classified": 1}
    assert stats["categories"] == {"BILLING": 1}
    assert stats["clarification_rate"] == 0.5
    assert stats["calls"] == 2 and stats["cost_usd"] > 0
    table = run_triage("stats", env=env)
    assert "clarification rate 50.0%" in table.stdout
    bad = run_triage("stats", "--since", "yesterday-ish", env=env)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_long_thread_is_sent_pruned_but_stored_whole(r, emulator, worker_factory):
    """A long thread is sent pruned to the history budget but stored whole."""
    worker = worker_factory(TRIAGE_HISTORY_TOKEN_BUDGET="700")
    enqueuer = Enqueuer(worker.settings(), r)
    root = "<long-0@example.org>"
    thread_id = enqueuer.enqueue_bytes(make_email(root, "My parcel never arrived. " * 5)).thread_id
    for i in range(1, 6):
        wait_for(lambda i=i: len(events(r)) == i, what=f"decision {i}")
        text = f"Follow-up {i}: the parcel still has not arrived, tracking unchanged. " * 3
        enqueuer.enqueue_bytes(make_email(f"<long-{i}@example.org>", text, in_reply_to=root))
    wait_for(lambda: len(events(r)) == 6, what="six decisions")
    stored = ThreadStore(r, 3600, 1000).snapshot(thread_id).messages
    assert len(stored) == 12
    last = [q for q in emulator.requests if q["path"] == "/v1/messages"][-1]["body"]["messages"]
    check_alternation(last)
    assert len(last) < 11 and last[0] == stored[0] and last[-1] == stored[10]
    assert "were left out" in last[1]["content"][0]["text"]
    assert [e for e in worker.logs("drain.pruned") if e["thread_id"] == thread_id]
