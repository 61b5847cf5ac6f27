"""Delivering a rendered reply exactly once: to the Redis outbox, or over SMTP.

Both check the reply's sent-record first (a deterministic reply id per clarification), so a
retried or redelivered reply task never sends twice. The outbox writes message and sent-record in
one script. SMTP cannot be atomic with Redis: a claim key stops two workers sending in parallel,
and the sent-record is written right after the server accepts the message; a crash in between can
resend, with the same Message-ID, which receiving systems use to drop duplicates. smtplib errors
are translated here and nowhere else.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol

import redis
import structlog

from common import keys
from common.contract import ReplyTask
from common.errors import Permanent, RetryLater
from common.logging import redact_addresses
from common.settings import Settings

log = structlog.get_logger("worker.reply.transports")

OUTBOX_SEND_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'reply_id', ARGV[1], 'thread_id', ARGV[2],
  'to', ARGV[3], 'message_id', ARGV[4], 'transport', ARGV[6], 'message', ARGV[5])
redis.call('SET', KEYS[1], ARGV[6], 'EX', ARGV[7])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


class Transport(Protocol):
    def deliver(self, reply: ReplyTask, message: EmailMessage) -> bool:
        """True if delivered now, False if it had been delivered before."""
        ...


class SentLog:
    """Writes the sent-record, the outbox entry and clears the pending reply in one script."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, maxlen: int) -> None:
        self._script = client.register_script(OUTBOX_SEND_LUA)
        self._ttl = ttl_seconds
        self._maxlen = maxlen

    def record(self, reply: ReplyTask, message: EmailMessage, transport: str) -> bool:
        done = self._script(
            keys=[keys.reply_sent(reply.reply_id), keys.OUTBOX, keys.REPLIES_PENDING],
            args=[
                reply.reply_id,
                reply.thread_id,
                reply.to,
                reply.message_id,
                message.as_string(),
                transport,
                self._ttl,
                self._maxlen,
            ],
        )
        return bool(done)


class OutboxTransport:
    """Delivery = appending to the `triage:outbox` stream (`triage outbox` lists it)."""

    def __init__(self, sent_log: SentLog) -> None:
        self._sent_log = sent_log

    def deliver(self, reply: ReplyTask, message: EmailMessage) -> bool:
        delivered = self._sent_log.record(reply, message, "outbox")
        log.info("reply.sent" if delivered else "reply.already_sent", transport="outbox")
        return delivered


def translate_smtp(error: Exception) -> RetryLater | Permanent:
    """4xx and connection problems are transient; 5xx (and bad credentials) are permanent.

    The message names no address (the server's text often echoes the recipient): it goes to the
    dead-letter stream and to logs.
    """
    translated = _translate_smtp(error)
    translated.args = (redact_addresses(str(translated)),)
    return translated


def _translate_smtp(error: Exception) -> RetryLater | Permanent:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        detail = "; ".join(f"{code} {msg!r}" for code, msg in error.recipients.values())
        if codes and all(code >= 500 for code in codes):
            return Permanent(f"SMTP recipient refused: {detail}", reason="smtp_rejected")
        return RetryLater(f"SMTP recipient deferred: {detail}", reason="smtp_deferred")
    if isinstance(error, smtplib.SMTPResponseException):
        text = (
            error.smtp_error.decode(errors="replace")
            if isinstance(error.smtp_error, bytes)
            else str(error.smtp_error)
        )
        detail = f"SMTP {error.smtp_code} {text}"
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return Permanent(detail, reason="smtp_auth")
        if error.smtp_code >= 500:
            return Permanent(detail, reason="smtp_rejected")
        return RetryLater(detail, reason="smtp_deferred")
    return RetryLater(f"SMTP connection failed: {error}", reason="smtp_connection")


class SmtpTransport:
    """smtplib with implicit TLS, STARTTLS or none; optional AUTH; explicit timeouts."""

    def __init__(self, settings: Settings, client: redis.Redis, sent_log: SentLog) -> None:
        self._settings = settings
        self._redis = client
        self._sent_log = sent_log

    def deliver(self, reply: ReplyTask, message: EmailMessage) -> bool:
        if self._redis.exists(keys.reply_sent(reply.reply_id)):
            self._redis.hdel(keys.REPLIES_PENDING, reply.reply_id)
            log.info("reply.already_sent", transport="smtp")
            return False
        claim = keys.reply_sending(reply.reply_id)
        hold = int(self._settings.smtp_timeout_seconds * 4) + 10
        if not self._redis.set(claim, "1", nx=True, ex=hold):
            raise RetryLater(
                "another worker is sending this reply", reason="reply_in_progress", retry_after=hold
            )
        try:
            self._send(message, str(message["To"]))  # the address `render_reply` validated
        except (smtplib.SMTPException, OSError) as exc:
            self._redis.delete(claim)
            raise translate_smtp(exc) from exc
        self._sent_log.record(reply, message, "smtp")
        self._redis.delete(claim)
        log.info("reply.sent", transport="smtp")
        return True

    def _send(self, message: EmailMessage, recipient: str) -> None:
        settings = self._settings
        host, port, timeout = (
            settings.smtp_host,
            settings.effective_smtp_port,
            settings.smtp_timeout_seconds,
        )
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if settings.smtp_tls == "implicit":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if settings.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                smtp.login(settings.smtp_username, password)
            sender = parseaddr(settings.support_address)[1] or settings.support_address
            smtp.send_message(message, from_addr=sender, to_addrs=[recipient])


def make_transport(settings: Settings, client: redis.Redis) -> Transport:
    sent_log = SentLog(client, settings.thread_ttl_seconds, settings.events_maxlen)
    if settings.reply_transport == "smtp":
        return SmtpTransport(settings, client, sent_log)
    return OutboxTransport(sent_log)
