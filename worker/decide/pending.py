"""A thread's inbox sorted into what to decide on (pure): new emails, dead letters, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from common.contract import EmailPayload
from common.deadletters import DeadLetterEntry
from common.recipient import Recipient, choose_recipient
from common.settings import Settings
from worker.state.snapshot import Snapshot


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


def question_recipient(email: EmailPayload, settings: Settings) -> Recipient:
    """Where a question about `email` may go (see `common.recipient`)."""
    return choose_recipient(
        email.from_addr, email.reply_to, settings.form_relay_senders, [settings.support_address]
    )


def no_question_reason(
    emails: list[EmailPayload], clarifications: int, settings: Settings
) -> str | None:
    """Why this decision may not ask the customer anything (None: it may): robots, no address
    a question may go to, the thread's question budget. `worker.decide.limits` adds the loop
    and abuse limits that need Redis."""
    flags = sorted({flag for email in emails for flag in email.flags})
    if flags:
        return "robot:" + ",".join(flags)  # never auto-reply to robots: mail loops start there
    recipient = question_recipient(emails[-1], settings)
    if recipient.address is None:
        return f"recipient:{recipient.reason}"
    if clarifications >= settings.max_clarifications:
        return "clarification_limit"
    return None
