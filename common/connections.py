"""Redis connections: one timeout and retry policy for every entry point.

The worker, the producers, every CLI command, doctor and the metrics server open their clients
here, and the Celery broker gets the same figures as transport options, so an outage looks the same
everywhere: connecting gives up after `CONNECT_TIMEOUT`, a command after `SOCKET_TIMEOUT`, and a
timed-out command is retried once on a fresh connection.
"""

from __future__ import annotations

from typing import Any

import redis

#: Seconds to open a TCP (and TLS) connection before the attempt counts as failed.
CONNECT_TIMEOUT = 5.0
#: Seconds one command may take; the longest is a commit script over a flooded inbox.
SOCKET_TIMEOUT = 15.0
#: Idle connections are pinged before reuse after this many seconds (load balancers drop them).
HEALTH_CHECK_INTERVAL = 25


def client_options() -> dict[str, Any]:
    """The keyword arguments every client gets (also the broker's transport options)."""
    return {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry_on_timeout": True,
    }


def as_text(value: Any) -> str:
    """A reply value as text: clients without `decode_responses` return bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def redis_client(url: str, **overrides: Any) -> redis.Redis:
    """A client for `url` with the project's policy; `overrides` only for tools (e.g. a probe)."""
    return redis.Redis.from_url(url, **(client_options() | overrides))
