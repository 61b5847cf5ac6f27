"""Thread state in Redis: a consistent snapshot, and one atomic, fenced commit per decision.

The drainer reads a snapshot (version, array, inbox) in one script, calls Claude, then commits in
another script that checks the version it read (a fencing token) and the email ids already applied,
appends the turns, bumps the version, consumes the inbox head, writes the event / pending reply /
dead letters, and releases the "scheduled" flag when the inbox is empty. Either all of it happens
or none: a redelivered or concurrent drainer can never apply an email twice or lose one. The
scripts are `worker/state/scripts/*.lua`; the commit's contract is `worker.state.commit`.
"""

from __future__ import annotations

import json
import time

import redis

from common import keys
from common.connections import as_text
from worker.state import scripts
from worker.state.commit import Commit, CommitResult, CommitStatus, script_call
from worker.state.compaction import Compactor
from worker.state.snapshot import Begin, InboxItem, Snapshot


class ThreadStore:
    """Reads and atomically updates thread state; all Redis access for threads goes here."""

    def __init__(
        self, client: redis.Redis, ttl_seconds: int, events_maxlen: int, worker_id: str = ""
    ) -> None:
        """`worker_id` goes into the running flag, so the sweeper can tell a dead drainer by its
        worker's heartbeat (see `worker.recovery.flags`)."""
        self._redis = client
        self._worker_id = worker_id
        self._ttl = ttl_seconds
        self._events_maxlen = events_maxlen
        self._snapshot = client.register_script(scripts.load("snapshot"))
        self._commit = client.register_script(scripts.load("commit"))
        self._release = client.register_script(scripts.load("release"))
        self._compactor = Compactor(client)

    def snapshot(self, thread_id: str, refresh_flag_seconds: int | None = None) -> Snapshot:
        """A consistent read; with `refresh_flag_seconds`, also mark the drainer alive (a call
        follows), so the sweeper leaves the thread alone."""
        mode = "read" if refresh_flag_seconds is None else "refresh"
        return self._read(thread_id, mode, refresh_flag_seconds or 0)[1]

    def peek(self, thread_id: str) -> Snapshot:
        """A read for inspection that never writes: a packed thread is decoded, not restored."""
        snapshot = self._read(thread_id, "read", 0, restore=False)[1]
        if snapshot.meta:
            return snapshot
        thread = self._compactor.peek(thread_id)
        if thread is None:
            return snapshot
        return Snapshot(
            thread_id=thread_id,
            version=int(thread["meta"].get("version", 0)),
            meta=thread["meta"],
            messages=[json.loads(turn) for turn in thread["messages"]],
            inbox=snapshot.inbox,
        )

    def restore(self, thread_id: str) -> bool:
        """Unpack the thread if it was compacted (before a write outside a drain)."""
        return self._compactor.unpack(thread_id)

    def begin_drain(self, thread_id: str, flag_seconds: int) -> Begin:
        """Mark the thread as being drained now and read it, in one round trip.

        `attempts` counts drains in a row that found work; every commit resets it, so it only
        grows when drains keep dying before committing (a poison email that kills its worker):
        the caller gives up past a limit.
        """
        attempts, snapshot = self._read(thread_id, "begin", flag_seconds)
        return Begin(attempts, snapshot)

    def _read(
        self, thread_id: str, mode: str, flag_seconds: int, restore: bool = True
    ) -> tuple[int, Snapshot]:
        keys_ = [
            keys.thread_meta(thread_id),
            keys.thread_messages(thread_id),
            keys.thread_inbox(thread_id),
            keys.thread_applied(thread_id),
            keys.thread_scheduled(thread_id),
            keys.PENDING,
            keys.thread_packed(thread_id),
        ]
        now = f"{time.time():.3f}"
        args: list[str | int] = [mode, now, flag_seconds, thread_id, self._worker_id]
        meta_flat, messages, inbox, applied, attempts, packed = self._snapshot(
            keys=keys_, args=args
        )
        if (
            packed and restore
        ):  # compacted while idle: restore it, then read again (never decide on it)
            self._compactor.unpack(thread_id)
            again = "refresh" if mode == "begin" else mode  # count the drain attempt once
            return int(attempts), self._read(thread_id, again, flag_seconds)[1]
        meta = {
            as_text(meta_flat[i]): as_text(meta_flat[i + 1]) for i in range(0, len(meta_flat), 2)
        }
        snapshot = Snapshot(
            thread_id=thread_id,
            version=int(meta.get("version", 0)),
            meta=meta,
            messages=[json.loads(turn) for turn in messages],
            inbox=[
                InboxItem(as_text(raw), bool(flag))
                for raw, flag in zip(inbox, applied, strict=True)
            ],
        )
        return int(attempts), snapshot

    def commit(self, thread_id: str, change: Commit) -> CommitResult:
        """Apply `change` atomically if the thread is still at `change.expected_version`."""
        keys_, args = script_call(
            thread_id,
            change,
            ttl=self._ttl,
            now=time.time(),
            events_maxlen=self._events_maxlen,
        )
        status, version, remaining = self._commit(keys=keys_, args=args)
        return CommitResult(CommitStatus(as_text(status)), int(version), int(remaining))

    def release(self, thread_id: str) -> bool:
        """Clear the scheduled flag if the inbox is empty; False means more work arrived."""
        keys_ = [
            keys.thread_inbox(thread_id),
            keys.thread_scheduled(thread_id),
            keys.PENDING,
            keys.thread_meta(thread_id),
        ]
        return bool(self._release(keys=keys_, args=[thread_id]))

    def mark(self, thread_id: str, **fields: str) -> None:
        """Set status-like fields outside a decision (e.g. a reply that could not be sent)."""
        self._redis.hset(keys.thread_meta(thread_id), mapping=fields)  # type: ignore[arg-type]
        if fields.get("status", "awaiting_customer") != "awaiting_customer":
            self._redis.zrem(keys.AWAITING, thread_id)

    def touch_schedule(self, thread_id: str, seconds: int) -> None:
        """Refresh the flag before a long step, so the sweeper sees this drainer is alive."""
        value = f"running:{time.time():.3f}:{self._worker_id}"
        self._redis.set(keys.thread_scheduled(thread_id), value, ex=seconds)
