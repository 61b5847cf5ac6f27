"""Outbound clarification emails: render RFC 5322, deliver exactly once.

The `outbox` transport stores the rendered message in a Redis stream in the same script that writes
the sent-record, so a retried or redelivered reply task can never produce a second email.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import redis
import structlog

from worker import keys
from worker.contract import ReplyTask
from worker.settings import Settings

log = structlog.get_logger("worker.replies")

BODY_TEMPLATE = """\
Hello,

Thanks for contacting us. To route your request to the right team, could you help us with one \
thing?

{question}

Just reply to this email; your answer will be added to your request.

--
Customer Support
"""

OUTBOX_SEND_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('XADD', KEYS[2], '*', 'reply_id', ARGV[1], 'thread_id', ARGV[2], 'to', ARGV[3],
  'message_id', ARGV[4], 'message', ARGV[5])
redis.call('SET', KEYS[1], ARGV[6], 'EX', ARGV[7])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


def render_reply(reply: ReplyTask, settings: Settings) -> EmailMessage:
    """The clarification as a plain-text reply, threaded by In-Reply-To and References."""
    message = EmailMessage()
    message["From"] = settings.support_address
    message["To"] = reply.to
    message["Subject"] = reply.subject
    message["Message-ID"] = reply.message_id
    message["Date"] = formatdate(localtime=False)
    if reply.in_reply_to:
        message["In-Reply-To"] = reply.in_reply_to
    if reply.references:
        message["References"] = " ".join(reply.references)
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(BODY_TEMPLATE.format(question=reply.question))
    return message


class OutboxTransport:
    """Delivers by appending to the `triage:outbox` stream; `triage outbox` lists it."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._send = client.register_script(OUTBOX_SEND_LUA)
        self._ttl = ttl_seconds

    def deliver(self, reply: ReplyTask, message: EmailMessage) -> bool:
        """True if delivered now, False if this reply was already delivered before."""
        delivered = self._send(
            keys=[keys.reply_sent(reply.reply_id), keys.OUTBOX, keys.REPLIES_PENDING],
            args=[
                reply.reply_id,
                reply.thread_id,
                reply.to,
                reply.message_id,
                message.as_string(),
                formatdate(usegmt=True),
                self._ttl,
            ],
        )
        log.info("reply.sent" if delivered else "reply.already_sent", reply_id=reply.reply_id)
        return bool(delivered)
