"""RFC 5322 bytes -> a normalised email, with every size bounded before it is read.

Headers are split and decoded by `producers.headers` (not the stdlib's super-linear header
parser) and the MIME structure is walked by `producers.mime`, both with explicit limits
(`ParseLimits`): a header block over its limit is rejected (`headers_too_large`); encoded words,
addresses, MIME parts and nesting past their limits are not read, and what was cut is said (a
`[…]` marker in the Subject, a line at the end of the text). The body is the text/plain part(s),
else HTML converted to text, with quoted history and signatures removed; charsets that are
missing, wrong or unknown fall back to UTF-8, then cp1252, then replacement characters.

An email with a sender and any content becomes a turn: with no text left, the text says what
was there ("(no text; attachments: invoice.pdf)"); only mail with no sender or no content at all
raises `EmailParseError`. A delivery report is read into `ParsedEmail.bounce`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from common.contract import Attachment, Flag
from producers import headers as h
from producers.dsn import Bounce, read_bounce
from producers.flags import BOUNCE, robot_flags
from producers.mime import MAX_TEXT_BYTES, Leaf, Limits, Structure, walk
from producers.text import bound_text, html_to_text, normalise_whitespace, strip_quoted

__all__ = [
    "Bounce",
    "EmailParseError",
    "ParseLimits",
    "ParsedEmail",
    "describe_content",
    "html_to_text",
    "parse_email",
    "strip_quoted",
    "synthetic_message_id",
]

#: Headers of which at least one must be present for the bytes to count as an email.
EMAIL_HEADERS = ("from", "to", "subject", "date", "message-id", "received", "mime-version")
MAX_ATTACHMENTS_LISTED = 50
#: Attachment names spelled out in a turn without text.
MAX_ATTACHMENTS_NAMED = 10
REASON_EMPTY = "empty"
REASON_NOT_AN_EMAIL = "not_an_email"
REASON_NO_SENDER = "no_sender"
#: Kept for callers: no text, no subject and no attachment (nothing to decide on).
REASON_NO_TEXT = "no_text"
#: No longer raised (an email with attachments only becomes a turn); kept for old reports.
REASON_ATTACHMENT_ONLY = "attachment_only"
REASON_TOO_LARGE = "too_large"
REASON_HEADERS_TOO_LARGE = "headers_too_large"
SUBJECT_MARKER = " […]"
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|wg|tr|rv|vb|vl|enc|i|pd|doorst)\s*[:\uff1a]", re.I)
_MIME_LINE = re.compile(r"^(?:Content-[\w-]+\s*:|MIME-Version\s*:|--[^\s]{6,}\s*$)", re.I)


class EmailParseError(ValueError):
    """The bytes are not a usable email; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ParseLimits:
    """Ingestion bounds, from the `TRIAGE_MAX_*` settings (see `producers.enqueue.limits_from`)."""

    max_bytes: int = 25 * 1024 * 1024
    max_text_chars: int = 50_000
    max_header_bytes: int = 128 * 1024
    max_encoded_words: int = 200
    max_mime_parts: int = 500
    max_mime_depth: int = 20
    max_addresses: int = 100
    max_subject_chars: int = 300

    @property
    def max_html_chars(self) -> int:
        """HTML beyond this is not converted (markup is mostly not text)."""
        return self.max_text_chars * 20

    @property
    def max_scan_chars(self) -> int:
        """Text beyond this is not read: quote stripping costs up to ~2 s per MB of adversarial
        text (bench/README.md), and at most `max_text_chars` of it is kept anyway."""
        return self.max_text_chars * 10

    @property
    def mime(self) -> Limits:
        return Limits(
            self.max_header_bytes, self.max_encoded_words, self.max_mime_parts, self.max_mime_depth
        )


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str
    from_addr: str
    reply_to: str | None
    subject: str
    date: str | None
    text: str
    in_reply_to: str | None
    references: list[str] = field(default_factory=list)
    to: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    #: A delivery report (bounce) and what it says; None for any other email.
    bounce: Bounce | None = None
    #: What was cut or could not be read ("subject truncated", "to: 100 of more addresses", ...).
    notes: list[str] = field(default_factory=list)


def synthetic_message_id(*parts: str | bytes) -> str:
    """Stable across runs and processes, so an email without a Message-ID is still deduplicated."""
    return h.digest_id(*parts)


def bound_subject(subject: str, limit: int) -> tuple[str, bool]:
    subject = normalise_whitespace(subject).replace("\n", " ")
    if len(subject) <= limit:
        return subject, False
    return subject[:limit].rstrip() + SUBJECT_MARKER, True


def decode_text(payload: bytes, declared: str | None) -> str:
    """Declared charset, then UTF-8, then cp1252 (strictly); else replacement characters."""
    for charset in (declared, "utf-8", "cp1252"):
        if not charset:
            continue
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def describe_content(
    text: str, *, attachments: list[Attachment], had_text: bool, reply: bool, notes: list[str]
) -> str:
    """The turn for an email with no text left: what was there, in words.

    "(no text; attachments: invoice.pdf, screen.png)", "(no new text; the reply only quotes
    earlier messages)". `text` is returned unchanged when it is not empty.
    """
    if text:
        return text
    what = "no new text; only quoted earlier messages or a signature" if had_text else "no text"
    if had_text and not reply:
        what = "no text of its own; only quoted or signature lines"
    parts = [what]
    if attachments:
        names = [a.name or a.content_type for a in attachments[:MAX_ATTACHMENTS_NAMED]]
        more = len(attachments) - len(names)
        parts.append("attachments: " + ", ".join(names) + (f" and {more} more" if more else ""))
    parts.extend(notes)
    return "(" + "; ".join(parts) + ")"


def _has_quote(body: str) -> bool:
    return any(line.lstrip().startswith(">") for line in body.split("\n"))


def parse_email(raw: bytes, limits: ParseLimits | None = None) -> ParsedEmail:
    limits = limits or ParseLimits()
    if not raw.strip():
        raise EmailParseError(REASON_EMPTY, "the input is empty")
    if len(raw) > limits.max_bytes:
        raise EmailParseError(
            REASON_TOO_LARGE, f"the email is {len(raw)} bytes, over the {limits.max_bytes} limit"
        )
    if b"\0" in raw[:4096]:
        raise EmailParseError(REASON_NOT_AN_EMAIL, "binary data, not an email")
    try:
        top = h.split_headers(raw, limits.max_header_bytes)
    except h.HeaderLimitError as exc:
        raise EmailParseError(exc.reason, str(exc)) from None
    if not any(name in top for name in EMAIL_HEADERS):
        raise EmailParseError(REASON_NOT_AN_EMAIL, "no email headers (From, Subject, Date, …)")
    notes: list[str] = []
    from_addr = h.sender_address(top.get_all("from"))
    if not from_addr:
        raise EmailParseError(REASON_NO_SENDER, "the email has no usable From address")
    reply_to = h.sender_address(top.get_all("reply-to")) or None  # read as strictly as From
    to = _addresses(top, "to", limits.max_addresses, notes)
    subject, cut = h.decode_words(top.get("subject") or "", limits.max_encoded_words)
    subject, long_subject = bound_subject(subject, limits.max_subject_chars)
    if cut or long_subject:
        notes.append("subject truncated")
    date = h.clean(top.get("date") or "")[:200] or None
    structure = walk(raw, top, limits.mime)
    body, attachments, forwarded_leaf = _body_and_attachments(structure, limits)
    in_reply_to = h.message_ids(top.get("in-reply-to"), 1)
    references = h.message_ids(top.get("references"))
    reply = bool(in_reply_to or references)
    unread = max(0, len(body) - limits.max_scan_chars)
    if unread:
        body = body[: limits.max_scan_chars]
        notes.append(f"text beyond {limits.max_scan_chars} characters not read")
    text = strip_quoted(body, forwarded=bool(_FORWARD_SUBJECT.match(subject)))
    if structure.broken_multipart:
        notes.append("the MIME structure is broken; its raw body was read")
    if structure.skipped_parts:
        notes.append(f"{structure.skipped_parts} MIME parts not read")
    if structure.too_deep:
        notes.append(f"parts nested deeper than {limits.max_mime_depth} levels not read")
    if not text and forwarded_leaf is not None:
        text = _forwarded_text(raw, forwarded_leaf, limits)
    if not text and not reply and _has_quote(body):
        # not a reply to anything we sent: the quoted text is what the customer brings
        text = "(the email only quotes other text)\n" + normalise_whitespace(body)
    structure_notes = [n for n in notes if "MIME" in n or "nested" in n]
    if not text and not (subject or attachments or normalise_whitespace(body)):
        raise EmailParseError(REASON_NO_TEXT, "the email has no text, subject or attachment")
    if text:
        text = bound_text(text, limits.max_text_chars, unread)
        if structure.skipped_parts or structure.too_deep:
            text += "\n[… " + "; ".join(structure_notes) + "]"
    else:
        text = describe_content(
            "",
            attachments=attachments,
            had_text=bool(normalise_whitespace(body)),
            reply=reply,
            notes=structure_notes,
        )

    def get(name: str) -> str:
        return h.clean(top.get(name) or "")[:1000]

    recipient = reply_to or from_addr
    content_type = h.content_type(top)[0]
    flags = robot_flags(
        lambda name: subject if name.lower() == "subject" else get(name),
        content_type,
        from_addr,
        recipient,
    )
    message_id = h.message_id(top.get("message-id")) or synthetic_message_id(
        from_addr, date or "", subject, ",".join(to), text
    )
    bounce = None
    if BOUNCE in flags:  # a read receipt (disposition-notification report) is no bounce
        bounce = read_bounce(top, structure, body)
    return ParsedEmail(
        message_id=message_id,
        from_addr=from_addr,
        reply_to=reply_to,
        subject=subject,
        date=date,
        text=text,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=references,
        to=to,
        attachments=attachments,
        flags=flags,
        bounce=bounce,
        notes=notes,
    )


def _addresses(top: h.Headers, name: str, limit: int, notes: list[str]) -> list[str]:
    value = top.get(name)
    if not value:
        return []
    pairs, cut = h.addresses(value, limit)
    if cut:
        notes.append(f"{name}: only the first {limit} addresses read")
    return [address for _, address in pairs if address]


def _leaf_text(leaf: Leaf, limits: ParseLimits) -> str:
    text = decode_text(leaf.decoded(MAX_TEXT_BYTES), leaf.params.get("charset"))
    if leaf.content_type == "text/html":
        return html_to_text(text[: limits.max_html_chars])
    return text


def _attachment(raw: bytes, leaf: Leaf, limits: ParseLimits) -> Attachment:
    name = leaf.filename(limits.max_encoded_words)
    if not name and leaf.content_type == "message/rfc822":
        try:
            inner = h.split_headers(raw, limits.max_header_bytes, leaf.start, leaf.end)
        except h.HeaderLimitError:
            inner = h.Headers()
        subject = h.decode_words(inner.get("subject") or "", limits.max_encoded_words)[0]
        name = bound_subject(subject, 200)[0] + ".eml"
    return Attachment(name=name[:255], content_type=leaf.content_type[:255], size=leaf.size())


def _body_and_attachments(
    structure: Structure, limits: ParseLimits
) -> tuple[str, list[Attachment], Leaf | None]:
    """The body text (every inline text part, in order), the attachments, a forwarded email."""
    texts: list[str] = []
    attachments: list[Attachment] = []
    forwarded: Leaf | None = None
    for leaf in structure.leaves:
        if leaf.alternative:
            continue  # the other rendering of a body already chosen
        ctype = leaf.content_type
        if ctype in ("text/plain", "text/html") and not leaf.is_attachment:
            texts.append(_leaf_text(leaf, limits))
            continue
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            continue  # read by `producers.dsn`
        if ctype == "message/rfc822" and forwarded is None:
            forwarded = leaf
        if len(attachments) < MAX_ATTACHMENTS_LISTED:
            attachments.append(_attachment(leaf.raw, leaf, limits))
    body = "\n\n".join(t for t in texts if t.strip())
    if structure.broken_multipart:
        body = "\n".join(line for line in body.split("\n") if not _MIME_LINE.match(line))
    return body, attachments, forwarded


def _forwarded_text(raw: bytes, leaf: Leaf, limits: ParseLimits) -> str:
    """An attached email that is the whole content (a forward without comment), as text."""
    try:
        inner = h.split_headers(raw, limits.max_header_bytes, leaf.start, leaf.end)
    except h.HeaderLimitError:
        return ""
    depth_left = max(1, limits.max_mime_depth - leaf.depth)
    mime = Limits(
        limits.max_header_bytes, limits.max_encoded_words, limits.max_mime_parts, depth_left
    )
    structure = walk(raw, inner, mime, leaf.end)
    texts = [
        _leaf_text(x, limits)
        for x in structure.leaves
        if x.content_type in ("text/plain", "text/html")
        and not x.alternative
        and not x.is_attachment
    ]
    body = normalise_whitespace("\n\n".join(texts))
    sender = h.first_address(inner.get("from") or "")[1] or "unknown sender"
    subject = bound_subject(
        h.decode_words(inner.get("subject") or "", limits.max_encoded_words)[0], 200
    )[0]
    head = f'(forwarded email from {sender}, subject "{subject}"'
    return f"{head})\n\n{body}" if body else f"{head}, no text)"
