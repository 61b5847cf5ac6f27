"""The way in for pipelines and `triage enqueue`: raw email bytes (or a JSONL record) -> inbox.

Nothing vanishes: every item ends enqueued, a duplicate (the same Message-ID from the same
sender), `reply_bounced` (a bounce of one of our replies, marking its thread), or rejected with
a reason and kept in the dead-letter stream with where it came from and the raw text (bounded).
No exception raised by one email (parsing, threading, a script error) stops a batch: it becomes
that email's rejection. Only Redis or the broker failing stops a run, and the caller is told how
many emails were read but not done (`IncompleteBatch`).

`Enqueuer.enqueue_items` submits in batches (two pipelined round trips per batch, see
`producers.submit`); `Previewer.preview_items` is the read-only dry run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeAlias

import redis
import structlog

from common.connections import redis_client
from common.deadletters import DeadLetterStream
from common.publish import Publisher, TaskPublisher
from common.settings import Settings
from producers.jsonl import parse_record
from producers.parse import REASON_TOO_LARGE, EmailParseError, ParsedEmail, ParseLimits, parse_email
from producers.sources import Item
from producers.submit import STATUS_BOUNCE_UNKNOWN, Resolution, Submitted, Submitter

log = structlog.get_logger("producers.enqueue")

MAX_RAW_KEPT = 256 * 1024
#: Emails submitted per pipelined batch.
BATCH_SIZE = 200
REASON_UNREADABLE = "unreadable"
#: An exception while parsing (a bug, or input nobody foresaw): the email is kept, not lost.
REASON_PARSE_FAILED = "parse_failed"
#: A per-email error from Redis while submitting (a script error), not a connection failure.
REASON_SUBMIT_FAILED = "submit_failed"


@dataclass(frozen=True)
class Rejected:
    source: str
    reason: str
    error: str
    position: str = ""


Outcome: TypeAlias = Submitted | Rejected


class IncompleteBatch(Exception):
    """Redis or the broker failed mid-batch: the `done` outcomes are final (recorded); the
    `not_done` items of the batch were read but have no outcome (the run stops)."""

    def __init__(self, cause: Exception, done: list[tuple[Item, Outcome]], not_done: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.done = done
        self.not_done = not_done


def limits_from(settings: Settings) -> ParseLimits:
    return ParseLimits(
        max_bytes=settings.max_email_bytes,
        max_text_chars=settings.max_email_text_chars,
        max_header_bytes=settings.max_header_bytes,
        max_encoded_words=settings.max_encoded_words,
        max_mime_parts=settings.max_mime_parts,
        max_mime_depth=settings.max_mime_depth,
        max_addresses=settings.max_addresses_per_header,
        max_subject_chars=settings.max_subject_chars,
    )


class Enqueuer:
    """Parses, threads, dedupes and enqueues; build one per process and reuse it."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis | None = None,
        hold_for_batch: bool = False,
        publisher: TaskPublisher | None = None,
    ) -> None:
        self._redis = client or redis_client(settings.redis_url)
        self._submitter = Submitter(
            settings, self._redis, publisher or Publisher.for_settings(settings), hold_for_batch
        )
        self._dead_letters = DeadLetterStream(self._redis)
        self.limits = limits_from(settings)

    # --- one email -------------------------------------------------------------------------

    def enqueue_bytes(self, raw: bytes, source: str = "<bytes>", position: str = "") -> Outcome:
        """One RFC 5322 email."""
        return self.enqueue_item(Item(source, position, "email", raw, len(raw)))

    def enqueue_record(
        self, line: bytes | str, source: str = "<jsonl>", position: str = ""
    ) -> Outcome:
        """One JSONL record (see `producers.jsonl.JsonlEmail`)."""
        data = line.encode("utf-8", "replace") if isinstance(line, str) else line
        return self.enqueue_item(Item(source, position, "jsonl", data, len(data)))

    def enqueue_item(self, item: Item) -> Outcome:
        """One item from `producers.sources`; Redis or broker failures raise as they are."""
        try:
            [(_, outcome)] = list(self.enqueue_items([item]))
        except IncompleteBatch as exc:
            raise exc.cause from None
        return outcome

    # --- batches ---------------------------------------------------------------------------

    def enqueue_items(
        self, items: Iterable[Item], batch_size: int = BATCH_SIZE
    ) -> Iterator[tuple[Item, Outcome]]:
        """Every item with its outcome, in order, submitted `batch_size` at a time.

        Raises `IncompleteBatch` when Redis or the broker fails (the outcomes already known are
        in it, and how many items of the batch were not done).
        """
        iterator = iter(items)
        while batch := list(islice(iterator, batch_size)):
            yield from self._batch(batch)

    def _batch(self, batch: list[Item]) -> list[tuple[Item, Outcome]]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        try:
            parsed = [parse_item(item, self.limits) for item in batch]
            emails: list[tuple[int, ParsedEmail]] = []
            for index, result in enumerate(parsed):
                if isinstance(result, Rejected):
                    outcomes[index] = self._dead_letter(batch[index], result)
                else:
                    emails.append((index, result))
            results = self._submitter.submit_many([email for _, email in emails], publish=False)
            for (index, _), outcome in zip(emails, results, strict=True):
                item = batch[index]
                if isinstance(outcome, Submitted):
                    outcomes[index] = outcome
                    continue
                reason = (
                    STATUS_BOUNCE_UNKNOWN
                    if str(outcome).startswith(STATUS_BOUNCE_UNKNOWN)
                    else REASON_SUBMIT_FAILED
                )
                error = f"{type(outcome).__name__}: {outcome}"
                outcomes[index] = self._dead_letter(item, _rejected(item, reason, error))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            done = [(batch[i], o) for i, o in enumerate(outcomes) if o is not None]
            self._record(done)
            raise IncompleteBatch(exc, done, len(batch) - len(done)) from exc
        done = [(batch[i], o) for i, o in enumerate(outcomes) if o is not None]
        self._record(done)
        try:
            self._submitter.publish_drains(results)
        except Exception as exc:
            # Every email of the batch is in its inbox; the threads whose drain task could not
            # be published had their flags freed: the sweeper (or a re-run) schedules them.
            raise IncompleteBatch(exc, done, 0) from exc
        return done

    def _record(self, done: list[tuple[Item, Outcome]]) -> None:
        for item, outcome in done:
            if isinstance(outcome, Submitted):
                log.info(
                    "enqueue.submitted",
                    source=item.source,
                    position=item.position,
                    status=outcome.status,
                    thread_id=outcome.thread_id,
                    message_id=outcome.message_id,
                )

    def _dead_letter(self, item: Item, rejected: Rejected) -> Rejected:
        return self.reject(item.source, item.position, rejected.reason, rejected.error, item.data)

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
            "enqueue.rejected", source=source, position=position, reason=reason, error=error[:300]
        )
        return Rejected(source, reason, error, position)


class Previewer:
    """`--dry-run`: parse and thread-resolve (read-only), never write anything."""

    def __init__(self, settings: Settings, client: redis.Redis | None) -> None:
        self.limits = limits_from(settings)
        self._submitter = Submitter(settings, client, None) if client is not None else None
        #: Why threads could not be resolved (Redis unreachable), "" while they can.
        self.redis_error = "" if client is not None else "no Redis"

    def _resolve(self, emails: list[ParsedEmail]) -> list[Resolution]:
        if self._submitter is None or not emails:
            return []
        try:
            return self._submitter.resolve(emails)
        except redis.RedisError as exc:  # parse on without threads: nothing is written anyway
            self._submitter, self.redis_error = None, str(exc)
            return []

    def preview_items(
        self, items: Iterable[Item], batch_size: int = BATCH_SIZE
    ) -> Iterator[tuple[Item, ParsedEmail | Rejected, Resolution | None]]:
        iterator = iter(items)
        while batch := list(islice(iterator, batch_size)):
            parsed = [parse_item(item, self.limits) for item in batch]
            emails = [p for p in parsed if isinstance(p, ParsedEmail)]
            resolutions = iter(self._resolve(emails))
            for item, result in zip(batch, parsed, strict=True):
                resolution = next(resolutions, None) if isinstance(result, ParsedEmail) else None
                yield item, result, resolution


def _rejected(item: Item, reason: str, error: str) -> Rejected:
    return Rejected(item.source, reason, error, item.position)


def parse_item(item: Item, limits: ParseLimits) -> ParsedEmail | Rejected:
    """Parse one item, never raising and writing nothing: what cannot be used is a `Rejected`."""
    try:
        if item.kind == "email":
            return parse_email(item.data, limits)
        if item.kind == "jsonl":
            return parse_record(item.data, limits)
        if item.kind == "oversize":
            error = f"{item.size} bytes, over the {limits.max_bytes}-byte limit"
            return _rejected(item, REASON_TOO_LARGE, error)
        return _rejected(item, REASON_UNREADABLE, item.error or "unreadable")
    except EmailParseError as exc:
        return _rejected(item, exc.reason, str(exc))
    except Exception as exc:  # one email must never stop a batch (RecursionError included)
        log.error(
            "enqueue.parse_failed",
            source=item.source,
            position=item.position,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        return _rejected(item, REASON_PARSE_FAILED, f"{type(exc).__name__}: {exc}")


def iter_eml_files(paths: list[Path]) -> Iterator[Path]:
    """Files as given; directories expanded to their `*.eml` files, sorted (stable order)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.eml") if p.is_file())
        else:
            yield path
