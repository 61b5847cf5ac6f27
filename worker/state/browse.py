"""Thread state read for people, never written: lists with filters, one thread with its events.

What `triage thread list`, `triage thread show` and the web console (`console/`) show. Nothing here
writes: a packed (idle) thread is decoded where it lies, never restored (`ThreadStore.peek`,
`Compactor.peek`).

- `iter_threads`: threads newest first (by last update), filtered by status, category, exact meta
  values, an update-time window and any predicate.
- `load_view`: one thread's snapshot, its decision events (from the events stream, in the window
  of its lifetime) and its usage ledger, as a `ThreadView`; `turn_texts` and `decision_fields`
  read the stored turns, `event_cost` prices the calls behind a decision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from common import keys
from common.connections import as_text
from common.prices import ModelPrice
from common.settings import Settings
from worker.state.compaction import Compactor
from worker.state.ledger import Ledger
from worker.state.pricing import cost_usd, price_for
from worker.state.snapshot import Snapshot, Turn
from worker.state.store import ThreadStore
from worker.state.usage import Usage

#: Events are looked for between the thread's creation and last update, +- this clock skew.
SKEW_SECONDS = 300
PAGE = 1000
MAX_SCANNED = 200_000


def iter_threads(
    client: redis.Redis,
    status: str | None,
    category: str | None,
    batch: int = 200,
    *,
    since: float | None = None,
    until: float | None = None,
    where: Callable[[str, dict[str, str]], bool] | None = None,
    **match: str | None,
) -> Iterator[dict[str, str]]:
    """Threads newest first (by last update), with their meta, filtered by status / category, by
    exact meta values in `match` (e.g. priority, language; None: any), by last update within
    [`since`, `until`] (unix seconds) and by `where(thread_id, meta)`. Packed (idle) threads
    are read without being restored."""
    compactor = Compactor(client)
    wanted = {name: value.lower() for name, value in match.items() if value}
    high: float | str = "+inf" if until is None else until
    low: float | str = "-inf" if since is None else since
    start = 0
    while True:
        raw_ids: Any = client.zrevrangebyscore(keys.THREADS, high, low, start=start, num=batch)
        ids = [as_text(i) for i in raw_ids]
        if not ids:
            return
        pipe = client.pipeline(transaction=False)
        for thread_id in ids:
            pipe.hgetall(keys.thread_meta(thread_id))
        for thread_id, raw in zip(ids, pipe.execute(), strict=True):
            meta = {as_text(k): as_text(v) for k, v in raw.items()}
            if not meta:
                packed = compactor.peek(thread_id)
                if packed is None:
                    continue  # expired since it was listed
                meta = dict(packed["meta"])
            meta.setdefault("status", "new")
            if status and meta["status"] != status:
                continue
            if category and meta.get("category", "").upper() != category.upper():
                continue
            if any(meta.get(name, "").lower() != value for name, value in wanted.items()):
                continue
            if where is not None and not where(thread_id, meta):
                continue
            yield {"thread_id": thread_id, **meta}
        start += batch


@dataclass(frozen=True)
class ThreadView:
    """Everything a transcript shows about one thread."""

    snapshot: Snapshot
    events: list[dict[str, Any]]
    ledger: dict[str, int]
    prices: dict[str, ModelPrice]


def thread_events(
    client: redis.Redis, thread_id: str, meta: dict[str, str]
) -> list[dict[str, Any]]:
    """The thread's events, oldest first, read from the window of its lifetime."""
    try:
        created = float(meta.get("created_at") or 0)
        updated = float(meta.get("updated_at") or time.time())
        updated = max(updated, float(meta.get("reviewed_at") or 0))
    except ValueError:
        return []
    cursor = f"{max(0, int((created - SKEW_SECONDS) * 1000))}-0"
    end = str(int((updated + SKEW_SECONDS) * 1000))
    wanted = thread_id.encode()
    found: list[dict[str, Any]] = []
    scanned = 0
    while scanned < MAX_SCANNED:
        entries: Any = client.xrange(keys.EVENTS, min=cursor, max=end, count=PAGE)
        for _, fields in entries:
            if fields.get(b"thread_id") == wanted:
                try:
                    found.append(json.loads(fields[b"payload"]))
                except (KeyError, ValueError):
                    continue
        scanned += len(entries)
        if len(entries) < PAGE:
            break
        millis, sequence = as_text(entries[-1][0]).split("-")
        cursor = f"{millis}-{int(sequence) + 1}"
    return found


def load_view(client: redis.Redis, settings: Settings, thread_id: str) -> ThreadView | None:
    """The thread, its events and its ledger; None if nothing is known about it."""
    store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
    snapshot = store.peek(thread_id)  # read-only: a packed thread is decoded, not restored
    if not snapshot.meta and not snapshot.messages and not snapshot.inbox:
        return None
    events = thread_events(client, thread_id, snapshot.meta)
    ledger = Ledger(client, settings.prices, settings.thread_ttl_seconds).thread(thread_id)
    return ThreadView(snapshot, events, ledger, settings.prices)


def turn_texts(turn: Turn) -> list[str]:
    """The text blocks of a turn (a string content is one block)."""
    content = turn.get("content", "")
    if isinstance(content, str):
        return [content]
    return [str(block.get("text", "")) for block in content if isinstance(block, dict)]


def decision_fields(turn: Turn) -> dict[str, Any] | None:
    """An assistant turn's decision (the structured output), or None if it is not one."""
    try:
        decision = json.loads("".join(turn_texts(turn)))
    except ValueError:
        return None
    return decision if isinstance(decision, dict) and "action" in decision else None


def event_cost(event: dict[str, Any], prices: dict[str, ModelPrice]) -> tuple[Usage, float]:
    """The tokens of the calls behind one decision event and what they cost (USD, standard
    rates from the price table)."""
    usage = Usage.from_mapping(event.get("usage") or {})
    model = str(event.get("model") or "?")
    return usage, cost_usd(usage, price_for(model, prices))
