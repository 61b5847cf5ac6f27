"""Serving the intake app with uvicorn: one process, one event loop; more processes behind a
load balancer (or `--workers`) scale it out, all sharing Redis."""

from __future__ import annotations

import socket

import uvicorn

from common.settings import Settings
from intake.app import create_app

#: Seconds in-flight requests get to finish after SIGTERM before connections are closed.
GRACEFUL_SECONDS = 20


def config(settings: Settings, host: str, port: int, workers: int = 1) -> uvicorn.Config:
    """uvicorn's settings: our logging (no second access log), no Server header."""
    return uvicorn.Config(
        create_app(settings) if workers == 1 else "intake.server:app_from_environment",
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        factory=workers > 1,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
    )


def app_from_environment() -> object:
    """For `--workers N`: each worker process builds its app from the environment."""
    from common.logging import configure_logging
    from common.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    uvicorn.Server(config(settings, host, port, workers)).run()


def serve_socket(server: uvicorn.Server, sock: socket.socket) -> None:
    """Run on a socket bound by the caller (tests bind port 0 first: no race for a port)."""
    server.run(sockets=[sock])
