"""Unbuildable and refused replies: sanitised or dead-lettered once, by reply id, never looped."""

from __future__ import annotations

import email.policy
import json
import smtplib
import time

import pytest

from common import keys
from common.contract import ReplyTask
from common.deadletters import DeadLetterStream
from common.logging import redact_addresses, redact_processor
from worker.recovery.replay import Replayer
from worker.recovery.sweeper import stale_replies
from worker.reply.failed import FailedReplies, has_failed
from worker.reply.render import DEFAULT_TEMPLATE, UnrenderableReply, render_reply
from worker.reply.transports import translate_smtp
from worker.state.store import ThreadStore

SUPPORT = "Acme Support <help@acme.test>"
SECRET_BITS = ("dana@example.org", "Invoice 4711", "Which order")


def reply_task(**changes: object) -> ReplyTask:
    fields: dict[str, object] = {
        "reply_id": "t1.1",
        "thread_id": "t1",
        "message_id": "<triage.t1.1@acme.test>",
        "to": "dana@example.org",
        "subject": "Re: Invoice 4711",
        "question": "Which order is it?",
        "in_reply_to": "<c-1@example.org>",
        "references": ["<c-1@example.org>"],
        "email_ids": ["<c-1@example.org>"],
    }
    return ReplyTask.model_validate(fields | changes)


class Recorder:
    """A publisher that records what it is asked to publish."""

    def __init__(self) -> None:
        self.replies: list[ReplyTask] = []

    def drain(self, thread_id: str) -> None:
        raise AssertionError("no drain expected")

    def reply(self, reply: ReplyTask) -> None:
        self.replies.append(reply)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Invoice\r\nBcc: victim@example.org", "Re: your support request"),
        ("Re: Invoice\u2028missing", "Re: Invoice missing"),
        ("Re: Invoice\x0b\x85missing", "Re: Invoice missing"),
        ("Re: \u2029", "Re: your support request"),
    ],
)
def test_a_subject_with_line_breaks_is_sanitised_not_failed(subject, expected):
    """CR/LF, U+2028/9 and other breaks in a subject become one safe line; the reply renders."""
    message = render_reply(reply_task(subject=subject), SUPPORT, DEFAULT_TEMPLATE)
    assert message["Subject"] == expected
    assert message["To"] == "dana@example.org" and "Bcc" not in message


def test_malformed_thread_ids_are_dropped_and_the_question_flattened():
    """A bad In-Reply-To or Reference is left out; the question becomes one line."""
    reply = reply_task(
        in_reply_to="<x@y>\r\nBcc: v@example.org",
        references=["<ok@example.org>", "not an id", "<a@b>\nX: y"],
        question="Which\u2028order?",
    )
    message = render_reply(reply, SUPPORT, DEFAULT_TEMPLATE)
    assert message["In-Reply-To"] is None and message["References"] == "<ok@example.org>"
    assert "Which order?" in message.get_content()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"to": "ceo"}, "invalid_recipient"),
        ({"to": "dana@example.org\r\nBcc: victim@example.org"}, "invalid_recipient"),
        ({"to": "a@example.org, b@example.org"}, "invalid_recipient"),
        ({"message_id": "<triage.t1.1@acme.test>\r\nBcc: x"}, "invalid_message_id"),
        ({"message_id": "no-angle-brackets"}, "invalid_message_id"),
    ],
)
def test_what_cannot_be_sanitised_is_a_permanent_error_naming_no_content(changes, reason):
    """No valid recipient or Message-ID: a permanent error whose message carries no content."""
    with pytest.raises(UnrenderableReply) as info:
        render_reply(reply_task(**changes), SUPPORT, DEFAULT_TEMPLATE)
    assert info.value.reason == reason
    assert not any(bit in str(info.value) for bit in SECRET_BITS)


def test_smtp_errors_name_no_address():
    """The translated SMTP error keeps the code and text, not the recipient's address."""
    refused = smtplib.SMTPRecipientsRefused(
        {"dana@example.org": (550, b"5.1.1 <dana@example.org>: mailbox unavailable")}
    )
    error = translate_smtp(refused)
    assert error.reason == "smtp_rejected" and "550" in str(error)
    assert "mailbox unavailable" in str(error) and "dana@example.org" not in str(error)


def test_log_lines_lose_addresses_but_keep_message_ids():
    """The log processor redacts addresses everywhere except in Message-ID fields."""
    event = {
        "event": "reply.failed",
        "error": "550 <dana@example.org>: unknown",
        "data": {"args": "[{'to': 'dana@example.org'}]"},
        "email_ids": ["<c-1@example.org>"],
    }
    out = redact_processor(None, "error", event)
    assert out["error"] == "550 <<address>>: unknown"
    assert out["data"] == {"args": "[{'to': '<address>'}]"}
    assert out["email_ids"] == ["<c-1@example.org>"]
    assert redact_addresses("a" * 200_000 + "@") == "a" * 200_000 + "@"


@pytest.mark.parametrize(
    "address",
    [
        "o'brien@example.com",
        "a=b@example.com",
        "a|b@example.com",
        "a/b@example.com",
        "x#y@example.com",
        "a{b}c@example.com",
        "user@[10.0.0.1]",
        "dana@a.b.c.d.e.f.g.h.i.j.example.com",
    ],
)
def test_every_address_a_question_could_reach_is_redacted_whole(address):
    """Whatever a dot-atom local part may hold, any number of labels, an address literal: no
    prefix or tail of the address is left in the line."""
    assert redact_addresses(f"550 <{address}>: unknown") == "550 <<address>>: unknown"
    assert redact_addresses("celery@worker-1 ready") == "celery@worker-1 ready"


def test_a_failed_reply_is_dead_lettered_by_id_and_never_re_published(r):
    """The dead letter names the reply only; it leaves the pending set, so no sweep re-sends it."""
    reply = reply_task(decided_at=time.time() - 3600)
    r.hset(keys.REPLIES_PENDING, reply.reply_id, reply.model_dump_json())
    store = ThreadStore(r, 3600, 1000)
    failed = FailedReplies(r, DeadLetterStream(r), store, 3600)
    failed.dead_letter(reply, "unrenderable_reply", "550 <dana@example.org> refused", 1)
    [letter] = DeadLetterStream(r).list()
    assert letter.reason == "unrenderable_reply" and letter.thread_id == "t1"
    assert letter.body["payload"] == {"reply_id": "t1.1", "thread_id": "t1"}
    raw = json.dumps(letter.body)
    assert not any(bit in raw for bit in SECRET_BITS)
    assert stale_replies(r, 0) == [] and has_failed(r, "t1.1")
    assert store.snapshot("t1").meta["status"] == "reply_failed"


def test_a_dead_lettered_reply_replays_from_its_kept_task(r):
    """Replay reads the kept task back, queues it again and clears the failed mark."""
    reply = reply_task()
    dead_letters = DeadLetterStream(r)
    FailedReplies(r, dead_letters, ThreadStore(r, 3600, 1000), 3600).dead_letter(
        reply, "smtp_rejected", "550", 1
    )
    publisher = Recorder()
    replayer = Replayer(r, dead_letters, publisher, None, 3600, 60)
    [letter] = dead_letters.list()
    assert replayer.replay(letter).outcome == "replayed"
    assert publisher.replies == [reply] and not has_failed(r, "t1.1")
    assert r.hexists(keys.REPLIES_PENDING, "t1.1")


def test_a_reply_whose_kept_task_expired_is_kept_in_the_dlq(r):
    """Without the kept task there is nothing to replay: the dead letter stays."""
    dead_letters = DeadLetterStream(r)
    dead_letters.add("smtp_rejected", "550", {"reply_id": "gone.1", "thread_id": "gone"})
    replayer = Replayer(r, dead_letters, Recorder(), None, 3600, 60)
    [letter] = dead_letters.list()
    assert replayer.replay(letter).outcome == "kept" and dead_letters.size() == 1


def test_an_unparsable_pending_reply_is_dead_lettered_once(r):
    """A pending record that does not parse leaves the pending set with a dead letter."""
    r.hset(keys.REPLIES_PENDING, "bad.1", '{"reply_id": "bad.1"}')
    assert stale_replies(r, 0) == []
    assert stale_replies(r, 0) == []
    [letter] = DeadLetterStream(r).list()
    assert letter.reason == "invalid_pending_reply" and letter.body["payload"] == {
        "reply_id": "bad.1"
    }
    assert r.hlen(keys.REPLIES_PENDING) == 0


@pytest.mark.parametrize(
    "subject",
    [
        "=?utf-8?q?Please_see_evil=2Ecom_or_mail_bob=40evil=2Eio?=",
        "Order =?utf-8?b?ZXZpbC5jb20=?= help",
    ],
)
def test_an_encoded_word_left_in_a_subject_is_never_sent(subject):
    """A subject encoded twice still holds an encoded word after parsing, which the email library
    would decode when setting the header: the reply says `Re: your support request`."""
    from email import message_from_bytes

    message = render_reply(reply_task(subject=subject), SUPPORT, "{question}")
    sent = message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert str(sent["Subject"]) == "Re: your support request"
    assert "evil" not in message.as_string()
