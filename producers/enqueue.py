"""The way in for pipelines and `triage enqueue`: raw email bytes -> the thread's inbox.

An email that cannot be parsed is not dropped: it goes to the dead-letter stream with the reason
and the raw text (bounded), and the caller gets the reason back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import structlog

from producers.parse import EmailParseError, parse_email
from producers.submit import Submitted, Submitter, producer_app
from worker.deadletters import DeadLetterStream
from worker.settings import Settings

log = structlog.get_logger("producers.enqueue")

MAX_RAW_KEPT = 256 * 1024


@dataclass(frozen=True)
class Rejected:
    source: str
    reason: str
    error: str


class Enqueuer:
    """Parses, threads, dedupes and enqueues; build one per process and reuse it."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self._redis = client or redis.Redis.from_url(settings.redis_url, socket_timeout=15)
        self._submitter = Submitter(settings, self._redis, producer_app(settings))
        self._dead_letters = DeadLetterStream(self._redis)

    def enqueue_bytes(self, raw: bytes, source: str = "<bytes>") -> Submitted | Rejected:
        try:
            email = parse_email(raw)
        except EmailParseError as exc:
            self._dead_letters.add(
                exc.reason,
                str(exc),
                {"source": source, "raw": raw[:MAX_RAW_KEPT].decode("utf-8", errors="replace")},
            )
            log.warning("enqueue.rejected", source=source, reason=exc.reason, error=str(exc))
            return Rejected(source, exc.reason, str(exc))
        submitted = self._submitter.submit(email)
        log.info(
            "enqueue.submitted",
            source=source,
            status=submitted.status,
            thread_id=submitted.thread_id,
            message_id=submitted.message_id,
        )
        return submitted


def iter_eml_files(paths: list[Path]) -> Iterator[Path]:
    """Files as given; directories expanded to their `*.eml` files, sorted (stable order)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.eml") if p.is_file())
        else:
            yield path
