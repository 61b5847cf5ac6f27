"""Limits against loops and cost: questions per address, unlabelled responders, thread caps.

In-process drain step on real Redis and the emulator (as in test_drain_step.py); each attack ends
with no question (or none beyond the limit) and an event that names the limit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from helpers import SEED_FIRST, api_requests, make_email

from common import keys
from common.recipient import mailbox
from worker.decide.limits import quotes_our_question, subject_loop
from worker.decide.outcome import Outcome, OutcomeKind

BILLING = "I was charged twice for my subscription, please refund the duplicate payment."


@pytest.fixture
def world(in_process: Any) -> Any:
    """(drain step, submit, recorded questions) with setting overrides."""

    def build(**overrides: str) -> tuple[Any, Any, Any]:
        built = in_process(**overrides)
        return built.step, built.submit, built.published

    return build


def events(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(fields[b"payload"]) for _, fields in r.xrange(keys.EVENTS)]


@pytest.mark.parametrize(
    ("subject", "looping"),
    [
        ("Re: Re: Re: Help", True),
        ("[Ticket #1] [Ticket #2] [Ticket #3] Help", True),
        ("AW: RE: Fwd: Help", True),
        ("Re: Help", False),
        ("[Ticket #42] Re: my order", False),
    ],
)
def test_a_subject_that_grew_like_a_robots_is_a_loop(subject, looping):
    """Three or more ticket tags or reply prefixes in a subject mark a robot loop."""
    assert subject_loop(subject) is looping


def test_our_question_quoted_back_is_recognised_across_line_breaks_and_quote_marks():
    """Our own question in a reply (re-wrapped, `>`-quoted) is recognised; short ones are not."""
    question = "Could you tell us which order number the double charge was made on, please?"
    reply = (
        "Auto: received.\n> Could you tell us which order number the double\n"
        "> charge was made on, please?"
    )
    assert quotes_our_question(reply, question)
    assert not quotes_our_question("Order 5, thanks", question)
    assert not quotes_our_question("Which order?", "Which order?")


def test_a_burst_of_vague_emails_to_one_victim_gets_three_questions_at_most(r, world):
    """Ten new threads naming one address: three questions, then classifications that say why."""
    step, submit, published = world(TRIAGE_LOOP_ANSWER_SECONDS="0")
    for i in range(10):
        thread_id = submit(make_email(f"<burst-{i}@example.org>", SEED_FIRST))
        step.drain(thread_id)
    assert len(published.replies) == 3
    assert {reply.to for reply in published.replies} == {"dana@example.org"}
    later = [e for e in events(r) if e["type"] == "classified"]
    assert len(later) == 7 and {e["no_question_reason"] for e in later} == {"recipient_daily_limit"}


def test_sub_addresses_and_gmail_dots_share_one_daily_budget(r, world):
    """`victim+1@`, `v.ictim+2@`, `VICTIM@googlemail`...: one mailbox, three questions a day."""
    step, submit, published = world(TRIAGE_LOOP_ANSWER_SECONDS="0")
    senders = ["victim+1@gmail.com", "v.ictim+2@gmail.com", "VICTIM@googlemail.com"]
    senders += ["vic.tim@gmail.com", "victim+x.y@gmail.com", "victim@gmail.com"]
    for i, sender in enumerate(senders):
        step.drain(submit(make_email(f"<plus-{i}@gmail.com>", SEED_FIRST, sender=sender)))
    assert len(published.replies) == 3
    later = [e for e in events(r) if e["type"] == "classified"]
    assert {e["no_question_reason"] for e in later} == {"recipient_daily_limit"}


@pytest.mark.parametrize(
    ("address", "reached"),
    [
        ("Dana+Billing@Example.org", "dana@example.org"),
        ("d.a.n.a+x@googlemail.com", "dana@gmail.com"),
        ("d.ana@example.org", "d.ana@example.org"),
        ("+only@example.org", "+only@example.org"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_the_mailbox_an_address_reaches(address, reached):
    """Sub-addresses and Gmail's dots fold into one mailbox; other dots and odd forms stay."""
    assert mailbox(address) == reached


def test_an_unlabelled_responder_answering_from_new_threads_gets_one_question(r, world):
    """A robot without Auto-Submitted answering our question within seconds: no second question."""
    step, submit, published = world()
    step.drain(submit(make_email("<bot-0@example.org>", SEED_FIRST)))
    assert len(published.replies) == 1
    for i in range(1, 6):  # each "answer" starts a new thread, as the robot in the issue did
        step.drain(submit(make_email(f"<bot-{i}@example.org>", SEED_FIRST, subject="Thanks")))
    assert len(published.replies) == 1
    reasons = [e["no_question_reason"] for e in events(r) if e["type"] == "classified"]
    assert reasons == ["loop:fast_answer"] * 5


def test_a_growing_subject_and_a_quoted_question_end_the_questions(r, world):
    """Re: Re: Re: growth and our question quoted back each give a classification, no question."""
    step, submit, published = world(TRIAGE_MAX_CLARIFICATIONS="3", TRIAGE_LOOP_ANSWER_SECONDS="0")
    thread_id = submit(make_email("<q-0@example.org>", SEED_FIRST))
    step.drain(thread_id)
    [question] = published.replies
    # An auto-responder echoing the message it got, inline (quote stripping keeps unquoted text).
    quoted = f"We received your message:\n{question.question}\nAn agent will answer soon."
    answer = make_email(
        "<q-1@example.org>", quoted, subject="Re: Help", in_reply_to=question.message_id
    )
    step.drain(submit(answer))
    growing = make_email("<q-2@example.org>", SEED_FIRST, subject="Re: Re: Re: Help")
    step.drain(submit(growing))
    assert len(published.replies) == 1
    reasons = [e["no_question_reason"] for e in events(r) if e["type"] == "classified"]
    assert reasons == ["loop:quoted_back", "loop:subject"]


def test_a_sender_over_the_hourly_budget_gets_no_question(r, world):
    """Past TRIAGE_MAX_EMAILS_PER_SENDER_PER_HOUR the sender's emails are classified silently."""
    step, submit, published = world(
        TRIAGE_MAX_EMAILS_PER_SENDER_PER_HOUR="2", TRIAGE_LOOP_ANSWER_SECONDS="0"
    )
    step.drain(submit(make_email("<h-0@example.org>", BILLING)))
    step.drain(submit(make_email("<h-1@example.org>", BILLING)))
    step.drain(submit(make_email("<h-2@example.org>", SEED_FIRST)))
    assert published.replies == []
    assert events(r)[-1]["no_question_reason"] == "sender_hourly_limit"


def test_a_flooded_thread_stops_calling_claude_at_its_cap(r, world, emulator):
    """Many emails into one thread: calls stop at the turn cap; the rest escalate with `limit`."""
    step, submit, _ = world(
        TRIAGE_MAX_THREAD_TURNS="6", TRIAGE_MAX_EMAILS_PER_SENDER_PER_HOUR="1000"
    )
    root = "<flood-0@example.org>"
    thread_id = submit(make_email(root, BILLING))
    step.drain(thread_id)
    for i in range(1, 40):
        raw = make_email(f"<flood-{i}@example.org>", BILLING, subject="Re: Help", references=[root])
        assert submit(raw) == thread_id
        step.drain(thread_id)
    assert len(api_requests(emulator)) == 3  # turns 2, 4, 6: then the cap
    assert len(step.store.snapshot(thread_id).messages) == 6
    escalated = [e for e in events(r) if e["type"] == "escalated"]
    assert len(escalated) == 37 and {e["limit"] for e in escalated} == {"thread_turns"}
    assert all(e["usage"]["input_tokens"] == 0 for e in escalated)


def test_a_thread_over_its_input_token_budget_is_escalated_without_a_call(r, world, emulator):
    """TRIAGE_MAX_THREAD_INPUT_TOKENS reached: the next email escalates with no API call."""
    step, submit, _ = world(TRIAGE_MAX_THREAD_INPUT_TOKENS="500")
    root = "<tok-0@example.org>"
    thread_id = submit(make_email(root, BILLING * 20))
    step.drain(thread_id)
    assert step.store.snapshot(thread_id).usage.total_input_tokens >= 500
    submit(make_email("<tok-1@example.org>", BILLING, subject="Re: Help", references=[root]))
    assert step.drain(thread_id) == [Outcome(OutcomeKind.ESCALATED)]
    assert len(api_requests(emulator)) == 1
    assert events(r)[-1]["limit"] == "thread_input_tokens"
