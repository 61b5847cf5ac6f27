"""The per-address limit check as one script: what it counts, reads and keeps, on real Redis.

`test_limits.py` drives the limits through the drain step; these call `Limits` directly and look
at the counters it leaves, so that the one-command check stays what the pipeline it replaced was.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis
from helpers import base_env, settings_from_env

from common import keys
from common.contract import EmailPayload
from worker.decide.limits import Limits, _day, _hour, address_key
from worker.state.snapshot import Snapshot

NOW = 1_796_040_000.0  # 2026-11-30T12:00:00Z


@pytest.fixture
def limits(r: redis.Redis, state_url: str, broker_url: str) -> Any:
    """A `Limits` with setting overrides, on the test's Redis."""

    def build(**overrides: str) -> Limits:
        env = base_env(state_url, broker_url, "http://127.0.0.1:9", **overrides)
        return Limits(r, settings_from_env(env))

    return build


def email(i: int, sender: str, received_at: float = NOW) -> EmailPayload:
    return EmailPayload(
        message_id=f"<m{i}@example.org>",
        thread_id="t1",
        from_addr=sender,
        subject="Help",
        text="My parcel never arrived.",
        received_at=received_at,
    )


def snapshot() -> Snapshot:
    return Snapshot(thread_id="t1", version=0, meta={}, messages=[], inbox=[])


def sender_count(r: redis.Redis, sender: str) -> int:
    return int(r.get(keys.emails_per_sender(_hour(NOW), address_key(sender))) or 0)


def test_one_check_counts_every_senders_emails_with_a_two_hour_life(r, limits):
    """Three emails from two senders: each sender's hourly counter grows by its own emails and
    lives two hours; a first email with no counters anywhere may ask."""
    check = limits(TRIAGE_LOOP_ANSWER_SECONDS="0")
    emails = [email(1, "a@example.org"), email(2, "B@Example.org"), email(3, "a@example.org")]
    assert check.no_question_reason(emails, snapshot(), now=NOW) is None
    assert sender_count(r, "a@example.org") == 2 and sender_count(r, "b@example.org") == 1
    key = keys.emails_per_sender(_hour(NOW), address_key("a@example.org"))
    assert 7190 <= r.ttl(key) <= 7200


def test_the_sender_limit_counts_across_checks_and_stops_past_the_budget(r, limits):
    """With a budget of 3 an hour, the third email may still ask and the fourth may not."""
    check = limits(TRIAGE_MAX_EMAILS_PER_SENDER_PER_HOUR="3", TRIAGE_LOOP_ANSWER_SECONDS="0")
    reasons = [
        check.no_question_reason([email(i, "a@example.org")], snapshot(), now=NOW) for i in range(4)
    ]
    assert reasons == [None, None, None, "sender_hourly_limit"]
    assert sender_count(r, "a@example.org") == 4


def test_the_recipients_day_counter_and_last_question_are_read_from_redis(r, limits):
    """A recipient asked its daily number of questions gets none; one asked seconds before the
    email arrived is a fast answer; record_question writes what the check reads."""
    check = limits(TRIAGE_MAX_QUESTIONS_PER_RECIPIENT_PER_DAY="2", TRIAGE_LOOP_ANSWER_SECONDS="60")
    check.record_question("dana@example.org", now=NOW - 3600)
    assert check.no_question_reason([email(1, "dana@example.org")], snapshot(), now=NOW) is None
    check.record_question("dana@example.org", now=NOW - 10)
    later = email(2, "dana@example.org", received_at=NOW - 5)
    assert check.no_question_reason([later], snapshot(), now=NOW) == "recipient_daily_limit"
    r.delete(keys.questions_per_recipient(_day(NOW), address_key("dana@example.org")))
    assert check.no_question_reason([later], snapshot(), now=NOW) == "loop:fast_answer"


def test_a_check_is_one_command_once_its_script_is_loaded(r, limits):
    """Reads and counts for several senders go to Redis as one EVALSHA, not one command each."""
    check = limits(TRIAGE_LOOP_ANSWER_SECONDS="0")
    check.no_question_reason([email(0, "a@example.org")], snapshot(), now=NOW)  # loads it
    sent: list[tuple[Any, ...]] = []
    original = r.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(args)
        return original(*args, **options)

    r.execute_command = counting  # type: ignore[method-assign]
    emails = [email(1, "a@example.org"), email(2, "b@example.org"), email(3, "c@example.org")]
    check.no_question_reason(emails, snapshot(), now=NOW)
    assert [args[0] for args in sent] == ["EVALSHA"]


@pytest.mark.parametrize("now", [0.0, 86399.999, 86400.0, NOW, NOW + 3599.5, 4_102_444_800.0])
def test_day_and_hour_names_are_the_utc_calendar_ones(now):
    """The cached day and hour key parts equal the UTC date and hour of the instant."""
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    assert _day(now) == at.strftime("%Y-%m-%d") and _hour(now) == at.strftime("%Y-%m-%dT%H")
