"""kombu's Redis transport, with one reusable client for its synchronous commands.

Stock kombu builds a new `redis.Redis` object for every acknowledgement, every unacked-index
update and every publish (`Channel.conn_or_acquire`); redis-py's constructor copies its table of
response callbacks each time, which cost about 12% of the worker's CPU at 250 emails/s. A Redis
client over a connection pool is thread-safe, so one per channel is enough. Nothing else changes:
same keys, same commands, same visibility-timeout recovery. Used for `redis://` broker URLs only
(`rediss://` and `sentinel://` keep kombu's own transport).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from kombu.transport import redis as kombu_redis

TRANSPORT = "worker.broker:Transport"


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """Our transport for plain `redis://` brokers; None lets kombu pick by the URL's scheme."""
    return TRANSPORT if urlparse(broker_url).scheme == "redis" else None
