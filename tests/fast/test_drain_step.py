"""The drain step in-process: real Redis, the real SDK over HTTP to the emulator, no Celery.

Emails go in through the producers' real submit path (parse, thread, dedupe, inbox); the drain
step is built by the same factory the worker uses; what a decision changed is read back from Redis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from helpers import SEED_FIRST, SEED_REPLY, api_requests, make_email

from common import keys
from common.deadletters import DeadLetterStream
from common.settings import Settings
from emulator.config import FaultRule
from worker.decide.drain import DrainStep
from worker.decide.outcome import Outcome, OutcomeKind, StepResult
from worker.events import parse_event
from worker.state.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
BILLING = "I was charged twice for my subscription, please refund the duplicate payment."
SCHEMA = json.loads((ROOT / "docs" / "events.schema.json").read_text())


@pytest.fixture
def world(in_process: Any) -> Any:
    """The drain step and submit path, as the worker and `triage enqueue` build them."""
    return in_process()


@pytest.fixture
def settings(world: Any) -> Settings:
    return world.settings  # type: ignore[no-any-return]


@pytest.fixture
def published(world: Any) -> Any:
    return world.published


@pytest.fixture
def step(world: Any) -> DrainStep:
    return world.step  # type: ignore[no-any-return]


@pytest.fixture
def submit(world: Any) -> Any:
    return world.submit


def stream_events(r: redis.Redis) -> list[dict[str, Any]]:
    """Every event payload in the stream, oldest first."""
    return [json.loads(fields[b"payload"]) for _, fields in r.xrange(keys.EVENTS)]


def test_a_clear_email_is_classified_in_one_call(r, step, submit, published, emulator):
    """A clear email becomes one user turn, one call, a classified event and no question."""
    thread_id = submit(make_email("<c-1@example.org>", BILLING, subject="Double charge"))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.CLASSIFIED, category="BILLING")]
    [event] = stream_events(r)
    assert event["type"] == "classified" and event["category"] == "BILLING"
    assert event["email_ids"] == ["<c-1@example.org>"] and event["turns"] == 2
    snapshot = step.store.snapshot(thread_id)
    assert [turn["role"] for turn in snapshot.messages] == ["user", "assistant"]
    assert snapshot.status == "classified" and snapshot.inbox == []
    assert r.get(keys.thread_scheduled(thread_id)) is None  # the commit released the thread
    assert published.replies == [] and len(api_requests(emulator)) == 1


def test_a_vague_email_gets_a_question_then_the_answer_classifies(r, step, submit, published):
    """The seed conversation: a question for the vague email, BILLING after the answer."""
    thread_id = submit(make_email("<s-1@example.org>", SEED_FIRST))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.CLARIFIED)]
    [reply] = published.replies
    assert reply.to == "dana@example.org" and reply.in_reply_to == "<s-1@example.org>"
    assert reply.thread_id == thread_id and reply.question
    assert r.hexists(keys.REPLIES_PENDING, reply.reply_id)
    assert r.get(keys.message_index(reply.message_id)) == thread_id.encode()
    assert step.store.snapshot(thread_id).status == "awaiting_customer"
    answer = make_email(
        "<s-2@example.org>", SEED_REPLY, subject="Re: Help", in_reply_to=reply.message_id
    )
    assert submit(answer) == thread_id  # the answer cites our question: same thread
    assert step.drain(thread_id) == [Outcome(OutcomeKind.CLASSIFIED, category="BILLING")]
    clarification, classified = stream_events(r)
    assert clarification["type"] == "clarification" and clarification["reply_id"] == reply.reply_id
    assert classified["type"] == "classified" and classified["turns"] == 4
    assert len(step.store.snapshot(thread_id).messages) == 4


def test_what_the_commit_writes_validates_against_the_published_schema(r, step, submit, emulator):
    """Every event type the commit writes validates against docs/events.schema.json."""
    submit_ids = [
        submit(make_email("<v-1@example.org>", BILLING)),
        submit(make_email("<v-2@example.org>", SEED_FIRST)),
    ]
    emulator.configure(faults=[FaultRule(kind="refusal", match="parcel")])
    submit_ids.append(submit(make_email("<v-3@example.org>", "Where is my parcel?")))
    for thread_id in submit_ids:
        step.drain(thread_id)
    stored = r.xrange(keys.EVENTS)
    assert {fields[b"type"] for _, fields in stored} == {
        b"classified",
        b"clarification",
        b"escalated",
    }
    for _, fields in stored:
        payload = json.loads(fields[b"payload"])
        jsonschema.validate(payload, SCHEMA)
        assert parse_event(fields[b"payload"]).type == fields[b"type"].decode()


def test_a_truncated_reply_is_retried_with_a_bigger_budget_and_never_stored(
    r, step, submit, emulator, settings
):
    """One max_tokens stop: the retry doubles max_tokens; only the complete reply is stored."""
    emulator.configure(faults=[FaultRule(kind="max_tokens", times=1)])
    thread_id = submit(make_email("<t-1@example.org>", BILLING))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.CLASSIFIED, category="BILLING")]
    first, second = api_requests(emulator)
    assert second["body"]["max_tokens"] == 2 * first["body"]["max_tokens"]
    messages = step.store.snapshot(thread_id).messages
    assert len(messages) == 2 and json.loads(messages[1]["content"][0]["text"])["category"]
    ledger = Ledger(r, settings.prices, settings.thread_ttl_seconds).thread(thread_id)
    assert ledger["calls"] == 2  # the truncated call was billed too


def test_truncated_twice_is_dead_lettered_and_the_thread_left_unchanged(r, step, submit, emulator):
    """Two truncated replies in a row: the email goes to the DLQ (truncated), nothing is stored."""
    emulator.configure(faults=[FaultRule(kind="max_tokens")])
    thread_id = submit(make_email("<t-2@example.org>", BILLING))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.DEAD_LETTERED, reason="truncated")]
    [letter] = DeadLetterStream(r).list()
    assert (
        letter.reason == "truncated" and letter.body["payload"]["message_id"] == "<t-2@example.org>"
    )
    snapshot = step.store.snapshot(thread_id)
    assert snapshot.messages == [] and snapshot.inbox == [] and stream_events(r) == []


def test_a_refusal_escalates_without_touching_the_array(r, step, submit, emulator, published):
    """A refusal is an escalated event; the emails are applied but no turn is stored."""
    emulator.configure(faults=[FaultRule(kind="refusal")])
    thread_id = submit(make_email("<f-1@example.org>", BILLING))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.ESCALATED)]
    [event] = stream_events(r)
    assert event["type"] == "escalated" and event["category"] is None
    snapshot = step.store.snapshot(thread_id)
    assert snapshot.messages == [] and snapshot.status == "escalated"
    assert published.replies == [] and len(api_requests(emulator)) == 1


def test_a_stale_commit_is_rejected_and_the_next_round_redoes_the_work(
    r, step, submit, settings, emulator, in_process
):
    """A drainer whose snapshot went stale commits nothing; a fresh round decides on everything."""
    thread_id = submit(make_email("<st-1@example.org>", BILLING))
    stale = step.store.snapshot(thread_id)
    # Another drainer gets there first: it decides on the same email and bumps the version.
    other = in_process().step  # another drainer, with its own connections
    assert other.drain(thread_id) == [Outcome(OutcomeKind.CLASSIFIED, category="BILLING")]
    assert step.step(stale) == StepResult(None, False)
    assert len(stream_events(r)) == 1  # nothing doubled
    assert len(step.store.snapshot(thread_id).messages) == 2
    ledger = Ledger(r, settings.prices, settings.thread_ttl_seconds).thread(thread_id)
    assert ledger["calls"] == 2  # the stale step's call was billed all the same
    assert step.drain(thread_id) == []  # nothing left to do


def test_a_corrupt_array_is_dead_lettered_as_corrupt_thread(r, step, submit, emulator):
    """A stored array that breaks alternation is a permanent problem: DLQ corrupt_thread."""
    thread_id = submit(make_email("<x-1@example.org>", BILLING))
    r.rpush(keys.thread_messages(thread_id), json.dumps({"role": "assistant", "content": "x"}))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.DEAD_LETTERED, reason="corrupt_thread")]
    assert [letter.reason for letter in DeadLetterStream(r).list()] == ["corrupt_thread"]
    assert api_requests(emulator) == []


def test_an_unexpected_value_error_is_not_mistaken_for_a_corrupt_thread(
    r, step, submit, monkeypatch
):
    """A bug raising ValueError propagates (the task retries); the email is not dead-lettered."""
    thread_id = submit(make_email("<x-2@example.org>", BILLING))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug, not bad data")

    monkeypatch.setattr("worker.decide.drain.build_request", broken)
    with pytest.raises(ValueError, match="a bug"):
        step.drain(thread_id)
    assert DeadLetterStream(r).size() == 0
    assert len(step.store.snapshot(thread_id).inbox) == 1  # still pending, for the retry


def test_the_published_schema_is_generated_from_the_models():
    """docs/events.schema.json is exactly what `python -m worker.events` prints."""
    from worker.events import json_schema

    assert json_schema() == SCHEMA
