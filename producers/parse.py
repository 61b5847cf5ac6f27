"""RFC 5322 bytes -> a normalised email (standard `email` package, modern policy).

Headers are decoded (RFC 2047, RFC 2231 file names); the body is text/plain when there is one,
else HTML converted to text; quoted history and signatures are removed; charsets that are
missing, wrong or unknown fall back to UTF-8, then cp1252, then replacement characters, never an
exception. Attachments are listed by name, type and size only. A stable synthetic Message-ID is
made when the header is missing. Anything unusable raises `EmailParseError` with a short reason.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

from common.contract import Attachment, Flag
from producers.flags import robot_flags
from producers.text import bound_text, html_to_text, normalise_whitespace, strip_quoted

__all__ = [
    "EmailParseError",
    "ParseLimits",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "strip_quoted",
    "synthetic_message_id",
]

MESSAGE_ID = re.compile(r"<[^<>\s]+>")
#: Headers of which at least one must be present for the bytes to count as an email.
EMAIL_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Received", "MIME-Version")
MAX_ATTACHMENTS_LISTED = 50
REASON_EMPTY = "empty"
REASON_NOT_AN_EMAIL = "not_an_email"
REASON_NO_SENDER = "no_sender"
REASON_NO_TEXT = "no_text"
REASON_ATTACHMENT_ONLY = "attachment_only"
REASON_TOO_LARGE = "too_large"


class EmailParseError(ValueError):
    """The bytes are not a usable email; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ParseLimits:
    """Ingestion bounds (from `TRIAGE_MAX_EMAIL_BYTES` / `TRIAGE_MAX_EMAIL_TEXT_CHARS`)."""

    max_bytes: int = 25 * 1024 * 1024
    max_text_chars: int = 50_000

    @property
    def max_html_chars(self) -> int:
        """HTML beyond this is not converted (markup is mostly not text)."""
        return self.max_text_chars * 20


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


def message_ids(value: str | None) -> list[str]:
    return MESSAGE_ID.findall(value or "")


def normalise_message_id(value: str | None) -> str | None:
    """`<id>` as written, or a bare `id@host` wrapped in angle brackets; None if there is none."""
    ids = message_ids(value)
    if ids:
        return str(ids[0])
    bare = (value or "").strip().split()
    return f"<{bare[0].strip('<>')}>" if bare and bare[0].strip("<>") else None


def synthetic_message_id(*parts: str | bytes) -> str:
    """Stable across runs and processes, so an email without a Message-ID is still deduplicated."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "replace") if isinstance(part, str) else part)
        digest.update(b"\0")
    return f"<synthetic.{digest.hexdigest()[:32]}@triage.invalid>"


def header(message: Message, name: str) -> str:
    """A decoded header value, "" when absent; a malformed header never raises."""
    try:
        value = message.get(name)
    except Exception:  # a header the modern policy cannot parse: fall back to the raw text
        raw = dict(message.raw_items()).get(name) if hasattr(message, "raw_items") else None
        value = raw
    return " ".join(str(value).split()) if value is not None else ""


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


def part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_text(payload, part.get_content_charset())


def _walk_leaves(part: Message) -> list[Message]:
    """Leaf parts in order; an attached email (message/rfc822) is one leaf, not opened."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        return [part]
    leaves: list[Message] = []
    for child in part.get_payload():
        if isinstance(child, Message):
            leaves.extend(_walk_leaves(child))
    return leaves


def _attachment(part: Message) -> Attachment:
    name = part.get_filename() or ""
    if not name and part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            name = header(inner[0], "Subject") + ".eml"
    if part.get_content_type() == "message/rfc822":
        size = len(part.as_bytes()) if isinstance(part, EmailMessage) else 0
    else:
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
    return Attachment(name=name[:255], content_type=part.get_content_type(), size=size)


def body_and_attachments(message: EmailMessage) -> tuple[Message | None, list[Attachment]]:
    """The body part (text/plain preferred, else text/html) and every other part's metadata."""
    body = message.get_body(preferencelist=("plain", "html"))
    attachments: list[Attachment] = []
    for part in _walk_leaves(message):
        if part is body:
            continue
        is_text = part.get_content_type() in ("text/plain", "text/html")
        if is_text and not part.get_filename() and part.get_content_disposition() != "attachment":
            continue  # the other alternative of the body, or an inline text fragment
        if len(attachments) < MAX_ATTACHMENTS_LISTED:
            attachments.append(_attachment(part))
    return body, attachments


def body_text(body: Message | None, limits: ParseLimits) -> str:
    if body is None:
        return ""
    text = part_text(body)
    if body.get_content_subtype() == "html":
        text = html_to_text(text[: limits.max_html_chars])
    return bound_text(strip_quoted(text), limits.max_text_chars)


def _addresses(message: Message, name: str) -> list[str]:
    value = header(message, name)
    return [addr for _, addr in getaddresses([value]) if addr] if value else []


def _looks_like_email(raw: bytes, message: Message) -> bool:
    if b"\0" in raw[:4096]:
        return False
    return any(message.get(name) is not None for name in EMAIL_HEADERS)


def parse_email(raw: bytes, limits: ParseLimits | None = None) -> ParsedEmail:
    limits = limits or ParseLimits()
    if not raw.strip():
        raise EmailParseError(REASON_EMPTY, "the input is empty")
    if len(raw) > limits.max_bytes:
        raise EmailParseError(
            REASON_TOO_LARGE, f"the email is {len(raw)} bytes, over the {limits.max_bytes} limit"
        )
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    if not _looks_like_email(raw, message):
        raise EmailParseError(REASON_NOT_AN_EMAIL, "no email headers (From, Subject, Date, …)")
    from_addr = parseaddr(header(message, "From"))[1]
    if not from_addr:
        raise EmailParseError(REASON_NO_SENDER, "the email has no usable From address")
    reply_to = _addresses(message, "Reply-To")
    subject = header(message, "Subject")
    date = header(message, "Date") or None
    to = _addresses(message, "To")
    body, attachments = body_and_attachments(message)
    text = body_text(body, limits)
    if not text:
        if attachments:
            names = ", ".join(a.name or a.content_type for a in attachments[:5])
            raise EmailParseError(REASON_ATTACHMENT_ONLY, f"no text, only attachments: {names}")
        raise EmailParseError(REASON_NO_TEXT, "the email has no text after removing quotes")
    message_id = normalise_message_id(header(message, "Message-ID")) or synthetic_message_id(
        from_addr, date or "", subject, ",".join(to), text
    )
    in_reply_to = message_ids(header(message, "In-Reply-To"))
    recipient = reply_to[0] if reply_to else from_addr

    def get(name: str) -> str:
        return header(message, name)

    return ParsedEmail(
        message_id=message_id,
        from_addr=from_addr,
        reply_to=reply_to[0] if reply_to else None,
        subject=normalise_whitespace(subject),
        date=date,
        text=text,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=message_ids(header(message, "References")),
        to=to,
        attachments=attachments,
        flags=robot_flags(get, message.get_content_type(), from_addr, recipient),
    )
