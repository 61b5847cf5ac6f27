"""The small contract producers and the worker share: payload models, task and queue names.

Producers publish by task *name* and import only this module and `common.keys`; they never import
worker internals (and this module imports nothing from the worker).
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

QUEUE_TRIAGE = "triage"
QUEUE_REPLIES = "replies"
#: The public way in for Celery clients (`triage.ingest_email`), consumed by `triage worker`.
QUEUE_INGEST = "ingest"

TASK_DRAIN = "triage.drain_thread"
TASK_SEND_REPLY = "triage.send_reply"
#: One email in (raw MIME as base64, or the JSON schema): see docs/intake.md.
TASK_INGEST = "triage.ingest_email"

#: A thread's status (meta field `status`): what its last step left it waiting for.
STATUS_NEW = "new"  # nothing decided yet (no meta)
STATUS_AWAITING = "awaiting_customer"  # we asked a question
STATUS_CLASSIFIED = "classified"  # final category
STATUS_NEEDS_REVIEW = "needs_review"  # a category a person should confirm (review lane)
STATUS_ESCALATED = "escalated"  # refusal or a thread limit: a person should look
STATUS_REPLY_FAILED = "reply_failed"  # our question could not be delivered
STATUS_REPLY_BOUNCED = "reply_bounced"  # our question bounced (a DSN came back, producers)
THREAD_STATUSES = (
    STATUS_NEW,
    STATUS_AWAITING,
    STATUS_CLASSIFIED,
    STATUS_NEEDS_REVIEW,
    STATUS_ESCALATED,
    STATUS_REPLY_FAILED,
    STATUS_REPLY_BOUNCED,
)

NonEmpty = Annotated[str, Field(min_length=1)]

#: Why an email must never get an automatic question (RFC 3834 and common practice).
FLAG_AUTO_SUBMITTED = "auto_submitted"  # Auto-Submitted other than "no", X-Autoreply, vacation…
FLAG_BOUNCE = "bounce"  # delivery status notification, MAILER-DAEMON, empty Return-Path
FLAG_BULK = "bulk"  # Precedence: bulk/list/junk, List-Id / List-Unsubscribe
FLAG_NO_REPLY = "no_reply"  # sender address like no-reply@ / noreply@ / donotreply@
Flag = Literal["auto_submitted", "bounce", "bulk", "no_reply"]


class Attachment(BaseModel):
    """Attachment metadata only: contents are never sent to the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    content_type: str = "application/octet-stream"
    size: int = Field(default=0, ge=0)


class EmailPayload(BaseModel):
    """One normalised inbound email, ready to become (part of) a user turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: NonEmpty
    thread_id: NonEmpty
    from_addr: NonEmpty
    reply_to: str | None = None
    to: list[str] = Field(default_factory=list)
    subject: str = ""
    date: str | None = None
    text: str
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)
    received_at: float = Field(default_factory=time.time)
    #: The thread this email cited (In-Reply-To / References) but was refused: its sender takes
    #: no part in it, so it started a thread of its own (`producers.membership`).
    refused_thread_id: str | None = None

    @field_validator("text")
    @classmethod
    def _has_usable_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the email has no usable text")
        return value

    @property
    def recipient(self) -> str:
        """Where a reply goes: Reply-To when given, else From."""
        return self.reply_to or self.from_addr


class ReplyTask(BaseModel):
    """A clarifying question to email to the customer, decided and committed by the worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reply_id: NonEmpty
    thread_id: NonEmpty
    message_id: NonEmpty
    to: NonEmpty
    subject: str
    question: NonEmpty
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    email_ids: list[str]
    decided_at: float = Field(default_factory=time.time)
