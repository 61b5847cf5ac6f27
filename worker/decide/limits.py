"""Limits that keep the support address from being a loop or a cost sink.

Two kinds, both decided before the Claude call:
- May this decision ask a question? Not to robots (flags), not past the thread's clarification
  budget, not past `max_questions_per_recipient_per_day`, not to a sender over
  `max_emails_per_sender_per_hour`, and not to what looks like an unlabelled auto-responder: an
  answer within `loop_answer_seconds` of our question, a subject that grew "[Ticket #..]" tags or
  "Re: Re: Re:", or a body that quotes our own question back. The decision is then a
  classification without a question, and the event's `no_question_reason` names the limit.
- May the thread get another call at all? Not past `max_thread_turns` or
  `max_thread_input_tokens`: its pending emails are escalated (an `escalated` event with
  `limit`) without calling Claude, so one sender cannot make a thread cost without bound.

Counters live in Redis (keys in `common.keys`), keyed by a hash of the address; they are
approximate on purpose (a step redone after a crash counts its emails again).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import time

import redis

from common import keys
from common.contract import EmailPayload
from common.recipient import mailbox
from common.settings import Settings
from worker.decide.pending import no_question_reason, question_recipient
from worker.state import scripts
from worker.state.snapshot import Snapshot

#: "[Ticket #123]", "[Case 4567]", "(Ref: 89)" tags; three or more in a subject is a loop.
TICKET_TAG = re.compile(r"[\[(]\s*(?:ticket|case|ref|request|incident)\b[^\])]{0,40}[\])]", re.I)
REPLY_PREFIX = re.compile(r"\b(?:re|aw|sv|fwd?|wg)\s*(?:\[\d+\])?\s*:", re.I)
MAX_TAGS = 3
MAX_REPLY_PREFIXES = 3
#: Our question quoted back counts from this many characters on (short ones match by chance).
MIN_QUOTED_QUESTION = 40


def address_key(address: str) -> str:
    """A short stable key part for the mailbox an address reaches (`common.recipient.mailbox`:
    `victim+1@` and `victim+2@` share one budget); no raw addresses in key names."""
    return hashlib.sha256(mailbox(address).encode()).hexdigest()[:20]


def subject_loop(subject: str) -> bool:
    """A subject that grew like a robot's: many ticket tags or a pile of reply prefixes (pure)."""
    return (
        len(TICKET_TAG.findall(subject)) >= MAX_TAGS
        or len(REPLY_PREFIX.findall(subject)) >= MAX_REPLY_PREFIXES
    )


def quotes_our_question(text: str, last_question: str) -> bool:
    """The email carries our last question back, word for word (whitespace aside) (pure)."""
    question = " ".join(last_question.split())
    if len(question) < MIN_QUOTED_QUESTION:
        return False
    flat = " ".join(text.replace(">", " ").split())
    return question in flat


def thread_cap(snapshot: Snapshot, settings: Settings) -> str | None:
    """Which thread cap is reached (None: the thread may get another call) (pure)."""
    if len(snapshot.messages) >= settings.max_thread_turns:
        return "thread_turns"
    if snapshot.usage.total_input_tokens >= settings.max_thread_input_tokens:
        return "thread_input_tokens"
    return None


def _day(now: float) -> str:
    return _day_of(int(now // 86400))


def _hour(now: float) -> str:
    return _hour_of(int(now // 3600))


@functools.lru_cache(maxsize=4)
def _day_of(day: int) -> str:
    """The UTC date of a day since the epoch (cached: every check formats the current one)."""
    return dt.datetime.fromtimestamp(day * 86400, dt.UTC).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=4)
def _hour_of(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y-%m-%dT%H")


#: A sender's hourly counter outlives its hour by one (the key names the hour).
SENDER_COUNTER_SECONDS = 2 * 3600


class Limits:
    """Checks and records the per-address limits (one round trip each).

    The check is one script (`worker/state/scripts/limits.lua`: two GETs, and INCRBY + EXPIRE
    per sender), not a pipeline of those commands: same effect, atomic, and about half the
    client CPU (one command to pack and one reply to parse). It cannot ride on the drain's
    snapshot: its keys are hashes of addresses found in the inbox that snapshot returns.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._settings = settings
        self._check = client.register_script(scripts.load("limits"))

    def no_question_reason(
        self, emails: list[EmailPayload], snapshot: Snapshot, now: float | None = None
    ) -> str | None:
        """Why this decision may not ask the customer anything (None: it may).

        Counts the emails against their senders' hourly budget as a side effect.
        """
        settings = self._settings
        now = time.time() if now is None else now
        reason = no_question_reason(emails, snapshot.clarifications, settings)
        if reason is not None:
            return reason
        chosen = question_recipient(emails[-1], settings).address
        recipient = address_key(chosen or "")
        senders: dict[str, int] = {}
        for email in emails:
            sender = address_key(email.from_addr)
            senders[sender] = senders.get(sender, 0) + 1
        hour = _hour(now)
        keys_ = [
            keys.questions_per_recipient(_day(now), recipient),
            keys.last_question_to(recipient),
        ]
        keys_ += [keys.emails_per_sender(hour, sender) for sender in senders]
        args = [SENDER_COUNTER_SECONDS, *senders.values()]
        asked_today, last_question_at, *counts = self._check(keys=keys_, args=args)
        if any(int(n) > settings.max_emails_per_sender_per_hour for n in counts):
            return "sender_hourly_limit"
        if int(asked_today or 0) >= settings.max_questions_per_recipient_per_day:
            return "recipient_daily_limit"
        if last_question_at is not None and settings.loop_answer_seconds > 0:
            answered_after = min(email.received_at for email in emails) - float(last_question_at)
            if 0 <= answered_after < settings.loop_answer_seconds:
                return "loop:fast_answer"
        if any(subject_loop(email.subject) for email in emails):
            return "loop:subject"
        last_question = snapshot.meta.get("last_question", "")
        if last_question and any(quotes_our_question(e.text, last_question) for e in emails):
            return "loop:quoted_back"
        return None

    def record_question(self, recipient: str, now: float | None = None) -> None:
        """Count a committed question against its recipient (day) and note when it was asked."""
        now = time.time() if now is None else now
        key = address_key(recipient)
        counter = keys.questions_per_recipient(_day(now), key)
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, 2 * 24 * 3600)
        pipe.set(keys.last_question_to(key), f"{now:.3f}", ex=24 * 3600)
        pipe.execute()
