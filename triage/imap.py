"""`triage imap`: watch IMAP folders and enqueue each new message once (intake/imap.py)."""

from __future__ import annotations

import signal
from types import FrameType

import click

from common.logging import configure_logging
from triage.resources import BadSetting, open_redis, settings_or_exit


@click.command("imap")
@click.option(
    "--folder",
    "folders",
    multiple=True,
    help="A folder to watch (repeatable) [TRIAGE_IMAP_FOLDERS, INBOX].",
)
def imap_command(folders: tuple[str, ...]) -> None:
    """Watch IMAP folders (IDLE, or polling): each new message is parsed, threaded, deduplicated
    and enqueued once, then flagged or moved (TRIAGE_IMAP_AFTER). Runs until SIGTERM or Ctrl-C;
    a restart resumes from the folder's cursor in Redis (docs/intake.md)."""
    from intake.imap import Watcher
    from producers.enqueue import Enqueuer
    from worker.observe import metrics_server

    settings = settings_or_exit()
    if not settings.imap_host or not settings.imap_username:
        raise BadSetting(
            "invalid setting TRIAGE_IMAP_HOST: set TRIAGE_IMAP_HOST and TRIAGE_IMAP_USERNAME"
        )
    if folders:
        settings = settings.model_copy(update={"imap_folders": list(folders)})
    configure_logging(settings)
    client = open_redis(settings)
    watcher = Watcher(settings, Enqueuer(settings, client), client)

    def stop(signum: int, _frame: FrameType | None) -> None:
        watcher.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics_server.start(settings)
    watcher.start()
    watcher.wait()
