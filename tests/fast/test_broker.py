"""Our kombu transport keeps kombu's at-least-once bookkeeping: same keys, same payload, same
restore, on a real Redis."""

from __future__ import annotations

import json
import uuid

import redis
from kombu import Connection

from common.broker import TRANSPORT, transport_for


def unacked(client: redis.Redis, tag: str) -> tuple[object, object]:
    return client.hget("unacked", tag), client.zscore("unacked_index", tag)


def delivered(broker_url: str, transport: str | None, queue: str) -> tuple[list[object], object]:
    """Deliver one message without acking; return the stored unacked entry and the message."""
    conn = Connection(broker_url, transport=transport)
    simple = conn.SimpleQueue(queue)
    simple.put({"n": 1}, routing_key=queue)
    message = simple.get(timeout=5)
    client = redis.Redis.from_url(broker_url)
    stored, score = unacked(client, message.delivery_tag)
    assert stored is not None and score is not None
    return json.loads(stored), (conn, simple, message)


def test_delivery_and_ack_bookkeeping_match_stock_kombu(broker_url):
    """Our transport stores and clears the unacked entry exactly as stock kombu does."""
    client = redis.Redis.from_url(broker_url)
    queue = f"q-{uuid.uuid4().hex}"
    ours, (conn, simple, message) = delivered(broker_url, TRANSPORT, queue)
    stock, (conn2, simple2, message2) = delivered(broker_url, None, queue)
    assert type(conn.transport).__module__ == "common.broker"
    assert ours[1:] == stock[1:] and sorted(ours[0]) == sorted(stock[0])
    assert ours[0]["body"] == stock[0]["body"] and ours[1:] == [queue, queue]
    message.ack()
    message2.ack()
    assert unacked(client, message.delivery_tag) == (None, None)
    assert unacked(client, message2.delivery_tag) == (None, None)
    for s, c in ((simple, conn), (simple2, conn2)):
        s.close()
        c.close()


def test_an_unacked_message_is_restored_by_kombu(broker_url):
    """An unacked message from our transport is put back on its queue by kombu's restore."""
    client = redis.Redis.from_url(broker_url)
    queue = f"q-{uuid.uuid4().hex}"
    _, (conn, simple, message) = delivered(broker_url, TRANSPORT, queue)
    assert client.llen(queue) == 0
    conn.default_channel.qos.restore_by_tag(message.delivery_tag)  # what visibility timeout does
    assert client.llen(queue) == 1
    assert unacked(client, message.delivery_tag) == (None, None)
    again = simple.get(timeout=5)
    assert again.payload == {"n": 1}
    again.ack()
    simple.close()
    conn.close()


def test_only_plain_redis_urls_use_our_transport():
    """Only redis:// URLs get our transport; rediss:// and sentinel:// keep kombu's own."""
    assert transport_for("redis://localhost:6379/0") == TRANSPORT
    assert transport_for("rediss://localhost:6380/0") is None
    assert transport_for("sentinel://localhost:26379") is None
