"""The commit contract: everything one decision changes, and the script call that applies it.

`Commit` is what the drain step decides; `script_call` (pure) turns it into the KEYS and the one
JSON argument that `scripts/commit.lua` documents, so the contract between Python and Lua is one
typed object on this side and one documented header on the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from common import keys
from common.contract import ReplyTask
from common.deadletters import DeadLetterEntry
from worker.events import Clarification, Classified, Escalated
from worker.state.ledger import Charge
from worker.state.snapshot import Turn

#: KEYS[13] of commit.lua; ledger day keys follow it.
LEDGER_THREAD_KEY = 13


@dataclass
class Commit:
    """Everything one decision changes, applied atomically by `ThreadStore.commit`.

    `meta` fields are written as given (the version fence makes absolute values safe, e.g. the
    thread's token totals); `charges` go to the ledger even when the commit is rejected.
    """

    expected_version: int
    consumed: int
    email_ids: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    meta: dict[str, str | int | float] = field(default_factory=dict)
    previous_status: str = ""
    event: Classified | Clarification | Escalated | None = None
    reply: ReplyTask | None = None
    dead_letters: list[DeadLetterEntry] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)


class CommitStatus(StrEnum):
    OK = "ok"
    STALE = "stale"  # the thread changed since the snapshot: redo the step
    DUPLICATE = "duplicate"  # an email was applied meanwhile (a redelivery got there first)


@dataclass(frozen=True)
class CommitResult:
    status: CommitStatus
    version: int
    remaining: int

    @property
    def ok(self) -> bool:
        return self.status is CommitStatus.OK


def script_call(
    thread_id: str, change: Commit, *, ttl: int, now: float, events_maxlen: int
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for commit.lua (see its header), from a typed `Commit`."""
    reply_message_id = change.reply.message_id if change.reply else "-"
    script_keys = [
        keys.thread_meta(thread_id),
        keys.thread_messages(thread_id),
        keys.thread_applied(thread_id),
        keys.thread_inbox(thread_id),
        keys.thread_scheduled(thread_id),
        keys.EVENTS,
        keys.REPLIES_PENDING,
        keys.THREADS,
        keys.message_index(reply_message_id),
        keys.DEAD_LETTERS,
        keys.PENDING,
        keys.AWAITING,
        keys.ledger_thread(thread_id),
        keys.IDLE,
        keys.REVIEW,
    ]
    charges: list[list[Any]] = []
    for charge in change.charges:
        for key, name, value in charge.increments(script_keys[LEDGER_THREAD_KEY - 1]):
            if key not in script_keys:
                script_keys.append(key)
            # Amounts as strings: Lua numbers are doubles and print large values in e-notation.
            charges.append([script_keys.index(key) + 1, name, str(value)])
    event = change.event
    argument: dict[str, Any] = {
        "thread_id": thread_id,
        "expected_version": change.expected_version,
        "consumed": change.consumed,
        "email_ids": change.email_ids,
        "turns": [json.dumps(turn) for turn in change.turns],
        "meta": {name: str(value) for name, value in change.meta.items()},
        "previous_status": change.previous_status,
        "charges": charges,
        "event": None
        if event is None
        else {
            "type": event.type,
            "category": event.category or "",
            "payload": event.model_dump_json(),
        },
        "reply": None
        if change.reply is None
        else {"reply_id": change.reply.reply_id, "payload": change.reply.model_dump_json()},
        "dead_letters": [[letter.reason, letter.to_json()] for letter in change.dead_letters],
        "ttl": ttl,
        "now": f"{now:.3f}",
        "events_maxlen": events_maxlen,
    }
    return script_keys, [json.dumps(argument)]
