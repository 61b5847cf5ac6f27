"""Thread state in Redis: a consistent snapshot, and one atomic, fenced commit per decision.

The drainer reads a snapshot (version, array, inbox) in one script, calls Claude, then commits in
another script that checks the version it read (a fencing token) and the email ids already applied,
appends the turns, bumps the version, consumes the inbox head, writes the event / pending reply /
dead letters, and releases the "scheduled" flag when the inbox is empty. Either all of it happens
or none: a redelivered or concurrent drainer can never apply an email twice or lose one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from worker import keys
from worker.conversation import Turn
from worker.usage import Usage

SNAPSHOT_LUA = """
local meta = redis.call('HGETALL', KEYS[1])
local msgs = redis.call('LRANGE', KEYS[2], 0, -1)
local inbox = redis.call('LRANGE', KEYS[3], 0, -1)
local applied = {}
for i, item in ipairs(inbox) do
  local ok, decoded = pcall(cjson.decode, item)
  local id = nil
  if ok and type(decoded) == 'table' then id = decoded['message_id'] end
  if type(id) == 'string' and redis.call('SISMEMBER', KEYS[4], id) == 1 then
    applied[i] = 1
  else
    applied[i] = 0
  end
end
return {meta, msgs, inbox, applied}
"""

COMMIT_LUA = """
-- Decode and check everything before the first write: Redis does not roll back a script that
-- fails half-way, so no error may be possible once writing has started.
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then return {'stale', version, 0} end
local ids = cjson.decode(ARGV[3])
for _, id in ipairs(ids) do
  if redis.call('SISMEMBER', KEYS[3], id) == 1 then return {'duplicate', version, 0} end
end
local consumed = tonumber(ARGV[2])
local turns = cjson.decode(ARGV[4])
local meta = cjson.decode(ARGV[5])
local usage = cjson.decode(ARGV[6])
local letters = cjson.decode(ARGV[14])
local ttl = tonumber(ARGV[11])
local now = ARGV[12]

for _, turn in ipairs(turns) do redis.call('RPUSH', KEYS[2], turn) end
for _, id in ipairs(ids) do redis.call('SADD', KEYS[3], id) end
if consumed > 0 then redis.call('LTRIM', KEYS[4], consumed, -1) end
version = version + 1
redis.call('HSET', KEYS[1], 'version', version, 'updated_at', now, 'drain_attempts', 0)
redis.call('HSETNX', KEYS[1], 'created_at', now)
for name, value in pairs(meta) do redis.call('HSET', KEYS[1], name, value) end
if meta['status'] == 'awaiting_customer' then
  redis.call('ZADD', KEYS[12], now, ARGV[10])
elseif meta['status'] then
  redis.call('ZREM', KEYS[12], ARGV[10])
end
for name, value in pairs(usage) do redis.call('HINCRBY', KEYS[1], name, value) end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[13], '*',
    'type', ARGV[15], 'thread_id', ARGV[10], 'category', ARGV[16], 'payload', ARGV[7])
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[7], ARGV[9], ARGV[8])
  redis.call('SET', KEYS[9], ARGV[10], 'EX', ttl)
end
for _, letter in ipairs(letters) do
  redis.call('XADD', KEYS[10], '*',
    'reason', letter[1], 'thread_id', ARGV[10], 'payload', letter[2])
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
redis.call('ZADD', KEYS[8], now, ARGV[10])
local remaining = redis.call('LLEN', KEYS[4])
if remaining == 0 then
  redis.call('DEL', KEYS[5])
  redis.call('ZREM', KEYS[11], ARGV[10])
end
return {'ok', version, remaining}
"""

RELEASE_LUA = """
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSET', KEYS[4], 'drain_attempts', 0) end
  return 1
end
return 0
"""

BEGIN_DRAIN_LUA = """
redis.call('SET', KEYS[2], 'running:' .. ARGV[1], 'EX', ARGV[2])
if redis.call('LLEN', KEYS[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[4], 'NX', ARGV[1], ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'drain_attempts', 1)
"""


@dataclass(frozen=True)
class InboxItem:
    """One raw inbox entry and whether its email id was already applied."""

    raw: str
    applied: bool


@dataclass(frozen=True)
class Snapshot:
    """A consistent read of one thread: what the drainer decides on."""

    thread_id: str
    version: int
    meta: dict[str, str]
    messages: list[Turn]
    inbox: list[InboxItem]

    @property
    def status(self) -> str:
        return self.meta.get("status", "new")

    @property
    def clarifications(self) -> int:
        return int(self.meta.get("clarifications", 0))

    @property
    def usage(self) -> Usage:
        return Usage.from_mapping(self.meta)

    @property
    def references(self) -> list[str]:
        return list(json.loads(self.meta.get("references", "[]")))


@dataclass
class Commit:
    """Everything one decision changes, applied atomically by `ThreadStore.commit`."""

    expected_version: int
    consumed: int
    email_ids: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    meta: dict[str, str | int | float] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    event: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    reply_id: str = ""
    reply_message_id: str = ""
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0


@dataclass(frozen=True)
class CommitResult:
    status: str  # "ok", "stale" or "duplicate"
    version: int
    remaining: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ThreadStore:
    """Reads and atomically updates thread state; all Redis access for threads goes here."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, events_maxlen: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._events_maxlen = events_maxlen
        self._snapshot = client.register_script(SNAPSHOT_LUA)
        self._commit = client.register_script(COMMIT_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._begin = client.register_script(BEGIN_DRAIN_LUA)

    def snapshot(self, thread_id: str) -> Snapshot:
        keys_ = [
            keys.thread_meta(thread_id),
            keys.thread_messages(thread_id),
            keys.thread_inbox(thread_id),
            keys.thread_applied(thread_id),
        ]
        meta_flat, messages, inbox, applied = self._snapshot(keys=keys_)
        meta = {_text(meta_flat[i]): _text(meta_flat[i + 1]) for i in range(0, len(meta_flat), 2)}
        return Snapshot(
            thread_id=thread_id,
            version=int(meta.get("version", 0)),
            meta=meta,
            messages=[json.loads(turn) for turn in messages],
            inbox=[
                InboxItem(_text(raw), bool(flag)) for raw, flag in zip(inbox, applied, strict=True)
            ],
        )

    def commit(self, thread_id: str, change: Commit) -> CommitResult:
        reply_key = keys.message_index(change.reply_message_id or "-")
        keys_ = [
            keys.thread_meta(thread_id),
            keys.thread_messages(thread_id),
            keys.thread_applied(thread_id),
            keys.thread_inbox(thread_id),
            keys.thread_scheduled(thread_id),
            keys.EVENTS,
            keys.REPLIES_PENDING,
            keys.THREADS,
            reply_key,
            keys.DEAD_LETTERS,
            keys.PENDING,
            keys.AWAITING,
        ]
        args: list[str | int] = [
            change.expected_version,
            change.consumed,
            json.dumps(change.email_ids),
            json.dumps([json.dumps(turn) for turn in change.turns]),
            json.dumps({name: str(value) for name, value in change.meta.items()}),
            json.dumps({**change.usage.as_dict(), "calls": change.calls}),
            json.dumps(change.event) if change.event else "",
            json.dumps(change.reply) if change.reply else "",
            change.reply_id,
            thread_id,
            self._ttl,
            f"{time.time():.3f}",
            self._events_maxlen,
            json.dumps([[str(d["reason"]), json.dumps(d)] for d in change.dead_letters]),
            str((change.event or {}).get("type") or ""),
            str((change.event or {}).get("category") or ""),
        ]
        status, version, remaining = self._commit(keys=keys_, args=args)
        return CommitResult(_text(status), int(version), int(remaining))

    def release(self, thread_id: str) -> bool:
        """Clear the scheduled flag if the inbox is empty; False means more work arrived."""
        keys_ = [
            keys.thread_inbox(thread_id),
            keys.thread_scheduled(thread_id),
            keys.PENDING,
            keys.thread_meta(thread_id),
        ]
        return bool(self._release(keys=keys_, args=[thread_id]))

    def begin_drain(self, thread_id: str, flag_seconds: int) -> int:
        """Mark the thread as being drained now; returns how many drains in a row found work.

        The count is reset by every commit, so it only grows when drains keep dying before
        committing (a poison email that kills its worker): the caller gives up past a limit.
        """
        keys_ = [
            keys.thread_meta(thread_id),
            keys.thread_scheduled(thread_id),
            keys.thread_inbox(thread_id),
            keys.PENDING,
        ]
        return int(self._begin(keys=keys_, args=[f"{time.time():.3f}", flag_seconds, thread_id]))

    def mark(self, thread_id: str, **fields: str) -> None:
        """Set status-like fields outside a decision (e.g. a reply that could not be sent)."""
        self._redis.hset(keys.thread_meta(thread_id), mapping=fields)  # type: ignore[arg-type]
        if fields.get("status", "awaiting_customer") != "awaiting_customer":
            self._redis.zrem(keys.AWAITING, thread_id)

    def touch_schedule(self, thread_id: str, seconds: int) -> None:
        """Refresh the flag before a long step, so the sweeper sees this drainer is alive."""
        value = f"running:{time.time():.3f}"
        self._redis.set(keys.thread_scheduled(thread_id), value, ex=seconds)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
