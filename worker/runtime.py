"""Per-process resources (Redis, SDK client, store, triage), built lazily after any fork."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import redis

from common.contract import ReplyTask
from common.deadletters import DeadLetterStream
from common.settings import Settings
from worker.decide.claude import ClaudeClient, make_client
from worker.decide.drain import Triage
from worker.decide.ratelimit import RateLimiter
from worker.reply.render import load_reply_template
from worker.reply.transports import Transport, make_transport
from worker.state.ledger import Ledger
from worker.state.store import ThreadStore


def redis_client(url: str) -> redis.Redis:
    """A client with timeouts, so an outage fails fast (and is retried) instead of hanging."""
    return redis.Redis.from_url(
        url,
        socket_timeout=15,
        socket_connect_timeout=5,
        health_check_interval=25,
        retry_on_timeout=True,
    )


@dataclass(frozen=True)
class Resources:
    redis: redis.Redis
    store: ThreadStore
    triage: Triage
    transport: Transport
    reply_template: str
    dead_letters: DeadLetterStream


def limiter(settings: Settings, client: redis.Redis) -> RateLimiter:
    return RateLimiter(
        client,
        settings.rate_limit_rpm,
        settings.rate_limit_itpm,
        settings.rate_limit_burst_seconds,
        settings.rate_limit_max_wait_seconds,
    )


class Runtime:
    """Hands out the process's resources; rebuilt when the pid changes (prefork children)."""

    def __init__(self, settings: Settings, publish_reply: Callable[[ReplyTask], None]) -> None:
        self.settings = settings
        self._publish_reply = publish_reply
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._resources: Resources | None = None

    @property
    def resources(self) -> Resources:
        if self._resources is None or self._pid != os.getpid():
            with self._lock:
                if self._resources is None or self._pid != os.getpid():
                    self._resources = self._build()
                    self._pid = os.getpid()
        return self._resources

    def _build(self) -> Resources:
        settings = self.settings
        client = redis_client(settings.redis_url)
        store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
        claude = ClaudeClient(make_client(settings))
        return Resources(
            redis=client,
            store=store,
            triage=Triage(
                settings,
                store,
                claude,
                self._publish_reply,
                limiter(settings, client),
                Ledger(client, settings.prices, settings.thread_ttl_seconds),
            ),
            transport=make_transport(settings, client),
            reply_template=load_reply_template(settings),
            dead_letters=DeadLetterStream(client),
        )
