"""structlog set-up, done once at each entry point (CLI, worker process).

JSON lines when stderr is not a TTY (what log shippers want), a readable console otherwise.
Per-task context (task_id, thread_id, email ids) is bound with contextvars and cleared after.
Email bodies and secrets are never passed to the logger in the first place.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import structlog

from worker.settings import Settings


def _wants_json(log_format: str) -> bool:
    if log_format == "auto":
        return not sys.stderr.isatty()
    return log_format == "json"


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging (Celery's too) through one renderer on stderr."""
    level = getattr(logging, settings.log_level)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if _wants_json(settings.log_format)
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's HTTP client logs every request at INFO; our `claude.call` line says more.
    for noisy in ("httpx", "httpx2", "anthropic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@contextlib.contextmanager
def task_context(**fields: Any) -> Iterator[None]:
    """Per-task log context: starts clean and is cleared after, so nothing leaks between tasks
    that share a pool thread (more fields, e.g. thread_id, may be bound inside)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
