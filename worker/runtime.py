"""Building the worker's parts: `build_drain_step` (the one factory, used by the worker, the backlog
command and the benchmarks) and `Runtime`, the per-process resources built lazily after any fork."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from common.connections import redis_client
from common.deadletters import DeadLetterStream
from common.publish import TaskPublisher
from common.settings import Settings
from common.taxonomy import MAX_EXAMPLE_CHARS, MAX_EXAMPLES
from worker.decide.claude import ClaudeClient, make_client
from worker.decide.drain import DrainStep
from worker.decide.limits import Limits
from worker.decide.ratelimit import RateLimiter
from worker.reply.render import load_reply_template
from worker.reply.transports import Transport, make_transport
from worker.state.ledger import Ledger
from worker.state.review import ReviewLane
from worker.state.store import ThreadStore


def rate_limiter(settings: Settings, client: redis.Redis) -> RateLimiter:
    """The fleet-wide limiter over `client` (0 limits: off)."""
    return RateLimiter(
        client,
        settings.rate_limit_rpm,
        settings.rate_limit_itpm,
        settings.rate_limit_burst_seconds,
        settings.rate_limit_max_wait_seconds,
    )


def with_learned_examples(settings: Settings, client: redis.Redis) -> Settings:
    """Settings whose categories also show the newest corrected examples (see the review lane)."""
    store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
    learned = ReviewLane(client, store, settings.events_maxlen).learned_examples(
        settings.learned_examples_per_category, MAX_EXAMPLE_CHARS // 2
    )
    categories = [
        category.model_copy(
            update={
                "examples": [*category.examples, *learned.get(category.name, [])][:MAX_EXAMPLES]
            }
        )
        for category in settings.categories
    ]
    return settings.model_copy(update={"categories": categories})


def build_drain_step(
    settings: Settings,
    client: redis.Redis,
    publisher: TaskPublisher,
    claude: ClaudeClient | None = None,
    limiter: RateLimiter | None = None,
    worker_id: str = "",
) -> DrainStep:
    """A drain step wired to `client` (thread state), the SDK (or `claude`) and `publisher`;
    `worker_id` names the worker whose heartbeat vouches for its drains (see the sweeper)."""
    if settings.learn_from_corrections:
        settings = with_learned_examples(settings, client)
    return DrainStep(
        settings,
        ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen, worker_id),
        claude or ClaudeClient(make_client(settings)),
        publisher,
        limiter or rate_limiter(settings, client),
        Ledger(client, settings.prices, settings.thread_ttl_seconds),
        Limits(client, settings),
    )


@dataclass(frozen=True)
class Resources:
    redis: redis.Redis
    store: ThreadStore
    drain_step: DrainStep
    transport: Transport
    reply_template: str
    dead_letters: DeadLetterStream


class Runtime:
    """Hands out the process's resources; rebuilt when the pid changes (prefork children)."""

    def __init__(self, settings: Settings, publisher: TaskPublisher, worker_id: str = "") -> None:
        self.settings = settings
        self.publisher = publisher
        self.worker_id = worker_id
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
        drain_step = build_drain_step(settings, client, self.publisher, worker_id=self.worker_id)
        return Resources(
            redis=client,
            store=drain_step.store,
            drain_step=drain_step,
            transport=make_transport(settings, client),
            reply_template=load_reply_template(settings),
            dead_letters=DeadLetterStream(client),
        )
