"""JSONL input for pipelines that already hold parsed mail: one JSON object per line.

The record is validated with pydantic (unknown fields are an error, so a typo is not silently
lost), then goes through the same text pipeline as a raw email: HTML to text, quotes and
signatures removed, whitespace normalised, bounded (Subject included); robot flags from `headers`
and the addresses. A record with a subject or attachments but no text becomes a turn that says
so, as for raw email.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.contract import Attachment, Flag
from producers import headers as h
from producers.flags import robot_flags
from producers.parse import (
    MAX_ATTACHMENTS_LISTED,
    REASON_NO_SENDER,
    REASON_NO_TEXT,
    EmailParseError,
    ParsedEmail,
    ParseLimits,
    bound_subject,
    describe_content,
    synthetic_message_id,
)
from producers.text import bound_text, html_to_text, normalise_whitespace, strip_quoted

REASON_INVALID_JSONL = "invalid_jsonl"


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [item for item in value.replace(",", " ").split() if item]
    return value


class JsonlEmail(BaseModel):
    """The JSONL schema (see the README). `from`, `subject` and `text` or `html` are required."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    message_id: str | None = None
    from_: str = Field(alias="from", min_length=1)
    subject: str
    text: str | None = None
    html: str | None = None
    reply_to: str | None = None
    to: list[str] = Field(default_factory=list)
    date: str | None = None
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    flags: list[Flag] = Field(default_factory=list)

    @field_validator("to", "references", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return _as_list(value)

    @model_validator(mode="after")
    def _text_or_html(self) -> JsonlEmail:
        if self.text is None and self.html is None:
            raise ValueError("field required: text (or html)")
        return self


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "record"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where != "record" else message)
    return "; ".join(problems)


def parse_record(line: bytes | str, limits: ParseLimits | None = None) -> ParsedEmail:
    """One JSONL line -> a parsed email, or `EmailParseError` (`invalid_jsonl`, `no_text`, …)."""
    limits = limits or ParseLimits()
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmailParseError(REASON_INVALID_JSONL, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EmailParseError(REASON_INVALID_JSONL, "a line must be a JSON object")
    try:
        record = JsonlEmail.model_validate(data)
    except ValidationError as exc:
        raise EmailParseError(REASON_INVALID_JSONL, _describe(exc)) from None
    from_addr = h.sender_address([record.from_])
    if not from_addr:
        raise EmailParseError(REASON_NO_SENDER, "field from: no usable address")
    if record.text is not None and record.text.strip():
        raw_text = record.text
    else:
        raw_text = html_to_text((record.html or "")[: limits.max_html_chars])
    notes: list[str] = []
    subject, long_subject = bound_subject(record.subject, limits.max_subject_chars)
    if long_subject:
        notes.append("subject truncated")
    references = h.message_ids(" ".join(record.references))  # one cap over every item
    in_reply_to = h.message_ids(record.in_reply_to, 1)
    reply = bool(in_reply_to or references)
    attachments = record.attachments[:MAX_ATTACHMENTS_LISTED]
    text = bound_text(strip_quoted(raw_text), limits.max_text_chars)
    if not text and not (subject or attachments or normalise_whitespace(raw_text)):
        raise EmailParseError(REASON_NO_TEXT, "the email has no text, subject or attachment")
    text = describe_content(
        text,
        attachments=attachments,
        had_text=bool(normalise_whitespace(raw_text)),
        reply=reply,
        notes=[],
    )
    reply_to = h.sender_address([record.reply_to]) or None if record.reply_to else None
    to = [addr for addr in (h.first_address(item)[1] for item in record.to) if addr]
    if len(to) > limits.max_addresses:
        to = to[: limits.max_addresses]
        notes.append(f"to: only the first {limits.max_addresses} addresses read")
    headers = {name.lower(): value for name, value in record.headers.items()}
    flags = robot_flags(
        lambda name: h.clean(headers.get(name.lower(), ""))[:1000],
        headers.get("content-type", "text/plain").split(";")[0].strip().lower(),
        from_addr,
        reply_to or from_addr,
    )
    message_id = h.message_id(record.message_id) or synthetic_message_id(
        from_addr, record.date or "", subject, ",".join(to), text
    )
    return ParsedEmail(
        message_id=message_id,
        from_addr=from_addr,
        reply_to=reply_to or None,
        subject=subject,
        date=record.date,
        text=text,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=references,
        to=to,
        attachments=attachments,
        flags=sorted(set(flags) | set(record.flags)),
        notes=notes,
    )
