"""Idle threads as one compressed value: the memory a classified thread keeps while it waits.

A thread whose last decision classified or escalated it is queued in `triage:threads:idle`; once
it has been idle `TRIAGE_COMPACT_AFTER_SECONDS`, the sweeper packs its meta hash, messages list,
applied-id set and ledger hash into one zlib-compressed JSON string (`pack.lua`, fenced by the
thread's version, so a thread that moved on meanwhile is left alone). When the customer writes
again, the drainer's snapshot finds the packed value and restores the keys (`unpack.lua`) before
deciding; read-only commands decode it without writing (`peek`).
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import redis

from common import keys
from common.connections import as_text
from worker.state import scripts


def encode(thread: dict[str, Any]) -> bytes:
    """The packed value: compact JSON, zlib level 6 (pure)."""
    return zlib.compress(json.dumps(thread, separators=(",", ":")).encode(), 6)


def decode(packed: bytes) -> dict[str, Any]:
    """The thread from its packed value (pure)."""
    thread: dict[str, Any] = json.loads(zlib.decompress(packed))
    return thread


class Compactor:
    """Packs idle threads and restores them; all access to packed values goes here."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._pack = client.register_script(scripts.load("pack"))
        self._unpack = client.register_script(scripts.load("unpack"))

    @staticmethod
    def _keys(thread_id: str) -> list[str]:
        return [
            keys.thread_meta(thread_id),
            keys.thread_messages(thread_id),
            keys.thread_applied(thread_id),
            keys.ledger_thread(thread_id),
            keys.thread_packed(thread_id),
        ]

    def pack(self, thread_id: str) -> bool:
        """Pack one thread if it is still idle as read; False when it changed or is gone."""
        meta_key, messages_key, applied_key, ledger_key, _ = self._keys(thread_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(meta_key)
        pipe.lrange(messages_key, 0, -1)
        pipe.smembers(applied_key)
        pipe.hgetall(ledger_key)
        meta_raw, messages, applied, ledger_raw = pipe.execute()
        meta = {as_text(k): as_text(v) for k, v in meta_raw.items()}
        if "version" not in meta or meta.get("status") not in ("classified", "escalated"):
            return False
        thread = {
            "meta": meta,
            "messages": [as_text(turn) for turn in messages],
            "applied": sorted(as_text(i) for i in applied),
            "ledger": {as_text(k): as_text(v) for k, v in ledger_raw.items()},
        }
        script_keys = [*self._keys(thread_id), keys.thread_inbox(thread_id)]
        return bool(self._pack(keys=script_keys, args=[meta["version"], encode(thread)]))

    def _packed(self, thread_id: str) -> bytes | None:
        value = self._redis.get(keys.thread_packed(thread_id))
        # Our clients do not decode responses: a packed value is bytes.
        return value if isinstance(value, bytes) or value is None else value.encode("latin-1")

    def unpack(self, thread_id: str) -> bool:
        """Restore a packed thread to its working keys; False when it was not packed."""
        packed = self._packed(thread_id)
        if packed is None:
            return False
        thread = decode(packed)
        return bool(self._unpack(keys=self._keys(thread_id), args=[json.dumps(thread), packed]))

    def peek(self, thread_id: str) -> dict[str, Any] | None:
        """A packed thread's content without restoring it (None: not packed)."""
        packed = self._packed(thread_id)
        return None if packed is None else decode(packed)

    def compact_idle(self, idle_seconds: float, batch: int, now: float | None = None) -> int:
        """Pack up to `batch` threads idle for `idle_seconds`; returns how many were packed."""
        now = time.time() if now is None else now
        due = self._redis.zrangebyscore(keys.IDLE, "-inf", now - idle_seconds, start=0, num=batch)
        packed = 0
        for raw_id in due:
            thread_id = as_text(raw_id)
            if self.pack(thread_id):
                packed += 1
                self._redis.zrem(keys.IDLE, thread_id)
                continue
            # Not packable as read: gone, reopened, or busy. Drop the entry unless a newer
            # decision made the thread idle again meanwhile (its score moved on).
            score = self._redis.zscore(keys.IDLE, thread_id)
            if score is not None and score <= now - idle_seconds:
                self._redis.zrem(keys.IDLE, thread_id)
        return packed
