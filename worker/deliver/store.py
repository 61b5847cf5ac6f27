"""A subscription's deliveries in Redis: fan-out from the events stream, per-thread lists, leases.

Per subscription (names in `common.keys`):

- a consumer group on `triage:events` is its cursor; `fan_out` moves new events of the types it
  wants into one list per thread (`…:thread:<id>`, oldest first) and marks the thread due, in one
  script with the cursor (a crash cannot lose or double an event);
- `…:due` orders threads by when their head is due; only a thread's head is ever in flight, so a
  later event of a thread waits until the earlier one is delivered or dead-lettered;
- `claim` leases the most overdue thread to a lane (its score becomes the lease end: a lane that
  dies releases the thread when the lease ends); `settle` records the attempt (delivered, retry at
  a time, or dead: removed and written to `triage:dlq` in the same script) and may hand the lane
  the thread's next delivery at once;
- `requeue` puts a dead letter back at the head of its thread (replay).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import redis

from common import keys
from common.connections import as_text
from common.deadletters import DeadLetterEntry
from common.webhooks import Subscription
from worker.deliver.scripts import load

#: Dead-letter reasons: refused for good (4xx, 3xx, a bad URL), or out of attempts.
REASON_REJECTED = "webhook_rejected"
REASON_GAVE_UP = "webhook_gave_up"
REASONS = (REASON_REJECTED, REASON_GAVE_UP)
#: Group member name of every fan-out (it reads with NOACK: nothing stays pending under it).
FANOUT_CONSUMER = "fanout"


@dataclass(frozen=True)
class Delivery:
    """The head of one thread's list for one subscription, as a lane holds it."""

    subscription: str
    thread_id: str
    item: str  # the queued JSON, exactly (settle removes it by value)
    event_id: str
    type: str
    payload: str  # the event JSON from the stream
    attempts: int  # failed attempts so far

    @classmethod
    def from_item(cls, subscription: str, thread_id: str, item: str, attempts: int) -> Delivery:
        fields = json.loads(item)
        return cls(
            subscription,
            thread_id,
            item,
            str(fields["id"]),
            str(fields["type"]),
            str(fields.get("payload") or "{}"),
            attempts,
        )

    def event(self) -> dict[str, Any]:
        """The event as a JSON object (a payload that is not one is wrapped, never dropped)."""
        try:
            decoded = json.loads(self.payload)
        except json.JSONDecodeError:
            decoded = None
        return decoded if isinstance(decoded, dict) else {"payload": self.payload}

    def dead_letter_payload(self) -> dict[str, Any]:
        """What a dead letter keeps to replay this delivery."""
        return {
            "webhook": self.subscription,
            "event_id": self.event_id,
            "type": self.type,
            "thread_id": self.thread_id,
            "event": self.event(),
        }


def item_json(event_id: str, event_type: str, thread_id: str, event: dict[str, Any]) -> str:
    """A queue item for an event (what the fan-out script writes, for a replayed dead letter)."""
    payload = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(
        {"id": event_id, "type": event_type, "thread_id": thread_id, "payload": payload},
        ensure_ascii=False,
    )


@dataclass(frozen=True)
class FanOut:
    read: int
    queued: int
    last_id: str


@dataclass(frozen=True)
class Waiting:
    """What one subscription has not delivered yet."""

    threads: int
    deliveries: int
    retrying: int  # deliveries that failed at least once and wait for their next attempt
    lag: int | None  # events in the stream its cursor has not reached (None: unknown)
    oldest_due: float | None


class DeliveryQueue:
    """One subscription's side of Redis."""

    def __init__(self, client: redis.Redis, subscription: Subscription) -> None:
        self._redis = client
        self.subscription = subscription
        name = subscription.name
        self._group = keys.webhook_group(name)
        self._due = keys.webhook_due(name)
        self._leases = keys.webhook_leases(name)
        self._attempts = keys.webhook_attempts(name)
        self._prefix = keys.webhook_thread_prefix(name)
        self._types = "," + ",".join(subscription.events) + ","
        self._fanout = client.register_script(load("fanout"))
        self._claim = client.register_script(load("claim"))
        self._settle = client.register_script(load("settle"))
        self._requeue = client.register_script(load("requeue"))

    @property
    def name(self) -> str:
        return self.subscription.name

    def ensure_group(self) -> bool:
        """Create the subscription's cursor at the end of the stream (new events only), unless it
        exists; True when it was created."""
        try:
            self._redis.xgroup_create(keys.EVENTS, self._group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    def fan_out(self, now: float, count: int = 500) -> FanOut:
        read, queued, last = self._fanout(
            keys=[keys.EVENTS, self._due],
            args=[self._group, count, f"{now:.3f}", self._types, self._prefix],
        )
        return FanOut(int(read), int(queued), as_text(last))

    def claim(self, now: float, lease: float, token: str) -> Delivery | float | None:
        """The most overdue thread's head, leased to `token`; else when the next one is due
        (None: nothing queued)."""
        reply: Any = self._claim(
            keys=[self._due, self._leases, self._attempts],
            args=[f"{now:.3f}", f"{lease:.3f}", token, self._prefix],
        )
        thread_id = as_text(reply[0])
        if not thread_id:
            upcoming = as_text(reply[1])
            return float(upcoming) if upcoming else None
        return Delivery.from_item(self.name, thread_id, as_text(reply[1]), int(reply[2]))

    def settle(
        self,
        delivery: Delivery,
        token: str,
        outcome: Literal["delivered", "retry", "dead"],
        now: float,
        *,
        when: float | None = None,
        attempts: int = 0,
        letter: DeadLetterEntry | None = None,
    ) -> Delivery | Literal["done", "stale"]:
        """Record an attempt. `when`: retry at (retry), or the renewed lease end when the lane
        goes on with the thread (delivered/dead). Returns the thread's next delivery when the
        lane goes on with it."""
        reply: Any = self._settle(
            keys=[
                self._due,
                self._leases,
                self._attempts,
                keys.webhook_thread(self.name, delivery.thread_id),
                keys.DEAD_LETTERS,
            ],
            args=[
                delivery.thread_id,
                token,
                delivery.item,
                delivery.event_id,
                outcome,
                f"{now:.3f}",
                "" if when is None else f"{when:.3f}",
                attempts,
                letter.reason if letter else "",
                letter.to_json() if letter else "",
            ],
        )
        status = as_text(reply[0])
        if status == "next":
            return Delivery.from_item(
                self.name, delivery.thread_id, as_text(reply[1]), int(reply[2])
            )
        return "stale" if status == "stale" else "done"

    def requeue(self, payload: dict[str, Any], now: float) -> bool:
        """Put a dead letter's delivery back at the head of its thread; False if it is queued
        already."""
        event_id = str(payload["event_id"])
        thread_id = str(payload["thread_id"])
        event = payload.get("event")
        if not isinstance(event, dict):
            raise ValueError("the dead letter keeps no event")
        item = item_json(event_id, str(payload["type"]), thread_id, event)
        added = self._requeue(
            keys=[
                self._due,
                self._leases,
                self._attempts,
                keys.webhook_thread(self.name, thread_id),
            ],
            args=[thread_id, item, event_id, f"{now:.3f}"],
        )
        return bool(added)

    def waiting(self, now: float, sample: int = 1000) -> Waiting:
        """Counts for `triage webhooks list` (deliveries counted over at most `sample` threads)."""
        threads = int(self._redis.zcard(self._due))
        due: list[Any] = self._redis.zrange(self._due, 0, sample - 1, withscores=True)
        pipe = self._redis.pipeline(transaction=False)
        for thread_id, _ in due:
            pipe.llen(keys.webhook_thread(self.name, as_text(thread_id)))
        deliveries = sum(int(n) for n in pipe.execute()) if due else 0
        lag: int | None = None
        try:
            groups: Any = self._redis.xinfo_groups(keys.EVENTS)
        except redis.ResponseError:
            groups = []
        for group in groups:
            if as_text(group.get("name", b"")) == self._group:
                raw_lag = group.get("lag")
                lag = int(raw_lag) if raw_lag is not None else None
        return Waiting(
            threads=threads,
            deliveries=deliveries,
            retrying=int(self._redis.hlen(self._attempts)),
            lag=lag,
            oldest_due=float(due[0][1]) if due else None,
        )


def requeue_dead_letter(
    client: redis.Redis, subscriptions: list[Subscription], payload: dict[str, Any], now: float
) -> str:
    """Replay a webhook dead letter's delivery (its `payload`); ValueError when it cannot be."""
    name = str(payload.get("webhook", ""))
    subscription = next((s for s in subscriptions if s.name == name), None)
    if subscription is None:
        raise ValueError(f"no webhook subscription named {name!r} is configured")
    try:
        added = DeliveryQueue(client, subscription).requeue(payload, now)
    except KeyError as exc:
        raise ValueError(f"the dead letter lacks {exc}") from None
    state = "queued again" if added else "already queued"
    return f"event {payload.get('event_id')} to {name} {state} (thread {payload.get('thread_id')})"
