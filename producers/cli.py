"""`triage enqueue`: the producers' command (registered on the `triage` group)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from producers.enqueue import Enqueuer, Rejected, iter_eml_files
from worker.errors import ConfigError
from worker.logging import configure_logging
from worker.settings import load_settings


@click.command("enqueue")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def enqueue_command(paths: tuple[Path, ...]) -> None:
    """Parse .eml files (or directories of them) and enqueue them into their threads."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings)
    enqueuer = Enqueuer(settings)
    counts = {"enqueued": 0, "duplicate": 0, "rejected": 0}
    for path in iter_eml_files(list(paths)):
        result = enqueuer.enqueue_bytes(path.read_bytes(), str(path))
        if isinstance(result, Rejected):
            counts["rejected"] += 1
            click.echo(f"rejected  {path}: {result.reason}: {result.error}", err=True)
        else:
            counts[result.status] += 1
            click.echo(f"{result.status:<9} {path} -> thread {result.thread_id}")
    click.echo(", ".join(f"{count} {name}" for name, count in counts.items()))
    if counts["rejected"]:
        sys.exit(1)
