"""Email threading for our replies (pure): subject, Message-ID and References chain."""

from __future__ import annotations

import re

REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
MAX_REFERENCES = 20


def reply_subject(subject: str) -> str:
    """`Re: <original>` without a `Re: Re:` pile-up."""
    base = REPLY_PREFIX.sub("", subject).strip()
    return f"Re: {base}" if base else "Re: your support request"


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(" >") or "localhost"


def reply_message_id(thread_id: str, version: int, support_address: str) -> str:
    """Deterministic, so a redelivered commit or reply task always names the same email."""
    return f"<triage.{thread_id}.{version}@{domain_of(support_address)}>"


def references_chain(existing: list[str], new_ids: list[str]) -> list[str]:
    """Thread message ids, oldest first, no repeats, bounded (RFC 5322 allows trimming)."""
    chain: list[str] = []
    for message_id in [*existing, *new_ids]:
        if message_id not in chain:
            chain.append(message_id)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return chain
