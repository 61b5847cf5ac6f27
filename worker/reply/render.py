"""Rendering the clarification as an RFC 5322 reply (delivery: `worker.reply.transports`)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

from common.contract import ReplyTask
from common.settings import Settings

DEFAULT_TEMPLATE = """\
Hello,

Thanks for contacting us. To route your request to the right team, could you help us with one \
thing?

{question}

Just reply to this email; your answer will be added to your request.

--
Customer Support
"""


def load_reply_template(settings: Settings) -> str:
    """`TRIAGE_REPLY_TEMPLATE_FILE` (plain text with a `{question}` placeholder) or the default."""
    if settings.reply_template_file is None:
        return DEFAULT_TEMPLATE
    template = settings.reply_template_file.read_text(encoding="utf-8")
    if "{question}" not in template:
        raise ValueError(f"{settings.reply_template_file} has no {{question}} placeholder")
    return template


def render_reply(reply: ReplyTask, support_address: str, template: str) -> EmailMessage:
    """A plain-text reply threaded by In-Reply-To/References, marked as automatic (RFC 3834)."""
    message = EmailMessage()
    message["From"] = support_address
    message["To"] = reply.to
    message["Subject"] = reply.subject
    message["Message-ID"] = reply.message_id
    message["Date"] = formatdate(localtime=False)
    if reply.in_reply_to:
        message["In-Reply-To"] = reply.in_reply_to
    if reply.references:
        message["References"] = " ".join(reply.references)
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(template.replace("{question}", reply.question))
    return message
