"""The way in for pipelines and `triage enqueue`: raw email bytes (or a JSONL record) -> inbox.

An email that cannot be used is not dropped: it goes to the dead-letter stream with the reason,
where it came from and the raw text (bounded), and the caller gets the reason back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import structlog

from common.connections import redis_client
from common.deadletters import DeadLetterStream
from common.publish import Publisher
from common.settings import Settings
from producers.jsonl import parse_record
from producers.parse import REASON_TOO_LARGE, EmailParseError, ParsedEmail, ParseLimits, parse_email
from producers.sources import Item
from producers.submit import Submitted, Submitter

log = structlog.get_logger("producers.enqueue")

MAX_RAW_KEPT = 256 * 1024
REASON_UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Rejected:
    source: str
    reason: str
    error: str
    position: str = ""


def limits_from(settings: Settings) -> ParseLimits:
    return ParseLimits(
        max_bytes=settings.max_email_bytes, max_text_chars=settings.max_email_text_chars
    )


class Enqueuer:
    """Parses, threads, dedupes and enqueues; build one per process and reuse it."""

    def __init__(
        self, settings: Settings, client: redis.Redis | None = None, hold_for_batch: bool = False
    ) -> None:
        self._redis = client or redis_client(settings.redis_url)
        self._submitter = Submitter(
            settings, self._redis, Publisher.for_settings(settings), hold_for_batch
        )
        self._dead_letters = DeadLetterStream(self._redis)
        self.limits = limits_from(settings)

    def enqueue_bytes(
        self, raw: bytes, source: str = "<bytes>", position: str = ""
    ) -> Submitted | Rejected:
        """One RFC 5322 email."""
        try:
            email = parse_email(raw, self.limits)
        except EmailParseError as exc:
            return self.reject(source, position, exc.reason, str(exc), raw)
        return self.submit(email, source, position)

    def enqueue_record(
        self, line: bytes | str, source: str = "<jsonl>", position: str = ""
    ) -> Submitted | Rejected:
        """One JSONL record (see `producers.jsonl.JsonlEmail`)."""
        try:
            email = parse_record(line, self.limits)
        except EmailParseError as exc:
            raw = line.encode("utf-8", "replace") if isinstance(line, str) else line
            return self.reject(source, position, exc.reason, str(exc), raw)
        return self.submit(email, source, position)

    def enqueue_item(self, item: Item) -> Submitted | Rejected:
        """One item from `producers.sources`."""
        if item.kind == "email":
            return self.enqueue_bytes(item.data, item.source, item.position)
        if item.kind == "jsonl":
            return self.enqueue_record(item.data, item.source, item.position)
        if item.kind == "oversize":
            error = f"{item.size} bytes, over the {self.limits.max_bytes}-byte limit"
            return self.reject(item.source, item.position, REASON_TOO_LARGE, error, item.data)
        return self.reject(item.source, item.position, REASON_UNREADABLE, item.error, b"")

    def submit(self, email: ParsedEmail, source: str, position: str = "") -> Submitted:
        submitted = self._submitter.submit(email)
        log.info(
            "enqueue.submitted",
            source=source,
            position=position,
            status=submitted.status,
            thread_id=submitted.thread_id,
            message_id=submitted.message_id,
        )
        return submitted

    def reject(self, source: str, position: str, reason: str, error: str, raw: bytes) -> Rejected:
        """Dead-letter it (with the head of the raw input) and tell the caller why."""
        self._dead_letters.add(
            reason,
            error,
            {
                "source": source,
                "position": position,
                "raw": raw[:MAX_RAW_KEPT].decode("utf-8", errors="replace"),
            },
        )
        log.warning(
            "enqueue.rejected", source=source, position=position, reason=reason, error=error
        )
        return Rejected(source, reason, error, position)


def iter_eml_files(paths: list[Path]) -> Iterator[Path]:
    """Files as given; directories expanded to their `*.eml` files, sorted (stable order)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.eml") if p.is_file())
        else:
            yield path
