"""Webhook delivery in-process: the delivery worker's threads against the test Redis and real
HTTP receivers on loopback (retries, dead letters and replay, order per thread, duplicates,
leases). The worker process itself is exercised in tests/e2e/test_webhooks_worker.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from helpers import Hit, Receiver, closed_port_url, publish_event, wait_for, webhook_signed
from pydantic import SecretStr

from common import keys
from common.deadletters import DeadLetterStream
from common.webhooks import EVENT_TYPES, Subscription
from worker.deliver.service import DeliveryService, RetryPolicy
from worker.deliver.store import REASON_GAVE_UP, REASON_REJECTED, requeue_dead_letter

SECRET = "whsec_test_0123456789"


def signed_by(hit: Hit) -> bool:
    return webhook_signed(hit, SECRET)


def subscription(url: str, name: str = "hook", **fields: Any) -> Subscription:
    return Subscription(name=name, url=url, secret=SecretStr(SECRET), **fields)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start HTTP receivers on loopback (stopped after the test)."""
    started: list[Receiver] = []

    def start(respond: Any = None, port: int = 0) -> Receiver:
        receiver = Receiver(respond, port)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def deliveries(r: redis.Redis, state_url: str) -> Iterator[Callable[..., DeliveryService]]:
    """Start a delivery worker in this process (its own Redis client; stopped after the test).
    Fast retries: attempts 5, backoff 0.05 s doubling to 0.4 s, timeout 1 s."""
    started: list[tuple[DeliveryService, redis.Redis]] = []

    def start(*subscriptions: Subscription, concurrency: int = 4, **policy: Any) -> DeliveryService:
        client = redis.Redis.from_url(state_url)
        settings = {"max_attempts": 5, "backoff": 0.05, "backoff_max": 0.4, "timeout": 1.0}
        service = DeliveryService(
            lambda: client, subscriptions, RetryPolicy(**{**settings, **policy}), concurrency
        )
        service.start()
        started.append((service, client))
        return service

    yield start
    for service, client in started:
        service.stop()
        client.close()


def dead_letters(r: redis.Redis) -> list[Any]:
    return DeadLetterStream(r).list()


def test_every_event_type_is_delivered_once_signed(r, receivers, deliveries):
    """Each event type arrives once, signed (checked independently), with the documented body
    and headers; the event id is the stream entry id."""
    receiver = receivers()
    deliveries(subscription(receiver.url))
    ids = {kind: publish_event(r, kind, f"t-{kind}") for kind in EVENT_TYPES}
    wait_for(lambda: len(receiver.processed) == len(ids), 10, "every event type delivered")
    assert sorted(receiver.ids()) == sorted(ids.values())
    assert receiver.duplicates == 0 and len(receiver.hits) == len(ids)
    for hit in receiver.processed:
        assert signed_by(hit)
        document = hit.json()
        kind = document["type"]
        assert document["id"] == ids[kind] == hit.event_id == hit.headers["idempotency-key"]
        assert document["thread_id"] == f"t-{kind}" == document["data"]["thread_id"]
        assert document["schema_version"] == 1 and document["test"] is False
        assert document["data"]["type"] == kind == hit.headers["x-triage-event-type"]
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["x-triage-delivery-attempt"] == "1"
    assert not r.keys(f"{keys.PREFIX}:webhook:hook:thread:*")


def test_a_subscription_gets_only_its_event_types(r, receivers, deliveries):
    """A subscription for `escalated` gets escalations only; another one gets everything."""
    narrow, wide = receivers(), receivers()
    deliveries(
        subscription(narrow.url, "narrow", events=("escalated",)),
        subscription(wide.url, "wide"),
    )
    publish_event(r, "classified", "t1")
    escalated = publish_event(r, "escalated", "t2")
    wait_for(lambda: len(wide.processed) == 2, 10, "both events at the wide subscription")
    wait_for(lambda: narrow.ids() == [escalated], 10, "the escalation at the narrow one")


def test_retries_500_timeout_and_429_then_delivers_once_with_one_id(r, receivers, deliveries):
    """500, a timeout, then 429 with Retry-After: 1, then 200: processed once; every attempt
    carries the same event id and body; the 429 retry waits at least a second."""
    script = [(500, {}, 0.0), (504, {}, 1.5), (429, {"Retry-After": "1"}, 0.0)]
    receiver = receivers(lambda hit, n: script[n] if n < len(script) else (200, {}, 0.0))
    deliveries(subscription(receiver.url), timeout=0.5, backoff_max=2.0)
    event_id = publish_event(r, "classified", "t1")
    wait_for(lambda: receiver.ids() == [event_id], 15, "the event to be delivered")
    attempts = receiver.attempts(event_id)
    assert len(attempts) == 4
    assert {hit.body for hit in attempts} == {attempts[0].body}
    assert {hit.headers["idempotency-key"] for hit in attempts} == {event_id}
    assert [hit.headers["x-triage-delivery-attempt"] for hit in attempts] == ["1", "2", "3", "4"]
    assert all(signed_by(hit) for hit in attempts)
    assert attempts[3].at - attempts[2].at >= 1.0
    assert receiver.duplicates == 0 and not dead_letters(r)


def test_a_400_is_dead_lettered_at_once_and_replay_delivers_it(r, receivers, deliveries):
    """A 4xx other than 408/429 is permanent: one attempt, a dead letter with the event; after
    the receiver is fixed, replay delivers it under the same id."""
    accept = {"now": False}
    receiver = receivers(lambda hit, n: (200 if accept["now"] else 400, {}, 0.0))
    sub = subscription(receiver.url)
    deliveries(sub)
    event_id = publish_event(r, "classified", "t1")
    (letter,) = wait_for(lambda: dead_letters(r), 10, "a dead letter")
    assert len(receiver.hits) == 1
    assert letter.reason == REASON_REJECTED and letter.thread_id == "t1"
    payload = letter.body["payload"]
    assert (payload["webhook"], payload["event_id"], payload["type"]) == (
        "hook",
        event_id,
        "classified",
    )
    assert payload["event"]["thread_id"] == "t1"
    assert "HTTP 400" in letter.body["error"] and letter.body["attempts"] == 1
    accept["now"] = True
    requeue_dead_letter(r, [sub], payload, time.time())
    wait_for(lambda: receiver.ids() == [event_id], 10, "the replayed event")
    assert receiver.processed[0].body == receiver.hits[0].body
    assert receiver.processed[0].headers["x-triage-delivery-attempt"] == "1"


def test_an_endpoint_down_past_the_budget_ends_in_the_dlq_and_replay_delivers(
    r, receivers, deliveries
):
    """Connection refused on every attempt: after the budget (3 attempts) a `webhook_gave_up`
    dead letter; once the endpoint is up, replay delivers the event."""
    url = closed_port_url()
    sub = subscription(url)
    deliveries(sub, max_attempts=3)
    event_id = publish_event(r, "escalated", "t1")
    (letter,) = wait_for(lambda: dead_letters(r), 10, "a dead letter")
    assert letter.reason == REASON_GAVE_UP and letter.body["attempts"] == 3
    assert "connection" in letter.body["error"].lower()
    receiver = receivers(port=int(url.rsplit(":", 1)[1].split("/")[0]))
    requeue_dead_letter(r, [sub], letter.body["payload"], time.time())
    wait_for(lambda: receiver.ids() == [event_id], 10, "the replayed event")


def test_a_threads_later_event_waits_for_the_earlier_one_still_retrying(r, receivers, deliveries):
    """The receiver fails a thread's first event twice: its second and third wait (never sent
    before the first is processed) while another thread's event goes through."""
    first: list[str] = []

    def respond(hit: Hit, n: int) -> tuple[int, dict[str, str], float]:
        return (503, {}, 0.0) if hit.event_id in first and n < 2 else (200, {}, 0.0)

    receiver = receivers(respond)
    deliveries(subscription(receiver.url), backoff=0.3, backoff_max=0.6)
    first.append(publish_event(r, "clarification", "A"))
    later = [publish_event(r, "classified", "A"), publish_event(r, "corrected", "A")]
    other = publish_event(r, "classified", "B")
    wait_for(lambda: len(receiver.processed) == 4, 15, "all four events")
    a_ids = [h.event_id for h in receiver.processed if h.json()["thread_id"] == "A"]
    assert a_ids == [*first, *later]
    first_ok = receiver.processed.index(next(h for h in receiver.processed if h.event_id in first))
    assert receiver.ids().index(other) < first_ok, "thread B waited for thread A"
    sent_before_first_ok = [
        h.event_id for h in receiver.hits if h.at < receiver.processed[first_ok].at
    ]
    assert not set(later) & set(sent_before_first_ok)


def test_a_slow_endpoint_does_not_hold_back_another(r, receivers, deliveries):
    """Each subscription has its own lanes: a receiver taking 2 s per request does not delay
    the other subscription's deliveries."""
    slow = receivers(lambda hit, n: (200, {}, 2.0))
    fast = receivers()
    deliveries(subscription(slow.url, "slow"), subscription(fast.url, "fast"), timeout=5.0)
    started = time.monotonic()
    for n in range(10):
        publish_event(r, "classified", f"t{n}")
    wait_for(lambda: len(fast.processed) == 10, 10, "the fast endpoint's ten events")
    assert time.monotonic() - started < 2.0
    assert len(slow.processed) < 10


def test_a_receiver_dedupes_a_redelivery_by_event_id(r, receivers, deliveries):
    """The receiver processes an event but answers after our timeout: we send it again with
    the same id and body, and the receiver drops the copy."""
    receiver = receivers(lambda hit, n: (200, {}, 1.5 if n == 0 else 0.0))
    deliveries(subscription(receiver.url), timeout=0.5)
    event_id = publish_event(r, "classified", "t1")
    wait_for(lambda: len(receiver.attempts(event_id)) == 2, 10, "a second attempt")
    wait_for(lambda: receiver.duplicates == 1, 10, "the receiver to drop the copy")
    assert receiver.ids() == [event_id]
    first, second = receiver.attempts(event_id)
    assert first.body == second.body and first.event_id == second.event_id


def test_a_lane_that_dies_mid_delivery_is_taken_over_when_its_lease_ends(
    r, receivers, deliveries, state_url
):
    """A lane claims a thread and never settles (its process died): once the lease ends,
    another lane delivers the event, and the thread's next event after it."""
    from worker.deliver.store import DeliveryQueue

    receiver = receivers()
    sub = subscription(receiver.url)
    queue = DeliveryQueue(r, sub)
    queue.ensure_group()
    first = publish_event(r, "clarification", "t1")
    second = publish_event(r, "classified", "t1")
    queue.fan_out(time.time())
    claimed = queue.claim(time.time(), 2.0, "dead-lane")
    assert not isinstance(claimed, float) and claimed is not None and claimed.event_id == first
    started = time.monotonic()
    deliveries(sub)
    wait_for(lambda: receiver.ids() == [first, second], 10, "both events after the lease")
    assert time.monotonic() - started >= 1.5


def test_settling_a_lost_lease_does_not_deliver_twice_or_reorder(r):
    """A lane that overran its lease settles late: its delivered event is removed, and the
    lane now holding the thread keeps it (the late lane does not reschedule it)."""
    from worker.deliver.store import Delivery, DeliveryQueue

    sub = subscription("http://127.0.0.1:9/x")
    queue = DeliveryQueue(r, sub)
    queue.ensure_group()
    first = publish_event(r, "clarification", "t1")
    publish_event(r, "classified", "t1")
    queue.fan_out(time.time())
    at = time.time()
    late = queue.claim(at, 0.0, "late")  # a lease that has already ended
    assert isinstance(late, Delivery)
    now = queue.claim(at, 60.0, "current")
    assert isinstance(now, Delivery) and now.event_id == first
    assert queue.settle(late, "late", "delivered", time.time(), when=time.time() + 60) == "stale"
    leases = {k.decode(): v.decode() for k, v in r.hgetall(keys.webhook_leases("hook")).items()}
    assert leases == {"t1": "current"}
    # the current lane's own settle finds its event gone and goes on with the next one
    following = queue.settle(now, "current", "delivered", time.time(), when=time.time() + 60)
    assert isinstance(following, Delivery) and following.type == "classified"


def test_metrics_count_deliveries_retries_and_dead_letters(r, receivers, deliveries):
    """triage_webhook_attempts_total counts delivered, retried and dead-lettered attempts."""
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "triage_webhook_attempts_total", {"endpoint": "metered", "outcome": outcome}
        )
        return value or 0.0

    before = {o: count(o) for o in ("delivered", "retried", "dead_lettered")}

    def respond(hit: Hit, n: int) -> tuple[int, dict[str, str], float]:
        if hit.json()["type"] == "corrected":
            return 400, {}, 0.0
        return (500 if n == 0 else 200), {}, 0.0

    receiver = receivers(respond)
    deliveries(subscription(receiver.url, "metered"))
    publish_event(r, "classified", "t1")
    publish_event(r, "corrected", "t2")
    wait_for(lambda: len(receiver.processed) == 1 and dead_letters(r), 10, "both outcomes")
    assert count("delivered") - before["delivered"] == 1
    assert count("retried") - before["retried"] == 1
    assert count("dead_lettered") - before["dead_lettered"] == 1


def test_events_before_a_subscription_existed_are_not_sent(r, receivers, deliveries):
    """A new subscription starts with the events committed after it was first served."""
    old = publish_event(r, "classified", "t-old")
    receiver = receivers()
    deliveries(subscription(receiver.url))
    new = publish_event(r, "classified", "t-new")
    wait_for(lambda: receiver.ids() == [new], 10, "the new event")
    assert old not in receiver.ids()
    assert json.loads(receiver.processed[0].body)["thread_id"] == "t-new"
