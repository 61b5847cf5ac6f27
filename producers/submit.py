"""Put parsed emails into their threads' inboxes, exactly once, and schedule the threads' drainers.

Emails are submitted in batches with two pipelined round trips: one read (the message index for
In-Reply-To / References, and for the Message-IDs a bounce returns), then one script per email
that dedupes, pushes the inbox entry and sets the thread's `SET NX` "scheduled" flag; only the
caller that set the flag publishes a drain task, so each thread has at most one drainer queued.

Dedupe is by Message-ID *and* sender (`keys.message_senders`): the same id from the same sender
is a duplicate; from another sender it is a new email in a thread of its own, logged, and the
index keeps pointing at the first owner, so a forged id can neither drop nor hijack another
customer's email. A reply joins the thread it cites only when its sender takes part in that
thread (`producers.membership`, checked by the same script); otherwise it is given a thread of its
own and its payload names the thread it was refused (`thread_join_refused` in its events). A
delivery report that returns one of our replies marks that reply's thread `reply_bounced` with
the status code instead of being triaged.

Producers publish by task name and share only `common.*` with the worker.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
import structlog

from common import keys
from common.contract import STATUS_AWAITING, STATUS_REPLY_BOUNCED, EmailPayload
from common.publish import TaskPublisher
from common.settings import Settings
from producers import scripts
from producers.dsn import OUR_REPLY_ID
from producers.membership import membership, sender_digest
from producers.parse import ParsedEmail

log = structlog.get_logger("producers.submit")

#: How long a thread may be held for a batch (results come within 24 h).
BATCH_HOLD_SECONDS = 25 * 3600
STATUS_ENQUEUED = "enqueued"
STATUS_DUPLICATE = "duplicate"
#: A reply whose sender takes no part in the thread it cites: a thread of its own.
MODE_JOIN_REFUSED = "join_refused"
#: Threads an email's In-Reply-To / References may name that are tried in turn.
MAX_CITED_THREADS = 3
#: Participants outlive the thread's other keys, so a thread never looks older than it is.
PARTICIPANTS_MARGIN_SECONDS = 86400
#: A bounce naming a reply id of ours that is not indexed (expired, or guessed), or whose thread is
#: gone: dead-lettered, no thread touched.
STATUS_BOUNCE_UNKNOWN = "bounce_unknown_thread"


@dataclass(frozen=True)
class Submitted:
    status: str  # "enqueued", "duplicate" or "reply_bounced"
    thread_id: str
    message_id: str
    scheduled: bool
    #: The Message-ID was already used by another sender (this email got a thread of its own).
    id_reused: bool = False
    #: For "reply_bounced": the delivery status code ("5.1.1").
    bounce_status: str = ""
    #: The thread the email cited but may not join (its sender takes no part in it), or "".
    refused_thread_id: str = ""

    def as_dict(self) -> dict[str, str]:
        """What an intake answers for it: status, thread and Message-ID, and the thread it was
        kept out of when there is one."""
        found = {"status": self.status, "thread_id": self.thread_id, "message_id": self.message_id}
        if self.refused_thread_id:
            found["refused_thread_id"] = self.refused_thread_id
        return found


@dataclass(frozen=True)
class _Placement:
    """Where `_write` puts one email of the batch (by its index) this round."""

    index: int
    thread: str
    mode: str  # the submit script's mode, or "bounce"
    bounced_id: str = ""
    #: Other threads the email cites, to try in turn when `thread` refuses its sender.
    others: tuple[str, ...] = ()
    #: The first cited thread that refused the email.
    refused_thread: str = ""

    @property
    def kept_out(self) -> str:
        """The thread the email was refused by when it ends in a thread of its own, else ""
        (joining a later cited thread is no refusal)."""
        return self.refused_thread if self.mode != "reply" else ""

    @property
    def cited(self) -> tuple[str, ...]:
        """Every thread the email cites, in the order they are tried."""
        return (self.thread, *self.others) if self.mode == "reply" else ()


@dataclass(frozen=True)
class Resolution:
    """Where an email goes, read-only (what `--dry-run` shows)."""

    thread_id: str
    mode: str  # "new", "reply", "collision", "duplicate", "join_refused" or "reply_bounced"
    bounced_id: str = ""
    #: For "join_refused": the thread the email cited.
    refused_thread_id: str = ""


def thread_id_for(message_id: str, sender: str = "") -> str:
    """A new thread is named after its first email's Message-ID (hashed: ids hold any bytes);
    an id another sender already used is qualified by the sender."""
    seed = message_id if not sender else f"{message_id}\0{sender_digest(sender)}"
    return "t" + hashlib.sha256(seed.encode()).hexdigest()[:20]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _refused(exists: Any, claims: list[Any]) -> bool:
    """What the submit script decides: a thread with participants, none of them the sender."""
    return bool(exists) and not any(int(found) for found in claims)


class Submitter:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        publisher: TaskPublisher | None,
        hold_for_batch: bool = False,
    ) -> None:
        """With `hold_for_batch`, a new thread is held for the Batches API (flag `batch:<t>`)
        instead of getting a drain task; `Submitted.scheduled` then means "held". Without a
        `publisher` nothing is published (dry runs only read)."""
        self._settings = settings
        self._redis = client
        self._publisher = publisher
        self._submit = client.register_script(scripts.load("submit"))
        self._bounce = client.register_script(scripts.load("bounce"))
        self._hold = hold_for_batch

    # --- reading ---------------------------------------------------------------------------

    def _candidates(self, email: ParsedEmail) -> tuple[list[str], list[str]]:
        """(parent ids to look up, newest first; ids of ours a bounce returns)."""
        parents = [email.in_reply_to] if email.in_reply_to else []
        parents += [ref for ref in reversed(email.references) if ref not in parents]
        bounced: list[str] = []
        if email.bounce is not None and email.bounce.failed:
            bounced = [i for i in email.bounce.original_ids if OUR_REPLY_ID.fullmatch(i)]
        return parents, bounced

    def _read(self, emails: Sequence[ParsedEmail]) -> list[tuple[list[Any], list[Any]]]:
        """One pipelined round trip: the index entries of every email's parents and bounces."""
        plans = [self._candidates(email) for email in emails]
        pipe = self._redis.pipeline(transaction=False)
        queued = 0
        for parents, bounced in plans:
            for ids in (parents, bounced):
                if ids:
                    pipe.mget([keys.message_index(i) for i in ids])
                    queued += 1
        found = iter(pipe.execute() if queued else [])
        return [
            (next(found) if parents else [], next(found) if bounced else [])
            for parents, bounced in plans
        ]

    def _resolve(self, email: ParsedEmail, parents: list[Any], bounced: list[Any]) -> _Placement:
        """Where to try to put the email first, from what `_read` found (its index is -1)."""
        _, bounced_ids = self._candidates(email)
        for bounced_id, thread in zip(bounced_ids, bounced, strict=False):
            if thread:
                return _Placement(-1, _text(thread), "bounce", bounced_id)
        if bounced_ids:  # ids of ours we have no record of: expired, or guessed by a forger
            return _Placement(-1, "", "bounce", bounced_ids[0])
        cited = list(dict.fromkeys(_text(thread) for thread in parents if thread))
        if cited:
            return _Placement(-1, cited[0], "reply", others=tuple(cited[1:MAX_CITED_THREADS]))
        return _Placement(-1, thread_id_for(email.message_id), "new")

    def resolve_thread(self, email: ParsedEmail) -> str:
        """In-Reply-To, then References newest first, against the index; else a new thread.

        The index holds every Message-ID seen, customers' and ours (the worker records the
        Message-ID of each clarification it sends), so an answer to our question joins its
        thread. The subject is never used: "Re: Help" says nothing about which thread.
        """
        [(parents, bounced)] = self._read([email])
        return self._resolve(email, parents, bounced).thread

    def resolve(self, emails: Sequence[ParsedEmail]) -> list[Resolution]:
        """Where each email would go, without writing anything (`--dry-run`)."""
        found = self._read(emails)
        pipe = self._redis.pipeline(transaction=False)
        plans = []
        for email, (parents, bounced) in zip(emails, found, strict=True):
            place = self._resolve(email, parents, bounced)
            claims = membership(email.from_addr, email.reply_to, self._settings)
            plans.append((place, claims))
            pipe.hget(keys.message_senders(email.message_id), sender_digest(email.from_addr))
            pipe.get(keys.message_index(email.message_id))
            for thread in place.cited:
                pipe.get(keys.thread_participants(thread))
                pipe.hget(keys.thread_meta(thread), "customer")
        answers = iter(pipe.execute() if plans else [])
        result = []
        for email, (place, claims) in zip(emails, plans, strict=True):
            seen, owner = next(answers), next(answers)
            joined = None
            for thread in place.cited:
                participants, customer = next(answers), next(answers)
                admits = claims.may_join(
                    _text(participants) if participants is not None else None,
                    _text(customer) if customer else None,
                )
                if joined is None and admits:
                    joined = thread
            if place.mode == "bounce":
                mode = STATUS_REPLY_BOUNCED if place.thread else STATUS_BOUNCE_UNKNOWN
                result.append(Resolution(place.thread, mode, place.bounced_id))
            elif seen:
                result.append(Resolution(_text(seen), STATUS_DUPLICATE))
            elif place.mode == "reply" and joined is None:
                own = thread_id_for(email.message_id, email.from_addr)
                result.append(Resolution(own, MODE_JOIN_REFUSED, refused_thread_id=place.thread))
            elif owner and place.mode == "new":
                thread = thread_id_for(email.message_id, email.from_addr)
                result.append(Resolution(thread, "collision"))
            else:
                result.append(Resolution(joined or place.thread, place.mode))
        return result

    # --- writing ---------------------------------------------------------------------------

    def submit(self, email: ParsedEmail) -> Submitted:
        [result] = self.submit_many([email])
        if isinstance(result, Exception):
            raise result
        return result

    def submit_many(
        self, emails: Sequence[ParsedEmail], *, publish: bool = True
    ) -> list[Submitted | Exception]:
        """Submit a batch in two pipelined round trips (three when an id collides).

        Each email's own failure (a script error) is returned in its place; a connection
        failure raises, as nothing more can be done. With `publish=False` the caller publishes
        the drain tasks (`publish_drains`) once it has recorded the outcomes.
        """
        if not emails:
            return []
        found = self._read(emails)
        results: list[Submitted | Exception | None] = [None] * len(emails)
        pending = [
            replace(self._resolve(email, parents, bounced), index=index)
            for index, (email, (parents, bounced)) in enumerate(zip(emails, found, strict=True))
        ]
        # Later rounds only for a refused join (the next thread cited, then its own) and for
        # ids another sender already used.
        for _ in range(MAX_CITED_THREADS + 2):
            pending = self._write(emails, pending, results)
            if not pending:
                break
        final = [r if r is not None else RuntimeError("not submitted") for r in results]
        if publish:
            self.publish_drains(final)
        return final

    def _write(
        self,
        emails: Sequence[ParsedEmail],
        pending: list[_Placement],
        results: list[Submitted | Exception | None],
    ) -> list[_Placement]:
        now = f"{time.time():.3f}"
        ttl = self._settings.thread_ttl_seconds
        flag_ttl = BATCH_HOLD_SECONDS if self._hold else self._settings.visibility_timeout_seconds
        pipe = self._redis.pipeline(transaction=False)
        for place in pending:
            email, thread = emails[place.index], place.thread
            sender = sender_digest(email.from_addr)
            if place.mode == "bounce" and not place.thread:
                continue  # answered below without a script: no thread to mark
            if place.mode == "bounce":
                assert email.bounce is not None
                self._bounce(
                    keys=[
                        keys.thread_meta(thread),
                        keys.AWAITING,
                        keys.message_senders(email.message_id),
                    ],
                    args=[
                        thread,
                        email.bounce.status or "unknown",
                        place.bounced_id,
                        email.bounce.diagnostic[:300],
                        now,
                        sender,
                        ttl,
                        STATUS_REPLY_BOUNCED,
                        STATUS_AWAITING,
                    ],
                    client=pipe,
                )
                continue
            claims = membership(email.from_addr, email.reply_to, self._settings)
            self._submit(
                keys=[
                    keys.message_index(email.message_id),
                    keys.message_senders(email.message_id),
                    keys.thread_inbox(thread),
                    keys.thread_scheduled(thread),
                    keys.PENDING,
                    keys.thread_participants(thread),
                    keys.thread_meta(thread),
                ],
                args=[
                    thread,
                    payload_json(email, thread, place.kept_out),
                    ttl,
                    flag_ttl,
                    now,
                    "batch" if self._hold else "queued",
                    sender,
                    place.mode,
                    "1" if OUR_REPLY_ID.fullmatch(email.message_id) else "0",
                    claims.address,
                    claims.domain,
                    " ".join(claims.members),
                    ttl + PARTICIPANTS_MARGIN_SECONDS,
                    claims.recipient,
                    claims.recipient_domain,
                    claims.customer,
                ],
                client=pipe,
            )
        written = iter(pipe.execute(raise_on_error=False))
        retry = []
        for place in pending:
            email = emails[place.index]
            unknown = place.mode == "bounce" and not place.thread
            answer: Any = "unknown" if unknown else next(written)
            if isinstance(answer, redis.ConnectionError | redis.TimeoutError):
                raise answer
            if isinstance(answer, Exception):
                results[place.index] = answer
            elif place.mode == "bounce":
                results[place.index] = self._bounced(
                    email, place.thread, place.bounced_id, _text(answer)
                )
            else:
                status, scheduled, where, reused = answer
                status = _text(status)
                if status == "refused":
                    retry.append(self._refused(email, place))
                    continue
                if status == "collision":
                    own = thread_id_for(email.message_id, email.from_addr)
                    retry.append(replace(place, thread=own, mode="collision"))
                    continue
                if int(reused):
                    log.warning(
                        "enqueue.message_id_reused",
                        message_id=email.message_id,
                        thread_id=_text(where),
                        first_thread_id=place.thread if place.mode != "collision" else None,
                        sender=email.from_addr,
                    )
                results[place.index] = Submitted(
                    status,
                    _text(where),
                    email.message_id,
                    bool(int(scheduled)),
                    bool(int(reused)),
                    refused_thread_id=place.kept_out,
                )
        return retry

    def _refused(self, email: ParsedEmail, place: _Placement) -> _Placement:
        """Where a refused email goes next: the next thread it cites, else a thread of its own
        (named with its sender: never a thread its Message-ID names)."""
        refused = place.refused_thread or place.thread
        if place.others:
            return replace(
                place, thread=place.others[0], others=place.others[1:], refused_thread=refused
            )
        log.warning(
            "enqueue.thread_join_refused", message_id=email.message_id, cited_thread_id=refused
        )
        own = thread_id_for(email.message_id, email.from_addr)
        return _Placement(place.index, own, "collision", refused_thread=refused)

    def _bounced(
        self, email: ParsedEmail, thread: str, bounced_id: str, answer: str
    ) -> Submitted | Exception:
        status = email.bounce.status if email.bounce else ""
        if answer == "unknown":
            return LookupError(
                f"{STATUS_BOUNCE_UNKNOWN}: the report returns a reply id of ours, {bounced_id}, "
                "that we have no record of (its thread expired, or the id was guessed)"
                if not thread
                else f"{STATUS_BOUNCE_UNKNOWN}: the report returns our reply {bounced_id}, "
                f"whose thread {thread} has expired or been packed since it was decided"
            )
        log.info(
            "enqueue.reply_bounced",
            thread_id=thread,
            message_id=email.message_id,
            bounced_message_id=bounced_id,
            bounce_status=status,
            duplicate=answer == STATUS_DUPLICATE,
        )
        result = STATUS_DUPLICATE if answer == STATUS_DUPLICATE else STATUS_REPLY_BOUNCED
        assert answer in (STATUS_DUPLICATE, STATUS_REPLY_BOUNCED), answer
        return Submitted(result, thread, email.message_id, False, bounce_status=status)

    def publish_drains(self, results: Sequence[Submitted | Exception]) -> None:
        """A drain task for every thread whose scheduled flag these submissions set."""
        if self._hold or self._publisher is None:
            return
        thread_ids = [r.thread_id for r in results if isinstance(r, Submitted) and r.scheduled]
        published: set[str] = set()
        try:
            many = getattr(self._publisher, "drain_many", None)
            if many is not None:
                published.update(many(thread_ids))
            else:
                for thread_id in thread_ids:
                    self._publisher.drain(thread_id)
                    published.add(thread_id)
        except Exception:
            # Free the flags not published, so the next submission (or a re-run, or the
            # sweeper) schedules those threads again.
            unpublished = [keys.thread_scheduled(t) for t in thread_ids if t not in published]
            if unpublished:
                self._redis.delete(*unpublished)
            raise


def payload_json(email: ParsedEmail, thread_id: str, refused_thread_id: str = "") -> str:
    """The inbox entry: the contract's `EmailPayload`, validated."""
    return EmailPayload(
        message_id=email.message_id,
        thread_id=thread_id,
        from_addr=email.from_addr,
        reply_to=email.reply_to,
        subject=email.subject,
        date=email.date,
        text=email.text,
        in_reply_to=email.in_reply_to,
        references=email.references,
        to=email.to,
        attachments=email.attachments,
        flags=email.flags,
        received_at=time.time(),
        refused_thread_id=refused_thread_id or None,
    ).model_dump_json(
        # Only when set: workers older than the field (a rolling upgrade) accept the rest.
        exclude=None if refused_thread_id else {"refused_thread_id"}
    )


def dry_run_record(email: ParsedEmail, resolution: Resolution | None) -> dict[str, Any]:
    """What `triage enqueue --dry-run --json` prints for an email that parsed."""
    record: dict[str, Any] = {
        "message_id": email.message_id,
        "from": email.from_addr,
        "subject": email.subject,
        "text": email.text,
        "flags": list(email.flags),
        "attachments": [a.model_dump() for a in email.attachments],
        "notes": list(email.notes),
    }
    if resolution is not None:
        record["thread_id"] = resolution.thread_id
        record["would_be"] = resolution.mode
        if resolution.refused_thread_id:
            record["refused_thread_id"] = resolution.refused_thread_id
    if email.bounce is not None:
        record["bounce"] = {
            "status": email.bounce.status,
            "returned_ids": email.bounce.original_ids,
        }
    return record


__all__ = [
    "BATCH_HOLD_SECONDS",
    "MODE_JOIN_REFUSED",
    "STATUS_BOUNCE_UNKNOWN",
    "STATUS_DUPLICATE",
    "STATUS_ENQUEUED",
    "Resolution",
    "Submitted",
    "Submitter",
    "dry_run_record",
    "payload_json",
    "sender_digest",
    "thread_id_for",
]
