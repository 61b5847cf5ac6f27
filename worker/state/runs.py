"""A reprocessing run's records in Redis: its plan, its decisions, its batches, its counters.

A run (`triage reprocess`, the shadow run) never writes live thread state: everything it keeps is
under `triage:run:{name}:*` (names in `common.keys`), a fixed number of keys per run whatever its
size, each expiring `TRIAGE_REPROCESS_RETENTION_DAYS` after the run's last write.

- `meta` (hash): the run's spec (configuration by value), source, status and counters: calls,
  tokens and cost in micro-USD of every call that returned, decisions by outcome, emails decided.
- `todo` (hash item -> JSON plan) and, for a backlog, `input` (item -> compressed emails, dropped
  when the run finishes) and `msgids` (the run's own dedupe and threading).
- `decisions` (hash item -> `RunDecision` JSON), `index` (zset item -> decided at), `events`
  (the run's stream of `run_decision` events): written together by `run_record.lua`; an item is
  recorded once (a resumed run never records, nor pays for, an item twice), except in the shadow
  run, where a thread's newer decision replaces its older one.
- `batches` (hash batch id -> JSON {item: plan}): Message Batches submitted and not yet applied,
  so an interrupted run picks their results up instead of paying again.
- `applied` (hash thread id -> JSON): what `triage reprocess apply` promoted.

A run's calls are also added to the usage ledger's day hash (`triage:ledger:{day}`) under the
category `REPROCESS` (`SHADOW` for the shadow run): `triage stats` shows what the API bills.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from common import keys
from common.connections import as_text
from worker.events import RunDecision, parse_run_decision
from worker.state import scripts
from worker.state.usage import Usage

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHADOW = "shadow"
#: Entries a run's event stream keeps at most (about; its decisions hash keeps every item).
EVENTS_MAXLEN = 10_000
#: Ledger categories of a run's calls.
LEDGER_REPROCESS = "REPROCESS"
LEDGER_SHADOW = "SHADOW"
#: Items read per round trip when scanning a run.
SCAN_COUNT = 500

RUN_PLANNING = "planning"
RUN_PLANNED = "planned"
RUN_RUNNING = "running"
RUN_INTERRUPTED = "interrupted"
RUN_DONE = "done"


class RunError(Exception):
    """A run cannot be used as asked; the message says why (for the CLI)."""


def check_name(name: str) -> str:
    if not RUN_NAME.match(name):
        raise RunError(
            f"run name {name!r}: letters, digits, '.', '_' and '-', at most 64, "
            "starting with a letter or digit"
        )
    return name


def pack_emails(payloads: Sequence[str]) -> bytes:
    """A backlog item's emails (`EmailPayload` JSON each) as one compressed value (pure)."""
    return zlib.compress(json.dumps(list(payloads), separators=(",", ":")).encode(), 6)


def unpack_emails(packed: bytes) -> list[str]:
    emails: list[str] = json.loads(zlib.decompress(packed))
    return emails


#: One call that returned: its model, usage and ledger counters (`worker.state.ledger.entry`).
Charged = tuple[str, Usage, dict[str, int]]


def _increments(charges: Sequence[Charged], label: str) -> list[tuple[str, str, int]]:
    """(ledger day field, run counter, amount) for each counter of each call (pure)."""
    return [
        (f"{model}|{label}|{counter}", counter, value)
        for model, _, counters in charges
        for counter, value in counters.items()
        if value
    ]


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


class RunStore:
    """Every read and write of run records goes here."""

    def __init__(self, client: redis.Redis, retention_days: float) -> None:
        self._redis = client
        self._ttl = max(60, int(retention_days * 86_400))
        self._record = client.register_script(scripts.load("run_record"))

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    # --- the run -------------------------------------------------------------------------

    def meta(self, name: str) -> dict[str, str]:
        raw: Any = self._redis.hgetall(keys.run_meta(name))
        return {as_text(k): as_text(v) for k, v in raw.items()}

    def create(self, name: str, fields: dict[str, str]) -> bool:
        """A new run; False when one of that name exists."""
        now = time.time()
        if not self._redis.hsetnx(keys.run_meta(name), "created_at", f"{now:.3f}"):
            return False
        pipe = self._redis.pipeline(transaction=False)
        mapping: dict[str, str] = {**fields, "updated_at": f"{now:.3f}"}
        pipe.hset(keys.run_meta(name), mapping=mapping)  # type: ignore[arg-type]
        pipe.zadd(keys.RUNS, {name: now})
        pipe.expire(keys.run_meta(name), self._ttl)
        pipe.execute()
        return True

    def update(self, name: str, **fields: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        mapping: dict[str, str] = {**fields, "updated_at": f"{time.time():.3f}"}
        pipe.hset(keys.run_meta(name), mapping=mapping)  # type: ignore[arg-type]
        pipe.expire(keys.run_meta(name), self._ttl)
        pipe.execute()

    def names(self) -> list[tuple[str, float]]:
        """Runs kept, oldest first; runs whose records expired are forgotten here."""
        entries: Any = self._redis.zrange(keys.RUNS, 0, -1, withscores=True)
        pipe = self._redis.pipeline(transaction=False)
        for raw, _ in entries:
            pipe.exists(keys.run_meta(as_text(raw)))
        alive = pipe.execute() if entries else []
        gone = [as_text(raw) for (raw, _), ok in zip(entries, alive, strict=True) if not ok]
        if gone:
            self._redis.zrem(keys.RUNS, *gone)
        return [
            (as_text(raw), float(at)) for (raw, at), ok in zip(entries, alive, strict=True) if ok
        ]

    def delete(self, name: str) -> int:
        """Every record of the run; returns how many keys were deleted."""
        deleted = int(self._redis.delete(*keys.run_keys(name)))
        self._redis.zrem(keys.RUNS, name)
        return deleted

    def touch(self, name: str) -> None:
        """Restart the retention clock of every key of the run."""
        pipe = self._redis.pipeline(transaction=False)
        for key in keys.run_keys(name):
            pipe.expire(key, self._ttl)
        pipe.execute()

    # --- the plan ------------------------------------------------------------------------

    def add_todo(
        self, name: str, plans: dict[str, dict[str, Any]], inputs: dict[str, bytes] | None = None
    ) -> None:
        if not plans:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.run_todo(name), mapping={k: json.dumps(v) for k, v in plans.items()})
        pipe.expire(keys.run_todo(name), self._ttl)
        if inputs:
            pipe.hset(keys.run_input(name), mapping=inputs)  # type: ignore[arg-type]
            pipe.expire(keys.run_input(name), self._ttl)
        pipe.execute()

    def todo_count(self, name: str) -> int:
        return int(self._redis.hlen(keys.run_todo(name)))

    def scan_todo(self, name: str) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """The plan in chunks (HSCAN: flat memory whatever the run's size)."""
        chunk: list[tuple[str, dict[str, Any]]] = []
        for item, plan in self._redis.hscan_iter(keys.run_todo(name), count=SCAN_COUNT):
            chunk.append((as_text(item), json.loads(plan)))
            if len(chunk) >= SCAN_COUNT:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def inputs(self, name: str, items: Sequence[str]) -> list[list[str] | None]:
        """The emails (payload JSON) of backlog items, None where there are none."""
        if not items:
            return []
        packed: list[Any] = self._redis.hmget(keys.run_input(name), list(items))
        return [None if value is None else unpack_emails(value) for value in packed]

    def drop_plan(self, name: str) -> None:
        """A finished run needs its plan and emails no more (its decisions say which emails)."""
        self._redis.delete(keys.run_todo(name), keys.run_input(name), keys.run_msgids(name))

    def claim_message(self, name: str, message_id: str, owner: str) -> str | None:
        """Record that the run saw `message_id` (owner: item and sender); the earlier owner when
        it had (the run's own dedupe: an email is part of a run once)."""
        key = keys.run_msgids(name)
        if self._redis.hsetnx(key, message_id, owner):
            return None
        return as_text(self._redis.hget(key, message_id))

    def owners(self, name: str, message_ids: Sequence[str]) -> list[str | None]:
        if not message_ids:
            return []
        found: list[Any] = self._redis.hmget(keys.run_msgids(name), list(message_ids))
        return [None if value is None else as_text(value) for value in found]

    # --- decisions -----------------------------------------------------------------------

    def decided(self, name: str, items: Sequence[str]) -> list[bool]:
        if not items:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for item in items:
            pipe.hexists(keys.run_decisions(name), item)
        return [bool(found) for found in pipe.execute()]

    def record(
        self,
        name: str,
        decision: RunDecision,
        charges: Sequence[Charged] = (),
        label: str = LEDGER_REPROCESS,
        *,
        latest: bool = False,
    ) -> bool:
        """Record one decision (once per item, unless `latest`) with the calls it cost (added
        either way: they were paid); False when the item was already decided."""
        payload = decision.model_dump_json()
        script_keys = [
            keys.run_decisions(name),
            keys.run_index(name),
            keys.run_events(name),
            keys.run_meta(name),
            keys.ledger_day(_today()),
        ]
        args: list[str | int | float] = [
            decision.thread_id,
            payload,
            decision.decided_at,
            decision.outcome,
            "latest" if latest else "once",
            EVENTS_MAXLEN,
            self._ttl,
            "1" if decision.changed else "0",
            len(decision.email_ids),
            json.dumps(_increments(charges, label)),
        ]
        return bool(self._record(keys=script_keys, args=args))

    def charge(self, name: str, charges: Sequence[Charged], label: str) -> None:
        """Calls that returned without a decision to record (a run stopped after a truncated
        call): into the run's counters and the ledger's day under `label`."""
        increments = _increments(charges, label)
        if not increments:
            return
        day_key = keys.ledger_day(_today())
        pipe = self._redis.pipeline(transaction=False)
        for field, counter, value in increments:
            pipe.hincrby(keys.run_meta(name), counter, value)
            pipe.hincrby(day_key, field, value)
        pipe.execute()

    def decision(self, name: str, item: str) -> RunDecision | None:
        raw = self._redis.hget(keys.run_decisions(name), item)
        return None if raw is None else parse_run_decision(raw)

    def decisions(self, name: str, items: Sequence[str]) -> list[RunDecision | None]:
        """The run's decisions on `items` (one round trip), None where it has none."""
        if not items:
            return []
        found: list[Any] = self._redis.hmget(keys.run_decisions(name), list(items))
        return [None if raw is None else parse_run_decision(raw) for raw in found]

    def scan_decisions(self, name: str) -> Iterator[RunDecision]:
        """Every decision of the run (HSCAN: flat memory)."""
        for _, raw in self._redis.hscan_iter(keys.run_decisions(name), count=SCAN_COUNT):
            yield parse_run_decision(raw)

    def decision_count(self, name: str) -> int:
        return int(self._redis.hlen(keys.run_decisions(name)))

    def trim_older_than(self, name: str, oldest: float, batch: int = 1000) -> int:
        """Forget decisions made before `oldest` (the shadow run's retention); returns how many."""
        stale: list[Any] = self._redis.zrangebyscore(
            keys.run_index(name), "-inf", oldest, start=0, num=batch
        )
        if not stale:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(keys.run_decisions(name), *stale)
        pipe.zrem(keys.run_index(name), *stale)
        pipe.execute()
        return len(stale)

    # --- batches -------------------------------------------------------------------------

    def add_batch(self, name: str, batch_id: str, plan: dict[str, dict[str, Any]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.run_batches(name), batch_id, json.dumps(plan))
        pipe.expire(keys.run_batches(name), self._ttl)
        pipe.execute()

    def batch_ids(self, name: str) -> list[str]:
        """Batches submitted and not yet applied, in id order."""
        return sorted(as_text(k) for k in self._redis.hkeys(keys.run_batches(name)))

    def batch_plan(self, name: str, batch_id: str) -> dict[str, dict[str, Any]]:
        """custom_id -> what its request was built from (item, budget, ...)."""
        raw = self._redis.hget(keys.run_batches(name), batch_id)
        return {} if raw is None else dict(json.loads(raw))

    def end_batch(self, name: str, batch_id: str) -> None:
        self._redis.hdel(keys.run_batches(name), batch_id)

    # --- apply ---------------------------------------------------------------------------

    def mark_applied(self, name: str, thread_id: str, record: dict[str, Any]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.run_applied(name), thread_id, json.dumps(record))
        pipe.expire(keys.run_applied(name), self._ttl)
        pipe.execute()

    def applied_count(self, name: str) -> int:
        return int(self._redis.hlen(keys.run_applied(name)))
