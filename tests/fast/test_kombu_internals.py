"""The kombu internals that common/broker.py relies on keep the shape it was written against.

kombu is pinned to the 5.7 series (pyproject.toml). A release inside it, or a bump of the pin,
that changes one of these fails here, naming the internal and what common/broker.py does with it,
rather than later as lost or doubled tasks. After checking broker.py against the new kombu,
update the expectations below (the fingerprints ignore formatting and comments, not code).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import kombu
import pytest
import redis
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.objects import cached_property

from common import broker

CHECKED_ON = "kombu 5.7.0"


def fingerprint(function: Callable[..., Any]) -> str:
    """A digest of the function's syntax tree: equal for the same code, whatever its layout."""
    tree = ast.dump(ast.parse(textwrap.dedent(inspect.getsource(function))))
    return hashlib.sha256(tree.encode()).hexdigest()[:16]


def test_kombu_is_the_series_broker_py_was_checked_on():
    """The installed kombu is the minor series the expectations below were taken from."""
    assert tuple(kombu.VERSION[:2]) == (5, 7), (
        f"kombu {kombu.__version__} is installed; common/broker.py was checked on {CHECKED_ON}: "
        "re-check it against this kombu and update tests/fast/test_kombu_internals.py"
    )


SIGNATURES = [
    (kombu_redis.QoS.append, "(self, message, delivery_tag)", "overridden by broker.QoS.append"),
    (kombu_redis.QoS.ack, "(self, delivery_tag)", "overridden by broker.QoS.ack"),
    (virtual.QoS.append, "(self, message, delivery_tag)", "called by broker.QoS.append"),
    (virtual.QoS.ack, "(self, delivery_tag)", "called by broker.QoS.ack"),
    (
        kombu_redis.Channel._create_client,
        "(self, asynchronous=False)",
        "overridden by broker.Channel._create_client (one reusable synchronous client)",
    ),
]


@pytest.mark.parametrize(
    ("method", "signature", "use"), SIGNATURES, ids=[m.__qualname__ for m, _, _ in SIGNATURES]
)
def test_methods_broker_py_overrides_or_calls_keep_their_signature(method, signature, use):
    """Each kombu method broker.py overrides or calls directly takes the same arguments."""
    found = str(inspect.signature(method))
    assert found == signature, (
        f"kombu internal {method.__module__}.{method.__qualname__} changed its signature to "
        f"{found} (was {signature}); it is {use}"
    )


FINGERPRINTS = [
    (
        kombu_redis.QoS.append,
        "bdc5ddeaeea754cc",
        "broker.QoS.append replaces its ZADD+HSET pipeline with unacked_add.lua, storing the same "
        "dumps([message._raw, exchange, routing_key]) under the same keys",
    ),
    (
        kombu_redis.QoS.ack,
        "c657a6451d3caea8",
        "broker.QoS.ack replaces its ZREM+HDEL pipeline with unacked_remove.lua",
    ),
    (
        virtual.QoS.append,
        "0da09be77dfcbfd6",
        "broker.QoS.append calls it directly after its script (skipping kombu's redis QoS)",
    ),
    (
        virtual.QoS.ack,
        "72c0cef43f20dd3e",
        "broker.QoS.ack calls it directly after its script (skipping kombu's redis QoS)",
    ),
    (
        kombu_redis.Channel._create_client,
        "13a296471d9d737d",
        "broker.Channel._create_client caches the synchronous client it returns per pool",
    ),
]


@pytest.mark.parametrize(
    ("method", "expected", "use"), FINGERPRINTS, ids=[m.__qualname__ for m, _, _ in FINGERPRINTS]
)
def test_methods_broker_py_replaces_have_the_code_it_replicates(method, expected, use):
    """The kombu methods broker.py re-implements (or skips) still do what it re-implements."""
    found = fingerprint(method)
    assert found == expected, (
        f"kombu internal {method.__module__}.{method.__qualname__} changed (fingerprint {found}, "
        f"checked {expected} on {CHECKED_ON}): {use}; re-check common/broker.py against it"
    )


def test_qos_reads_the_unacked_keys_from_the_channel(broker_url):
    """QoS.unacked_key / unacked_index_key exist and name kombu's `unacked` hash and zset."""
    for name in ("unacked_key", "unacked_index_key"):
        assert isinstance(kombu_redis.QoS.__dict__.get(name), cached_property), (
            f"kombu internal kombu.transport.redis.QoS.{name} is no longer a cached property; "
            "broker.QoS passes it as a key to the unacked scripts"
        )
    connection = Connection(broker_url, transport=broker.TRANSPORT)
    try:
        channel = connection.default_channel
        qos = channel.qos
        assert isinstance(qos, broker.QoS) and isinstance(channel, broker.Channel)
        assert (qos.unacked_key, qos.unacked_index_key) == ("unacked", "unacked_index"), (
            "kombu's unacked keys were renamed: the restore of unacked tasks and "
            "tests/helpers.broker_idle read them"
        )
        assert channel.global_keyprefix == "", (
            "kombu internal Channel.global_keyprefix changed: broker.QoS falls back to kombu's "
            "own bookkeeping when it is set"
        )
        assert qos.channel is channel, "kombu internal QoS.channel changed"
        assert channel.pool is not None, (
            "kombu internal Channel.pool changed: broker.Channel compares its cached client's "
            "connection_pool with it"
        )
    finally:
        connection.close()


def test_a_delivered_message_keeps_its_raw_payload_and_delivery_info():
    """The redis channel's messages keep `_raw` (stored as the unacked payload) and routing."""
    assert issubclass(kombu_redis.Channel.Message, virtual.Message), (
        "kombu internal kombu.transport.redis.Channel.Message is no longer a virtual.Message"
    )
    payload = {
        "body": None,
        "properties": {
            "delivery_tag": "tag-1",
            "delivery_info": {"exchange": "triage", "routing_key": "triage"},
        },
    }
    message = kombu_redis.Channel.Message(payload, channel=None)
    assert message._raw is payload, (
        "kombu internal Message._raw no longer holds the raw payload: broker.QoS.append stores "
        "it as the unacked entry that kombu's restore puts back on the queue"
    )
    assert (message.delivery_info["exchange"], message.delivery_info["routing_key"]) == (
        "triage",
        "triage",
    ), "kombu internal Message.delivery_info changed: broker.QoS.append stores both fields"


def test_names_broker_py_adds_are_not_kombu_s():
    """broker.Channel's own attributes do not shadow anything kombu's Channel defines."""
    for name in ("run_script", "_sync_client", "_scripts"):
        assert not hasattr(kombu_redis.Channel, name), (
            f"kombu's redis Channel now defines {name!r}, which broker.Channel also defines "
            "(and would shadow): rename ours"
        )


def test_redis_py_scripts_remember_their_client():
    """redis-py's Script keeps `registered_client` (broker.Channel.run_script compares it)."""
    client = redis.Redis()
    script = client.register_script("return 1")
    assert getattr(script, "registered_client", None) is client, (
        "redis-py internal Script.registered_client changed: broker.Channel.run_script uses it "
        "to re-register its scripts on a new client"
    )


def test_connection_urls_of_our_transport_read_redis():
    """kombu's `Connection.resolve_aliases` still names our transport's URLs `redis://`."""
    assert isinstance(Connection.resolve_aliases, dict), (
        "kombu internal Connection.resolve_aliases changed: common/broker.py registers its "
        "transport there so Connection.as_uri (Celery's banner, Flower) reads redis://"
    )
    connection = Connection("redis://:secret@127.0.0.1:6390/3", transport=broker.TRANSPORT)
    assert connection.as_uri(include_password=True) == "redis://:secret@127.0.0.1:6390/3"
    assert connection.transport.driver_type == "redis"
    assert type(connection.clone().transport) is broker.Transport, (
        "a cloned connection lost our transport (kombu's Connection.clone no longer uses "
        "_info(resolve=False))"
    )
