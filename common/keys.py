"""Every Redis key name the project uses, in one place (producers import this too).

All keys share one prefix so a deployment can share a Redis with other apps. Per-thread keys carry
the thread id; Redis Cluster is not supported (commits touch a thread's keys and global streams).
"""

from __future__ import annotations

PREFIX = "triage"

#: Stream of classification / escalation events for downstream systems.
EVENTS = f"{PREFIX}:events"
#: Stream of rendered outbound replies (the `outbox` reply transport).
OUTBOX = f"{PREFIX}:outbox"
#: Dead-letter stream: work that could not be completed, with the reason and enough to replay.
DEAD_LETTERS = f"{PREFIX}:dlq"
#: Hash reply_id -> reply task JSON, for replies decided but not yet sent.
REPLIES_PENDING = f"{PREFIX}:replies:pending"
#: Sorted set thread_id -> last update (unix seconds), for listing threads.
THREADS = f"{PREFIX}:threads"
#: Token buckets of the fleet-wide rate limiter (hashes: level, ts).
RATE_REQUESTS = f"{PREFIX}:ratelimit:requests"
RATE_INPUT_TOKENS = f"{PREFIX}:ratelimit:input_tokens"
#: Sorted set thread_id -> since when it has had unprocessed email (the sweeper's work list).
PENDING = f"{PREFIX}:pending"
#: Sorted set thread_id -> since when its last decision has been waiting for the customer.
AWAITING = f"{PREFIX}:threads:awaiting"


def thread_meta(thread_id: str) -> str:
    """Hash: version, status, clarifications, usage counters, subject, customer, references."""
    return f"{PREFIX}:thread:{thread_id}"


def thread_messages(thread_id: str) -> str:
    """List of JSON turns: the Claude `messages` array exactly as resent."""
    return f"{PREFIX}:thread:{thread_id}:messages"


def thread_applied(thread_id: str) -> str:
    """Set of email ids already applied to the thread (idempotency)."""
    return f"{PREFIX}:thread:{thread_id}:applied"


def thread_participants(thread_id: str) -> str:
    """Digests of who takes part in the thread (`a:` addresses, `d:` registrable domains),
    space-separated in one string (a set of strings costs ~3x more on Redis 7.0): a reply citing
    the thread's Message-IDs joins it only from one of them (`producers.membership`). Not packed
    by compaction; it outlives the thread's other keys by a day."""
    return f"{PREFIX}:thread:{thread_id}:participants"


def thread_packed(thread_id: str) -> str:
    """An idle thread's meta, array, applied ids and ledger as one compressed value (see
    `worker.state.compaction`); restored to the keys above when the customer writes again."""
    return f"{PREFIX}:thread:{thread_id}:packed"


#: Sorted set thread_id -> since when it waits in the review lane (status needs_review).
REVIEW = f"{PREFIX}:threads:review"
#: Stream of corrected and accepted decisions kept as labelled examples (`triage review export`).
LABELLED = f"{PREFIX}:labelled"
#: Sorted set thread_id -> when it became idle (classified or escalated): the compaction queue.
IDLE = f"{PREFIX}:threads:idle"
#: Stream of the web console's actions (who, what, when, on what, outcome): its audit trail.
CONSOLE_AUDIT = f"{PREFIX}:console:audit"


def thread_inbox(thread_id: str) -> str:
    """List of pending email payloads (JSON) waiting for the thread's drainer."""
    return f"{PREFIX}:thread:{thread_id}:inbox"


def thread_scheduled(thread_id: str) -> str:
    """Flag set while a drain task for the thread is queued or running (SET NX).

    Its value is `queued:<unix time>` (set by whoever published the drain task) or
    `running:<unix time>` (refreshed by the drainer), so the sweeper can tell a stale one.
    """
    return f"{PREFIX}:thread:{thread_id}:scheduled"


def message_index(message_id: str) -> str:
    """Message-ID -> thread id, for In-Reply-To / References threading and dedupe."""
    return f"{PREFIX}:msgid:{message_id}"


def message_senders(message_id: str) -> str:
    """Hash sender digest -> thread id of every email seen with this Message-ID.

    Dedupe is by id *and* sender: the same id from another sender is a new email (a forged or
    colliding id cannot drop or replace another customer's email). Index keys end with ">", so
    this key never collides with one.
    """
    return f"{PREFIX}:msgid:{message_id}:senders"


def reply_sent(reply_id: str) -> str:
    """Sent-record of one outbound reply: checked before sending (exactly once)."""
    return f"{PREFIX}:reply:{reply_id}:sent"


def reply_sending(reply_id: str) -> str:
    """Short-lived claim held while one worker talks SMTP for this reply (no parallel sends)."""
    return f"{PREFIX}:reply:{reply_id}:sending"


def reply_failed(reply_id: str) -> str:
    """A dead-lettered reply task (JSON), kept for `triage dlq replay`: its dead letter names only
    the reply id, never the recipient, subject or question. Present = do not send."""
    return f"{PREFIX}:reply:{reply_id}:failed"


def ledger_day(day: str) -> str:
    """Hash of one UTC day's usage: fields `model|category|counter` (see `worker.state.ledger`)."""
    return f"{PREFIX}:ledger:{day}"


def ledger_thread(thread_id: str) -> str:
    """Hash of one thread's usage and cost over every call, failed decisions included."""
    return f"{PREFIX}:ledger:thread:{thread_id}"


def questions_per_recipient(day: str, recipient: str) -> str:
    """Counter of questions sent to one address on one UTC day (a loop and abuse limit)."""
    return f"{PREFIX}:limits:questions:{day}:{recipient}"


def last_question_to(recipient: str) -> str:
    """Unix time of the last question sent to an address (an answer within seconds is a robot)."""
    return f"{PREFIX}:limits:last_question:{recipient}"


def emails_per_sender(hour: str, sender: str) -> str:
    """Counter of emails one sender put before the worker in one UTC hour."""
    return f"{PREFIX}:limits:sender:{hour}:{sender}"


def worker_alive(worker_id: str) -> str:
    """A worker process's heartbeat (short TTL): while it exists, its running flags are live."""
    return f"{PREFIX}:worker:{worker_id}:alive"


#: Set of Message Batch ids submitted by `triage backlog` and not yet applied (resume list).
BACKLOG_ACTIVE = f"{PREFIX}:backlog:active"


def backlog_batch(batch_id: str) -> str:
    """Hash thread_id -> JSON {version, email_ids} that a batch's requests were built from."""
    return f"{PREFIX}:backlog:batch:{batch_id}"


def imap_cursor(mailbox: str) -> str:
    """Hash of one watched IMAP folder (`mailbox` names account and folder, hashed by the caller):
    `uidvalidity` and `last_uid` (every UID up to it is enqueued), `name` for people."""
    return f"{PREFIX}:imap:{mailbox}"


# Outbound webhooks (`worker.deliver`), per subscription name (`common.webhooks`).


def webhook_group(name: str) -> str:
    """The consumer group on EVENTS whose cursor says how far a subscription's fan-out read."""
    return f"{PREFIX}:webhook:{name}"


def webhook_due(name: str) -> str:
    """Sorted set thread_id -> when the head of its deliveries is due (or its lease ends)."""
    return f"{PREFIX}:webhook:{name}:due"


def webhook_thread_prefix(name: str) -> str:
    """Prefix of `webhook_thread` (the fan-out script appends the thread id)."""
    return f"{PREFIX}:webhook:{name}:thread:"


def webhook_thread(name: str, thread_id: str) -> str:
    """List of one thread's deliveries not yet done (JSON items), oldest first."""
    return f"{webhook_thread_prefix(name)}{thread_id}"


def webhook_leases(name: str) -> str:
    """Hash thread_id -> token of the lane delivering its head (fences late settles)."""
    return f"{PREFIX}:webhook:{name}:leases"


def webhook_attempts(name: str) -> str:
    """Hash event id -> failed attempts so far of a delivery still to do."""
    return f"{PREFIX}:webhook:{name}:attempts"


# Reprocessing runs (`triage reprocess`, docs/reprocessing.md) and the shadow run: every key of a
# run carries its name and expires `TRIAGE_REPROCESS_RETENTION_DAYS` after its last write.

#: Sorted set run name -> when it was created: every run kept.
RUNS = f"{PREFIX}:runs"
#: The consumer group on EVENTS whose cursor says how far the shadow run has read.
SHADOW_GROUP = f"{PREFIX}:shadow"


def run_meta(name: str) -> str:
    """Hash: the run's configuration (`spec`), source, status and counters (calls, tokens,
    cost in micro-USD, emails decided)."""
    return f"{PREFIX}:run:{name}"


def run_todo(name: str) -> str:
    """Hash item -> JSON plan: the live thread and version it is based on, its email ids."""
    return f"{PREFIX}:run:{name}:todo"


def run_input(name: str) -> str:
    """Hash item -> the emails of a backlog item (compressed JSON), until the run finishes."""
    return f"{PREFIX}:run:{name}:input"


def run_msgids(name: str) -> str:
    """Hash Message-ID digest -> item: the run's own dedupe and threading of a backlog."""
    return f"{PREFIX}:run:{name}:msgids"


def run_decisions(name: str) -> str:
    """Hash item -> JSON record of the run's decision on it (what diff and apply read)."""
    return f"{PREFIX}:run:{name}:decisions"


def run_index(name: str) -> str:
    """Sorted set item -> when it was decided (order; the shadow run's retention)."""
    return f"{PREFIX}:run:{name}:index"


def run_batches(name: str) -> str:
    """Hash Message Batch id -> JSON {item: max_tokens} of a batch not yet applied (resume)."""
    return f"{PREFIX}:run:{name}:batches"


def run_events(name: str) -> str:
    """Stream of the run's `run_decision` events (never `triage:events`)."""
    return f"{PREFIX}:run:{name}:events"


def run_applied(name: str) -> str:
    """Hash thread id -> JSON of the decision `triage reprocess apply` promoted to it."""
    return f"{PREFIX}:run:{name}:applied"


def run_keys(name: str) -> list[str]:
    """Every key of one run (delete, retention)."""
    return [
        run_meta(name),
        run_todo(name),
        run_input(name),
        run_msgids(name),
        run_decisions(name),
        run_index(name),
        run_batches(name),
        run_events(name),
        run_applied(name),
    ]
