"""Robot mail: which emails must never get an automatic question (pure functions).

Answering an auto-reply, a bounce or a mailing list is how mail loops start (RFC 3834). The
flags are computed from headers only; a flagged email is still enqueued and classified, the
worker just never asks it a question.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from common.contract import FLAG_AUTO_SUBMITTED, FLAG_BOUNCE, FLAG_BULK, FLAG_NO_REPLY, Flag

AUTO_SUBMITTED = cast(Flag, FLAG_AUTO_SUBMITTED)
BOUNCE = cast(Flag, FLAG_BOUNCE)
BULK = cast(Flag, FLAG_BULK)
NO_REPLY = cast(Flag, FLAG_NO_REPLY)

HeaderGetter = Callable[[str], str]

_NO_REPLY_LOCAL = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply)(?:$|[-_.+0-9])", re.I
)
_BOUNCE_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster)$", re.I)
_AUTO_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[- ]?(?:reply|response|antwort)|out of (?:the )?office|abwesenheitsnotiz"
    r"|réponse automatique|respuesta automática)\b",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"^(?:undeliverable|undelivered mail|delivery status notification|mail delivery failed"
    r"|returned mail|failure notice)\b",
    re.I,
)


def local_part(address: str) -> str:
    return address.rsplit("@", 1)[0] if "@" in address else address


def robot_flags(header: HeaderGetter, content_type: str, sender: str, recipient: str) -> list[Flag]:
    """Flags from the headers (`header(name)` is "" when absent), the sender and reply address.

    - auto_submitted: `Auto-Submitted` other than "no" (RFC 3834), `X-Autoreply`,
      `X-Autorespond`, `Precedence: auto_reply`, or an "Automatic reply:"/"Out of Office" subject.
    - bounce: a `multipart/report` delivery status, a MAILER-DAEMON/postmaster sender, an empty
      `Return-Path: <>`, or an "Undeliverable"/"Delivery Status Notification" subject.
    - bulk: `Precedence: bulk/list/junk`, `List-Id`, `List-Unsubscribe` or `X-Mailing-List`.
    - no_reply: the address a reply would go to (Reply-To, else From) is no-reply@, noreply@,
      do-not-reply@…, so a web form's noreply@ sender with a customer's Reply-To is not flagged.
    """
    flags: list[Flag] = []
    subject = header("Subject").strip()
    auto = header("Auto-Submitted").strip().lower()
    precedence = header("Precedence").strip().lower()
    if (
        (auto and not auto.startswith("no"))
        or header("X-Autoreply")
        or header("X-Autorespond")
        or precedence == "auto_reply"
        or _AUTO_SUBJECT.match(subject)
    ):
        flags.append(AUTO_SUBMITTED)
    if (
        (content_type == "multipart/report" and "delivery-status" in header("Content-Type").lower())
        or _BOUNCE_LOCAL.match(local_part(sender))
        or header("Return-Path").strip() == "<>"
        or _BOUNCE_SUBJECT.match(subject)
    ):
        flags.append(BOUNCE)
    if (
        precedence in ("bulk", "list", "junk")
        or header("List-Id")
        or header("List-Unsubscribe")
        or header("X-Mailing-List")
    ):
        flags.append(BULK)
    if _NO_REPLY_LOCAL.match(local_part(recipient)):
        flags.append(NO_REPLY)
    return flags
