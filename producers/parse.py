"""RFC 5322 bytes -> a normalised email (standard `email` package, modern policy).

Minimal but safe: headers decoded (RFC 2047), text/plain preferred, HTML-only mail reduced to text
with the standard HTML parser, quoted history dropped, undecodable charsets replaced rather than
crashing. A stable synthetic Message-ID is made when the header is missing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

MESSAGE_ID = re.compile(r"<[^<>\s]+>")
QUOTE_HEADER = re.compile(
    r"^\s*(On .{0,200}wrote:|Am .{0,200}schrieb .{0,80}:|Le .{0,200}a écrit\s*:)\s*$"
)
SIGNATURE = re.compile(r"^-- ?$")


class EmailParseError(ValueError):
    """The bytes are not a usable email; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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


class _TextExtractor(HTMLParser):
    """Collects visible text; block elements become line breaks, script/style are skipped."""

    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return "".join(extractor.parts)


def strip_quoted(text: str) -> str:
    """Drop quoted history (`>` lines, `On … wrote:` and below) and the signature block."""
    kept: list[str] = []
    for line in text.splitlines():
        if QUOTE_HEADER.match(line) or SIGNATURE.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return normalise_whitespace("\n".join(kept))


def normalise_whitespace(text: str) -> str:
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _ids(value: str | None) -> list[str]:
    return MESSAGE_ID.findall(value or "")


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _part_text(part)  # type: ignore[arg-type]
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return strip_quoted(text)


def synthetic_message_id(raw: bytes) -> str:
    """Stable across runs, so a header-less email is still deduplicated."""
    return f"<synthetic.{hashlib.sha256(raw).hexdigest()[:32]}@triage.invalid>"


def parse_email(raw: bytes) -> ParsedEmail:
    if not raw.strip():
        raise EmailParseError("empty", "the input is empty")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    ids = _ids(str(message.get("Message-ID", "")))
    from_addr = parseaddr(str(message.get("From", "")))[1]
    if not from_addr:
        raise EmailParseError("no_sender", "the email has no usable From address")
    reply_to = [addr for _, addr in getaddresses([str(message.get("Reply-To", ""))]) if addr]
    text = body_text(message)
    subject = " ".join(str(message.get("Subject", "")).split())
    if not text and not subject:
        raise EmailParseError("no_text", "the email has no usable text")
    in_reply_to = _ids(str(message.get("In-Reply-To", "")))
    return ParsedEmail(
        message_id=ids[0] if ids else synthetic_message_id(raw),
        from_addr=from_addr,
        reply_to=reply_to[0] if reply_to else None,
        subject=subject,
        date=str(message["Date"]) if message.get("Date") else None,
        text=text or subject,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_ids(str(message.get("References", ""))),
    )
