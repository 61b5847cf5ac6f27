"""The thread store's atomic commit on real Redis: fencing, idempotency, inbox hand-off."""

from __future__ import annotations

import json

from common import keys
from common.contract import ReplyTask
from common.deadletters import DeadLetterEntry
from worker.events import Classified, TokenUsage
from worker.state.commit import Commit
from worker.state.ledger import Charge
from worker.state.store import ThreadStore
from worker.state.usage import Usage

USER = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
ASSISTANT = {"role": "assistant", "content": [{"type": "text", "text": "{}"}]}
NO_TOKENS = TokenUsage(
    input_tokens=0, output_tokens=0, cache_creation_input_tokens=0, cache_read_input_tokens=0
)


def classified(thread_id: str) -> Classified:
    """A minimal classification event for `thread_id`."""
    return Classified(
        thread_id=thread_id,
        email_ids=["<a>"],
        model="m",
        request_id=None,
        usage=NO_TOKENS,
        thread_usage=NO_TOKENS,
        clarifications=0,
        no_question_reason=None,
        first_received_at=0.0,
        decided_at=0.0,
        turns=2,
        category="BILLING",
        confidence=0.9,
        reason="r",
    )


def push(r, thread_id: str, message_id: str) -> None:
    r.rpush(keys.thread_inbox(thread_id), json.dumps({"message_id": message_id}))
    r.set(keys.thread_scheduled(thread_id), "queued")


def test_commit_appends_consumes_and_releases(r):
    """A commit appends turns, consumes the inbox, writes meta and the event, clears the flag."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    snap = store.snapshot("t1")
    assert snap.version == 0 and [i.applied for i in snap.inbox] == [False]
    change = Commit(
        0,
        1,
        email_ids=["<a>"],
        turns=[USER, ASSISTANT],
        meta={"status": "classified", **Usage(10, 2, 0, 0).as_dict(), "calls": 1},
        event=classified("t1"),
    )
    result = store.commit("t1", change)
    assert (result.status, result.version, result.remaining) == ("ok", 1, 0)
    snap = store.snapshot("t1")
    assert snap.messages == [USER, ASSISTANT] and snap.status == "classified"
    assert snap.usage == Usage(10, 2, 0, 0) and snap.meta["calls"] == "1"
    assert r.get(keys.thread_scheduled("t1")) is None
    assert r.xlen(keys.EVENTS) == 1 and r.ttl(keys.thread_messages("t1")) > 0
    [(_, fields)] = r.xrange(keys.EVENTS)
    assert fields[b"type"] == b"classified" and fields[b"category"] == b"BILLING"
    assert Classified.model_validate_json(fields[b"payload"]) == classified("t1")


def test_stale_commit_is_rejected_and_changes_nothing(r):
    """A commit against an old version is rejected as stale and changes nothing."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    assert store.commit("t1", Commit(0, 1, email_ids=["<a>"], turns=[USER, ASSISTANT])).ok
    push(r, "t1", "<b>")
    stale = store.commit("t1", Commit(0, 1, email_ids=["<b>"], turns=[USER, ASSISTANT]))
    assert (stale.status, stale.version) == ("stale", 1)
    assert len(store.snapshot("t1").messages) == 2 and r.llen(keys.thread_inbox("t1")) == 1


def test_an_applied_email_cannot_be_applied_again(r):
    """An applied email shows as applied in the inbox, and committing it again is a duplicate."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    assert store.commit("t1", Commit(0, 1, email_ids=["<a>"], turns=[USER, ASSISTANT])).ok
    push(r, "t1", "<a>")
    snap = store.snapshot("t1")
    assert [i.applied for i in snap.inbox] == [True]
    again = store.commit("t1", Commit(1, 1, email_ids=["<a>"], turns=[USER, ASSISTANT]))
    assert again.status == "duplicate" and len(store.snapshot("t1").messages) == 2


def test_flag_stays_while_more_email_waits(r):
    """The scheduled flag stays while email waits; release clears it once the inbox is empty."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    push(r, "t1", "<b>")
    result = store.commit("t1", Commit(0, 1, email_ids=["<a>"], turns=[USER, ASSISTANT]))
    assert result.remaining == 1 and r.get(keys.thread_scheduled("t1")) is not None
    assert store.release("t1") is False
    r.delete(keys.thread_inbox("t1"))
    assert store.release("t1") is True and r.get(keys.thread_scheduled("t1")) is None


def test_dead_letters_and_pending_reply_are_part_of_the_commit(r):
    """The pending reply, its Message-ID index and dead letters are written by the commit."""
    store = ThreadStore(r, 3600, 1000)
    reply = ReplyTask(
        reply_id="t1.1",
        thread_id="t1",
        message_id="<triage.t1.1@example.com>",
        to="dana@example.org",
        subject="Re: hi",
        question="Which order?",
        email_ids=["<a>"],
    )
    push(r, "t1", "<a>")
    change = Commit(
        0,
        1,
        email_ids=["<a>"],
        turns=[USER, ASSISTANT],
        reply=reply,
        dead_letters=[DeadLetterEntry("invalid_payload", "bad", "x")],
    )
    assert store.commit("t1", change).ok
    assert ReplyTask.model_validate_json(r.hget(keys.REPLIES_PENDING, "t1.1")) == reply
    assert r.get(keys.message_index("<triage.t1.1@example.com>")) == b"t1"
    [(_, fields)] = r.xrange(keys.DEAD_LETTERS)
    assert fields[b"reason"] == b"invalid_payload" and fields[b"thread_id"] == b"t1"


def test_begin_drain_marks_the_thread_running_counts_the_attempt_and_reads_it(r):
    """begin_drain marks the thread running and counts attempts, but not when idle."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    first = store.begin_drain("t1", 120)
    assert first.attempts == 1 and [i.applied for i in first.snapshot.inbox] == [False]
    flag = r.get(keys.thread_scheduled("t1")).decode()
    assert flag.startswith("running:") and 0 < r.ttl(keys.thread_scheduled("t1")) <= 120
    assert r.zscore(keys.PENDING, "t1") is not None
    assert store.begin_drain("t1", 120).attempts == 2  # a drain that died did not reset it
    assert store.commit("t1", Commit(0, 1, email_ids=["<a>"], turns=[USER, ASSISTANT])).ok
    assert store.begin_drain("t1", 120).attempts == 0  # nothing to do: not counted


def test_plain_snapshot_leaves_the_flag_and_refresh_sets_it(r):
    """A plain snapshot leaves the queued flag; one that refreshes it marks the thread running."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    store.snapshot("t1")
    assert r.get(keys.thread_scheduled("t1")) == b"queued"
    store.snapshot("t1", refresh_flag_seconds=60)
    assert r.get(keys.thread_scheduled("t1")).startswith(b"running:")


def test_charges_reach_the_ledger_even_when_the_commit_is_stale(r):
    """Charges reach the daily and thread ledgers even when the commit is stale."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    charge = Charge("2026-11-24", "m", "BILLING", {"input_tokens": 5, "calls": 1, "cost": 0})
    stale = store.commit("t1", Commit(7, 1, email_ids=["<a>"], charges=[charge, charge]))
    assert stale.status == "stale"
    assert r.hgetall(keys.ledger_day("2026-11-24")) == {
        b"m|BILLING|input_tokens": b"10",
        b"m|BILLING|calls": b"2",
    }
    assert r.hgetall(keys.ledger_thread("t1")) == {b"input_tokens": b"10", b"calls": b"2"}
    assert r.ttl(keys.ledger_thread("t1")) > 0


def test_created_at_is_set_once_and_awaiting_index_follows_the_status(r):
    """created_at is set once; a thread is in the awaiting index only while awaiting."""
    store = ThreadStore(r, 3600, 1000)
    push(r, "t1", "<a>")
    ask = Commit(0, 1, email_ids=["<a>"], turns=[USER, ASSISTANT])
    ask.meta = {"status": "awaiting_customer"}
    assert store.commit("t1", ask).ok
    created = r.hget(keys.thread_meta("t1"), "created_at")
    assert created and r.zscore(keys.AWAITING, "t1") is not None
    push(r, "t1", "<b>")
    done = Commit(1, 1, email_ids=["<b>"], turns=[USER, ASSISTANT])
    done.meta, done.previous_status = {"status": "classified"}, "awaiting_customer"
    assert store.commit("t1", done).ok
    assert r.hget(keys.thread_meta("t1"), "created_at") == created
    assert r.zscore(keys.AWAITING, "t1") is None


def test_a_flooded_inbox_is_read_and_committed_in_one_go(r):
    """A 9000-email inbox is read, applied ones marked, and committed in one go."""
    store = ThreadStore(r, 3600, 1000)
    ids = [f"<m{i}>" for i in range(9000)]
    r.rpush(keys.thread_inbox("t1"), *[json.dumps({"message_id": i}) for i in ids])
    r.sadd(keys.thread_applied("t1"), "<m8100>")
    snap = store.snapshot("t1")
    assert [i for i, item in enumerate(snap.inbox) if item.applied] == [8100]
    fresh = [i for i in ids if i != "<m8100>"]
    assert store.commit("t1", Commit(0, 9000, email_ids=fresh, turns=[USER, ASSISTANT])).ok
    assert r.scard(keys.thread_applied("t1")) == 9000 and r.llen(keys.thread_inbox("t1")) == 0
