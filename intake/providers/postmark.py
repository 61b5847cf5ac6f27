"""Postmark inbound: the JSON document Postmark POSTs for each email; credentials as basic auth
in the webhook URL (https://user:password@host/v1/inbound/postmark).

With "Include raw email content in JSON payload" on, `RawEmail` is the message as received and is
used as it is; otherwise the fields become a record in our schema. The Message-ID comes from the
`Headers` list: Postmark's own `MessageID` is its id, not the email's. Postmark stops retrying on
a 403, so an email we dead-lettered is answered 403.
"""

from __future__ import annotations

import json
from email.utils import formataddr
from typing import Any

from intake.providers import header_map, raw_item, record_item, threading_fields, unreadable
from producers.sources import Item

SOURCE = "postmark"
REJECTED_STATUS = 403


def _address(full: Any, plain: Any) -> str | None:
    """From as one header value; the (DMARC-checked) address stays the address whatever the
    display name holds (`formataddr` quotes and escapes it)."""
    if isinstance(full, dict) and full.get("Email"):
        name = " ".join(str(full.get("Name") or "").split())
        return formataddr((name, str(full["Email"]))) if name else str(full["Email"])
    return str(plain) if plain else None


def to_item(body: bytes) -> Item:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return unreadable(SOURCE, f"postmark: not JSON: {exc}", body)
    if not isinstance(document, dict):
        return unreadable(SOURCE, "postmark: not a JSON object", body)
    raw = document.get("RawEmail")
    if isinstance(raw, str) and raw.strip():
        return raw_item(SOURCE, raw.encode("utf-8", "surrogateescape"))
    pairs = document.get("Headers") or []
    headers = header_map(
        (str(h.get("Name", "")), str(h.get("Value", ""))) for h in pairs if isinstance(h, dict)
    )
    to = [
        str(entry["Email"])
        for entry in (document.get("ToFull") or [])
        if isinstance(entry, dict) and entry.get("Email")
    ]
    record: dict[str, Any] = {
        **threading_fields(headers),
        "from": _address(document.get("FromFull"), document.get("From")),
        "subject": str(document.get("Subject") or ""),
        "text": document.get("TextBody") or "",
        "html": document.get("HtmlBody") or None,
        "to": to or document.get("To"),
        "reply_to": document.get("ReplyTo") or headers.get("reply-to"),
        "date": document.get("Date") or headers.get("date"),
        "headers": headers,
        "attachments": [
            {
                "name": str(a.get("Name") or ""),
                "content_type": str(a.get("ContentType") or "application/octet-stream"),
                "size": int(a.get("ContentLength") or 0),
            }
            for a in (document.get("Attachments") or [])
            if isinstance(a, dict)
        ],
    }
    return record_item(SOURCE, record)
