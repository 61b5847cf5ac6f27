"""Parsing real-world mail: text, quotes, HTML, charsets, flags, attachments, bad input.

Pure: no Redis. Emails are built with the standard library or written as raw bytes.
"""

from __future__ import annotations

import time

import pytest
from helpers import message, raw_email

from producers.parse import EmailParseError, ParseLimits, parse_email
from producers.text import bound_text, normalise_whitespace, strip_quoted

# --- quoted history and signatures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Gmail, attribution wrapped over two lines
        (
            "Still broken, see the error below.\n\nOn Mon, 2 Mar 2026 at 10:00, Support <\n"
            "support@example.com> wrote:\n> Could you tell us more?\n> Thanks\n",
            "Still broken, see the error below.",
        ),
        # Outlook
        (
            "Yes, order 4711.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n"
            "Subject: Re: Help\n\nWhich order?",
            "Yes, order 4711.",
        ),
        (
            "Yes, order 4711.\n\n________________________________\nFrom: Support "
            "<support@example.com>\nSent: Monday, 2 March 2026 10:00\nTo: Dana\n\nWhich order?",
            "Yes, order 4711.",
        ),
        (
            "Yes, order 4711.\n\nFrom: Support <support@example.com>\nDate: Mon, 2 Mar 2026\n"
            "Subject: Re: Help\nWhich order?",
            "Yes, order 4711.",
        ),
        # German, French
        (
            "Die Rechnung ist doppelt.\n\nAm 02.03.2026 um 10:00 schrieb Support "
            "<support@example.com>:\n> Worum geht es?",
            "Die Rechnung ist doppelt.",
        ),
        (
            "La facture est fausse.\n\nLe lun. 2 mars 2026, Support a écrit :\n> ?",
            "La facture est fausse.",
        ),
        # signature and mobile footer
        ("Charged twice.\n\n-- \nDana Customer\nACME Corp", "Charged twice."),
        ("Charged twice.\n\nSent from my iPhone\n\n> old", "Charged twice."),
        # inline answers between quotes stay
        ("> Which order?\n4711\n> Which date?\nMarch 1st", "4711\nMarch 1st"),
        # customer text that a naive parser would cut stays
        (
            "Hi,\nThanks, but my order never arrived.\nSteps:\n- open app\n- click login\n"
            "Best, worst, whatever: it fails.",
            "Hi,\nThanks, but my order never arrived.\nSteps:\n- open app\n- click login\n"
            "Best, worst, whatever: it fails.",
        ),
    ],
)
def test_quoted_history_and_signatures_are_removed(body, expected):
    """Gmail, Outlook, German and French quotes, signatures and footers go; inline answers stay."""
    assert strip_quoted(body) == expected
    assert parse_email(raw_email("<q@example.org>", body)).text == expected


def test_a_forwarded_chain_is_kept_it_is_new_to_the_thread():
    """A forwarded message is new to the thread: it is kept whole after the marker."""
    body = (
        "See what the carrier says.\n\n---------- Forwarded message ---------\n"
        "From: Carrier <track@carrier.example>\nDate: Sun, 1 Mar 2026\nSubject: Parcel lost\n\n"
        "Your parcel 123 was lost.\n\nOn Sat, Dana wrote:\n> where is it?"
    )
    text = parse_email(raw_email("<fwd@example.org>", body)).text
    assert text.startswith("See what the carrier says.")
    assert "Your parcel 123 was lost." in text and "> where is it?" in text


def test_quote_stripping_is_linear_on_hostile_lines():
    """200,000-character attribution-like lines are stripped in well under two seconds."""
    hostile = "On " + "a " * 200_000 + "\n" + "Am " + "b " * 200_000 + "\nreal text"
    started = time.perf_counter()
    assert strip_quoted(hostile).endswith("real text")
    assert time.perf_counter() - started < 2


def test_whitespace_is_normalised_and_text_is_bounded_with_a_marker():
    """Whitespace is normalised and an over-long text is cut with an explicit marker."""
    assert normalise_whitespace("a \t\u00a0 b\u200b\r\n\n\n\n  c  ") == "a b\n\nc"
    assert bound_text("x" * 10, 20) == "x" * 10
    bounded = parse_email(
        raw_email("<big@example.org>", "word " * 5000), ParseLimits(max_text_chars=1000)
    )
    assert bounded.text.startswith("word word")
    # 25,001 characters with the final newline: past ten times the limit they are not read and
    # are counted as they are (the newline included); the rest after whitespace normalisation.
    assert bounded.text.endswith("[… email truncated at ingestion: 24000 characters omitted]")
    assert "text beyond 10000 characters not read" in bounded.notes


# --- HTML ---------------------------------------------------------------------------------


def test_html_only_mail_becomes_text_with_the_quote_removed():
    """HTML-only mail becomes text without scripts, styles or the quoted blockquote."""
    html = (
        "<html><head><style>p{color:red}</style><title>t</title></head><body>"
        "<div>Hi team,</div><div>order <a href='https://shop.example/o/1'>#1</a> is late "
        "&amp; <b>damaged</b>.</div><script>alert(1)</script>"
        "<div class='gmail_quote'>On Mon, 2 Mar 2026, Support wrote:"
        "<blockquote>Which order?</blockquote></div></body></html>"
    )
    parsed = parse_email(message("<h@example.org>", None, html=html).as_bytes())
    assert parsed.text == "Hi team,\n\norder [#1](https://shop.example/o/1) is late & damaged."
    assert parsed.attachments == []


def test_plain_is_preferred_over_html():
    """The text/plain alternative is the body; the HTML one is not listed as an attachment."""
    raw = raw_email("<alt@example.org>", "Plain words.", html="<p>HTML words</p>")
    parsed = parse_email(raw)
    assert parsed.text == "Plain words." and parsed.attachments == []


# --- charsets -----------------------------------------------------------------------------


def _raw(headers: bytes, body: bytes) -> bytes:
    return b"From: a@example.org\r\nMessage-ID: <cs@example.org>\r\n" + headers + b"\r\n" + body


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # undeclared charset, UTF-8 bytes / cp1252 bytes
        (b"Subject: x\r\n", "Caf\u00e9 \u20ac5 invoice".encode(), "Caf\u00e9 \u20ac5 invoice"),
        (
            b"Subject: x\r\n",
            "Caf\u00e9 \u20ac5 invoice".encode("cp1252"),
            "Caf\u00e9 \u20ac5 invoice",
        ),
        # declared UTF-8, bytes are cp1252
        (
            b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n",
            "Caf\u00e9 \u201cquoted\u201d".encode("cp1252"),
            "Caf\u00e9 \u201cquoted\u201d",
        ),
        # unknown charset
        (
            b"Subject: x\r\nContent-Type: text/plain; charset=x-no-such\r\n",
            "Caf\u00e9 invoice".encode(),
            "Caf\u00e9 invoice",
        ),
        # undecodable in every fallback: replacement characters, no crash
        (
            b"Subject: x\r\nContent-Type: text/plain; charset=us-ascii\r\n",
            b"invoice \x81\x8d\x8f\x90\x9d\xff\xfe",
            None,
        ),
    ],
)
def test_charsets_decode_without_crashing(headers, body, expected):
    """Missing, wrong, unknown and undecodable charsets never raise."""
    text = parse_email(_raw(headers, body)).text
    if expected is None:
        assert text.startswith("invoice") and "\ufffd" in text
    else:
        assert text == expected


def test_encoded_headers_decode_including_unknown_charsets_and_raw_bytes():
    """RFC 2047 words, unknown charsets and raw 8-bit headers all decode."""
    raw = (
        b"From: =?utf-8?b?SsO8cmdlbiBLdW5kZQ==?= <j@example.org>\r\n"
        b"Subject: =?iso-8859-1?q?Caf=E9?= =?utf-8?q?_=E2=82=AC5?=\r\n"
        b"Message-ID: <h2047@example.org>\r\n\r\nbody\r\n"
    )
    assert parse_email(raw).subject == "Caf\u00e9 \u20ac5"
    unknown = raw.replace(b"=?iso-8859-1?q?Caf=E9?=", b"=?x-unknown?q?Caf=E9?=")
    assert parse_email(unknown).subject.startswith("Caf")
    raw8 = raw.replace(b"=?iso-8859-1?q?Caf=E9?=", "Caf\u00e9".encode())
    assert parse_email(raw8).subject.startswith("Caf\u00e9")
    latin = raw.replace(b"=?iso-8859-1?q?Caf=E9?=", b"Caf\xe9")
    assert parse_email(latin).subject.startswith("Caf")  # a replacement character at worst


# --- flags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "sender", "flags"),
    [
        ({}, "dana@example.org", []),
        ({"Auto-Submitted": "auto-replied"}, "dana@example.org", ["auto_submitted"]),
        ({"Auto-Submitted": "no"}, "dana@example.org", []),
        ({"X-Autoreply": "yes"}, "dana@example.org", ["auto_submitted"]),
        ({"Subject": "Automatic reply: Help"}, "dana@example.org", ["auto_submitted"]),
        ({}, "MAILER-DAEMON@mx.example.org", ["bounce"]),
        ({"Return-Path": "<>"}, "dana@example.org", ["bounce"]),
        ({"Subject": "Undeliverable: Help"}, "postmaster@example.org", ["bounce"]),
        ({"Precedence": "bulk"}, "news@example.org", ["bulk"]),
        ({"List-Id": "<support.lists.example.org>"}, "dana@example.org", ["bulk"]),
        ({"List-Unsubscribe": "<mailto:u@example.org>"}, "dana@example.org", ["bulk"]),
        ({}, "no-reply@shop.example", ["no_reply"]),
        ({}, "noreply@shop.example", ["no_reply"]),
        ({}, "do-not-reply@shop.example", ["no_reply"]),
        ({}, "noreplyhero@example.org", []),
        # a web form sends as noreply@ but the reply goes to the customer: fine
        ({"Reply-To": "dana@example.org"}, "noreply@forms.example", []),
        (
            {"Auto-Submitted": "auto-generated", "Precedence": "list"},
            "no_reply@shop.example",
            ["auto_submitted", "bulk", "no_reply"],
        ),
    ],
)
def test_robot_flags(headers, sender, flags):
    """Auto-replies, bounces, bulk mail and no-reply senders get their flags from the headers."""
    headers = dict(headers)
    subject = headers.pop("Subject", "Help")
    raw = raw_email(
        "<f@example.org>", "Some text.", sender=sender, subject=subject, headers=headers
    )
    assert parse_email(raw).flags == flags


def test_a_delivery_status_report_is_a_bounce():
    """A multipart/report delivery status is flagged a bounce and its status read."""
    raw = (
        b"From: Mail Delivery System <mailer@mx.example.org>\r\nTo: support@example.com\r\n"
        b"Subject: Delivery failure\r\nMessage-ID: <dsn@mx.example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--B--\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.flags == ["bounce"]
    assert parsed.text == "Your message could not be delivered."


# --- payload fields and attachments --------------------------------------------------------


def test_payload_fields_and_attachment_metadata_only():
    """Every payload field is filled; attachments are listed by name, type and size only."""
    pdf = b"%PDF-1.4 secret contents " * 100
    raw = message(
        "<att@example.org>",
        "Invoice attached.",
        headers={
            "Reply-To": "Billing <billing@example.org>",
            "Cc": "x@example.org",
            "In-Reply-To": "<ours@example.com>",
            "References": "<root@example.org> <ours@example.com>",
        },
        attachments=[
            ("Rechnung März.pdf", "application/pdf", pdf),
            ("screen.png", "image/png", b"\x89PNG" + b"\0" * 60),
        ],
    ).as_bytes()
    parsed = parse_email(raw)
    assert parsed.message_id == "<att@example.org>"
    assert (parsed.from_addr, parsed.reply_to) == ("dana@example.org", "billing@example.org")
    assert parsed.to == ["support@example.com"]
    assert parsed.date == "Mon, 02 Mar 2026 10:00:00 +0000"
    assert parsed.in_reply_to == "<ours@example.com>"
    assert parsed.references == ["<root@example.org>", "<ours@example.com>"]
    assert parsed.text == "Invoice attached."
    assert [(a.name, a.content_type, a.size) for a in parsed.attachments] == [
        ("Rechnung März.pdf", "application/pdf", len(pdf)),
        ("screen.png", "image/png", 64),
    ]
    assert "secret" not in parsed.text


def test_an_attached_email_is_listed_not_opened():
    """An attached email next to text is listed (as Subject.eml), not opened."""
    inner = message("<inner@example.org>", "Inner text", subject="Your parcel")
    outer = message("<outer@example.org>", "See attached.")
    outer.add_attachment(inner)
    parsed = parse_email(outer.as_bytes())
    assert parsed.text == "See attached."
    assert [(a.name, a.content_type) for a in parsed.attachments] == [
        ("Your parcel.eml", "message/rfc822")
    ]


def test_message_ids_missing_or_bare():
    """A missing Message-ID gets a stable synthetic one; a bare one gets angle brackets."""
    missing = raw_email(None, "Where is my parcel?")
    first = parse_email(missing).message_id
    assert first.startswith("<synthetic.") and first.endswith("@triage.invalid>")
    assert parse_email(missing).message_id == first
    other = raw_email(None, "Where is my other parcel?")
    assert parse_email(other).message_id != first
    bare = raw_email(None, "x", headers={"Message-ID": "abc123@mta.example.org"})
    assert parse_email(bare).message_id == "<abc123@mta.example.org>"


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not_an_email"),
        (b"just some notes\nwithout any headers\n", "not_an_email"),
        (b"\x00\x01\x02binary", "not_an_email"),
        (b"Subject: hi\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n", "no_sender"),
        (raw_email("<e1@example.org>", "   \n\n", subject=""), "no_text"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(raw, reason):
    """Mail with no sender or no content at all is rejected with a reason."""
    with pytest.raises(EmailParseError) as info:
        parse_email(raw)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (raw_email("<c1@example.org>", "   \n\n", subject="Refund please"), "(no text)"),
        (
            raw_email("<c2@example.org>", "\nOn Mon, Support wrote:\n> everything quoted\n"),
            "(the email only quotes other text)\nOn Mon, Support wrote:\n> everything quoted",
        ),
        (
            message(
                "<c3@example.org>", None, attachments=[("a.pdf", "application/pdf", b"%PDF")]
            ).as_bytes(),
            "(no text; attachments: a.pdf)",
        ),
    ],
)
def test_a_sender_with_any_content_gets_a_turn_saying_what_was_there(raw, text):
    """Subject only, quotes only or attachments only: a turn that says so, never a reject."""
    assert parse_email(raw).text == text


def test_an_email_over_the_byte_limit_is_too_large():
    """An email over TRIAGE_MAX_EMAIL_BYTES is rejected as too_large, naming the limit."""
    raw = raw_email("<huge@example.org>", "x" * 5000)
    with pytest.raises(EmailParseError) as info:
        parse_email(raw, ParseLimits(max_bytes=4096))
    assert info.value.reason == "too_large" and "4096" in str(info.value)
