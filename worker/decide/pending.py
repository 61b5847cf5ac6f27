"""A thread's inbox sorted into what to decide on (pure): new emails, dead letters, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from common.contract import EmailPayload
from common.deadletters import DeadLetterEntry
from common.settings import Settings
from worker.state.snapshot import Snapshot, Turn


@dataclass
class Pending:
    """The inbox split into emails to decide on and entries to dead-letter."""

    emails: list[EmailPayload] = field(default_factory=list)
    dead_letters: list[DeadLetterEntry] = field(default_factory=list)
    duplicates: int = 0

    @property
    def email_ids(self) -> list[str]:
        return [email.message_id for email in self.emails]


def partition(snapshot: Snapshot) -> Pending:
    """Valid new emails (oldest first), malformed entries, and already-applied duplicates."""
    pending = Pending()
    seen: set[str] = set()
    for item in snapshot.inbox:
        if item.applied:
            pending.duplicates += 1
            continue
        try:
            email = EmailPayload.model_validate_json(item.raw)
        except ValidationError as exc:
            error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            pending.dead_letters.append(DeadLetterEntry("invalid_payload", error, item.raw))
            continue
        if email.message_id in seen:
            pending.duplicates += 1
            continue
        seen.add(email.message_id)
        pending.emails.append(email)
    return pending


def no_question_reason(
    emails: list[EmailPayload], clarifications: int, settings: Settings
) -> str | None:
    """Why this decision may not ask the customer anything (None: it may)."""
    flags = sorted({flag for email in emails for flag in email.flags})
    if flags:
        return "robot:" + ",".join(flags)  # never auto-reply to robots: mail loops start there
    if clarifications >= settings.max_clarifications:
        return "clarification_limit"
    return None


def customer_text(messages: list[Turn]) -> str:
    """Everything the customer wrote in the thread (what a question may quote back)."""
    parts: list[str] = []
    for turn in messages:
        if turn["role"] != "user":
            continue
        content = turn["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(str(block.get("text", "")) for block in content)
    return "\n".join(parts)
