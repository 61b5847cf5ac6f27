"""The `messages` array: turning customer emails into user turns, kept valid for the API.

Pure functions. The stored array always alternates user/assistant and ends with an assistant turn
between decisions; all pending emails of a thread become *one* user turn (consecutive customer
emails are merged, as the API would merge them anyway).
"""

from __future__ import annotations

from typing import Any

from common.contract import EmailPayload
from common.errors import CorruptThread

Turn = dict[str, Any]

TRUNCATION_MARKER = "\n[… message truncated: {omitted} characters omitted]"
#: Longest Subject line in a turn (every turn is resent on every call of its thread).
MAX_SUBJECT_CHARS = 300


def bound_text(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, saying explicitly that it was cut."""
    if len(text) <= limit:
        return text
    omitted = len(text) - limit
    return text[:limit] + TRUNCATION_MARKER.format(omitted=omitted)


def email_block(email: EmailPayload, max_chars: int) -> dict[str, str]:
    """One email as a text block: the subject line gives the model context, then the body.

    The Subject is bounded here too (producers bound it at ingestion, but an inbox entry from
    an older producer or another pipeline might not be): one line, `MAX_SUBJECT_CHARS` at most.
    """
    body = bound_text(email.text.strip(), max_chars)
    subject = " ".join(email.subject[: MAX_SUBJECT_CHARS * 2].split())
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[:MAX_SUBJECT_CHARS].rstrip() + " […]"
    text = f"Subject: {subject}\n\n{body}" if subject else body
    return {"type": "text", "text": text}


def user_turn(emails: list[EmailPayload], max_chars: int) -> Turn:
    """All pending emails of a thread, oldest first, as one user turn."""
    if not emails:
        raise ValueError("a user turn needs at least one email")
    return {"role": "user", "content": [email_block(email, max_chars) for email in emails]}


def assistant_turn(text: str) -> Turn:
    """The model's reply exactly as returned, so the next call replays what it really said."""
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def check_alternation(messages: list[Turn]) -> None:
    """Raise `CorruptThread` if the array is not user-first and strictly alternating (our storage
    invariant)."""
    for index, turn in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        role = turn.get("role") if isinstance(turn, dict) else None
        if role != expected:
            raise CorruptThread(f"turn {index} has role {role!r}, expected {expected!r}")
