"""The `triage` command: run the demo, the worker, the emulator; enqueue; inspect state."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import redis

from common.errors import ConfigError
from common.settings import Settings
from triage.resources import BadSetting, settings_or_exit


def configure_cli_logging(settings: Settings) -> None:
    from common.logging import configure_logging

    configure_logging(settings)


class TriageGroup(click.Group):
    """Expected failures (Redis unreachable, a malformed URL) become one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except redis.ConnectionError as exc:
            raise click.ClickException(
                f"cannot reach Redis ({exc}); check TRIAGE_REDIS_URL / TRIAGE_BROKER_URL, "
                "or start one (`triage run` starts a private one)"
            ) from None
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis error: {exc}") from None


@click.group(cls=TriageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="triage-worker")
def cli() -> None:
    """Queue-driven support-email triage on the Claude API (Celery + Redis)."""


@cli.command()
@click.option(
    "--exit-when-drained/--serve",
    default=False,
    envvar="TRIAGE_RUN_EXIT_WHEN_DRAINED",
    help="Exit once the sample inbox is decided instead of serving until Ctrl-C.",
)
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds to wait for the samples."
)
def run(exit_when_drained: bool, timeout: float) -> None:
    """Run everything locally: Redis, emulator (without a key), worker, sample inbox."""
    from triage.run import run as run_stack

    settings = settings_or_exit()
    # The worker's lines are relayed by `run`; in this process only problems are worth showing.
    configure_cli_logging(settings.model_copy(update={"log_level": "WARNING"}))
    run_stack(exit_when_drained, timeout)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker on both queues (extra arguments go to `celery worker`)."""
    from worker.app import create_app

    settings = settings_or_exit()
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise BadSetting(str(exc)) from None
    argv = ["worker", "-Q", "triage,replies", "--loglevel", settings.log_level, *celery_args]
    app.worker_main(argv)


@cli.group()
def thread() -> None:
    """Inspect stored threads."""


@thread.command("show")
@click.argument("thread_id")
@click.option("--meta", is_flag=True, help="Also print status, version and usage (to stderr).")
def thread_show(thread_id: str, meta: bool) -> None:
    """Print the stored messages array as JSON: exactly what Claude receives."""
    from triage.resources import open_store

    snapshot = open_store(settings_or_exit()).snapshot(thread_id)
    if not snapshot.meta and not snapshot.messages and not snapshot.inbox:
        raise click.ClickException(f"no thread {thread_id}")
    click.echo(json.dumps(snapshot.messages, indent=2, ensure_ascii=False))
    if meta:
        click.echo(json.dumps(snapshot.meta | {"pending": len(snapshot.inbox)}, indent=2), err=True)


@cli.command()
@click.option("--full", is_flag=True, help="Print each rendered message.")
def outbox(full: bool) -> None:
    """List the replies delivered to the outbox transport."""
    from triage.resources import read_outbox

    for entry in read_outbox(settings_or_exit()):
        click.echo(
            f"{entry['id']}  {entry.get('transport', 'outbox')}  to={entry['to']}"
            f"  thread={entry['thread_id']}  {entry['message_id']}"
        )
        if full:
            click.echo(entry["message"])


@cli.group()
def dlq() -> None:
    """Inspect the dead-letter stream."""


@dlq.command("list")
@click.option("--count", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlq_list(count: int, as_json: bool) -> None:
    """Entries that could not be processed, with their reasons."""
    from triage.resources import open_dead_letters

    for letter in open_dead_letters(settings_or_exit()).list(count):
        if as_json:
            click.echo(
                json.dumps({"id": letter.entry_id, "thread_id": letter.thread_id, **letter.body})
            )
        else:
            error = str(letter.body.get("error", ""))[:120]
            click.echo(
                f"{letter.entry_id}  {letter.reason:<18} thread={letter.thread_id or '-'}  {error}"
            )


@dlq.command("show")
@click.argument("entry_id")
def dlq_show(entry_id: str) -> None:
    """One entry in full (JSON): reason, error, attempts and the payload to replay."""
    from triage.resources import open_dead_letters

    letter = open_dead_letters(settings_or_exit()).get(entry_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {entry_id}")
    document = {"id": letter.entry_id, "thread_id": letter.thread_id, **letter.body}
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@dlq.command("replay")
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every entry.")
def dlq_replay(entry_ids: tuple[str, ...], replay_all: bool) -> None:
    """Send entries back through the normal path (idempotent); replayed entries are removed."""
    from triage.resources import open_dead_letters, open_replayer

    if bool(entry_ids) == replay_all:
        raise click.UsageError("give entry ids or --all (not both)")
    settings = settings_or_exit()
    letters_stream = open_dead_letters(settings)
    letters = letters_stream.list(None) if replay_all else []
    for entry_id in entry_ids:
        letter = letters_stream.get(entry_id)
        if letter is None:
            raise click.ClickException(f"no dead letter {entry_id}")
        letters.append(letter)
    replayer = open_replayer(settings)
    kept = 0
    for letter in letters:
        result = replayer.replay(letter)
        kept += result.outcome == "kept"
        click.echo(f"{result.entry_id}  {result.outcome:<8}  {result.detail}")
    click.echo(f"{len(letters) - kept} replayed, {kept} kept")
    if kept:
        sys.exit(1)


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(yes: bool) -> None:
    """Delete every dead letter."""
    from triage.resources import open_dead_letters

    stream = open_dead_letters(settings_or_exit())
    if not yes:
        click.confirm(f"Delete all {stream.size()} dead letters?", abort=True)
    click.echo(f"{stream.purge()} dead letters deleted")


@cli.command()
@click.option("--since", default="7d", show_default=True, help="7d, 12h or an ISO date (UTC).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def stats(since: str, as_json: bool) -> None:
    """Emails and threads by outcome and category, clarification rate, tokens and cost."""
    from triage.stats import collect, parse_since, render

    try:
        start = parse_since(since)
    except ValueError:
        message = f"{since!r} is not 7d, 12h or an ISO date"
        raise click.BadParameter(message, param_hint="--since") from None
    result = collect(settings_or_exit(), start)
    click.echo(json.dumps(result, indent=2) if as_json else render(result))


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--via", type=click.Choice(["batch", "queue"]), default="batch", show_default=True)
@click.option("--wait/--no-wait", default=True, help="Wait for the batches and apply them now.")
@click.option("--poll-seconds", default=30.0, show_default=True)
@click.option("--max-requests", default=100_000, show_default=True, help="Requests per batch.")
def backlog(
    paths: tuple[str, ...], via: str, wait: bool, poll_seconds: float, max_requests: int
) -> None:
    """Triage a backlog's first turns through the Message Batches API (half price).

    PATHS are read like `triage enqueue` (.eml, directories, mbox, Maildir, JSONL, -). Batches
    submitted by an interrupted or --no-wait run are resumed first; with no PATHS, only that.
    """
    from triage.backlog import run as run_backlog

    settings = settings_or_exit()
    configure_cli_logging(settings.model_copy(update={"log_level": "WARNING"}))
    report = run_backlog(settings, list(paths), via, wait, poll_seconds, max_requests)
    applied = ", ".join(f"{k} {v}" for k, v in sorted(report.applied.items())) or "none"
    click.echo(
        f"batches {len(report.batches)}; applied: {applied}; sent to the queue: {report.requeued}"
    )


def _register_commands() -> None:
    """Commands owned by other packages: the emulator and the producers' enqueue."""
    from emulator.command import emulator_command
    from producers.command import enqueue_command
    from triage.doctor import doctor
    from triage.ops import events, thread_list

    cli.add_command(emulator_command, name="emulator")
    cli.add_command(enqueue_command, name="enqueue")
    cli.add_command(doctor, name="doctor")
    cli.add_command(events, name="events")
    thread.add_command(thread_list, name="list")


def main(argv: list[str] | None = None) -> Any:
    _register_commands()
    return cli.main(args=argv, prog_name="triage")
