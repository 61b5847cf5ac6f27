"""The demo worker's log lines, relayed readably by `triage run`.

The worker logs JSON (what log shippers want); a person watching the demo wants one short line
per thing that happened: `claude.call thread=t9fd… turns=1 in=445 out=72 stop=end_turn 156ms`.
Our events are shown with their telling fields, warnings and errors with all of theirs; Celery's
own plain lines pass through as they are. `claude.call` records are kept for the final report.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import click

OUR_EVENTS = ("claude.", "drain.", "reply.", "enqueue.", "sweeper.")
#: Fields no reader of the demo needs (the task's identity, the time: it is happening now).
NOISE = frozenset({"event", "timestamp", "level", "task_id", "task", "email_ids", "logger"})
#: Per event: the fields shown, under shorter names.
SHOWN: dict[str, tuple[tuple[str, str], ...]] = {
    "claude.call": (
        ("thread_id", "thread"),
        ("turns", "turns"),
        ("input_tokens", "in"),
        ("output_tokens", "out"),
        ("cache_read_input_tokens", "cache_read"),
        ("stop_reason", "stop"),
        ("outcome", "outcome"),
    ),
    "drain.decision": (
        ("thread_id", "thread"),
        ("action", "action"),
        ("category", "category"),
        ("confidence", "confidence"),
    ),
    "reply.sent": (("thread_id", "thread"), ("reply_id", "reply"), ("transport", "via")),
}
#: Events the report or another line already says.
HIDDEN = frozenset({"task.done", "task.received", "enqueue.submitted"})


def value_text(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)


def format_record(record: dict[str, Any]) -> str | None:
    """One readable line for a JSON log record, or None if it is not worth showing."""
    event = str(record.get("event", ""))
    level = str(record.get("level", "info"))
    problem = level in ("warning", "error", "critical")
    if not problem and (event in HIDDEN or not event.startswith(OUR_EVENTS)):
        return None
    if event in SHOWN and not problem:
        pairs = [(short, record.get(name)) for name, short in SHOWN[event]]
        parts = [f"{short}={value_text(value)}" for short, value in pairs if value is not None]
        if event == "claude.call" and record.get("latency_ms") is not None:
            parts.append(f"{record['latency_ms']:.0f}ms")
    else:
        parts = [f"{k}={value_text(v)}" for k, v in record.items() if k not in NOISE]
    prefix = f"{level.upper()} " if problem else ""
    return f"{prefix}{event:<15} {' '.join(parts)}".rstrip()


class LogRelay(threading.Thread):
    """Reads the worker's output, prints readable lines on stderr, keeps the `claude.call`s."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._seen = threading.Condition()
        self.calls: list[dict[str, Any]] = []

    def run(self) -> None:
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip()
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                click.echo(f"  worker| {line.strip()}", err=True)
                continue
            if record.get("event") == "claude.call":
                with self._seen:
                    self.calls.append(record)
                    self._seen.notify_all()
            shown = format_record(record)
            if shown is not None:
                click.echo(f"  worker| {shown}", err=True)

    def wait_for_calls(self, count: int, timeout: float) -> None:
        """Until `count` `claude.call` lines have arrived (they follow the commits closely)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while len(self.calls) < count and time.monotonic() < deadline:
                self._seen.wait(max(0.0, deadline - time.monotonic()))
