"""On-call commands that read state: `triage thread list` and `triage events tail`.

Readable lines by default, one JSON object per line with `--json` (for scripts and `jq`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click
import redis

from common import keys
from common.connections import as_text
from common.contract import THREAD_STATUSES

PRIORITIES = ("urgent", "high", "normal", "low")

#: How long one blocking XREAD waits before checking the follow deadline again.
BLOCK_MS = 500


def _when(value: str | float | None) -> str:
    try:
        stamp = float(value) if value not in (None, "") else None
    except ValueError:
        return "-"
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


#: Meta fields that are numbers; `--json` prints them as JSON numbers.
INT_FIELDS = frozenset(
    {
        "version",
        "calls",
        "clarifications",
        "drain_attempts",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
)
FLOAT_FIELDS = frozenset({"created_at", "updated_at", "confidence"})


def typed_meta(meta: dict[str, str]) -> dict[str, Any]:
    """The meta hash with JSON types: counters as integers, times as numbers, references a list."""
    typed: dict[str, Any] = {}
    for name, value in meta.items():
        try:
            if name in INT_FIELDS:
                typed[name] = int(value)
            elif name in FLOAT_FIELDS:
                typed[name] = float(value)
            elif name in ("references", "fields"):
                typed[name] = json.loads(value)
            else:
                typed[name] = value
        except ValueError:
            typed[name] = value
    return typed


def thread_line(meta: dict[str, str]) -> str:
    subject = meta.get("subject", "")
    subject = subject if len(subject) <= 50 else subject[:49] + "…"
    return (
        f"{meta['thread_id']:<24} {meta['status']:<18} {meta.get('category') or '-':<10} "
        f"{_when(meta.get('updated_at')):<19} {meta.get('calls', '0'):>5}  {subject}"
    )


class BadFilter(click.ClickException):
    """An unknown filter value: one line listing the valid ones, exit code 2 (a usage error)."""

    exit_code = 2


def check_filters(status: str | None, category: str | None, categories: list[str]) -> None:
    """Unknown filter values are mistakes: say which values exist."""
    if status is not None and status not in THREAD_STATUSES:
        raise BadFilter(
            f"--status {status!r} is not a thread status; valid: {', '.join(THREAD_STATUSES)}"
        )
    if category is not None and category.upper() not in categories:
        raise BadFilter(
            f"--category {category!r} is not a configured category; valid: "
            f"{', '.join(categories)} (set by TRIAGE_CATEGORIES)"
        )


@click.command("list")
@click.option("--status", help=f"Only threads with this status: {', '.join(THREAD_STATUSES)}.")
@click.option("--category", help="Only threads classified into this category.")
@click.option(
    "--priority", type=click.Choice(PRIORITIES, case_sensitive=False), help="Only this priority."
)
@click.option("--language", help="Only threads in this language (BCP 47 code, e.g. de).")
@click.option("--limit", default=50, show_default=True, help="At most this many threads.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def thread_list(
    status: str | None,
    category: str | None,
    priority: str | None,
    language: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Threads, most recently updated first."""
    from triage.resources import open_redis, settings_or_exit
    from worker.state.browse import iter_threads

    settings = settings_or_exit()
    check_filters(status, category, settings.category_names)
    client = open_redis(settings)
    shown = 0
    try:
        for meta in iter_threads(client, status, category, priority=priority, language=language):
            if shown >= limit:
                break
            if as_json:
                click.echo(json.dumps(typed_meta(meta), ensure_ascii=False))
            else:
                if shown == 0:
                    click.echo(
                        f"{'THREAD':<24} {'STATUS':<18} {'CATEGORY':<10} {'UPDATED (UTC)':<19} "
                        f"{'CALLS':>5}  SUBJECT"
                    )
                click.echo(thread_line(meta))
            shown += 1
    except redis.ConnectionError:
        raise  # the command group turns it into one line naming the setting
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis: {exc}") from None
    if not shown and not as_json:
        click.echo("no threads", err=True)


def decode_event(entry_id: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    """A stream entry as the event document, with its stream id."""
    decoded = {as_text(k): as_text(v) for k, v in fields.items()}
    try:
        payload = json.loads(decoded.get("payload", "{}"))
    except json.JSONDecodeError:
        payload = {"payload": decoded.get("payload")}
    if not isinstance(payload, dict):
        payload = {"payload": payload}
    return {"id": as_text(entry_id), "type": decoded.get("type"), **payload}


def event_line(event: dict[str, Any]) -> str:
    kind = event.get("type") or "-"
    detail = ""
    if kind == "classified":
        detail = f"{event.get('category')} confidence={event.get('confidence')}"
    elif kind == "clarification":
        detail = f"reply={event.get('reply_id')}"
    elif kind == "escalated":
        detail = f"refusal={event.get('refusal_category')}"
    return (
        f"{event['id']:<17} {_when(event.get('decided_at')):<19}  {kind:<13} "
        f"thread={event.get('thread_id')}  {detail}"
    )


class EventReader:
    """Reads `triage:events` plainly (XREAD) or as a consumer group member (XREADGROUP + XACK)."""

    def __init__(self, client: redis.Redis, group: str | None, consumer: str) -> None:
        self._client = client
        self._group = group
        self._consumer = consumer
        self._last = "$"
        self._own_pending = True  # a group member first re-reads what it took and never acked
        if group is not None:
            try:
                client.xgroup_create(keys.EVENTS, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def backlog(self, count: int) -> list[dict[str, Any]]:
        """Without a group: the last `count` events, oldest first. With one: the next `count`."""
        if self._group is not None:
            return self.read(count, block_ms=None)
        entries: list[Any] = self._client.xrevrange(keys.EVENTS, count=count)  # type: ignore[assignment]
        entries.reverse()
        if entries:
            self._last = as_text(entries[-1][0])
        else:
            self._last = "0-0" if not self._client.exists(keys.EVENTS) else "$"
            if self._last == "$":
                info: Any = self._client.xinfo_stream(keys.EVENTS)
                self._last = as_text(info["last-generated-id"])
        return [decode_event(i, f) for i, f in entries]

    def read(self, count: int, block_ms: int | None) -> list[dict[str, Any]]:
        if self._group is None:
            streams: dict[Any, Any] = {keys.EVENTS: self._last}
            response: Any = self._client.xread(streams, count=count, block=block_ms)
        else:
            start = "0" if self._own_pending else ">"
            response = self._client.xreadgroup(
                self._group,
                self._consumer,
                {keys.EVENTS: start},
                count=count,
                block=None if self._own_pending else block_ms,
            )
        entries = response[0][1] if response else []
        if self._group is not None and self._own_pending and not entries:
            self._own_pending = False
            return self.read(count, block_ms)
        events = [decode_event(i, f) for i, f in entries]
        if entries and self._group is None:
            self._last = as_text(entries[-1][0])
        return events

    def ack(self, events: list[dict[str, Any]]) -> None:
        if self._group is not None and events:
            self._client.xack(keys.EVENTS, self._group, *[event["id"] for event in events])


@click.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--group", help="Read as this consumer group (created at the stream start).")
@click.option("--consumer", default="triage-cli", show_default=True, help="Consumer name.")
@click.option("--count", default=10, show_default=True, help="Events to print first.")
@click.option(
    "--max-wait",
    type=float,
    default=None,
    help="With --follow: exit after this many seconds without a new event (for scripts).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def events_tail(
    follow: bool,
    group: str | None,
    consumer: str,
    count: int,
    max_wait: float | None,
    as_json: bool,
) -> None:
    """Classification events from the `triage:events` stream.

    Without --group: the last COUNT events (then new ones with --follow). With --group: the next
    COUNT events not yet delivered to the group, each acknowledged once printed, so several tails
    (or a downstream consumer) in one group share the stream and a restart resumes where it left.
    """
    from triage.resources import open_redis, settings_or_exit

    client = open_redis(settings_or_exit())

    def show(events: list[dict[str, Any]]) -> None:
        for event in events:
            click.echo(json.dumps(event, ensure_ascii=False) if as_json else event_line(event))
        reader.ack(events)

    try:
        reader = EventReader(client, group, consumer)
        show(reader.backlog(count))
        if not follow:
            return
        last_seen = time.monotonic()
        while max_wait is None or time.monotonic() - last_seen < max_wait:
            events = reader.read(100, BLOCK_MS)
            if events:
                show(events)
                last_seen = time.monotonic()
    except redis.ConnectionError:
        raise  # the command group turns it into one line naming the setting
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis: {exc}") from None
    except KeyboardInterrupt:
        return


@click.group("events")
def events() -> None:
    """Read the classification event stream."""


events.add_command(events_tail)
