"""A thread's "scheduled" flag, read and judged (pure): is the work it stands for still alive?

Values: `queued:<t>` (a drain task was published at t), `running:<t>:<worker>` (a drainer of that
worker process refreshed it at t; `<worker>` may be empty for in-process drains), `batch:<t>`
(held for a Message Batch). The sweeper re-publishes a drain task for a stale flag:
- `running` of a worker whose heartbeat expired: at once (the heartbeat TTL is the grace);
  of a live worker: only past `alive_stale` (a hung drain; a slow one refreshes its flag before
  every call); of an unknown worker: past `drain_stale`;
- `queued` while the drain queue is empty: past `queued_grace` (the task was purged or never
  reached the broker); while tasks wait in the queue: past `queued_stale`;
- `batch`: past 25 hours (batch results come within 24).
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH_STALE_SECONDS = 25 * 3600.0


@dataclass(frozen=True)
class Flag:
    state: str  # "queued", "running", "batch", or "" (missing or unreadable)
    since: float
    worker: str = ""


@dataclass(frozen=True)
class StaleAfter:
    """Seconds after which a flag no longer stands for live work, by case."""

    drain_stale: float
    alive_stale: float
    queued_grace: float
    queued_stale: float


def parse_flag(value: str) -> Flag:
    """The flag's parts; anything unreadable is a missing flag (state "")."""
    state, _, rest = value.partition(":")
    stamp, _, worker = rest.partition(":")
    try:
        since = float(stamp)
    except ValueError:
        return Flag("", 0.0)
    if state not in ("queued", "running", "batch"):
        return Flag("", 0.0)
    return Flag(state, since, worker)


def running_flag(now: float, worker: str) -> str:
    return f"running:{now:.3f}:{worker}"


def is_stale(
    flag: Flag, now: float, after: StaleAfter, *, worker_alive: bool | None, queue_empty: bool
) -> bool:
    """Whether the flag's work is lost. `worker_alive` is None when the flag names no worker."""
    if not flag.state:
        return True
    age = now - flag.since
    if flag.state == "batch":
        return age > BATCH_STALE_SECONDS
    if flag.state == "running":
        if worker_alive is None:
            return age > after.drain_stale
        return not worker_alive or age > after.alive_stale
    # An empty queue can only shorten the wait (the grace never exceeds the stale limit).
    limit = min(after.queued_grace, after.queued_stale) if queue_empty else after.queued_stale
    return age > limit
