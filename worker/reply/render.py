"""Rendering the clarification as an RFC 5322 reply (delivery: `worker.reply.transports`).

Everything in a reply task came, at some remove, from an email: what can be made safe is (the
subject and the question become one line of plain text, a subject the send guard refuses becomes
`Re: your support request`, malformed In-Reply-To/References ids are dropped); what cannot (no
valid recipient, a malformed Message-ID of ours, anything the email library still refuses) raises
`UnrenderableReply`, a `Permanent` error: the reply is dead-lettered at once, never retried.
Error messages name the part, never its content.
"""

from __future__ import annotations

import email.errors
import re
from email.message import EmailMessage
from email.utils import formatdate

from common.contract import ReplyTask
from common.errors import Permanent
from common.recipient import valid_address
from common.settings import Settings
from worker.reply.headers import MAX_REFERENCES, reply_subject
from worker.reply.send_guard import SAFE_QUESTION, plain_one_paragraph

MESSAGE_ID = re.compile(r"<[!-;=?A-~]{1,250}@[!-;=?A-~]{1,250}>")  # printable ASCII but <>@


class UnrenderableReply(Permanent):
    """A reply that can never become a valid email (the reason says which part)."""

    reason = "unrenderable_reply"


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


def valid_message_id(value: str | None) -> str | None:
    """`value` if it is one well-formed `<left@right>` Message-ID, else None."""
    return value if value and MESSAGE_ID.fullmatch(value) else None


def render_reply(reply: ReplyTask, support_address: str, template: str) -> EmailMessage:
    """A plain-text reply threaded by In-Reply-To/References, marked as automatic (RFC 3834).

    Raises `UnrenderableReply` when the reply can never be sent (see the module docstring).
    """
    recipient = valid_address(reply.to)
    if recipient is None:
        raise UnrenderableReply("no valid recipient address", reason="invalid_recipient")
    message_id = valid_message_id(reply.message_id)
    if message_id is None:
        raise UnrenderableReply("malformed Message-ID", reason="invalid_message_id")
    references = [ref for ref in reply.references if valid_message_id(ref)][-MAX_REFERENCES:]
    question = plain_one_paragraph(reply.question) or SAFE_QUESTION
    message = EmailMessage()
    try:
        message["From"] = support_address
        message["To"] = recipient
        message["Subject"] = reply_subject(reply.subject)
        message["Message-ID"] = message_id
        message["Date"] = formatdate(localtime=False)
        if valid_message_id(reply.in_reply_to):
            message["In-Reply-To"] = reply.in_reply_to
        if references:
            message["References"] = " ".join(references)
        message["Auto-Submitted"] = "auto-replied"
        message.set_content(template.replace("{question}", question))
        message.as_bytes()  # serialises now, so a failure is ours to classify, not the transport's
    except (ValueError, TypeError, UnicodeError, LookupError, email.errors.MessageError) as exc:
        raise UnrenderableReply(
            f"the email library refused the reply ({type(exc).__name__})"
        ) from None
    return message
