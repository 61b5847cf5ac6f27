"""How the other `triage` commands find the private stack of a running `triage run`.

`triage run` writes a small JSON file while it serves: the URL of the Redis it started and the
emulator's URL and key (nothing else, and no real key: only the emulator's fixed one). It lives in
the user's runtime directory, `$XDG_RUNTIME_DIR/triage-worker/run.json`, or
`~/.cache/triage-worker/run.json` when there is none (`$XDG_CACHE_HOME` is honoured), and is
removed when that run stops. A file whose process is gone is ignored and removed.

The commands that read or feed the demo's data (enqueue, answer, thread, outbox, events, stats,
dlq, doctor, backlog, review; and `config show`, to show what they use) apply it before anything
reads the settings, for each setting that is not set (in the environment or `.env`):
`TRIAGE_REDIS_URL` -> the private Redis; `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`, when
neither is set -> the emulator. It is done in the CLI group's
callback (`triage.main`), not in `common.settings.load_settings` (a production worker or producer
must never pick up a demo's file from a home directory) and not in `settings_or_exit` (`triage
enqueue` belongs to the producers and builds its own settings): setting the environment of this
one CLI process is the one point every `triage` command passes through. `triage worker`,
`triage emulator` and `triage run` itself never read it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path

from common.errors import ConfigError
from common.settings import load_settings

FILE_NAME = "run.json"
#: Commands that serve the demo's data from another shell; the others never read the file.
READERS = frozenset(
    {
        "enqueue",
        "answer",
        "thread",
        "outbox",
        "events",
        "stats",
        "dlq",
        "doctor",
        "backlog",
        "review",
        "config",
        "webhooks",
        "reprocess",
        "console",
    }
)


@dataclass(frozen=True)
class RunState:
    """What a serving `triage run` started (None: it used the configured one)."""

    pid: int
    redis_url: str | None = None
    anthropic_base_url: str | None = None
    anthropic_api_key: str | None = None


def state_path(environ: Mapping[str, str]) -> Path:
    """`$XDG_RUNTIME_DIR/triage-worker/run.json`, else under `$XDG_CACHE_HOME` or ~/.cache."""
    runtime = environ.get("XDG_RUNTIME_DIR", "").strip()
    if runtime:
        base = Path(runtime)
    else:
        cache = environ.get("XDG_CACHE_HOME", "").strip()
        home = environ.get("HOME", "").strip()
        base = Path(cache) if cache else (Path(home) if home else Path.home()) / ".cache"
    return base / "triage-worker" / FILE_NAME


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, but then the file is not ours either
    return True


def write(path: Path, state: RunState) -> None:
    """Atomically, readable by the user only (it names a local port and the emulator's key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(asdict(state), handle)
    temporary.replace(path)


def read(path: Path) -> RunState | None:
    """The state of a live run; None if there is none (a stale file is removed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        state = RunState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not pid_alive(state.pid):
        remove(path, state.pid)
        return None
    return state


def remove(path: Path, pid: int) -> None:
    """Remove the file if it still belongs to `pid` (a newer run may have replaced it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == pid:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only if nothing else is left in it


def apply(environ: MutableMapping[str, str]) -> RunState | None:
    """Point the settings that are not set at a running `triage run`'s stack; returns it."""
    state = read(state_path(environ))
    if state is None:
        return None
    try:
        settings = load_settings()
    except ConfigError:
        return None  # the command itself reports the bad setting
    if state.redis_url and "redis_url" not in settings.model_fields_set:
        environ["TRIAGE_REDIS_URL"] = state.redis_url
    unset = settings.anthropic_api_key is None and settings.anthropic_base_url is None
    if state.anthropic_api_key and state.anthropic_base_url and unset:
        environ["ANTHROPIC_API_KEY"] = state.anthropic_api_key
        environ["ANTHROPIC_BASE_URL"] = state.anthropic_base_url
    return state
