"""`triage console`: the web console (docs/console.md) on its own port."""

from __future__ import annotations

import click

from common.logging import configure_logging
from triage.resources import BadSetting, open_replayer, settings_or_exit


@click.command("console")
@click.option("--host", default=None, help="Address to listen on [TRIAGE_CONSOLE_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [TRIAGE_CONSOLE_PORT, 8090].")
def console_command(host: str | None, port: int | None) -> None:
    """Serve the web console: overview, threads as transcripts, the review lane, dead letters
    and runs. Users come from TRIAGE_CONSOLE_USERS (name:password:role, roles viewer and
    reviewer); without any it is read-only, hides email bodies and listens on loopback only."""
    from console.server import is_loopback, serve

    settings = settings_or_exit()
    host = host or settings.console_host
    if not settings.console_users and not settings.console_tokens and not is_loopback(host):
        raise BadSetting(
            f"the console has no users, so it listens only on a loopback address, not {host}: "
            "set TRIAGE_CONSOLE_USERS (name:password:role,...) or TRIAGE_CONSOLE_TOKENS"
        )
    configure_logging(settings)
    serve(
        settings,
        host,
        settings.console_port if port is None else port,
        replayer=lambda: open_replayer(settings),
    )
