"""`triage review`: the review lane, where a person confirms or corrects a decision."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from triage.resources import open_redis, open_store, settings_or_exit
from worker.state.review import ReviewError, ReviewLane


def _lane() -> ReviewLane:
    settings = settings_or_exit()
    return ReviewLane(open_redis(settings), open_store(settings), settings.events_maxlen)


def _field_values(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`--field k=v` options: JSON values where they parse (numbers, null, true), else text."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--field")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values


@click.group()
def review() -> None:
    """The review lane: decisions under the review threshold wait here for a person."""


@review.command("list")
@click.option("--limit", default=100, show_default=True, help="At most this many threads.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def review_list(limit: int, as_json: bool) -> None:
    """Threads waiting for review, oldest first."""
    items = _lane().waiting(limit)
    for item in items:
        meta = item.meta
        row: dict[str, Any] = {
            "thread_id": item.thread_id,
            "waiting_since": item.since,
            "category": meta.get("category"),
            "confidence": float(meta.get("confidence") or 0),
            "confidence_band": meta.get("confidence_band"),
            "priority": meta.get("priority"),
            "language": meta.get("language"),
            "subject": meta.get("subject", ""),
            "summary": meta.get("summary", ""),
        }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        since = dt.datetime.fromtimestamp(item.since, dt.UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{item.thread_id:<24} {since}  {row['category'] or '-':<12} "
            f"{row['confidence']:.2f} {row['priority'] or '-':<7} {row['subject'][:60]}"
        )
    if not items and not as_json:
        click.echo("nothing waits for review", err=True)


@review.command("show")
@click.argument("thread_id")
def review_show(thread_id: str) -> None:
    """The customer's emails, the decision and the model's reason, for a reviewer."""
    snapshot = open_store(settings_or_exit()).peek(thread_id)
    if not snapshot.meta:
        raise click.ClickException(f"no thread {thread_id}")
    meta = snapshot.meta
    for turn in snapshot.messages:
        content = turn.get("content")
        texts = [b.get("text", "") for b in content] if isinstance(content, list) else [content]
        for text in texts:
            if turn.get("role") == "user":
                click.echo(click.style("customer:", bold=True) + "\n" + str(text) + "\n")
            else:
                try:
                    said = json.loads(str(text))
                except json.JSONDecodeError:
                    said = {"reason": text}
                click.echo(
                    click.style("model:", bold=True)
                    + f" {said.get('action', '?')} {said.get('category', '')} "
                    f"({said.get('confidence', '?')}): {said.get('reason', '')}\n"
                )
    for name in (
        "status",
        "category",
        "confidence",
        "confidence_band",
        "priority",
        "language",
        "sentiment",
        "summary",
        "fields",
        "prompt_version",
    ):
        if meta.get(name):
            click.echo(f"{name}: {meta[name]}")


@review.command("accept")
@click.argument("thread_id")
@click.option("--note", default=None, help="Why, for the record.")
def review_accept(thread_id: str, note: str | None) -> None:
    """Confirm the decision of a thread in review (emits `review_accepted`)."""
    try:
        event = _lane().accept(thread_id, note)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{thread_id}: accepted as {event.category}")


@review.command("correct")
@click.argument("thread_id")
@click.argument("category")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="Set a field.")
@click.option("--note", default=None, help="Why, for the record.")
def review_correct(
    thread_id: str, category: str, fields: tuple[str, ...], note: str | None
) -> None:
    """Change a classified thread's category (and fields); emits `corrected`."""
    settings = settings_or_exit()
    category = category.strip().upper()
    if category not in settings.category_names:
        raise click.BadParameter(
            f"{category!r} is not one of {', '.join(settings.category_names)}",
            param_hint="CATEGORY",
        )
    lane = ReviewLane(open_redis(settings), open_store(settings), settings.events_maxlen)
    try:
        event = lane.correct(thread_id, category, _field_values(fields), note)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{thread_id}: {event.previous.category} -> {event.new.category}")


@review.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def review_export(path: Path) -> None:
    """Write the corrected and confirmed threads as a labelled dataset (JSONL, for evaluation)."""
    count = _lane().export(path)
    click.echo(f"{count} labelled examples written to {path}", file=sys.stderr)
