"""structlog set-up, done once at each entry point (CLI, worker process).

JSON lines when stderr is not a TTY (what log shippers want), a readable console otherwise.
Per-task context (task_id, thread_id, email ids) is bound with contextvars and cleared after.
Email bodies and secrets are never passed to the logger in the first place, and email addresses
are replaced by `<address>` in every line, ours and Celery's (`TRIAGE_LOG_ADDRESSES=true` keeps
them, for debugging); Message-ID fields are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import structlog

from common.settings import Settings

REDACTED = "<address>"
#: Bounded parts keep the search linear in the length of the text. The local part takes every
#: character a dot-atom may hold (`a=b@`; an apostrophe only inside, `o'brien@`, so a quoted
#: `'dana@…'` keeps its quote); the domain any number of labels or an address literal. A host
#: without a dot (`celery@worker-1`, Celery's node names) is kept.
_ATOM = r"[\w.!#$%&*+/=?^`{|}~-]{1,64}+"  # possessive: no backtracking into it
_ADDRESS = re.compile(
    rf"{_ATOM}(?:'{_ATOM}){{0,3}}@"
    r"(?:\[[0-9A-Za-z:.]{1,45}\]|[\w-]{1,63}(?:\.[\w-]{1,63}){1,126})"
)
#: Fields holding Message-IDs (`<local@domain>`): they look like addresses and are not.
_MESSAGE_ID_FIELDS = frozenset(
    {"email_ids", "message_id", "reply_message_id", "in_reply_to", "references"}
)


def redact_addresses(text: str) -> str:
    """`text` with every email address replaced by `<address>`."""
    return _ADDRESS.sub(REDACTED, text) if "@" in text else text


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_addresses(value)
    if depth < 4 and isinstance(value, dict):
        return {key: _redacted(item, depth + 1) for key, item in value.items()}
    if depth < 4 and isinstance(value, list | tuple):
        return [_redacted(item, depth + 1) for item in value]
    return value


def redact_processor(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: addresses out of every field but the Message-ID ones."""
    return {
        key: value if key in _MESSAGE_ID_FIELDS else _redacted(value)
        for key, value in event.items()
    }


class StderrLogger:
    """Writes our rendered lines straight to the current `sys.stderr`.

    Our own events skip the stdlib logging machinery (a LogRecord, caller lookup, a handler and
    a formatter per line cost about 0.1 ms each, 15% of the worker's CPU at INFO); stdlib records
    (Celery's, the SDK's) still go through the handler below, rendered the same way. `sys.stderr`
    is looked up per line, so a redirected stderr (tests, the CLI runner) is honoured.
    """

    @classmethod
    def factory(cls, *_: Any) -> StderrLogger:
        return cls()

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = error = critical = exception = log = msg


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
    redact: list[Any] = [] if settings.log_addresses else [redact_processor]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *redact, renderer],
        logger_factory=StderrLogger.factory,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            *redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's HTTP client logs every request at INFO, Celery every task received and succeeded;
    # our `claude.call` and `triage.decision` lines say more (failures still show at WARNING+).
    for noisy in ("httpx", "httpx2", "anthropic", "celery.worker.strategy", "celery.app.trace"):
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
