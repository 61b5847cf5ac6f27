"""Email threading for our replies (pure): subject, Message-ID and References chain."""

from __future__ import annotations

import re
import secrets

from worker.reply.send_guard import plain_one_paragraph, scan

REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
MAX_REFERENCES = 20
MAX_SUBJECT_CHARS = 150
GENERIC_SUBJECT = "Re: your support request"


def reply_subject(subject: str) -> str:
    """`Re: <original>` without a `Re: Re:` pile-up, as one bounded line of plain text.

    The subject is the customer's (or an attacker's) text mailed from our address, so it passes
    the send guard like a question does; if it fails, the reply says `Re: your support request`
    (threading rests on In-Reply-To/References, not on the subject). The guard sees the line as
    sent, after the cut: cutting can make what it passed ("evil.com.pdf" cut after "com"). A
    line with `=?` is refused too: the email library decodes RFC 2047 encoded words when the
    header is set, so a subject that was encoded twice would be sent as what the guard never saw.
    """
    flat = plain_one_paragraph(subject[: MAX_SUBJECT_CHARS * 8])
    base = REPLY_PREFIX.sub("", flat).strip()[:MAX_SUBJECT_CHARS].rstrip()
    line = f"Re: {base}"
    if not base or "=?" in line or scan(line) is not None:
        return GENERIC_SUBJECT
    return line


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(" >") or "localhost"


def reply_message_id(thread_id: str, version: int, support_address: str, tag: str) -> str:
    """`<triage.{thread}.{version}.{tag}@{our domain}>`, chosen once when the question is planned
    and committed with it, so a redelivered reply task always names the same email.

    A stranger who knows a thread's first Message-ID can compute its thread id and guess the
    version, but not the random `tag` (`new_reply_tag`): only someone who received the question
    can cite it, so a forged delivery report cannot mark another customer's thread bounced.
    """
    return f"<triage.{thread_id}.{version}.{tag}@{domain_of(support_address)}>"


def new_reply_tag() -> str:
    """64 random bits for a reply's Message-ID."""
    return secrets.token_hex(8)


def references_chain(existing: list[str], new_ids: list[str]) -> list[str]:
    """Thread message ids, oldest first, no repeats, bounded (RFC 5322 allows trimming)."""
    chain: list[str] = []
    for message_id in [*existing, *new_ids]:
        if message_id not in chain:
            chain.append(message_id)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return chain
