"""The `triage` command: run the demo, the worker, the emulator; enqueue; inspect state."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

import click
import redis

from common.errors import ConfigError
from common.settings import Settings
from triage import runstate
from triage.resources import BadSetting, settings_or_exit


def configure_cli_logging(settings: Settings) -> None:
    from common.logging import configure_logging

    configure_logging(settings)


#: Commands kept in their own modules, imported only when used (the emulator's pulls in its
#: whole server, over a second of start-up for every other command): name -> (module, attribute).
LAZY_COMMANDS = {
    "emulator": ("emulator.command", "emulator_command"),
    "enqueue": ("producers.command", "enqueue_command"),
    "answer": ("triage.answer", "answer_command"),
    "outbox": ("triage.outbox", "outbox_command"),
    "doctor": ("triage.doctor", "doctor"),
    "events": ("triage.ops", "events"),
    "review": ("triage.review", "review"),
    "config": ("triage.config_show", "config"),
    "webhooks": ("triage.webhooks", "webhooks"),
    "eval": ("evaluation.command", "eval_command"),
    "serve": ("triage.serve", "serve_command"),
    "imap": ("triage.imap", "imap_command"),
    "console": ("triage.console", "console_command"),
    "reprocess": ("triage.reprocess", "reprocess"),
}


def _lazy_command(name: str) -> click.Command:
    module, attribute = LAZY_COMMANDS[name]
    command: click.Command = getattr(importlib.import_module(module), attribute)
    return command


class TriageGroup(click.Group):
    """Expected failures (Redis unreachable, a malformed URL) become one line, not a traceback.

    The commands of `LAZY_COMMANDS` are imported when asked for.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            self.add_command(_lazy_command(cmd_name), name=cmd_name)
        return super().get_command(ctx, cmd_name)

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
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Queue-driven support-email triage on the Claude API (Celery + Redis).

    While `triage run` serves, the other commands reach its private Redis and emulator when
    TRIAGE_REDIS_URL / ANTHROPIC_API_KEY are not set (see docs/configuration.md).
    """
    if ctx.invoked_subcommand in runstate.READERS:
        runstate.apply(os.environ)


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
    """Run everything locally: Redis, emulator (without a key), worker, sample inbox.

    Then serve until Ctrl-C or SIGTERM; the other `triage` commands reach its Redis and
    emulator from another shell (the commands to continue are printed).
    """
    from triage.run import run as run_stack

    settings = settings_or_exit()
    # The worker's lines are relayed by `run`; in this process only problems are worth showing.
    configure_cli_logging(settings.model_copy(update={"log_level": "WARNING"}))
    run_stack(exit_when_drained, timeout)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker on queues triage, replies and ingest (extra arguments go to
    `celery worker`)."""
    from intake.worker_app import create_app

    settings = settings_or_exit()
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise BadSetting(str(exc)) from None
    argv = ["worker", "-Q", "triage,replies,ingest", "--loglevel", settings.log_level, *celery_args]
    app.worker_main(argv)


@cli.group()
def thread() -> None:
    """Inspect stored threads."""


@thread.command("show")
@click.argument("thread_id")
@click.option("--json", "as_json", is_flag=True, help="The stored array (default off a terminal).")
@click.option("--text", "as_text", is_flag=True, help="The conversation (default on a terminal).")
@click.option("--meta", is_flag=True, help="With JSON: status, version, usage on stderr.")
def thread_show(thread_id: str, as_json: bool, as_text: bool, meta: bool) -> None:
    """The conversation: who said what, each decision, tokens and cost per call.

    On a terminal it is rendered for reading; piped, or with --json, it is the stored messages
    array as JSON, exactly what Claude receives.
    """
    from triage.resources import open_redis, open_store
    from triage.transcript import load_view, render

    if as_json and as_text:
        raise click.UsageError("--json and --text exclude each other")
    settings = settings_or_exit()
    if as_text or (not as_json and sys.stdout.isatty()):
        view = load_view(open_redis(settings), settings, thread_id)
        if view is None:
            raise click.ClickException(f"no thread {thread_id} (see `triage thread list`)")
        click.echo(render(view))
        return
    snapshot = open_store(settings).peek(thread_id)
    if not snapshot.meta and not snapshot.messages and not snapshot.inbox:
        raise click.ClickException(f"no thread {thread_id}")
    click.echo(json.dumps(snapshot.messages, indent=2, ensure_ascii=False))
    if meta:
        click.echo(json.dumps(snapshot.meta | {"pending": len(snapshot.inbox)}, indent=2), err=True)


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
    from triage.resources import open_dead_letters, replay_and_report

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
    replay_and_report(settings, letters)


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


def _register_subcommands() -> None:
    from triage.ops import thread_list

    thread.add_command(thread_list, name="list")


def _register_commands() -> None:
    """Every command at once (for code that walks the tree); `main` imports them when used."""
    _register_subcommands()
    for name in LAZY_COMMANDS:
        cli.add_command(_lazy_command(name), name=name)


def main(argv: list[str] | None = None) -> Any:
    _register_subcommands()
    return cli.main(args=argv, prog_name="triage")
