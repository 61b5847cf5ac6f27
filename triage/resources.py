"""What the commands open: settings (or a one-line exit), Redis, the store, dead letters, replay.

Every command module imports from here, never from `triage.main` (no import circles)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import redis

from common import keys
from common.connections import redis_client
from common.deadletters import DeadLetter, DeadLetterStream
from common.errors import ConfigError
from common.publish import Publisher
from common.settings import Settings, load_settings
from worker.recovery.replay import Replayer
from worker.state.store import ThreadStore


class BadSetting(click.ClickException):
    """A setting is missing or invalid: one line naming the variable, exit code 2."""

    exit_code = 2


def settings_or_exit() -> Settings:
    """The settings, or a one-line error naming the variable (exit 2, as documented)."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise BadSetting(str(exc)) from None


def open_redis(settings: Settings) -> redis.Redis:
    return redis_client(settings.redis_url)


def open_store(settings: Settings) -> ThreadStore:
    return ThreadStore(open_redis(settings), settings.thread_ttl_seconds, settings.events_maxlen)


def open_dead_letters(settings: Settings) -> DeadLetterStream:
    return DeadLetterStream(open_redis(settings))


def read_outbox(settings: Settings, count: int = 1000) -> list[dict[str, Any]]:
    entries: list[Any] = open_redis(settings).xrange(keys.OUTBOX, count=count)  # type: ignore[assignment]
    return [
        {"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
        for entry_id, fields in entries
    ]


def open_replayer(settings: Settings) -> Replayer:
    """A replayer wired to the producers: tasks are published by name, raw mail re-parsed."""
    from producers.enqueue import Enqueuer, Rejected

    client = open_redis(settings)
    publisher = Publisher.for_settings(settings)
    enqueuer = Enqueuer(settings, client)

    def reparse(raw: bytes, source: str) -> str:
        # A JSON-schema record (JSONL, `POST /v1/emails` as JSON, a provider's fields) is kept as
        # its JSON text; anything else is a raw email.
        if raw.lstrip().startswith(b"{"):
            result = enqueuer.enqueue_record(raw, source)
        else:
            result = enqueuer.enqueue_bytes(raw, source)
        if isinstance(result, Rejected):
            raise ValueError(f"still rejected: {result.reason}: {result.error}")
        return f"email {result.message_id} {result.status} into thread {result.thread_id}"

    def webhook(payload: dict[str, Any]) -> str:
        from worker.deliver.store import requeue_dead_letter

        return requeue_dead_letter(client, settings.webhook_subscriptions, payload, time.time())

    return Replayer(
        client,
        DeadLetterStream(client),
        publisher,
        reparse,
        settings.thread_ttl_seconds,
        settings.visibility_timeout_seconds,
        webhook,
    )


def replay_and_report(settings: Settings, letters: list[DeadLetter]) -> None:
    """Replay `letters`, print a line for each and a total; exit 1 when any was kept (the line
    says why), so scripts notice what still needs a person."""
    replayer = open_replayer(settings)
    kept = 0
    for letter in letters:
        result = replayer.replay(letter)
        kept += result.outcome == "kept"
        click.echo(f"{result.entry_id}  {result.outcome:<8}  {result.detail}")
    click.echo(f"{len(letters) - kept} replayed, {kept} kept")
    if kept:
        sys.exit(1)
