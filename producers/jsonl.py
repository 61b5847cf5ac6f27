"""JSONL input for pipelines that already hold parsed mail: one JSON object per line.

The record is validated with pydantic (unknown fields are an error, so a typo is not silently
lost), then goes through the same text pipeline as a raw email: HTML to text, quotes and
signatures removed, whitespace normalised, bounded; robot flags from `headers` and the addresses.
"""

from __future__ import annotations

import json
from email.utils import parseaddr
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.contract import Attachment, Flag
from producers.flags import robot_flags
from producers.parse import (
    REASON_ATTACHMENT_ONLY,
    REASON_NO_SENDER,
    REASON_NO_TEXT,
    EmailParseError,
    ParsedEmail,
    ParseLimits,
    message_ids,
    normalise_message_id,
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
    from_addr = parseaddr(record.from_)[1]
    if not from_addr:
        raise EmailParseError(REASON_NO_SENDER, "field from: no usable address")
    if record.text is not None and record.text.strip():
        raw_text = record.text
    else:
        raw_text = html_to_text((record.html or "")[: limits.max_html_chars])
    text = bound_text(strip_quoted(raw_text), limits.max_text_chars)
    if not text:
        if record.attachments:
            raise EmailParseError(REASON_ATTACHMENT_ONLY, "no text, only attachments")
        raise EmailParseError(REASON_NO_TEXT, "the email has no text after removing quotes")
    reply_to = parseaddr(record.reply_to)[1] if record.reply_to else None
    to = [addr for addr in (parseaddr(item)[1] for item in record.to) if addr]
    headers = {name.lower(): value for name, value in record.headers.items()}
    flags = robot_flags(
        lambda name: headers.get(name.lower(), ""),
        headers.get("content-type", "text/plain").split(";")[0].strip().lower(),
        from_addr,
        reply_to or from_addr,
    )
    references = [ref for item in record.references for ref in message_ids(item)]
    in_reply_to = message_ids(record.in_reply_to)
    subject = normalise_whitespace(record.subject)
    message_id = normalise_message_id(record.message_id) or synthetic_message_id(
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
        attachments=record.attachments[:50],
        flags=sorted(set(flags) | set(record.flags)),
    )
