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

from common import keys
from worker.decide.conversation import Turn
from worker.state.ledger import Charge
from worker.state.usage import Usage

SNAPSHOT_LUA = """
-- ARGV[1]: 'read' (just read), 'refresh' (a call follows: refresh the running flag) or 'begin'
-- (a drain task starts: also count the attempt, for poison detection).
local attempts = 0
if ARGV[1] ~= 'read' then
  redis.call('SET', KEYS[5], 'running:' .. ARGV[2], 'EX', ARGV[3])
end
local inbox = redis.call('LRANGE', KEYS[3], 0, -1)
if ARGV[1] == 'begin' and #inbox > 0 then
  redis.call('ZADD', KEYS[6], 'NX', ARGV[2], ARGV[4])
  attempts = redis.call('HINCRBY', KEYS[1], 'drain_attempts', 1)
end
local meta = redis.call('HGETALL', KEYS[1])
local msgs = redis.call('LRANGE', KEYS[2], 0, -1)
local applied = {}
local ids, where = {}, {}
for i, item in ipairs(inbox) do
  applied[i] = 0
  local ok, decoded = pcall(cjson.decode, item)
  if ok and type(decoded) == 'table' and type(decoded['message_id']) == 'string' then
    ids[#ids + 1] = decoded['message_id']
    where[#ids] = i
  end
end
-- In chunks: unpack() is bounded by Lua's C stack (a flooded inbox can hold thousands).
for first = 1, #ids, 1000 do
  local last = math.min(first + 999, #ids)
  local found = redis.call('SMISMEMBER', KEYS[4], unpack(ids, first, last))
  for j, flag in ipairs(found) do applied[where[first + j - 1]] = flag end
end
return {meta, msgs, inbox, applied, attempts}
"""

COMMIT_LUA = """
-- Decode and check everything before the first write: Redis does not roll back a script that
-- fails half-way, so no error may be possible once writing has started.
local ids = cjson.decode(ARGV[3])
local turns = cjson.decode(ARGV[4])
local meta = cjson.decode(ARGV[5])
local letters = cjson.decode(ARGV[14])
local charges = cjson.decode(ARGV[6])
local consumed = tonumber(ARGV[2])
local ttl = tonumber(ARGV[11])
local now = ARGV[12]

-- The calls were billed whatever happens to the decision: the ledger is written first.
for _, c in ipairs(charges) do redis.call('HINCRBY', KEYS[c[1]], c[2], c[3]) end
if #charges > 0 then redis.call('EXPIRE', KEYS[13], ttl) end

local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then return {'stale', version, 0} end
for first = 1, #ids, 1000 do  -- chunked: unpack() is bounded by Lua's C stack
  local found = redis.call('SMISMEMBER', KEYS[3], unpack(ids, first, math.min(first + 999, #ids)))
  for _, seen in ipairs(found) do
    if seen == 1 then return {'duplicate', version, 0} end
  end
end

if #turns > 0 then redis.call('RPUSH', KEYS[2], unpack(turns)) end
for first = 1, #ids, 1000 do
  redis.call('SADD', KEYS[3], unpack(ids, first, math.min(first + 999, #ids)))
end
local remaining = redis.call('LLEN', KEYS[4]) - consumed
if remaining > 0 then
  if consumed > 0 then redis.call('LTRIM', KEYS[4], consumed, -1) end
  redis.call('EXPIRE', KEYS[4], ttl)
else
  remaining = 0
  redis.call('DEL', KEYS[4])
end
version = version + 1
local fields = {'version', version, 'updated_at', now, 'drain_attempts', 0}
if version == 1 then
  fields[#fields + 1] = 'created_at'
  fields[#fields + 1] = now
end
for name, value in pairs(meta) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], unpack(fields))
if meta['status'] == 'awaiting_customer' then
  redis.call('ZADD', KEYS[12], now, ARGV[10])
elseif meta['status'] and ARGV[17] == 'awaiting_customer' then
  redis.call('ZREM', KEYS[12], ARGV[10])
end
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
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
redis.call('ZADD', KEYS[8], now, ARGV[10])
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
    def calls(self) -> int:
        return int(self.meta.get("calls", 0))

    @property
    def references(self) -> list[str]:
        return list(json.loads(self.meta.get("references", "[]")))


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
    event: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    reply_id: str = ""
    reply_message_id: str = ""
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)


@dataclass(frozen=True)
class Begin:
    """A drain's start: its snapshot, and how many drains in a row found work (poison count)."""

    attempts: int
    snapshot: Snapshot


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

    def snapshot(self, thread_id: str, refresh_flag_seconds: int | None = None) -> Snapshot:
        """A consistent read; with `refresh_flag_seconds`, also mark the drainer alive (a call
        follows), so the sweeper leaves the thread alone."""
        mode = "read" if refresh_flag_seconds is None else "refresh"
        return self._read(thread_id, mode, refresh_flag_seconds or 0)[1]

    def begin_drain(self, thread_id: str, flag_seconds: int) -> Begin:
        """Mark the thread as being drained now and read it, in one round trip.

        `attempts` counts drains in a row that found work; every commit resets it, so it only
        grows when drains keep dying before committing (a poison email that kills its worker):
        the caller gives up past a limit.
        """
        attempts, snapshot = self._read(thread_id, "begin", flag_seconds)
        return Begin(attempts, snapshot)

    def _read(self, thread_id: str, mode: str, flag_seconds: int) -> tuple[int, Snapshot]:
        keys_ = [
            keys.thread_meta(thread_id),
            keys.thread_messages(thread_id),
            keys.thread_inbox(thread_id),
            keys.thread_applied(thread_id),
            keys.thread_scheduled(thread_id),
            keys.PENDING,
        ]
        args: list[str | int] = [mode, f"{time.time():.3f}", flag_seconds, thread_id]
        meta_flat, messages, inbox, applied, attempts = self._snapshot(keys=keys_, args=args)
        meta = {_text(meta_flat[i]): _text(meta_flat[i + 1]) for i in range(0, len(meta_flat), 2)}
        snapshot = Snapshot(
            thread_id=thread_id,
            version=int(meta.get("version", 0)),
            meta=meta,
            messages=[json.loads(turn) for turn in messages],
            inbox=[
                InboxItem(_text(raw), bool(flag)) for raw, flag in zip(inbox, applied, strict=True)
            ],
        )
        return int(attempts), snapshot

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
            keys.ledger_thread(thread_id),
        ]
        increments: list[list[str | int]] = []
        for charge in change.charges:
            for key, name, value in charge.increments(keys_[12]):
                if key not in keys_:
                    keys_.append(key)
                increments.append([keys_.index(key) + 1, name, value])
        args: list[str | int] = [
            change.expected_version,
            change.consumed,
            json.dumps(change.email_ids),
            json.dumps([json.dumps(turn) for turn in change.turns]),
            json.dumps({name: str(value) for name, value in change.meta.items()}),
            json.dumps(increments),
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
            change.previous_status,
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
