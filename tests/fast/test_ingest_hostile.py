"""Issue 14: hostile and odd mail, and where each email ends up (inbox, duplicate, dead letters).

Real Redis (the suite's private server), the real `Enqueuer`; drain tasks go to broker DB 13,
which no worker reads during these tests.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from helpers import make_enqueuer, message, raw_email

from common import keys
from common.contract import EmailPayload
from common.deadletters import DeadLetterStream
from common.recipient import choose_recipient
from producers.enqueue import Enqueuer, Rejected
from producers.parse import ParseLimits, parse_email
from producers.sources import Item
from producers.submit import Submitted, thread_id_for
from worker.reply.headers import new_reply_tag

HEAD = b"To: support@example.com\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"


def email(
    message_id: str, *, sender: bytes = b"Dana <dana@example.org>", body: bytes = b"Help"
) -> bytes:
    return (
        b"From: "
        + sender
        + b"\r\n"
        + HEAD
        + b"Subject: Order\r\nMessage-ID: "
        + message_id.encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n"
    )


def inbox(r: redis.Redis, thread_id: str) -> list[EmailPayload]:
    return [
        EmailPayload.model_validate_json(x) for x in r.lrange(keys.thread_inbox(thread_id), 0, -1)
    ]


def letters(r: redis.Redis) -> list[tuple[str, str]]:
    return [(x.reason, x.body["payload"]["position"]) for x in DeadLetterStream(r).list(None)]


def items(*raws: bytes) -> list[Item]:
    return [
        Item("box.mbox", f"message {i}", "email", raw, len(raw)) for i, raw in enumerate(raws, 1)
    ]


def outcomes(enqueuer: Enqueuer, *raws: bytes) -> list[Submitted | Rejected]:
    return [outcome for _, outcome in enqueuer.enqueue_items(items(*raws))]


# --- 1. nothing vanishes ---------------------------------------------------------------------


def nested_multiparts(levels: int) -> bytes:
    raw = b"From: Dana <dana@example.org>\r\n" + HEAD + b"Subject: nested\r\n"
    raw += b"Message-ID: <nest@example.org>\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for level in range(1, levels):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level - 1, level)
    return raw + b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n" % (levels - 1)


def nested_attached_emails(levels: int) -> bytes:
    inner = b"From: a@example.org\r\nSubject: innermost\r\n\r\nhi\r\n"
    for _ in range(levels):
        inner = (
            b"From: a@example.org\r\nSubject: fwd\r\nContent-Type: message/rfc822\r\n\r\n" + inner
        )
    return (
        b"From: Dana <dana@example.org>\r\n" + HEAD + b"Subject: see attached\r\n"
        b"Message-ID: <attached@example.org>\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
        b"--z\r\nContent-Type: text/plain\r\n\r\nSee the chain.\r\n--z\r\n" + inner + b"--z--\r\n"
    )


FAILURE_CLASSES = {
    "encoded CR/LF in the From display name": email(
        "<crlf@example.org>",
        sender=b"=?utf-8?q?Dana=0D=0ABcc:_evil@example.org?= <dana@example.org>",
    ),
    "10,000 nested multiparts": nested_multiparts(10_000),
    "2,000 nested attached emails": nested_attached_emails(2_000),
    "100,000 '(' in From": email(
        "<paren@example.org>", sender=b"(" * 100_000 + b"dana@example.org"
    ),
}


#: Froms that the tokeniser and the standard library's parser read differently (an unfinished
#: group, an unclosed comment): `producers.headers.sender_address` keeps them as written.
FROM_READ_TWO_WAYS = {"encoded CR/LF in the From display name", "100,000 '(' in From"}


@pytest.mark.parametrize("name", list(FAILURE_CLASSES))
def test_each_failure_class_is_enqueued_and_the_batch_goes_on(r, state_url, name):
    """Each email that used to abort a run is enqueued, and the email after it is too."""
    enqueuer = make_enqueuer(state_url, r)
    before = email("<before@example.org>")
    after = email("<after@example.org>")
    started = time.perf_counter()
    results = outcomes(enqueuer, before, FAILURE_CLASSES[name], after)
    assert time.perf_counter() - started < 5
    assert [type(x).__name__ for x in results] == ["Submitted"] * 3, results
    assert all(isinstance(x, Submitted) and x.status == "enqueued" for x in results)
    hostile = results[1]
    assert isinstance(hostile, Submitted)
    [payload] = inbox(r, hostile.thread_id)
    if name in FROM_READ_TWO_WAYS:  # kept as written (bounded): no address a question goes to
        assert payload.from_addr != "dana@example.org" and len(payload.from_addr) <= 512
        assert "\n" not in payload.from_addr and "\r" not in payload.from_addr
        assert choose_recipient(payload.from_addr, None).address is None
    else:
        assert payload.from_addr == "dana@example.org"
    assert "\n" not in payload.subject and "\r" not in payload.subject
    assert letters(r) == []


def test_the_decoded_display_name_cannot_inject_a_header(r, state_url):
    """An encoded CR/LF in a display name never becomes a line break anywhere in the payload."""
    parsed = parse_email(FAILURE_CLASSES["encoded CR/LF in the From display name"])
    assert "\r" not in parsed.from_addr and "\n" not in parsed.from_addr
    assert parsed.to == ["support@example.com"]


def test_deep_nesting_says_what_was_not_read():
    """Past the nesting limit the parts are not read, and the turn says so."""
    parsed = parse_email(nested_multiparts(10_000))
    assert parsed.text.startswith("(no text;") and "nested deeper than 20 levels" in parsed.text
    chain = parse_email(nested_attached_emails(2_000))
    assert chain.text == "See the chain." and chain.attachments[0].name == "fwd.eml"


def test_an_exception_in_parsing_becomes_a_rejection_and_the_batch_goes_on(
    r, state_url, monkeypatch
):
    """A parser bug on one email dead-letters that email (parse_failed); the others go in."""
    import producers.enqueue as enqueue_module

    real = enqueue_module.parse_email

    def flaky(raw: bytes, limits: ParseLimits) -> Any:
        if b"<boom@" in raw:
            raise ValueError("Invalid header value (simulated)")
        return real(raw, limits)

    monkeypatch.setattr(enqueue_module, "parse_email", flaky)
    results = outcomes(
        make_enqueuer(state_url, r),
        email("<one@example.org>"),
        email("<boom@example.org>"),
        email("<three@example.org>"),
    )
    assert [getattr(x, "status", None) or x.reason for x in results] == [  # type: ignore[union-attr]
        "enqueued",
        "parse_failed",
        "enqueued",
    ]
    assert letters(r) == [("parse_failed", "message 2")]


def test_a_script_error_on_one_email_becomes_its_rejection(r, state_url):
    """A Redis error on one email's submit (not a connection failure) rejects only that email."""
    enqueuer = make_enqueuer(state_url, r)
    thread = thread_id_for("<wrongtype@example.org>")
    r.set(keys.thread_inbox(thread), "not a list")  # RPUSH on it fails with WRONGTYPE
    results = outcomes(enqueuer, email("<wrongtype@example.org>"), email("<fine@example.org>"))
    assert isinstance(results[0], Rejected) and results[0].reason == "submit_failed"
    assert "WRONGTYPE" in results[0].error
    assert isinstance(results[1], Submitted) and results[1].status == "enqueued"
    assert letters(r) == [("submit_failed", "message 1")]


def test_a_redis_failure_mid_run_is_counted_so_the_summary_adds_up(r, state_url, monkeypatch):
    """Redis failing stops the run; what was done is kept and the rest counted as not done."""
    from producers.enqueue import IncompleteBatch
    from producers.report import RunSummary

    enqueuer = make_enqueuer(state_url, r)
    submitter = enqueuer._submitter
    real = submitter.submit_many
    calls: list[int] = []

    def failing(emails: Any, publish: bool = True) -> Any:
        calls.append(len(emails))
        if len(calls) == 2:
            raise redis.ConnectionError("Redis went away")
        return real(emails, publish=publish)

    monkeypatch.setattr(submitter, "submit_many", failing)
    raws = [email(f"<f{i}@example.org>") for i in range(3)] + [b"", email("<f4@example.org>")]
    summary = RunSummary()
    with pytest.raises(IncompleteBatch) as info:
        for _, outcome in enqueuer.enqueue_items(items(*raws), batch_size=3):
            summary.add(outcome)
    for _, outcome in info.value.done:
        summary.add(outcome)
    summary.not_done += info.value.not_done
    assert (summary.enqueued, summary.rejected_total, summary.not_done) == (3, 1, 1)
    assert summary.read == len(raws)
    assert "1 read but not done" in summary.line()
    assert letters(r) == [("empty", "message 4")]


# --- 2. identity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message_id",
    [
        "<order:1001@shop.example>",
        "<a,b;c@x.example>",
        '<"quoted local"@x.example>',
        "<with(paren)@x.example>",
        "<back\\slash@x.example>",
        "<[bracket]@x.example>",
    ],
)
def test_message_ids_are_kept_as_written(message_id):
    """Message-IDs are never cut at ':', ',', ';', '"', '(', '\\' or '['."""
    assert parse_email(email(message_id)).message_id == message_id


def test_message_ids_are_normalised_only_as_rfc_5322_allows():
    """Comments and folding white space around and inside an id go; nothing else changes."""
    raw = email("(comment) <order.1001\r\n @shop.example> (more)")
    assert parse_email(raw).message_id == "<order.1001@shop.example>"


def test_same_id_from_two_senders_is_two_emails(r, state_url, monkeypatch):
    """`<order:1001@shop.example>` vs `<order:1002@…>` stay apart; the same id from another
    sender is a new email in a thread of its own (logged); from the same sender, a duplicate."""
    import producers.submit as submit_module

    logged: list[tuple[str, dict[str, Any]]] = []

    class Log:
        def warning(self, event: str, **fields: Any) -> None:
            logged.append((event, fields))

        info = warning

    monkeypatch.setattr(submit_module, "log", Log())
    enqueuer = make_enqueuer(state_url, r)
    first, second = outcomes(
        enqueuer,
        email("<order:1001@shop.example>", sender=b"ann@example.org"),
        email("<order:1002@shop.example>", sender=b"bob@example.org"),
    )
    assert isinstance(first, Submitted) and isinstance(second, Submitted)
    assert (first.status, second.status) == ("enqueued", "enqueued")
    assert first.thread_id != second.thread_id
    forged, again = outcomes(
        enqueuer,
        email("<order:1001@shop.example>", sender=b"mallory@example.org", body=b"Refund me"),
        email("<order:1001@shop.example>", sender=b"ANN@example.org"),
    )
    assert isinstance(forged, Submitted) and forged.status == "enqueued" and forged.id_reused
    assert forged.thread_id not in (first.thread_id, second.thread_id)
    assert isinstance(again, Submitted) and again.status == "duplicate"
    assert [p.from_addr for p in inbox(r, first.thread_id)] == ["ann@example.org"]
    assert [p.text for p in inbox(r, forged.thread_id)] == ["Refund me"]
    reused = [fields for event, fields in logged if event == "enqueue.message_id_reused"]
    assert [x["message_id"] for x in reused] == ["<order:1001@shop.example>"]
    assert reused[0]["thread_id"] == forged.thread_id
    # the index still names the first owner: replies to that id join Ann's thread
    assert r.get(keys.message_index("<order:1001@shop.example>")) == first.thread_id.encode()


def test_a_reply_from_another_sender_reusing_an_id_keeps_its_own_thread(r, state_url):
    """A reply whose own Message-ID is taken joins the thread it answers; the index is kept."""
    enqueuer = make_enqueuer(state_url, r)
    [root] = outcomes(enqueuer, email("<root@example.org>"))
    [taken] = outcomes(enqueuer, email("<taken@example.org>", sender=b"eve@example.org"))
    reply = raw_email(
        "<taken@example.org>", "Answer.", headers={"In-Reply-To": "<root@example.org>"}
    )
    [joined] = outcomes(enqueuer, reply)
    assert isinstance(root, Submitted) and isinstance(taken, Submitted)
    assert isinstance(joined, Submitted) and joined.thread_id == root.thread_id and joined.id_reused
    assert r.get(keys.message_index("<taken@example.org>")) == taken.thread_id.encode()


# --- 3. bounded parsing ---------------------------------------------------------------------


def test_header_block_over_the_limit_is_rejected_before_parsing(r, state_url):
    """A header block over TRIAGE_MAX_HEADER_BYTES is dead-lettered as headers_too_large."""
    enqueuer = make_enqueuer(state_url, r, TRIAGE_MAX_HEADER_BYTES="8192")
    subject = b" ".join([b"=?utf-8?q?a?="] * 100_000)  # 1.4 MB: 22 GB in the stdlib parser
    raw = b"From: dana@example.org\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
    started = time.perf_counter()
    [result] = outcomes(enqueuer, raw)
    assert time.perf_counter() - started < 2
    assert isinstance(result, Rejected) and result.reason == "headers_too_large"
    assert letters(r) == [("headers_too_large", "message 1")]


def test_encoded_words_past_the_limit_are_cut_with_a_marker():
    """Past TRIAGE_MAX_ENCODED_WORDS the header's rest is dropped and marked […]."""
    words = b" ".join([b"=?utf-8?q?ab?="] * 5_000)
    parsed = parse_email(
        b"From: dana@example.org\r\nSubject: " + words + b"\r\n\r\nbody\r\n",
        ParseLimits(max_encoded_words=10, max_subject_chars=300),
    )
    assert parsed.subject == "ab" * 10 + " […]" and "subject truncated" in parsed.notes


def test_mime_parts_past_the_limit_are_counted_not_read(r, state_url):
    """100,000 MIME parts: the first TRIAGE_MAX_MIME_PARTS are read, the turn counts the rest."""
    enqueuer = make_enqueuer(state_url, r, TRIAGE_MAX_MIME_PARTS="50")
    raw = (
        b"From: dana@example.org\r\nSubject: parts\r\nMessage-ID: <parts@example.org>\r\n"
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
        + b"--zz\r\nContent-Type: image/png; name=p.png\r\n\r\nx\r\n" * 100_000
        + b"--zz--\r\n"
    )
    started = time.perf_counter()
    [result] = outcomes(enqueuer, raw)
    assert time.perf_counter() - started < 3
    assert isinstance(result, Submitted)
    [payload] = inbox(r, result.thread_id)
    assert payload.text.startswith("(no text; attachments: p.png, p.png")
    assert "99951 MIME parts not read" in payload.text


def test_nesting_past_the_limit_is_not_read():
    """Multiparts nested deeper than TRIAGE_MAX_MIME_DEPTH are not read; the text says so."""
    parsed = parse_email(nested_multiparts(12), ParseLimits(max_mime_depth=5))
    assert "nested deeper than 5 levels" in parsed.text
    assert parse_email(nested_multiparts(4), ParseLimits(max_mime_depth=5)).text == "deep text"


def test_addresses_past_the_limit_are_not_read():
    """Only the first TRIAGE_MAX_ADDRESSES_PER_HEADER addresses of To are kept (and noted)."""
    addresses = b", ".join(b"u%d@example.org" % i for i in range(5_000))
    raw = b"From: dana@example.org\r\nTo: " + addresses + b"\r\nSubject: x\r\n\r\nbody\r\n"
    started = time.perf_counter()
    parsed = parse_email(raw, ParseLimits(max_addresses=100))
    assert time.perf_counter() - started < 1
    assert parsed.to == [f"u{i}@example.org" for i in range(100)]
    assert "to: only the first 100 addresses read" in parsed.notes


def test_the_subject_is_bounded_at_ingestion(r, state_url):
    """A 600 KB Subject is cut to TRIAGE_MAX_SUBJECT_CHARS with a marker in the inbox entry."""
    enqueuer = make_enqueuer(state_url, r, TRIAGE_MAX_SUBJECT_CHARS="100")
    subject = b"refund " * 10_000
    [result] = outcomes(
        enqueuer, b"From: dana@example.org\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
    )
    assert isinstance(result, Submitted)
    [payload] = inbox(r, result.thread_id)
    assert len(payload.subject) <= 100 + len(" […]") and payload.subject.endswith(" […]")


def test_the_subject_is_bounded_in_every_turn():
    """A payload from an older producer with a huge Subject still makes a bounded turn."""
    from worker.decide.conversation import MAX_SUBJECT_CHARS, email_block

    payload = EmailPayload(
        message_id="<s@x>",
        thread_id="t",
        from_addr="a@example.org",
        subject="x" * 600_000,
        text="hi",
    )
    block = email_block(payload, 20_000)["text"]
    assert len(block) < MAX_SUBJECT_CHARS + 200 and block.endswith("\n\nhi")


def test_memory_per_email_is_a_small_multiple_of_its_size():
    """Parsing a 25 MB email with a big attachment peaks at under 3x its size."""
    import tracemalloc

    raw = (
        b"From: dana@example.org\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=zz\r\n"
        b"\r\n--zz\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--zz\r\n"
        b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + (b"QUJD" * 19 + b"\r\n") * 300_000
        + b"--zz--\r\n"
    )
    tracemalloc.start()
    try:
        parsed = parse_email(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed.text == "see attached" and parsed.attachments[0].size == 19 * 3 * 300_000
    assert peak < 3 * len(raw)


# --- 4. no customer ignored -----------------------------------------------------------------

NO_CONTENT_SHAPES: dict[str, tuple[bytes, str]] = {
    "empty body with a subject": (
        raw_email("<n1@example.org>", "", subject="Refund please"),
        "(no text)",
    ),
    "a PDF with no text": (
        message(
            "<n2@example.org>", None, attachments=[("invoice.pdf", "application/pdf", b"%PDF-1.4")]
        ).as_bytes(),
        "(no text; attachments: invoice.pdf)",
    ),
    "a screenshot with no text": (
        message(
            "<n3@example.org>", None, attachments=[("screen.png", "image/png", b"\x89PNG" * 9)]
        ).as_bytes(),
        "(no text; attachments: screen.png)",
    ),
    "a multipart whose boundary is missing": (
        b"From: dana@example.org\r\nSubject: Help\r\nMessage-ID: <n4@example.org>\r\n"
        b"Content-Type: multipart/mixed\r\n\r\n--abc123\r\nContent-Type: text/plain\r\n\r\n"
        b"My card was charged twice.\r\n--abc123--\r\n",
        "My card was charged twice.",
    ),
    "a multipart whose boundary is wrong": (
        b"From: dana@example.org\r\nSubject: Help\r\nMessage-ID: <n5@example.org>\r\n"
        b'Content-Type: multipart/alternative; boundary="declared"\r\n\r\n'
        b"--actual\r\nContent-Type: text/plain\r\n\r\nThe parcel is lost.\r\n--actual--\r\n",
        "The parcel is lost.",
    ),
    "an answer below an On ... wrote: quote": (
        raw_email(
            "<n6@example.org>",
            "On Mon, 2 Mar 2026 at 10:00, Support <support@example.com> wrote:\n"
            "> Which order?\n\nOrder 4711.\n",
            headers={"In-Reply-To": "<triage.t1.1@example.com>"},
        ),
        "Order 4711.",
    ),
    "a body that starts with pasted From:/To:/Date: lines": (
        raw_email(
            "<n7@example.org>",
            "From: Carrier <noreply@carrier.example>\nTo: dana@example.org\n"
            "Date: Sun, 1 Mar 2026\n\nWe could not deliver parcel 1234.\n",
        ),
        "From: Carrier <noreply@carrier.example>\nTo: dana@example.org\nDate: Sun, 1 Mar 2026\n\n"
        "We could not deliver parcel 1234.",
    ),
    "a forwarded email with no comment": (
        message(
            "<n8@example.org>",
            "---------- Forwarded message ---------\nFrom: Carrier <track@carrier.example>\n"
            "Subject: Parcel lost\n\nYour parcel 123 was lost.\n",
            subject="Fwd: Parcel lost",
        ).as_bytes(),
        "---------- Forwarded message ---------\nFrom: Carrier <track@carrier.example>\n"
        "Subject: Parcel lost\n\nYour parcel 123 was lost.",
    ),
    "a forwarded email attached, with no comment": (
        b"From: dana@example.org\r\nSubject: Fwd: Parcel lost\r\nMessage-ID: <n9@example.org>\r\n"
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: message/rfc822\r\n"
        b"\r\nFrom: Carrier <track@carrier.example>\r\nSubject: Parcel lost\r\n\r\n"
        b"Your parcel 123 was lost.\r\n--z--\r\n",
        '(forwarded email from track@carrier.example, subject "Parcel lost")\n\n'
        "Your parcel 123 was lost.",
    ),
    "Sent from my iPhone alone": (
        raw_email("<n10@example.org>", "Sent from my iPhone\n", subject="Re: Help"),
        "(no text of its own; only quoted or signature lines)",
    ),
}


@pytest.mark.parametrize("shape", list(NO_CONTENT_SHAPES))
def test_each_no_content_shape_becomes_a_turn_that_says_what_was_there(r, state_url, shape):
    """Every shape that used to be dead-lettered is enqueued with a text saying what was there."""
    raw, text = NO_CONTENT_SHAPES[shape]
    [result] = outcomes(make_enqueuer(state_url, r), raw)
    assert isinstance(result, Submitted) and result.status == "enqueued", result
    [payload] = inbox(r, result.thread_id)
    assert payload.text == text
    assert letters(r) == []


def test_only_no_sender_or_no_content_at_all_is_rejected(r, state_url):
    """No sender, or no subject, text or attachment: rejected and dead-lettered with the reason."""
    no_sender = b"Subject: Refund please\r\nMessage-ID: <x1@example.org>\r\n\r\nbody\r\n"
    nothing = raw_email("<x2@example.org>", "  \n", subject="")
    results = outcomes(make_enqueuer(state_url, r), no_sender, nothing)
    assert [x.reason for x in results if isinstance(x, Rejected)] == ["no_sender", "no_text"]
    assert letters(r) == [("no_sender", "message 1"), ("no_text", "message 2")]


def dsn(returned_id: str, status: bytes = b"5.1.1", action: bytes = b"failed") -> bytes:
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: support@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn." + returned_id.strip("<>").encode() + b"@mx.example.net>\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        b"--R\r\nContent-Type: text/plain\r\n\r\nThis is the mail system. Your message could "
        b"not be delivered.\r\n"
        b"--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net"
        b"\r\n\r\nFinal-Recipient: rfc822; dana@example.org\r\nAction: "
        + action
        + b"\r\nStatus: "
        + status
        + b"\r\nDiagnostic-Code: smtp; 550 5.1.1 <dana@example.org>: user unknown\r\n"
        b"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.com\r\n"
        b"To: dana@example.org\r\nSubject: Re: Help\r\nMessage-ID: "
        + returned_id.encode()
        + b"\r\n"
        b"--R--\r\n"
    )


def asked(enqueuer: Enqueuer, r: redis.Redis, root: str, status: str) -> tuple[str, str]:
    """A thread of one email and the Message-ID of our question to it, as the worker's commit
    records them: (thread id, our reply's Message-ID)."""
    [first] = outcomes(enqueuer, email(root))
    assert isinstance(first, Submitted)
    ours = f"<triage.{first.thread_id}.1.{new_reply_tag()}@example.com>"
    r.set(keys.message_index(ours), first.thread_id)
    r.hset(keys.thread_meta(first.thread_id), mapping={"status": status, "version": 1})
    if status == "awaiting_customer":
        r.zadd(keys.AWAITING, {first.thread_id: time.time()})
    return first.thread_id, ours


def thread_meta(r: redis.Redis, thread_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.thread_meta(thread_id)).items()}


def test_a_bounce_of_our_reply_marks_its_thread_and_is_not_triaged(r, state_url):
    """A DSN returning one of our replies sets `reply_bounced` + the status, and no inbox entry."""
    enqueuer = make_enqueuer(state_url, r)
    thread_id, ours = asked(enqueuer, r, "<root2@example.org>", "awaiting_customer")
    r.delete(keys.thread_inbox(thread_id))  # drained
    [bounce, again] = outcomes(enqueuer, dsn(ours), dsn(ours))
    assert isinstance(bounce, Submitted) and bounce.status == "reply_bounced"
    assert bounce.thread_id == thread_id and bounce.bounce_status == "5.1.1"
    assert isinstance(again, Submitted) and again.status == "duplicate"
    meta = thread_meta(r, thread_id)
    assert meta["status"] == "reply_bounced" and meta["bounce_status"] == "5.1.1"
    assert meta["bounced_message_id"] == ours
    assert r.zscore(keys.AWAITING, thread_id) is None
    assert r.llen(keys.thread_inbox(thread_id)) == 0
    assert letters(r) == []


def test_a_late_bounce_of_a_decided_thread_is_recorded_without_undeciding_it(r, state_url):
    """A report that comes after the thread was classified records the bounce on the thread but
    leaves its status: downstream already acted on the classification."""
    enqueuer = make_enqueuer(state_url, r)
    thread_id, ours = asked(enqueuer, r, "<late-root@example.org>", "classified")
    [bounce] = outcomes(enqueuer, dsn(ours))
    assert isinstance(bounce, Submitted) and bounce.status == "reply_bounced"
    meta = thread_meta(r, thread_id)
    assert meta["status"] == "classified"
    assert meta["bounce_status"] == "5.1.1" and meta["bounced_message_id"] == ours


def test_a_delay_warning_about_our_reply_leaves_the_thread_alone(r, state_url):
    """A 4.x.x "delayed" report is no bounce: the thread is not marked (a flagged email)."""
    enqueuer = make_enqueuer(state_url, r)
    [first] = outcomes(enqueuer, email("<root3@example.org>"))
    assert isinstance(first, Submitted)
    ours = f"<triage.{first.thread_id}.1.{new_reply_tag()}@example.com>"
    r.set(keys.message_index(ours), first.thread_id)
    [delay] = outcomes(enqueuer, dsn(ours, status=b"4.4.1", action=b"delayed"))
    assert isinstance(delay, Submitted) and delay.status == "enqueued"
    assert r.hget(keys.thread_meta(first.thread_id), "status") is None


def test_a_bounce_of_something_else_is_an_ordinary_flagged_email(r, state_url):
    """A DSN returning no reply of ours is enqueued, flagged a bounce (never asked a question)."""
    [result] = outcomes(make_enqueuer(state_url, r), dsn("<someone.else@example.org>"))
    assert isinstance(result, Submitted) and result.status == "enqueued"
    [payload] = inbox(r, result.thread_id)
    assert "bounce" in payload.flags


def test_a_bounce_whose_thread_is_gone_is_dead_lettered(r, state_url):
    """A DSN of our reply whose thread expired is kept in the dead letters, not triaged."""
    [result] = outcomes(make_enqueuer(state_url, r), dsn("<triage.tgone.3@example.com>"))
    assert isinstance(result, Rejected) and result.reason == "bounce_unknown_thread"
    assert letters(r) == [("bounce_unknown_thread", "message 1")]


def test_a_forged_bounce_of_a_guessed_reply_id_leaves_the_thread_alone(r, state_url):
    """A stranger who knows a thread's first Message-ID computes its thread id and version but
    not our reply's tag: the forged report is dead-lettered and the thread stays awaiting."""
    enqueuer = make_enqueuer(state_url, r)
    thread_id, _ = asked(enqueuer, r, "<victim-root@example.org>", "awaiting_customer")
    guesses = [f"<triage.{thread_id}.1@example.com>"]
    guesses += [f"<triage.{thread_id}.1.{new_reply_tag()}@example.com>" for _ in range(3)]
    results = outcomes(enqueuer, *(dsn(guess) for guess in guesses))
    assert all(isinstance(x, Rejected) and x.reason == "bounce_unknown_thread" for x in results)
    assert thread_meta(r, thread_id)["status"] == "awaiting_customer"
    assert r.zscore(keys.AWAITING, thread_id) is not None
    assert [reason for reason, _ in letters(r)] == ["bounce_unknown_thread"] * 4


# --- 6. dry run -----------------------------------------------------------------------------


def test_a_dry_run_resolves_threads_and_writes_nothing(r, state_url):
    """`Previewer` parses and resolves (new, reply, duplicate, collision) without one write."""
    from helpers import ingest_settings

    from producers.enqueue import Previewer
    from producers.submit import dry_run_record

    enqueuer = make_enqueuer(state_url, r)
    [root] = outcomes(enqueuer, email("<dry-root@example.org>"))
    assert isinstance(root, Submitted)
    before = {key: r.dump(key) for key in r.scan_iter()}
    reply = raw_email(
        "<dry-reply@example.org>", "Yes.", headers={"In-Reply-To": "<dry-root@example.org>"}
    )
    previewer = Previewer(ingest_settings(state_url), r)
    preview = list(
        previewer.preview_items(
            items(
                reply,
                email("<dry-root@example.org>"),
                email("<dry-root@example.org>", sender=b"eve@example.org"),
                email("<dry-new@example.org>"),
                b"Subject: no sender\r\n\r\nx\r\n",
            )
        )
    )
    modes = [res.mode if res else result.reason for _, result, res in preview]  # type: ignore[union-attr]
    assert modes == ["reply", "duplicate", "collision", "new", "no_sender"]
    record = dry_run_record(preview[0][1], preview[0][2])  # type: ignore[arg-type]
    assert record["thread_id"] == root.thread_id and record["text"] == "Yes."
    assert {k: r.dump(k) for k in r.scan_iter()} == before
    json.dumps(record)


def test_the_whole_mbox_summary_adds_up(r, state_url):
    """Enqueued + duplicates + bounces + rejected = emails read, whatever they were."""
    from producers.report import RunSummary

    summary = RunSummary()
    raws = [*FAILURE_CLASSES.values(), *(raw for raw, _ in NO_CONTENT_SHAPES.values())]
    raws += [email("<dup@example.org>"), email("<dup@example.org>"), b"", b"\x00binary"]
    for _, outcome in make_enqueuer(state_url, r).enqueue_items(items(*raws)):
        summary.add(outcome)
    assert summary.read == len(raws) == summary.total
    assert (summary.duplicates, summary.rejected_total) == (1, 2)


def test_text_past_the_scan_limit_is_not_read():
    """Megabytes of fake reply attributions: only ten times the kept text is scanned, and noted."""
    line = b"On Monday Tom wrote:\r\nsome text here\r\n"
    raw = b"From: dana@example.org\r\nSubject: x\r\n\r\n" + line * (4_000_000 // len(line))
    started = time.perf_counter()
    parsed = parse_email(raw, ParseLimits(max_text_chars=20_000))
    assert time.perf_counter() - started < 5  # unbounded: about 7 s on this input
    assert "text beyond 200000 characters not read" in parsed.notes
    assert len(parsed.text) < 21_000 and parsed.text.startswith("On Monday Tom wrote:")


def test_references_of_a_json_record_are_capped_over_all_items():
    """100,000 ids spread over a JSON record's References items: at most 50 are kept."""
    from producers.enqueue import parse_item

    record = {
        "message_id": "<refs@example.org>",
        "subject": "refs",
        "from": "dana@example.org",
        "text": "hello",
        "references": [f"<r{i}@example.org>" for i in range(100_000)],
    }
    line = json.dumps(record).encode()
    parsed = parse_item(Item("x.jsonl", "line 1", "jsonl", line, len(line)), ParseLimits())
    assert not isinstance(parsed, Rejected)
    assert len(parsed.references) == 50
    assert parsed.references[0] == "<r0@example.org>"
    assert parsed.references[-1] == "<r99999@example.org>"


def test_a_provider_display_name_cannot_smuggle_another_sender():
    """Postmark's FromFull: a Name holding `\\ <dana@…>, \\` leaves the checked Email the sender."""
    from intake.providers.postmark import to_item
    from producers.enqueue import parse_item

    document = {
        "FromFull": {"Name": "x\\ <dana@acme.example>, \\", "Email": "eve@evil.example"},
        "Subject": "hi",
        "TextBody": "hello there",
        "MessageID": "pm-1",
        "Headers": [],
    }
    parsed = parse_item(to_item(json.dumps(document).encode()), ParseLimits())
    assert not isinstance(parsed, Rejected) and parsed.from_addr == "eve@evil.example"
