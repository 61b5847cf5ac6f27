"""`triage webhooks`: the subscriptions and what they wait for, a signed test send, webhook dead
letters and their replay, and the delivery worker on its own (docs/webhooks.md)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
from pydantic import SecretStr, ValidationError

from common.deadletters import DeadLetter
from common.settings import Settings
from common.webhooks import DEFAULT_NAME, EVENT_TYPES, Subscription
from triage.resources import (
    open_dead_letters,
    open_redis,
    replay_and_report,
    settings_or_exit,
)


def shown_url(url: str) -> str:
    """The URL without credentials or query (either may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def webhook_letters(settings: Settings, endpoint: str | None = None) -> list[DeadLetter]:
    """Webhook dead letters, oldest first (of one subscription with `endpoint`)."""
    from worker.deliver.store import REASONS

    return [
        letter
        for letter in open_dead_letters(settings).list(None)
        if letter.reason in REASONS
        and (endpoint is None or _payload(letter).get("webhook") == endpoint)
    ]


def _payload(letter: DeadLetter) -> dict[str, Any]:
    payload = letter.body.get("payload")
    return payload if isinstance(payload, dict) else {}


def _subscription(settings: Settings, name: str) -> Subscription | None:
    return next((s for s in settings.webhook_subscriptions if s.name == name), None)


@click.group("webhooks")
def webhooks() -> None:
    """Outbound event webhooks: subscriptions, test sends, dead letters, replay."""


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per subscription.")
def list_command(as_json: bool) -> None:
    """The subscriptions and what each has not delivered yet."""
    from worker.deliver.store import DeliveryQueue

    settings = settings_or_exit()
    subscriptions = settings.webhook_subscriptions
    if not subscriptions:
        click.echo(
            "no webhook subscriptions (set TRIAGE_WEBHOOK_URL and TRIAGE_WEBHOOK_SECRET, or "
            "TRIAGE_WEBHOOKS_FILE)",
            err=True,
        )
        return
    client = open_redis(settings)
    dead: dict[str, int] = {}
    for letter in webhook_letters(settings):
        name = str(_payload(letter).get("webhook", ""))
        dead[name] = dead.get(name, 0) + 1
    now = time.time()
    for subscription in subscriptions:
        waiting = DeliveryQueue(client, subscription).waiting(now)
        row = {
            "name": subscription.name,
            "url": shown_url(subscription.url),
            "events": list(subscription.events),
            "timeout_seconds": subscription.timeout_seconds or settings.webhook_timeout_seconds,
            "secrets": 1 + len(subscription.previous_secrets),
            "threads_waiting": waiting.threads,
            "deliveries_waiting": waiting.deliveries,
            "retrying": waiting.retrying,
            "stream_lag": waiting.lag,
            "dead_letters": dead.get(subscription.name, 0),
        }
        if as_json:
            click.echo(json.dumps(row))
            continue
        kinds = subscription.events
        events = "all" if set(kinds) == set(EVENT_TYPES) else ",".join(kinds)
        click.echo(
            f"{subscription.name:<16} {row['url']}\n"
            f"{'':<16} events={events} timeout={row['timeout_seconds']:g}s "
            f"waiting={waiting.deliveries} (threads {waiting.threads}, retrying "
            f"{waiting.retrying}) lag={'-' if waiting.lag is None else waiting.lag} "
            f"dead={row['dead_letters']}"
        )


@webhooks.command("test")
@click.argument("target")
@click.option(
    "--type",
    "event_type",
    type=click.Choice(EVENT_TYPES),
    default="classified",
    show_default=True,
    help="The sample event's type.",
)
@click.option("--secret", help="Sign with this secret (default: the matching subscription's).")
@click.option("--timeout", type=float, help="Seconds (default: TRIAGE_WEBHOOK_TIMEOUT_SECONDS).")
def test_command(target: str, event_type: str, secret: str | None, timeout: float | None) -> None:
    """POST a signed sample event to TARGET (a subscription name or a URL) and show the answer.

    The event is marked `"test": true` and is not retried; exit 1 unless the answer is 2xx.
    """
    from worker.deliver.attempt import send_test

    settings = settings_or_exit()
    subscriptions = settings.webhook_subscriptions
    by_url = next((s for s in subscriptions if s.url == target), None)
    subscription = _subscription(settings, target) or by_url
    if subscription is None and "://" not in target:
        names = ", ".join(s.name for s in subscriptions) or "none"
        raise click.UsageError(f"{target!r} is neither a URL nor a subscription ({names})")
    if subscription is None or secret is not None:
        signing = secret or next(
            (s.secret.get_secret_value() for s in subscriptions if s.name == DEFAULT_NAME), None
        )
        if signing is None:
            raise click.UsageError("no secret to sign with: give --secret or TRIAGE_WEBHOOK_SECRET")
        try:
            subscription = Subscription(
                name=subscription.name if subscription else "test",
                url=subscription.url if subscription else target,
                secret=SecretStr(signing),
                headers=subscription.headers if subscription else {},
            )
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise click.UsageError(message) from None
    wait = timeout or subscription.timeout_seconds or settings.webhook_timeout_seconds
    sent = send_test(subscription, event_type, wait)
    click.echo(f"POST {shown_url(subscription.url)}  ({event_type} sample, id {sent.event_id})")
    click.echo(f"X-Triage-Signature: {sent.headers['X-Triage-Signature']}")
    result = sent.attempt
    latency = f"{result.seconds * 1000:.0f} ms"
    if result.outcome == "delivered":
        click.echo(f"-> {result.status} in {latency}  {sent.answer}".rstrip())
        return
    verdict = "would be retried" if result.outcome == "retry" else "permanent: dead-lettered"
    click.echo(f"-> {result.reason} in {latency} ({verdict}): {result.error}")
    sys.exit(1)


@webhooks.command("dead")
@click.option("--endpoint", help="Only this subscription's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dead_command(endpoint: str | None, as_json: bool) -> None:
    """Webhook deliveries that were refused or ran out of attempts (in `triage dlq`)."""
    for letter in webhook_letters(settings_or_exit(), endpoint):
        payload = _payload(letter)
        if as_json:
            click.echo(
                json.dumps({"id": letter.entry_id, "thread_id": letter.thread_id, **letter.body})
            )
            continue
        error = str(letter.body.get("error", ""))[:100]
        click.echo(
            f"{letter.entry_id}  {letter.reason:<16} {payload.get('webhook', '-'):<12} "
            f"{payload.get('type', '-'):<15} event={payload.get('event_id', '-')}  "
            f"attempts={letter.body.get('attempts', '-')}  {error}"
        )


@webhooks.command("replay")
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every webhook dead letter.")
@click.option("--endpoint", help="With --all: only this subscription's.")
def replay_command(entry_ids: tuple[str, ...], replay_all: bool, endpoint: str | None) -> None:
    """Deliver dead-lettered events again (same event ids), each at the head of its thread.

    Replayed entries leave the dead letters; unreplayable ones (a subscription no longer
    configured) are kept and the exit code is 1. `triage dlq replay` does the same.
    """
    from worker.deliver.store import REASONS

    if bool(entry_ids) == replay_all:
        raise click.UsageError("give entry ids or --all (not both)")
    settings = settings_or_exit()
    if replay_all:
        letters = webhook_letters(settings, endpoint)
    else:
        stream = open_dead_letters(settings)
        letters = []
        for entry_id in entry_ids:
            letter = stream.get(entry_id)
            if letter is None or letter.reason not in REASONS:
                raise click.ClickException(f"no webhook dead letter {entry_id}")
            letters.append(letter)
    replay_and_report(settings, letters)


@webhooks.command("serve")
def serve_command() -> None:
    """Run the delivery worker alone, until Ctrl-C or SIGTERM.

    For deployments that keep deliveries out of the Celery workers
    (TRIAGE_WEBHOOK_IN_WORKER=false on those); any number may run side by side.
    """
    from common.logging import configure_logging
    from worker.deliver.service import build_service

    settings = settings_or_exit()
    configure_logging(settings)
    client = open_redis(settings)
    service = build_service(settings, lambda: client)
    if service is None:
        raise click.ClickException(
            "no webhook subscriptions: set TRIAGE_WEBHOOK_URL and TRIAGE_WEBHOOK_SECRET, or "
            "TRIAGE_WEBHOOKS_FILE"
        )

    def stop(signum: int, _frame: Any) -> None:
        service.stop(timeout=0)

    signal.signal(signal.SIGTERM, stop)
    service.start()
    with contextlib.suppress(KeyboardInterrupt):
        service.wait()
    service.stop()
