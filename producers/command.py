"""`triage enqueue`: the producers' command (registered on the `triage` group).

Exit codes: 0 every email was enqueued or was a duplicate; 1 at least one email was rejected
(see the report); 2 usage or configuration error; 3 Redis or the broker failed and the run stopped
(what was done before is kept and summarised); 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import redis
from kombu.exceptions import OperationalError

from common.connections import redis_client
from common.errors import ConfigError
from common.logging import configure_logging
from common.settings import Settings, load_settings
from producers.enqueue import Enqueuer, IncompleteBatch, Previewer, Rejected
from producers.report import ReportWriter, RunSummary
from producers.sources import FORMATS, Format, Input, Item, iter_items, resolve_inputs
from producers.submit import Submitted, dry_run_record

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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Parse and thread-resolve (reading Redis if it answers) and print each email as the "
    "model would see it; write nothing (no enqueue, no dead letter, no report).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="With --dry-run: one JSON object per email on stdout."
)
def enqueue_command(
    paths: tuple[str, ...],
    fmt: Format,
    report_path: Path | None,
    no_report: bool,
    progress: bool | None,
    quiet: bool,
    dry_run: bool,
    as_json: bool,
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
    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    if dry_run:
        if report_path is not None:
            raise click.UsageError("--dry-run writes nothing: no --report")
        configure_logging(settings.model_copy(update={"log_level": "ERROR"}))
        sys.exit(_dry_run(settings, resolve_inputs(paths, fmt), as_json=as_json, quiet=quiet))
    show_progress = sys.stderr.isatty() if progress is None else progress
    # A log line per email would tear the bar apart: rejects are in the report and the summary.
    # Quiet: no line per email, so no `enqueue.submitted` log line either (warnings stay).
    level = "ERROR" if show_progress else "WARNING" if quiet else settings.log_level
    configure_logging(settings.model_copy(update={"log_level": level}))
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
    bar = Progress(total, summary) if show_progress else None
    try:
        if bar is not None:
            bar.__enter__()
        try:
            for item, outcome in enqueuer.enqueue_items(items):
                _one(item, outcome, summary, report, echo=not quiet and bar is None)
                if bar is not None:
                    bar.advance(item.size)
        except IncompleteBatch as exc:
            for item, outcome in exc.done:
                _one(item, outcome, summary, report, echo=not quiet and bar is None)
            summary.not_done += exc.not_done
            raise exc.cause from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    return EXIT_OK


def _one(
    item: Item,
    result: Submitted | Rejected,
    summary: RunSummary,
    report: ReportWriter,
    *,
    echo: bool,
) -> None:
    summary.add(result)
    label = _label(item.source, item.position)
    if isinstance(result, Rejected):
        report.rejected(result)
        if echo:
            click.echo(f"rejected  {label}: {result.reason}: {result.error}", err=True)
    elif echo:
        extra = f" (status {result.bounce_status})" if result.bounce_status else ""
        click.echo(f"{result.status:<9} {label} -> thread {result.thread_id}{extra}")


def _dry_run(settings: Settings, inputs: list[Input], *, as_json: bool, quiet: bool) -> int:
    """Parse and resolve every email, print it as the model would see it, write nothing."""
    client: redis.Redis | None = redis_client(settings.redis_url)
    try:
        assert client is not None
        client.ping()
    except redis.RedisError as exc:
        click.echo(f"warning: Redis does not answer ({exc}): threads are not resolved", err=True)
        client = None
    previewer = Previewer(settings, client)
    summary = RunSummary(dry_run=True)
    stdin = sys.stdin.buffer if any(i.path is None for i in inputs) else None
    items = iter_items(inputs, previewer.limits.max_bytes, stdin)
    for item, result, resolution in previewer.preview_items(items):
        if isinstance(result, Rejected):
            summary.rejected[result.reason] += 1
            record: dict[str, Any] = {
                "source": item.source,
                "position": item.position,
                "rejection_reason": result.reason,
                "error": result.error,
            }
        else:
            summary.add_preview(resolution.mode if resolution else "new")
            record = {"source": item.source, "position": item.position}
            record |= dry_run_record(result, resolution)
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        elif not quiet:
            click.echo(_human(record))
    if previewer.redis_error and client is not None:
        click.echo(f"warning: Redis failed during the run ({previewer.redis_error})", err=True)
    click.echo(summary.line(), err=as_json)
    return EXIT_REJECTED if summary.rejected_total else EXIT_OK


def _human(record: dict[str, Any]) -> str:
    """One email of a dry run, for reading."""
    label = _label(record["source"], record["position"])
    if "rejection_reason" in record:
        return f"== {label}: rejected ({record['rejection_reason']}): {record['error']}\n"
    where = record.get("would_be", "new")
    thread = record.get("thread_id", "(not resolved)")
    lines = [
        f"== {label}  {record['message_id']}  -> {where}, thread {thread}",
        f"From: {record['from']}",
        f"Subject: {record['subject']}",
    ]
    if record["flags"]:
        lines.append("Flags: " + ", ".join(record["flags"]))
    if record["attachments"]:
        names = [
            f"{a['name'] or '(no name)'} ({a['content_type']}, {a['size']} B)"
            for a in record["attachments"]
        ]
        lines.append("Attachments: " + "; ".join(names))
    if record.get("bounce"):
        lines.append(f"Bounce: status {record['bounce']['status'] or 'unknown'}")
    if record["notes"]:
        lines.append("Notes: " + "; ".join(record["notes"]))
    return "\n".join([*lines, "", record["text"], ""])
