"""kombu's Redis transport, made cheaper per message; same keys, same recovery semantics.

- One reusable client for the synchronous commands: stock kombu builds a new `redis.Redis` for
  every acknowledgement, unacked-index update and publish (`Channel.conn_or_acquire`), and
  redis-py's constructor copies its table of response callbacks each time (about 12% of the
  worker's CPU at 250 emails/s). A client over a connection pool is thread-safe.
- The unacked bookkeeping of `acks_late` (a ZADD + HSET when a message is delivered, a ZREM + HDEL
  when it is acked) runs as one small script instead of a MULTI/EXEC pipeline: still atomic, one
  command to send and one reply to parse instead of four. The payload stored is kombu's own, so
  kombu's visibility-timeout restore reads it unchanged.

Used for `redis://` broker URLs without a global key prefix; `rediss://` and `sentinel://` keep
kombu's own transport. Connections through it still read `redis://…` (`Connection.as_uri`): Celery's
banner, `celery inspect stats`, and Flower, which picks its broker client by that scheme.

It relies on kombu internals (listed and checked in tests/fast/test_kombu_internals.py): kombu is
pinned to the minor series those tests pass on.
"""

from __future__ import annotations

from time import time
from typing import Any
from urllib.parse import urlparse

from kombu.connection import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from common import scripts

TRANSPORT = "common.broker:Transport"

APPEND_LUA = scripts.load("unacked_add")
ACK_LUA = scripts.load("unacked_remove")


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.global_keyprefix:  # the prefixing client only prefixes a script's 1st key
            super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
            return
        delivery = message.delivery_info
        raw = [message._raw, delivery["exchange"], delivery["routing_key"]]
        keys = [self.unacked_index_key, self.unacked_key]
        self.channel.run_script(APPEND_LUA, keys, [time(), delivery_tag, dumps(raw)])  # type: ignore[no-untyped-call]
        virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]

    def ack(self, delivery_tag: str) -> None:
        if self.channel.global_keyprefix:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
            return
        self.channel.run_script(ACK_LUA, [self.unacked_index_key, self.unacked_key], [delivery_tag])
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client: Any = None
    _scripts: dict[str, Any] | None = None

    def run_script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA on the shared client (EVAL once if the server does not have it yet)."""
        client = self._create_client()
        if self._scripts is None:
            self._scripts = {}
        script = self._scripts.get(source)
        if script is None or script.registered_client is not client:
            script = self._scripts[source] = client.register_script(source)
        return script(keys=keys, args=args)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


# kombu writes a connection's URL with the transport's name as its scheme; ours is a Redis URL.
Connection.resolve_aliases.setdefault(TRANSPORT, "redis")


def transport_for(broker_url: str) -> str | None:
    """Our transport for plain `redis://` brokers; None lets kombu pick by the URL's scheme."""
    return TRANSPORT if urlparse(broker_url).scheme == "redis" else None
