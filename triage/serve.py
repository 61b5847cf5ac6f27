"""`triage serve`: the HTTP intake (POST /v1/emails, provider webhooks, health, metrics)."""

from __future__ import annotations

import click

from common.logging import configure_logging
from triage.resources import settings_or_exit


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on [TRIAGE_INTAKE_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [TRIAGE_INTAKE_PORT, 8080].")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes (each with its own event loop).",
)
def serve_command(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP intake: POST /v1/emails, the Mailgun, SendGrid and Postmark webhooks,
    /healthz, /readyz and /metrics (docs/intake.md)."""
    from intake.server import serve

    settings = settings_or_exit()
    configure_logging(settings)
    serve(
        settings,
        host or settings.intake_host,
        settings.intake_port if port is None else port,
        workers,
    )
