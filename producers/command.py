"""`triage enqueue`: the producers' command (registered on the `triage` group).

Exit codes: 0 every email was enqueued or was a duplicate; 1 at least one email was rejected
(see the report); 2 usage or configuration error; 3 Redis or the broker failed and the run stopped
(what was done before is kept and summarised); 130 interrupted.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import redis
from kombu.exceptions import OperationalError

from common.errors import ConfigError
from common.logging import configure_logging
from common.settings import load_settings
from producers.enqueue import Enqueuer, Rejected
from producers.report import ReportWriter, RunSummary
from producers.sources import FORMATS, Format, Input, Item, iter_items, resolve_inputs

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3
EXIT_INTERRUPTED = 130
PROGRESS_EVERY_SECONDS = 0.1


class ConfigFailure(click.ClickException):
    exit_code = EXIT_USAGE


def default_report_path() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"triage-enqueue-{stamp}.rejects.jsonl")


def _label(source: str, position: str) -> str:
    return f"{source} ({position})" if position else source


class Progress:
    """click's progress bar on stderr (bytes read, so the ETA holds for one big mbox too)."""

    def __init__(self, total_bytes: int | None, summary: RunSummary) -> None:
        self._summary = summary
        self._last = 0.0
        self._pending = 0
        self._bar: Any = click.progressbar(
            iterable=None if total_bytes is not None else (_ for _ in ()),
            length=total_bytes,
            label="enqueue",
            file=sys.stderr,
            show_eta=total_bytes is not None,
            show_percent=total_bytes is not None,
            item_show_func=lambda text: text,
            width=24,
        )

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()
        self._bar.__exit__(*exc)

    def advance(self, size: int) -> None:
        self._pending += size
        if time.monotonic() - self._last >= PROGRESS_EVERY_SECONDS:
            self._flush()

    def _flush(self) -> None:
        s = self._summary
        info = (
            f"{s.total} emails, {s.rate():.0f}/s | {s.enqueued} enqueued, "
            f"{s.duplicates} dup, {s.rejected_total} rejected"
        )
        self._bar.update(self._pending, info)
        self._pending = 0
        self._last = time.monotonic()


@click.command("enqueue")
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, allow_dash=True, path_type=str),
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Input format; auto detects by extension (.eml .mbox .jsonl), Maildir layout or content.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write rejected emails and the summary to FILE (JSON lines), always. "
    "Default: ./triage-enqueue-<UTC time>.rejects.jsonl, created only if something is rejected.",
)
@click.option("--no-report", is_flag=True, help="Write no report file.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar with count, rate and ETA on stderr (default: when stderr is a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per email, only the summary.")
def enqueue_command(
    paths: tuple[str, ...],
    fmt: Format,
    report_path: Path | None,
    no_report: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Parse emails and enqueue them into their threads, each exactly once.

    PATH is an .eml file, an mbox, a Maildir, a JSONL file, a directory of those, or - for
    stdin. Exit status: 0 all enqueued or duplicates, 1 something was rejected, 2 usage or
    configuration error, 3 Redis or broker failure.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise ConfigFailure(str(exc)) from None
    if no_report and report_path is not None:
        raise click.UsageError("--report and --no-report exclude each other")
    show_progress = sys.stderr.isatty() if progress is None else progress
    # A log line per email would tear the bar apart: rejects are in the report and the summary.
    configure_logging(
        settings.model_copy(update={"log_level": "ERROR"}) if show_progress else settings
    )
    inputs = resolve_inputs(paths, fmt)
    report = ReportWriter(
        None if no_report else (report_path or default_report_path()),
        always=report_path is not None,
    )
    summary = RunSummary()
    code = EXIT_OK
    try:
        enqueuer = Enqueuer(settings)
        code = _run(enqueuer, inputs, summary, report, show_progress, quiet=quiet)
    except (redis.RedisError, OperationalError) as exc:
        click.echo(f"Error: Redis or the broker failed, run stopped: {exc}", err=True)
        code = EXIT_INFRASTRUCTURE
    except OSError as exc:
        click.echo(f"Error: reading the input failed, run stopped: {exc}", err=True)
        code = EXIT_INFRASTRUCTURE
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = EXIT_INTERRUPTED
    finally:
        report.close(summary)
    click.echo(summary.line())
    if report.written:
        click.echo(f"report: {report.path}", err=True)
    if code == EXIT_OK and summary.rejected_total:
        code = EXIT_REJECTED
    sys.exit(code)


def _run(
    enqueuer: Enqueuer,
    inputs: list[Input],
    summary: RunSummary,
    report: ReportWriter,
    show_progress: bool,
    *,
    quiet: bool,
) -> int:
    sizes = [i.size for i in inputs]
    total = None if any(size is None for size in sizes) else sum(s or 0 for s in sizes)
    stdin = sys.stdin.buffer if any(i.path is None for i in inputs) else None
    items = iter_items(inputs, enqueuer.limits.max_bytes, stdin)
    if not show_progress:
        for item in items:
            _one(enqueuer, item, summary, report, echo=not quiet)
        return EXIT_OK
    with Progress(total, summary) as bar:
        for item in items:
            _one(enqueuer, item, summary, report, echo=False)
            bar.advance(item.size)
    return EXIT_OK


def _one(
    enqueuer: Enqueuer, item: Item, summary: RunSummary, report: ReportWriter, *, echo: bool
) -> None:
    result = enqueuer.enqueue_item(item)
    summary.add(result)
    label = _label(item.source, item.position)
    if isinstance(result, Rejected):
        report.rejected(result)
        if echo:
            click.echo(f"rejected  {label}: {result.reason}: {result.error}", err=True)
    elif echo:
        click.echo(f"{result.status:<9} {label} -> thread {result.thread_id}")
