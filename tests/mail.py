"""Build RFC 5322 test emails with the standard library (no fixtures on disk needed)."""

from __future__ import annotations

from email.message import EmailMessage

SEED_FIRST = "Hi, my thing isn't working. Can you help?"
SEED_REPLY = "Sorry, I mean I was charged twice for my subscription this month."


def make_email(
    message_id: str | None,
    body: str,
    *,
    subject: str = "Help",
    sender: str = "Dana Customer <dana@example.org>",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    html: bool = False,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, subtype="html" if html else "plain")
    return message.as_bytes()
