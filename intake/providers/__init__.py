"""Provider webhooks: each module checks the provider's credentials and turns its documented
request shape into one item for the producers (raw MIME whenever the provider sends it, else a
record in our JSON schema), never parsing mail itself.

- `mailgun`: a route's forward() to a URL ending in `mime` (`body-mime`), or the parsed form;
  HMAC-SHA256 of timestamp + token with the signing key, stale timestamps refused.
- `sendgrid`: Inbound Parse with "POST the raw, full MIME message" (`email`), or the parsed form;
  the signed-webhook ECDSA signature (security policy) and/or basic auth in the URL.
- `postmark`: the inbound JSON (`RawEmail` when included, else its fields); basic auth.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from intake.forms import Form
from producers.sources import Item


class Unauthorized(Exception):
    """Credentials missing or wrong (401); the message says why, never what was sent."""


def record_item(source: str, record: dict[str, Any]) -> Item:
    """A record in our JSON schema (`producers.jsonl`), empty fields left out."""
    clean = {key: value for key, value in record.items() if value not in (None, "", [], {})}
    data = json.dumps(clean, ensure_ascii=False).encode("utf-8")
    return Item(source, "", "jsonl", data, len(data))


def raw_item(source: str, raw: bytes) -> Item:
    return Item(source, "", "email", raw, len(raw))


def unreadable(source: str, error: str, body: bytes) -> Item:
    """A payload that is not the provider's shape: dead-lettered (`unreadable`) with its head."""
    return Item(source, "", "unreadable", body, len(body), error)


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header name -> first value, names lower-cased (what the schema's `headers` holds)."""
    found: dict[str, str] = {}
    for name, value in pairs:
        found.setdefault(str(name).strip().lower(), str(value))
    return found


def threading_fields(headers: Mapping[str, str]) -> dict[str, Any]:
    """The schema fields a header map supplies: ids, threading, date, reply-to."""
    return {
        "message_id": headers.get("message-id"),
        "in_reply_to": headers.get("in-reply-to"),
        "references": headers.get("references"),
        "date": headers.get("date"),
        "reply_to": headers.get("reply-to"),
    }


def form_record(
    form: Form, headers: Mapping[str, str], *, text: str, html: str, to: str
) -> dict[str, Any]:
    """A provider's parsed message (a form) as a schema record; `text`, `html` and `to` name
    the provider's own fields, which differ; form fields win over the header block."""
    return {
        **threading_fields(headers),
        "from": form.text("from") or headers.get("from"),
        "subject": form.text("subject", headers.get("subject", "")),
        "text": form.text(text),
        "html": form.text(html) or None,
        "to": form.text(to) or headers.get("to"),
        "headers": dict(headers),
        "attachments": [
            {"name": f.filename, "content_type": f.content_type, "size": f.size} for f in form.files
        ],
    }
