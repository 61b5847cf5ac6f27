"""Mailgun routes: forward("https://host/v1/inbound/mailgun/mime") posts the raw message
(`body-mime`); a URL not ending in `mime` gets the parsed form. Both are signed: `signature` is
the hex HMAC-SHA256 of `timestamp` + `token` under the HTTP webhook signing key. A timestamp more
than TRIAGE_WEBHOOK_MAX_AGE_SECONDS away from now is refused. A replayed request inside that
window can only repeat an email already taken, which dedupe answers as a duplicate.

Mailgun does not retry a 406 ("rejected"): an email we dead-lettered is answered 406.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import SecretStr

from intake.forms import Form
from intake.providers import Unauthorized, form_record, header_map, raw_item, record_item
from intake.providers import unreadable as unreadable_item
from producers.sources import Item

SOURCE = "mailgun"
REJECTED_STATUS = 406


def verify(form: Form, key: SecretStr, now: float, max_age: float) -> None:
    timestamp, token, signature = (form.text(name) for name in ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        raise Unauthorized("missing timestamp, token or signature")
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        raise Unauthorized("timestamp is not a number") from None
    if age > max_age:
        raise Unauthorized(f"stale timestamp ({age:.0f}s from now, over {max_age:g}s)")
    expected = hmac.new(
        key.get_secret_value().encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise Unauthorized("signature does not match")


def to_item(form: Form, body: bytes) -> Item:
    raw = form.fields.get("body-mime")
    if raw:
        return raw_item(SOURCE, raw)
    if "body-plain" not in form.fields and "from" not in form.fields:
        return unreadable_item(SOURCE, "mailgun: neither body-mime nor a parsed message", body)
    try:
        pairs = json.loads(form.text("message-headers", "[]"))
        headers = header_map((str(p[0]), str(p[1])) for p in pairs if len(p) == 2)
    except (ValueError, TypeError, IndexError):
        headers = {}
    record = form_record(form, headers, text="body-plain", html="body-html", to="To")
    if not record["message_id"]:
        record["message_id"] = form.text("Message-Id") or None
    return record_item(SOURCE, record)
