"""Serving the console with uvicorn: one process (the pages are light; the work is Redis reads)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import structlog
import uvicorn

from common.settings import Settings
from console.app import create_app
from worker.recovery.replay import Replayer

log = structlog.get_logger("console.server")


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: only this machine can connect."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def config(
    settings: Settings, host: str, port: int, replayer: Callable[[], Replayer] | None = None
) -> uvicorn.Config:
    """uvicorn's settings: our logging (no second access log), no Server header."""
    return uvicorn.Config(
        create_app(settings, replayer=replayer),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        lifespan="off",
    )


def serve(
    settings: Settings, host: str, port: int, replayer: Callable[[], Replayer] | None = None
) -> None:
    server = uvicorn.Server(config(settings, host, port, replayer))
    log.info(
        "console.started",
        address=host,
        port=port,
        access="users" if settings.console_users or settings.console_tokens else "open",
        users=len(settings.console_users),
        tokens=len(settings.console_tokens),
    )
    server.run()


def serve_socket(server: uvicorn.Server, sock: socket.socket) -> None:
    """Run on a socket bound by the caller (tests bind port 0 first: no race for a port)."""
    server.run(sockets=[sock])
