"""Backlog mode: several hundred emails through the Message Batches API against the emulator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from helpers import base_env, run_triage, wait_for

from common import keys
from common.prices import DEFAULT_PRICES
from worker.state.ledger import Ledger

TOPICS = [
    "I was charged twice for my subscription.",
    "My parcel never arrived and the tracking is stuck.",
    "The app shows an error message when I log in.",
    "Hi, my thing isn't working. Can you help?",  # vague: a clarifying question
]


def write_mbox(path: Path, count: int, tag: str) -> None:
    with path.open("w") as out:
        for i in range(count):
            body = TOPICS[i % 4] + (" EXPIRE-ME" if i % 50 == 7 else "")
            out.write(
                f"From c{i}@example.org Mon Nov 23 09:00:00 2026\n"
                f"From: c{i}@example.org\nTo: support@example.com\nSubject: Case {i}\n"
                f"Message-ID: <{tag}-{i}@example.org>\n\n{body}\n\n"
            )


def decisions(r) -> dict[str, tuple[str, str | None]]:
    """email id -> (event type, category) for every decision event."""
    found = {}
    for _, fields in r.xrange(keys.EVENTS):
        event = json.loads(fields[b"payload"])
        for email_id in event["email_ids"]:
            found[email_id] = (event["type"], event.get("category"))
    return found


def test_backlog_through_batches_resumes_and_matches_the_queue_path(
    r, state_url, broker_url, emulator, worker, tmp_path
):
    """A backlog sent in batches resumes after an interruption and decides as the queue does."""
    count = 300
    mbox = tmp_path / "backlog.mbox"
    write_mbox(mbox, count, "bl")
    emulator.configure(batch_delay_s=0.5, faults=[{"kind": "expired", "match": "EXPIRE-ME"}])
    env = base_env(state_url, broker_url, emulator.base_url)

    submitted = run_triage("backlog", str(mbox), "--no-wait", "--max-requests", "120", env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "staged 300 new threads" in submitted.stderr
    assert submitted.stderr.count("submitted batch") == 3  # 120 + 120 + 60
    assert r.scard(keys.BACKLOG_ACTIVE) == 3 and r.xlen(keys.EVENTS) == 0  # interrupted here

    resumed = run_triage("backlog", "--poll-seconds", "0.2", env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("resuming batch") == 3
    expired = sum(1 for i in range(count) if i % 50 == 7)
    assert f"sent to the queue: {expired}" in resumed.stdout
    assert r.scard(keys.BACKLOG_ACTIVE) == 0
    via_batch = wait_for(lambda: len(decisions(r)) == count and decisions(r), 60, "all decisions")
    batch_calls = [q for q in emulator.requests if q["path"] == "/v1/messages"]
    assert len(batch_calls) == expired  # only the expired ones took the queue path
    totals = Ledger(r, DEFAULT_PRICES, 3600).totals(dt.datetime.now(dt.UTC).date())
    assert totals.total["calls"] == count  # batch results plus the expired ones' queue calls
    again = run_triage("backlog", str(mbox), env=env)
    assert "staged 0 new threads" in again.stderr and "300 duplicates" in again.stderr

    # The same emails through the queue path give the same decisions.
    r.flushdb()
    emulator.reset()
    queued = run_triage("backlog", str(mbox), "--via", "queue", env=env)
    assert queued.returncode == 0, queued.stderr
    via_queue = wait_for(lambda: len(decisions(r)) == count and decisions(r), 90, "queue path")
    assert via_queue == via_batch
    assert sum(1 for kind, _ in via_batch.values() if kind == "clarification") == count // 4


def test_a_thread_that_moves_on_during_a_batch_goes_to_the_queue(
    r, state_url, broker_url, emulator, worker, tmp_path
):
    """A thread that gets new email while in a batch goes to the queue; its result is STALE."""
    mbox = tmp_path / "small.mbox"
    write_mbox(mbox, 8, "mv")
    emulator.configure(batch_delay_s=0.3)
    env = base_env(state_url, broker_url, emulator.base_url)
    assert run_triage("backlog", str(mbox), "--no-wait", env=env).returncode == 0
    follow_up = tmp_path / "follow-up.eml"
    follow_up.write_text(
        "From: c0@example.org\nTo: support@example.com\nSubject: Re: Case 0\n"
        "Message-ID: <mv-follow@example.org>\nIn-Reply-To: <mv-0@example.org>\n\n"
        "Also, the refund never arrived.\n"
    )
    joined = run_triage("enqueue", str(follow_up), env=env)  # the thread is held: no drain task
    assert joined.returncode == 0, joined.stderr
    resumed = run_triage("backlog", "--poll-seconds", "0.2", env=env)
    assert "sent to the queue: 1" in resumed.stdout, resumed.stdout + resumed.stderr
    found = wait_for(lambda: len(decisions(r)) == 9 and decisions(r), 30, "nine emails decided")
    assert found["<mv-0@example.org>"] == found["<mv-follow@example.org>"]  # one decision, both
    totals = Ledger(r, DEFAULT_PRICES, 3600).totals(dt.datetime.now(dt.UTC).date())
    assert totals.by_category["STALE"]["calls"] == 1
