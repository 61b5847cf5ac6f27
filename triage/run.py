"""`triage run`: the whole pipeline on one machine, from nothing.

Starts a private Redis when none is reachable, the offline emulator when no API key is set, and a
worker; feeds the bundled sample inbox (the seed conversation and a few clear emails); answers the
clarifying question as the customer would (a reply whose In-Reply-To is our Message-ID); prints
each thread's outcome, its array and the token log lines; then serves until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click
import redis

from common import keys
from common.connections import redis_client
from common.settings import Settings, load_settings
from producers.enqueue import Enqueuer, iter_eml_files
from producers.submit import Submitted, thread_id_for
from triage.localstack import Process, redis_reachable, start_emulator, start_redis, start_worker
from worker.state.store import ThreadStore

FINAL_STATES = ("classified", "escalated")
EMULATOR_KEY = "sk-emulator-local"
ANSWERS_HEADER = "X-Triage-Sample-Answers:"
CALL_FIELDS = (
    "thread_id",
    "request_id",
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "stop_reason",
)
OUR_EVENTS = ("claude.", "drain.", "reply.", "task.", "enqueue.")


def sample_dir() -> Path:
    return Path(str(resources.files("triage") / "samples"))


class LogRelay(threading.Thread):
    """Reads the worker's JSON log lines, shows ours compactly and keeps the `claude.call` ones."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.calls: list[dict[str, Any]] = []

    def run(self) -> None:
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip()
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                click.echo(f"  worker| {line}", err=True)
                continue
            event = str(record.get("event", ""))
            if event == "claude.call":
                self.calls.append(record)
            if event.startswith(OUR_EVENTS) or record.get("level") in ("warning", "error"):
                extras = {
                    k: v for k, v in record.items() if k not in ("event", "timestamp", "level")
                }
                click.echo(f"  worker| {event} {json.dumps(extras, default=str)}", err=True)


def prepare_environment(settings: Settings, processes: list[Process]) -> dict[str, str]:
    """Environment for the worker: private Redis and emulator when the real ones are missing."""
    env = dict(os.environ)
    if not redis_reachable(settings.redis_url):
        click.echo(f"No Redis at {settings.redis_url}: starting a private one…", err=True)
        url, process = start_redis()
        processes.append(process)
        env["TRIAGE_REDIS_URL"] = url
        env.pop("TRIAGE_BROKER_URL", None)
        click.echo(f"  private Redis at {url} (nothing is kept after exit)", err=True)
    if settings.anthropic_api_key is None:
        click.echo("No ANTHROPIC_API_KEY: starting the offline emulator…", err=True)
        log_path = Path(tempfile.gettempdir()) / f"triage-emulator-{os.getpid()}.log"
        with log_path.open("ab") as log_file:
            url, process = start_emulator(stdout=log_file)
        processes.append(process)
        env["ANTHROPIC_API_KEY"] = EMULATOR_KEY
        env["ANTHROPIC_BASE_URL"] = url
        click.echo(f"  emulator at {url} (request log: {log_path})", err=True)
    else:
        click.echo(f"Using the Claude API with model {settings.model}.", err=True)
    env["TRIAGE_LOG_FORMAT"] = "json"
    return env


def answer_clarifications(client: redis.Redis, enqueuer: Enqueuer, done: set[Path]) -> None:
    """Play the customer: reply to each clarification the samples expect to answer."""
    outbox: list[Any] = client.xrange(keys.OUTBOX)  # type: ignore[assignment]
    sent = {fields[b"thread_id"].decode(): fields[b"message_id"].decode() for _, fields in outbox}
    for path in sorted((sample_dir() / "replies").glob("*.eml")):
        if path in done:
            continue
        text = path.read_text(encoding="utf-8")
        answers = next(line for line in text.splitlines() if line.startswith(ANSWERS_HEADER))
        original = answers.removeprefix(ANSWERS_HEADER).strip()
        question_id = sent.get(thread_id_for(original))
        if question_id is None:
            continue
        click.echo(f"Customer replies to our question {question_id} ({path.name})", err=True)
        enqueuer.enqueue_bytes(text.replace("{in_reply_to}", question_id).encode(), str(path))
        done.add(path)


def print_report(store: ThreadStore, thread_ids: list[str], calls: list[dict[str, Any]]) -> None:
    for thread_id in thread_ids:
        snapshot = store.snapshot(thread_id)
        meta = snapshot.meta
        click.echo(
            f"\n== thread {thread_id}  status={snapshot.status}"
            f"  category={meta.get('category', '-')}"
            f"  clarifications={snapshot.clarifications}  subject={meta.get('subject', '')!r}"
        )
        click.echo(json.dumps(snapshot.messages, indent=2, ensure_ascii=False))
    click.echo("\n== claude.call log lines")
    for call in calls:
        click.echo("  " + " ".join(f"{f}={call.get(f)}" for f in CALL_FIELDS))


def run(exit_when_drained: bool, timeout: float) -> None:
    settings = load_settings()
    processes: list[Process] = []
    try:
        env = prepare_environment(settings, processes)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("TRIAGE_", "ANTHROPIC_"))})
        settings = load_settings()
        worker = start_worker(env, stdout=subprocess.PIPE, quiet=True)
        processes.append(worker)
        relay = LogRelay(worker.popen.stdout)
        relay.start()
        client = redis_client(settings.redis_url)
        store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
        enqueuer = Enqueuer(settings, client)
        thread_ids: list[str] = []
        for path in iter_eml_files([sample_dir()]):
            if path.parent.name == "replies":
                continue
            result = enqueuer.enqueue_bytes(path.read_bytes(), str(path))
            if isinstance(result, Submitted) and result.thread_id not in thread_ids:
                thread_ids.append(result.thread_id)
                click.echo(f"Enqueued {path.name} -> thread {result.thread_id} ({result.status})")
        answered: set[Path] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise click.ClickException(f"the worker exited with code {worker.popen.returncode}")
            answer_clarifications(client, enqueuer, answered)
            states = [store.snapshot(t) for t in thread_ids]
            if all(s.status in FINAL_STATES and not s.inbox for s in states):
                break
            time.sleep(0.2)
        else:
            raise click.ClickException(f"threads were not all decided within {timeout:.0f}s")
        time.sleep(0.3)  # let the last log lines arrive
        print_report(store, thread_ids, relay.calls)
        click.echo(f"\nAll {len(thread_ids)} sample threads decided.")
        if exit_when_drained:
            return
        click.echo("Serving: enqueue more with `triage enqueue FILE.eml` (Ctrl-C to stop).")
        while worker.alive():
            time.sleep(0.5)
        raise click.ClickException(f"the worker exited with code {worker.popen.returncode}")
    except KeyboardInterrupt:
        click.echo("\nStopping…", err=True)
    finally:
        for process in reversed(processes):
            process.stop()
        sys.stdout.flush()
