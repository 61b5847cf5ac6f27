"""Memory stays bounded: idle threads packed and restored, streams and indexes trimmed by age."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import make_email

from common import keys
from worker.decide.outcome import Outcome, OutcomeKind
from worker.state.compaction import Compactor
from worker.state.retention import Retention, min_id, trim

BILLING = "I was charged twice for my subscription, please refund the duplicate payment."


@pytest.fixture
def pipeline(in_process: Any) -> Any:
    """(drain step, submit) in-process, as in test_drain_step.py."""
    built = in_process()
    return built.step, built.submit


def working_keys(thread_id: str) -> list[str]:
    return [
        keys.thread_meta(thread_id),
        keys.thread_messages(thread_id),
        keys.thread_applied(thread_id),
        keys.ledger_thread(thread_id),
    ]


def test_an_idle_classified_thread_is_packed_into_one_smaller_value(r, pipeline):
    """Packing replaces meta, array, applied set and ledger with one compressed value."""
    step, submit = pipeline
    thread_id = submit(make_email("<p-1@example.org>", BILLING * 5))
    step.drain(thread_id)
    before = step.store.peek(thread_id)
    unpacked = sum(r.memory_usage(key) or 0 for key in working_keys(thread_id))
    assert r.zscore(keys.IDLE, thread_id) is not None  # queued for compaction by the commit
    assert Compactor(r).compact_idle(idle_seconds=0, batch=10, now=time.time() + 1) == 1
    assert r.exists(*working_keys(thread_id)) == 0
    packed = r.memory_usage(keys.thread_packed(thread_id))
    assert packed < unpacked / 2, (packed, unpacked)
    assert 0 < r.ttl(keys.thread_packed(thread_id)) <= 30 * 24 * 3600
    peeked = step.store.peek(thread_id)  # read-only commands see the same thread
    assert (peeked.messages, peeked.meta) == (before.messages, before.meta)
    assert r.exists(keys.thread_packed(thread_id)) == 1  # and did not restore it
    assert r.zscore(keys.IDLE, thread_id) is None


def test_a_packed_thread_is_restored_when_the_customer_writes_again(r, pipeline, emulator):
    """A new email reopens a packed thread: restored, decided on the whole history, ids kept."""
    step, submit = pipeline
    root = "<p-2@example.org>"
    thread_id = submit(make_email(root, BILLING))
    step.drain(thread_id)
    assert Compactor(r).pack(thread_id)
    again = make_email("<p-3@example.org>", "Any news?", subject="Re: Help", references=[root])
    assert submit(again) == thread_id
    assert step.drain(thread_id) == [Outcome(OutcomeKind.CLASSIFIED, category="BILLING")]
    snapshot = step.store.snapshot(thread_id)
    assert len(snapshot.messages) == 4 and snapshot.version == 2
    assert r.exists(keys.thread_packed(thread_id)) == 0
    assert r.smembers(keys.thread_applied(thread_id)) == {root.encode(), b"<p-3@example.org>"}
    assert int(r.hget(keys.ledger_thread(thread_id), "calls")) == 2
    sent = [q for q in emulator.requests if q["path"] == "/v1/messages"][-1]["body"]["messages"]
    assert [turn["role"] for turn in sent] == ["user", "assistant", "user"]  # the whole history


def test_a_thread_that_moved_on_or_is_busy_is_not_packed(r, pipeline):
    """The pack is fenced by the version, and never takes a thread with pending email."""
    step, submit = pipeline
    root = "<p-4@example.org>"
    thread_id = submit(make_email(root, BILLING))
    step.drain(thread_id)
    compactor = Compactor(r)
    stale = compactor._pack(
        keys=[*Compactor._keys(thread_id), keys.thread_inbox(thread_id)], args=["7", b"x"]
    )
    assert stale == 0 and r.exists(keys.thread_packed(thread_id)) == 0  # version 1, not 7
    submit(make_email("<p-5@example.org>", BILLING, subject="Re: Help", references=[root]))
    assert compactor.pack(thread_id) is False  # an email waits: the thread is not idle
    r.hset(keys.thread_meta(thread_id), "status", "awaiting_customer")
    r.delete(keys.thread_inbox(thread_id))
    assert compactor.pack(thread_id) is False  # waiting for the customer: not idle either
    assert r.exists(keys.thread_meta(thread_id)) == 1


def test_streams_and_indexes_are_trimmed_by_age(r):
    """Entries older than their retention go; newer ones and live index entries stay."""
    now = time.time()
    old, new = int((now - 40 * 86400) * 1000), int((now - 86400) * 1000)
    for stream in (keys.EVENTS, keys.OUTBOX, keys.DEAD_LETTERS):
        r.xadd(stream, {"k": "old"}, id=f"{old}-0")
        r.xadd(stream, {"k": "new"}, id=f"{new}-0")
    r.zadd(keys.THREADS, {"gone": now - 31 * 86400, "live": now})
    r.zadd(keys.AWAITING, {"gone": now - 31 * 86400, "live": now})
    retention = Retention(
        events_days=30, outbox_days=30, dead_letter_days=90, thread_ttl_seconds=30 * 86400
    )
    removed = trim(r, retention, now)
    assert removed[:3] == [1, 1, 0]  # the dead letter is 40 days old, kept for 90
    assert [f[b"k"] for _, f in r.xrange(keys.EVENTS)] == [b"new"]
    assert r.zrange(keys.THREADS, 0, -1) == [b"live"] and r.zrange(keys.AWAITING, 0, -1) == [
        b"live"
    ]
    assert min_id(86400.0, 1) == "0-0"
