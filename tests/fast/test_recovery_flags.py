"""When a thread's scheduled flag stops standing for live work (pure rules of the sweeper)."""

from __future__ import annotations

import pytest

from worker.recovery.flags import Flag, StaleAfter, is_stale, parse_flag

AFTER = StaleAfter(drain_stale=90, alive_stale=600, queued_grace=30, queued_stale=600)
NOW = 10_000.0


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        ("queued:9990.5", Flag("queued", 9990.5)),
        ("running:9990.5:host:42", Flag("running", 9990.5, "host:42")),
        ("running:9990.5:", Flag("running", 9990.5)),
        ("running:9990.5", Flag("running", 9990.5)),
        ("batch:9000", Flag("batch", 9000.0)),
        ("", Flag("", 0.0)),
        ("queued:soon", Flag("", 0.0)),
        ("other:1", Flag("", 0.0)),
    ],
)
def test_flags_parse_with_or_without_a_worker(value, flag):
    """Flag values parse into state, time and worker; anything unreadable is a missing flag."""
    assert parse_flag(value) == flag


@pytest.mark.parametrize(
    ("flag", "alive", "queue_empty", "stale"),
    [
        (Flag("", 0.0), None, False, True),  # missing: reschedule
        (Flag("running", NOW - 5, "w1"), False, False, True),  # its worker's heartbeat stopped
        (Flag("running", NOW - 300, "w1"), True, False, False),  # live but slow: leave it
        (Flag("running", NOW - 601, "w1"), True, False, True),  # live but hung past the bound
        (Flag("running", NOW - 60), None, False, False),  # no worker named: the old 90 s rule
        (Flag("running", NOW - 91), None, False, True),
        (Flag("queued", NOW - 31), None, True, True),  # purged or never published
        (Flag("queued", NOW - 29), None, True, False),  # just published: give it time
        (Flag("queued", NOW - 11), None, True, True),  # ... unless the stale limit is shorter
        (Flag("queued", NOW - 300), None, False, False),  # waiting behind a backlog
        (Flag("queued", NOW - 601), None, False, True),
        (Flag("batch", NOW - 24 * 3600), None, True, False),  # batch results come within 24 h
        (Flag("batch", NOW - 26 * 3600), None, True, True),
    ],
)
def test_staleness_by_case(flag, alive, queue_empty, stale):
    """Dead workers' and lost tasks' flags are stale at once; live or queued work is left alone."""
    after = AFTER if flag.since != NOW - 11 else StaleAfter(90, 600, 30, 10)
    assert is_stale(flag, NOW, after, worker_alive=alive, queue_empty=queue_empty) is stale
