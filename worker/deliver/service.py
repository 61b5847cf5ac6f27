"""The delivery worker: a pump that fans new events out to each subscription, and lanes that POST
them.

Why a reader of the events stream rather than a Celery queue: the stream entry is written by the
commit script in the same atomic step as the decision, so reading it is the only way to be sure
that every committed decision is announced and nothing else is (a task published after the commit
can be lost between the two, as replies needed a pending-hash and a sweeper to cover). The
stream's order is the commit order, so a thread's events arrive in order; its entry id is a
natural event id; and Celery's retries (countdowns held in worker memory, per-task, unordered)
cannot keep a thread's later event behind an earlier one that is still retrying.

- The pump blocks on the stream (XREAD, half a second at most) and runs each subscription's fan-out
  script, which moves new events into per-thread lists under the subscription's consumer group
  cursor (`worker.deliver.store`); then it wakes that subscription's lanes.
- Each subscription has its own lanes (`TRIAGE_WEBHOOK_CONCURRENCY` each): a slow or dead
  endpoint holds only its own. A lane leases the most overdue thread, POSTs the head of its list,
  settles the outcome, and goes on with the thread's next event while it holds the lease.
- Several processes (every `triage worker`, `triage webhooks serve`) may run this at once: the
  scripts are atomic and leases keep one lane per thread fleet-wide.
- At least once: an attempt whose lane dies is redone when its lease ends (`policy.lease_seconds`);
  the receiver drops the repeat by `X-Triage-Event-Id`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import redis
import structlog

from common import keys
from common.connections import as_text
from common.deadletters import DeadLetterEntry
from common.settings import Settings
from common.webhooks import Subscription
from worker.deliver import envelope
from worker.deliver.attempt import post, request_headers
from worker.deliver.http import HttpSender
from worker.deliver.policy import lease_seconds, retry_delay
from worker.deliver.store import REASON_GAVE_UP, REASON_REJECTED, Delivery, DeliveryQueue
from worker.observe import metrics

log = structlog.get_logger("worker.deliver")

#: Entries one fan-out call reads at most (it is repeated while it reads full batches).
FANOUT_BATCH = 500
#: How long the pump blocks on the stream before looking again anyway (and notices a stop).
PUMP_BLOCK_MS = 500
#: Longest an idle lane sleeps before it looks for due work by itself.
IDLE_WAIT = 1.0
#: Deliveries a lane makes in a row on one thread before it lets other threads go first.
RUN_LENGTH = 50


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff: float
    backoff_max: float
    timeout: float  # default per attempt; a subscription may set its own

    def timeout_for(self, subscription: Subscription) -> float:
        return subscription.timeout_seconds or self.timeout


class DeliveryService:
    """The pump and the lanes of one process; `start()` on worker_ready, `stop()` at shutdown."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        subscriptions: Sequence[Subscription],
        policy: RetryPolicy,
        concurrency: int,
        sender: HttpSender | None = None,
    ) -> None:
        self._client = client
        self._subscriptions = list(subscriptions)
        self._policy = policy
        self._concurrency = concurrency
        self._sender = sender or HttpSender(max_connections=concurrency * len(subscriptions) + 4)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wakeups = {s.name: _Wakeup() for s in self._subscriptions}
        self._queues: dict[str, DeliveryQueue] = {}
        self._groups_ready = False

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    def queue(self, name: str) -> DeliveryQueue:
        if name not in self._queues:
            sub = next(s for s in self._subscriptions if s.name == name)
            self._queues[name] = DeliveryQueue(self._client(), sub)
        return self._queues[name]

    def start(self) -> None:
        """Create the subscriptions' cursors (new events only) and start the threads. Without
        Redis the pump creates the cursors once it can: the worker starts all the same."""
        if not self._subscriptions or self._threads:
            return
        try:
            self._ensure_groups()
        except (redis.RedisError, OSError) as exc:
            log.warning("webhook.error", where="start", error=str(exc))
        self._threads.append(threading.Thread(target=self._pump, name="webhook-pump", daemon=True))
        for subscription in self._subscriptions:
            for index in range(self._concurrency):
                self._threads.append(
                    threading.Thread(
                        target=self._lane,
                        args=(subscription,),
                        name=f"webhook-{subscription.name}-{index}",
                        daemon=True,
                    )
                )
        for thread in self._threads:
            thread.start()
        log.info(
            "webhook.serving",
            endpoints=[s.name for s in self._subscriptions],
            lanes=self._concurrency,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work; wait up to `timeout` for attempts in flight (a lane still in one
        when the process exits is redone by another when its lease ends)."""
        self._stopped.set()
        for wakeup in self._wakeups.values():
            wakeup.notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not any(thread.is_alive() for thread in self._threads):
            self._sender.close()

    def wait(self) -> None:
        """Block until stopped (`triage webhooks serve`)."""
        while not self._stopped.wait(1.0):
            pass

    # --- the pump ----------------------------------------------------------------------------

    def _ensure_groups(self) -> None:
        if self._groups_ready:
            return
        for subscription in self._subscriptions:
            if self.queue(subscription.name).ensure_group():
                log.info("webhook.subscribed", endpoint=subscription.name)
        self._groups_ready = True

    def fan_out(self) -> int:
        """Move every subscription's new events into its thread lists; returns how many."""
        queued = 0
        for subscription in self._subscriptions:
            queue = self.queue(subscription.name)
            while True:
                result = queue.fan_out(time.time(), FANOUT_BATCH)
                queued += result.queued
                if result.queued:
                    self._wakeups[subscription.name].notify(result.queued)
                if result.read < FANOUT_BATCH:
                    break
        return queued

    def _pump(self) -> None:
        last = "0-0"
        while not self._stopped.is_set():
            try:
                self._ensure_groups()
                client = self._client()
                tail: list[tuple[bytes, object]] = client.xrevrange(keys.EVENTS, count=1)  # type: ignore[assignment]
                last = as_text(tail[0][0]) if tail else "0-0"
                self.fan_out()
                client.xread({keys.EVENTS: last}, count=1, block=PUMP_BLOCK_MS)
            except (redis.RedisError, OSError) as exc:
                log.warning("webhook.error", where="pump", error=str(exc))
                self._stopped.wait(1.0)
            except Exception as exc:  # a bug must not stop deliveries for good
                log.exception("webhook.error", where="pump", error=str(exc))
                self._stopped.wait(1.0)

    # --- the lanes ---------------------------------------------------------------------------

    def _lane(self, subscription: Subscription) -> None:
        queue = self.queue(subscription.name)
        wakeup = self._wakeups[subscription.name]
        lease = lease_seconds(self._policy.timeout_for(subscription))
        while not self._stopped.is_set():
            try:
                seen = wakeup.generation
                token = uuid.uuid4().hex
                claimed = queue.claim(time.time(), lease, token)
                if isinstance(claimed, Delivery):
                    self._run(queue, claimed, token, lease)
                    continue
                pause = IDLE_WAIT if claimed is None else claimed - time.time()
                wakeup.wait(seen, min(IDLE_WAIT, max(0.001, pause)))
            except (redis.RedisError, OSError) as exc:
                log.warning(
                    "webhook.error", where="lane", endpoint=subscription.name, error=str(exc)
                )
                self._stopped.wait(1.0)
            except Exception as exc:  # a bug must not stop this lane for good
                log.exception(
                    "webhook.error", where="lane", endpoint=subscription.name, error=str(exc)
                )
                self._stopped.wait(1.0)

    def _run(self, queue: DeliveryQueue, delivery: Delivery, token: str, lease: float) -> None:
        """Deliver the claimed thread's events in order while the lane holds it."""
        for done in range(1, RUN_LENGTH + 1):
            goes_on = done < RUN_LENGTH and not self._stopped.is_set()
            following = self.attempt(queue, delivery, token, lease if goes_on else None)
            if not isinstance(following, Delivery):
                if done == RUN_LENGTH:
                    self._wakeups[queue.name].notify(1)  # the thread may have more, due now
                return
            delivery = following

    def attempt(
        self, queue: DeliveryQueue, delivery: Delivery, token: str, lease: float | None
    ) -> Delivery | Literal["done", "stale"]:
        """POST one delivery and settle it; the thread's next delivery when the lane goes on."""
        subscription = queue.subscription
        attempt_no = delivery.attempts + 1
        event = delivery.event()
        body = envelope.body(delivery.event_id, delivery.type, delivery.thread_id, event)
        headers = request_headers(
            subscription, delivery.event_id, delivery.type, body, attempt_no, time.time()
        )
        result, _ = post(
            self._sender, subscription, body, headers, self._policy.timeout_for(subscription)
        )
        now = time.time()
        context = {
            "endpoint": subscription.name,
            "event_id": delivery.event_id,
            "type": delivery.type,
            "thread_id": delivery.thread_id,
            "attempt": attempt_no,
        }
        goes_on = None if lease is None else now + lease
        if result.outcome == "delivered":
            delay = now - envelope.created_at(delivery.event_id)
            metrics.record_webhook(subscription.name, "delivered", result.seconds, delay)
            log.info(
                "webhook.delivered",
                **context,
                status=result.status,
                latency_ms=round(result.seconds * 1000, 1),
                delay_ms=round(delay * 1000, 1),
            )
            settled = queue.settle(delivery, token, "delivered", now, when=goes_on)
        elif result.outcome == "retry" and attempt_no < self._policy.max_attempts:
            wait = retry_delay(
                attempt_no,
                base=self._policy.backoff,
                cap=self._policy.backoff_max,
                retry_after=result.retry_after,
            )
            metrics.record_webhook(subscription.name, "retried", result.seconds)
            log.warning(
                "webhook.retry",
                **context,
                reason=result.reason,
                status=result.status,
                retry_in_s=round(wait, 3),
                **({} if result.status else {"error": result.error}),
            )
            settled = queue.settle(
                delivery, token, "retry", now, when=now + wait, attempts=attempt_no
            )
        else:
            reason = REASON_REJECTED if result.outcome == "dead" else REASON_GAVE_UP
            letter = DeadLetterEntry(
                reason,
                f"{subscription.name}: {result.error}",
                delivery.dead_letter_payload(),
                attempt_no,
            )
            metrics.record_webhook(subscription.name, "dead_lettered", result.seconds)
            log.error(
                "webhook.dead_lettered",
                **context,
                reason=reason,
                cause=result.reason,
                status=result.status,
            )
            settled = queue.settle(delivery, token, "dead", now, when=goes_on, letter=letter)
        if settled == "stale":
            log.warning("webhook.lease_lost", **context)
        return settled


def build_service(settings: Settings, client: Callable[[], redis.Redis]) -> DeliveryService | None:
    """The delivery worker for the configured subscriptions (None without any)."""
    subscriptions = settings.webhook_subscriptions
    if not subscriptions:
        return None
    return DeliveryService(
        client, subscriptions, retry_policy(settings), settings.webhook_concurrency
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_backoff_seconds,
        backoff_max=settings.webhook_backoff_max_seconds,
        timeout=settings.webhook_timeout_seconds,
    )


class _Wakeup:
    """Wakes a subscription's idle lanes without losing a wake-up that comes between a lane's
    empty claim and its wait (a generation counter under a condition)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.generation = 0

    def notify(self, lanes: int | None = None) -> None:
        """Wake `lanes` idle lanes (one per new delivery, not a herd), or all of them."""
        with self._condition:
            self.generation += 1
            if lanes is None:
                self._condition.notify_all()
            else:
                self._condition.notify(lanes)

    def wait(self, seen: int, timeout: float) -> None:
        with self._condition:
            if self.generation == seen:
                self._condition.wait(timeout)
