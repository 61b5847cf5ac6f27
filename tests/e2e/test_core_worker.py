"""Core worker behaviour through a real Celery worker, real Redis and the emulator over HTTP."""

from __future__ import annotations

import json

from celery import Celery
from helpers import (
    SEED_FIRST,
    api_requests,
    dead_letters,
    events,
    make_email,
    outbox,
    user_texts,
    wait_for,
)

from common import keys
from common.contract import TASK_DRAIN
from common.publish import producer_app
from producers.enqueue import Enqueuer, Rejected
from producers.submit import thread_id_for
from worker.state.store import ThreadStore

BILLING = "I was charged twice for my subscription, please refund the duplicate payment."


def test_email_delivered_twice_gives_one_turn_and_one_event(r, emulator, worker, enqueue):
    """An email enqueued twice, its drain task redelivered: one turn, one call, one event."""
    raw = make_email("<dup-1@example.org>", BILLING, subject="Double charge")
    first, second = enqueue(raw), enqueue(raw)
    assert (first.status, second.status) == ("enqueued", "duplicate")
    wait_for(lambda: events(r), what="the event")
    # The same drain task published again (a redelivery) must change nothing.
    app: Celery = producer_app(worker.settings())
    app.send_task(TASK_DRAIN, args=[first.thread_id], queue="triage")
    app.send_task(TASK_DRAIN, args=[first.thread_id], queue="triage")
    wait_for(
        lambda: (
            len([c for c in worker.logs("task.done") if c.get("thread_id") == first.thread_id]) >= 3
        ),
        what="the redelivered drain tasks to finish",
    )
    assert len(events(r)) == 1
    snapshot = ThreadStore(r, 3600, 1000).snapshot(first.thread_id)
    assert [m["role"] for m in snapshot.messages] == ["user", "assistant"]
    assert len(api_requests(emulator)) == 1


def test_emails_of_one_thread_at_once_make_one_alternating_array(r, emulator, worker, enqueue):
    """Five emails of one thread at once are each applied once, in alternating turns."""
    emulator.configure(latency_ms=300)
    root = "<burst-0@example.org>"
    texts = [f"Parcel number {i} never arrived, the tracking shows nothing." for i in range(5)]
    results = [enqueue(make_email(root, texts[0], subject="Delivery"))]
    for i, text in enumerate(texts[1:], start=1):
        raw = make_email(
            f"<burst-{i}@example.org>", text, subject="Re: Delivery", references=[root]
        )
        results.append(enqueue(raw))
    thread_id = results[0].thread_id
    assert {res.thread_id for res in results} == {thread_id}
    store = ThreadStore(r, 3600, 1000)

    def settled() -> bool:
        snap = store.snapshot(thread_id)
        return not snap.inbox and r.scard(keys.thread_applied(thread_id)) == 5

    wait_for(settled, 30, "all five emails to be applied")
    messages = store.snapshot(thread_id).messages
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * (len(messages) // 2)
    joined = [user_texts(m) for m in messages if m["role"] == "user"]
    for text in texts:
        assert sum(turn.count(text) for turn in joined) == 1, text
    # Consecutive customer emails were merged: fewer turns (and calls) than emails.
    assert len(messages) // 2 < 5
    assert len(api_requests(emulator)) == len(messages) // 2
    assert len(events(r)) == len(messages) // 2


def test_truncated_reply_is_never_persisted(r, emulator, worker, enqueue):
    """A reply still truncated after one larger retry is dead-lettered, nothing stored."""
    emulator.configure(faults=[{"kind": "max_tokens", "rate": 1.0, "match": "TRUNCATE-ME"}])
    res = enqueue(make_email("<trunc-1@example.org>", "TRUNCATE-ME my invoice is wrong"))
    [letter] = wait_for(lambda: dead_letters(r), what="the dead letter")
    assert letter.reason == "truncated" and letter.thread_id == res.thread_id
    assert letter.body["payload"]["message_id"] == "<trunc-1@example.org>"
    calls = api_requests(emulator)
    assert len(calls) == 2  # one retry with a larger budget
    assert calls[1]["body"]["max_tokens"] == 2 * calls[0]["body"]["max_tokens"]
    assert all(c["response"]["stop_reason"] == "max_tokens" for c in calls)
    snapshot = ThreadStore(r, 3600, 1000).snapshot(res.thread_id)
    assert snapshot.messages == [] and not snapshot.inbox
    assert events(r) == [] and outbox(r) == []


def test_truncation_once_then_success_persists_only_the_full_reply(r, emulator, worker, enqueue):
    """After one truncated reply, only the full retry's answer is stored."""
    rule = {"kind": "max_tokens", "rate": 1.0, "match": "TRUNC-ONCE", "times": 1}
    emulator.configure(faults=[rule])
    res = enqueue(make_email("<trunc-2@example.org>", "TRUNC-ONCE my invoice is wrong"))
    [event] = wait_for(lambda: events(r), what="the event")
    assert event["category"] == "BILLING"
    messages = ThreadStore(r, 3600, 1000).snapshot(res.thread_id).messages
    assert len(messages) == 2
    assert json.loads(messages[1]["content"][0]["text"])["action"] == "classify"


def test_refusal_is_escalated_without_a_question(r, emulator, worker, enqueue):
    """A refusal escalates the thread; no question is sent and nothing is stored."""
    emulator.configure(faults=[{"kind": "refusal", "rate": 1.0, "match": "REFUSE-ME"}])
    res = enqueue(make_email("<refuse-1@example.org>", "REFUSE-ME help with my thing"))
    [event] = wait_for(lambda: events(r), what="the escalation event")
    assert event["type"] == "escalated"
    assert event["refusal_category"] == "general_harms"
    assert event["email_ids"] == ["<refuse-1@example.org>"]
    snapshot = ThreadStore(r, 3600, 1000).snapshot(res.thread_id)
    assert snapshot.status == "escalated" and snapshot.messages == []
    assert outbox(r) == [] and dead_letters(r) == []


def test_customer_writing_after_classification_reopens_the_thread(r, emulator, worker, enqueue):
    """An email after the classification reopens the thread with its whole history."""
    root = "<reopen-1@example.org>"
    res = enqueue(make_email(root, BILLING, subject="Charge"))
    wait_for(lambda: len(events(r)) == 1, what="the first event")
    enqueue(
        make_email(
            "<reopen-2@example.org>",
            "Also my parcel never arrived and the tracking is stuck.",
            subject="Re: Charge",
            in_reply_to=root,
        )
    )
    wait_for(lambda: len(events(r)) == 2, what="the second event")
    second = events(r)[1]
    assert second["thread_id"] == res.thread_id and second["turns"] == 4
    last = api_requests(emulator)[-1]["body"]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user"]


def test_clarification_budget_forces_a_classification(r, emulator, worker, enqueue):
    """Once the one question is asked, the next call may only classify."""
    res = enqueue(make_email("<budget-1@example.org>", SEED_FIRST))
    [sent] = wait_for(lambda: outbox(r), what="the question")
    enqueue(
        make_email(
            "<budget-2@example.org>",
            "I don't know, it just does not do the thing.",
            in_reply_to=sent["message_id"],
        )
    )
    [event] = wait_for(lambda: events(r), what="the forced classification")
    assert event["category"] == "OTHER" and event["clarifications"] == 1
    schema = api_requests(emulator)[1]["body"]["output_config"]["format"]["schema"]
    assert schema["properties"]["action"]["enum"] == ["classify"]
    assert len(outbox(r)) == 1
    # The forced guess is unsure (0.3, under the 0.6 review threshold): a person confirms it.
    assert event["confidence_band"] == "low" and event["needs_review"] is True
    assert ThreadStore(r, 3600, 1000).snapshot(res.thread_id).status == "needs_review"


def test_unknown_in_reply_to_starts_a_new_thread(r, emulator, worker, enqueue):
    """An In-Reply-To we never saw starts a new thread, which is then decided."""
    res = enqueue(
        make_email("<orphan-1@example.org>", BILLING, in_reply_to="<never-seen@example.org>")
    )
    assert res.thread_id == thread_id_for("<orphan-1@example.org>")
    wait_for(lambda: events(r), what="the event")


def test_email_without_usable_text_is_rejected_and_kept(r, worker):
    """An email without usable text is rejected and its raw bytes dead-lettered."""
    enqueuer = Enqueuer(worker.settings(), r)
    result = enqueuer.enqueue_bytes(make_email("<empty-1@example.org>", "  \n", subject=""))
    assert isinstance(result, Rejected) and result.reason == "no_text"
    [letter] = dead_letters(r)
    assert letter.reason == "no_text"
    assert "<empty-1@example.org>" in letter.body["payload"]["raw"]


def test_malformed_payloads_are_dead_lettered(r, emulator, worker, enqueue):
    """Bad task arguments and garbage inbox entries are dead-lettered; good email still runs."""
    app = producer_app(worker.settings())
    app.send_task(TASK_DRAIN, args=[123, "extra"], queue="triage")
    wait_for(lambda: dead_letters(r), what="the malformed task's dead letter")
    # A garbage inbox entry next to a valid email: the garbage is kept, the email is processed.
    res = enqueue(make_email("<mixed-1@example.org>", BILLING))
    wait_for(lambda: events(r), what="the valid email's event")
    r.rpush(keys.thread_inbox(res.thread_id), "{not json")
    r.set(keys.thread_scheduled(res.thread_id), "queued")
    app.send_task(TASK_DRAIN, args=[res.thread_id], queue="triage")
    letters = wait_for(lambda: len(dead_letters(r)) == 2 and dead_letters(r), what="two letters")
    reasons = sorted(letter.reason for letter in letters)
    assert reasons == ["invalid_payload", "invalid_payload"]
    assert letters[1].body["payload"] == "{not json"
    assert r.llen(keys.thread_inbox(res.thread_id)) == 0


def test_permanent_api_error_is_dead_lettered_with_the_api_message(r, emulator, worker_factory):
    """A 404 for an unknown model is dead-lettered with the API's message, the flag cleared."""
    handle = worker_factory(TRIAGE_MODEL="claude-does-not-exist")
    enqueuer = Enqueuer(handle.settings(), r)
    res = enqueuer.enqueue_bytes(make_email("<perm-1@example.org>", BILLING))
    [letter] = wait_for(lambda: dead_letters(r), what="the dead letter")
    assert letter.reason == "api_404" and letter.thread_id == res.thread_id
    assert "claude-does-not-exist" in letter.body["error"]
    assert letter.body["payload"]["message_id"] == "<perm-1@example.org>"
    assert r.get(keys.thread_scheduled(res.thread_id)) is None


def test_api_400_is_dead_lettered_with_the_api_message(r, emulator, worker, enqueue):
    """A 400 (prompt too long) is dead-lettered at once with the API's message."""
    emulator.configure(context_window_tokens=600)
    long_text = "My invoice is wrong. " + "Details follow. " * 200
    res = enqueue(make_email("<too-long-1@example.org>", long_text))
    [letter] = wait_for(lambda: dead_letters(r), what="the dead letter")
    assert letter.reason == "api_400" and letter.thread_id == res.thread_id
    assert "prompt is too long" in letter.body["error"]
    assert letter.body["payload"]["message_id"] == "<too-long-1@example.org>"
    assert len(api_requests(emulator)) == 1  # permanent: not retried
    assert events(r) == [] and ThreadStore(r, 3600, 1000).snapshot(res.thread_id).messages == []
