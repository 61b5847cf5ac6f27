"""Time-based retention: streams trimmed by age, indexes trimmed with their threads.

The events stream, the outbox and the dead-letter stream keep entries for a number of days
(`XTRIM MINID`, exact: each sweep removes only what aged out since the last one); the thread
indexes drop entries older than the thread TTL (their threads have expired). The sweeper calls
`trim` every sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from common import keys

DAY = 86_400.0


@dataclass(frozen=True)
class Retention:
    events_days: float
    outbox_days: float
    dead_letter_days: float
    thread_ttl_seconds: float


def min_id(now: float, days: float) -> str:
    """The oldest stream id to keep (pure): ids are milliseconds since the epoch."""
    return f"{int((now - days * DAY) * 1000)}-0"


def trim(client: redis.Redis, retention: Retention, now: float) -> list[int]:
    """Apply the retention once; returns what each command removed (streams, then indexes)."""
    oldest_thread = now - retention.thread_ttl_seconds
    pipe = client.pipeline(transaction=False)
    pipe.xtrim(keys.EVENTS, minid=min_id(now, retention.events_days), approximate=False)
    pipe.xtrim(keys.OUTBOX, minid=min_id(now, retention.outbox_days), approximate=False)
    pipe.xtrim(keys.DEAD_LETTERS, minid=min_id(now, retention.dead_letter_days), approximate=False)
    for index in (keys.THREADS, keys.AWAITING, keys.IDLE):
        pipe.zremrangebyscore(index, "-inf", oldest_thread)
    return [int(n) for n in pipe.execute()]
