"""Delivery status notifications (RFC 3464 bounces): which email bounced and why (pure).

A bounce of one of our own replies must mark its thread (`reply_bounced`, with the status code)
instead of being triaged as a customer email. This module only reads the report: the status
code ("5.1.1"), the action and the diagnostic from the `message/delivery-status` part, and the
Message-IDs of the returned email (its `message/rfc822` or `text/rfc822-headers` part, or ids
quoted in the text by MTAs that send no report). Whether an id is ours is the submitter's
question (it looks the id up in the message index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from producers.headers import Headers, clean, message_id, split_headers
from producers.mime import Leaf, Structure

#: Bytes of a report part read at most.
MAX_REPORT_BYTES = 64 * 1024
#: Our reply Message-IDs: `<triage.{thread_id}.{version}@{support domain}>`.
OUR_REPLY_ID = re.compile(r"<triage\.[^<>\s]{1,300}>")

_STATUS = re.compile(rb"^Status:[ \t]*([245]\.\d{1,3}\.\d{1,3})", re.MULTILINE | re.IGNORECASE)
_ACTION = re.compile(rb"^Action:[ \t]*([\w-]{1,20})", re.MULTILINE | re.IGNORECASE)
_DIAGNOSTIC = re.compile(rb"^Diagnostic-Code:[ \t]*([^\r\n]{1,300})", re.MULTILINE | re.IGNORECASE)
_STATUS_IN_TEXT = re.compile(r"\b([45]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Bounce:
    """What a delivery report says about the email it returns."""

    status: str  # enhanced status code, e.g. "5.1.1"; "" when the report gives none
    action: str = ""  # "failed", "delayed", ...
    diagnostic: str = ""
    original_ids: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A delivery that failed for good: not a delay warning (4.x.x, "delayed") nor a
        success notice ("delivered", "relayed", "expanded")."""
        if self.action in ("delayed", "delivered", "relayed", "expanded"):
            return False
        return not self.status.startswith(("2", "4"))


def read_bounce(headers: Headers, structure: Structure, text: str) -> Bounce:
    """The report's status and the ids of the returned email (ours first)."""
    status = action = diagnostic = ""
    ids: list[str] = []
    for leaf in structure.leaves:
        if leaf.content_type in ("message/delivery-status", "message/global-delivery-status"):
            report = leaf.decoded(MAX_REPORT_BYTES)
            status = status or _first(_STATUS, report)
            action = action or _first(_ACTION, report)
            diagnostic = diagnostic or _first(_DIAGNOSTIC, report)
        elif leaf.content_type in ("message/rfc822", "text/rfc822-headers", "message/global"):
            ids.extend(_returned_ids(leaf))
    if not status:
        found = _STATUS_IN_TEXT.search(text[:MAX_REPORT_BYTES])
        status = found.group(1) if found else ""
    for value in (headers.get("in-reply-to"), headers.get("references"), text[:MAX_REPORT_BYTES]):
        ids.extend(OUR_REPLY_ID.findall(value or ""))
    ours = [i for i in ids if OUR_REPLY_ID.fullmatch(i)]
    ordered = list(dict.fromkeys([*ours, *ids]))
    return Bounce(status, action.lower(), clean(diagnostic), ordered[:20])


def _first(pattern: re.Pattern[bytes], data: bytes) -> str:
    match = pattern.search(data)
    return match.group(1).decode("ascii", "replace") if match else ""


def _returned_ids(leaf: Leaf) -> list[str]:
    """Message-ID of a returned email (its headers only), and our ids quoted anywhere in it."""
    head = leaf.decoded(MAX_REPORT_BYTES)
    try:
        returned = split_headers(head, MAX_REPORT_BYTES)
    except ValueError:
        returned = Headers()
    ids = [i for i in [message_id(returned.get("message-id"))] if i]
    ids.extend(OUR_REPLY_ID.findall(head.decode("utf-8", "replace")))
    return ids
