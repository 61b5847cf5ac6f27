"""`triage run`: the whole pipeline on one machine, from nothing.

Starts a private Redis unless TRIAGE_REDIS_URL names a reachable one, the offline emulator when no
API key is set, and a worker; feeds the bundled sample inbox (the seed conversation and a few clear
emails) under fresh Message-IDs, so every run tells the story again, even on the same Redis;
answers the clarifying question as the customer would (a reply whose In-Reply-To is our
Message-ID); prints each thread's conversation and the token log lines; then serves until Ctrl-C
or SIGTERM, telling how to continue from another shell (the commands find this run's stack through
the state file of `triage.runstate`).

Everything it starts runs in its own process group and is stopped in order (worker, emulator,
Redis) on exit, Ctrl-C or SIGTERM; its temporary directory (Redis' working directory, the
emulator's log, the example email) is removed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import click
import redis

from common import keys
from common.connections import redis_client
from common.settings import Settings, load_settings
from producers.enqueue import Enqueuer, iter_eml_files
from producers.submit import Submitted, thread_id_for
from triage import runstate
from triage.localstack import (
    LocalStackError,
    Process,
    redis_reachable,
    start_emulator,
    start_redis,
    start_worker,
)
from triage.relay import LogRelay
from triage.transcript import ThreadView, body_lines, thread_events
from worker.state.ledger import Ledger
from worker.state.store import ThreadStore

#: Nothing more happens to a sample thread in these states without a person.
FINAL_STATES = ("classified", "needs_review", "escalated", "reply_failed")
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
#: Celery warns when a worker runs as root (containers, CI); the demo's own worker is local.
QUIET_ROOT_WARNING = "ignore:You're running the worker with superuser privileges"
#: Our questions are looked for among the newest outbox entries (a shared Redis may hold many).
OUTBOX_LOOKBACK = 200
TRY_TEXT = "Hello, it stopped again this morning. Could you have a look?"
TRY_ANSWER = "Sorry: the app shows an error when I log in."
_ID_HEADER = re.compile(r"^((?:Message-ID|X-Triage-Sample-Answers):\s*<)([^@<>\s]+)@", re.I | re.M)
_ADDRESS_HEADER = re.compile(r"^((?:From|Reply-To):[^\n]*?)([\w.-]+)@", re.I | re.M)


def sample_dir() -> Path:
    return Path(str(resources.files("triage") / "samples"))


def fresh_ids(raw: str, tag: str) -> str:
    """A sample made new for this run: Message-IDs `<seed-0001@x>` -> `<seed-0001.tag@x>`, and
    customers `dana@x` -> `dana.tag@x` (not `dana+tag@`: the limits count sub-addresses as one
    mailbox).

    Without fresh ids a second run on the same Redis finds every sample a duplicate; without
    fresh addresses the worker's per-address limits (questions per day, an "answer" within
    TRIAGE_LOOP_ANSWER_SECONDS of our last question) see the same customer again and ask
    nothing. Only the headers of the samples' own ids and senders change (the reply's
    In-Reply-To is filled in later with our question's id): each run threads like the first.
    """
    head, separator, body = raw.partition("\n\n")
    head = _ID_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}.{tag}@", head)
    head = _ADDRESS_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}.{tag}@", head)
    return head + separator + body


def command_prefix() -> str:
    """How to call this `triage` from another shell: `triage` if PATH finds this one, else its
    path (relative to the current directory when under it, as `.venv/bin/triage`)."""
    here = Path(sys.executable).parent / "triage"
    if not here.exists():
        return f"{sys.executable} -m triage"
    found = shutil.which("triage")
    if found and Path(found).resolve() == here.resolve():
        return "triage"
    try:
        return str(here.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(here)


class Stack:
    """What this run started: processes (stopped newest first), its temporary directory and
    the state file that lets the other commands find them."""

    def __init__(self) -> None:
        self.processes: list[Process] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="triage-run-"))
        self.state = runstate.RunState(pid=os.getpid())
        self.state_file: Path | None = None
        self.relay: LogRelay | None = None

    def publish(self) -> None:
        """Write the state file if anything private was started (see `triage.runstate`)."""
        if self.state.redis_url or self.state.anthropic_base_url:
            self.state_file = runstate.state_path(os.environ)
            runstate.write(self.state_file, self.state)

    def stop(self) -> None:
        if self.state_file is not None:
            runstate.remove(self.state_file, self.state.pid)
        for process in reversed(self.processes):
            process.stop()
        if self.relay is not None:
            self.relay.join(timeout=2)  # the worker's last lines
        shutil.rmtree(self.workdir, ignore_errors=True)


def prepare_environment(settings: Settings, stack: Stack) -> dict[str, str]:
    """Environment for the worker: private Redis and emulator when the real ones are missing."""
    env = dict(os.environ)
    explicit = "redis_url" in settings.model_fields_set
    if explicit and redis_reachable(settings.redis_url):
        click.echo(f"Using the Redis at {settings.redis_url}.", err=True)
    else:
        reason = f"No Redis at {settings.redis_url}" if explicit else "TRIAGE_REDIS_URL is not set"
        click.echo(f"{reason}: starting a private one…", err=True)
        skipped: list[str] = []
        try:
            url, process = start_redis(
                workdir=stack.workdir / "redis", own_group=True, skipped=skipped
            )
        except LocalStackError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            for failure in skipped:
                click.echo(f"  skipped {failure}", err=True)
        stack.processes.append(process)
        stack.state = replace(stack.state, redis_url=url)
        env["TRIAGE_REDIS_URL"] = url
        env.pop("TRIAGE_BROKER_URL", None)
        click.echo(
            f"  private Redis ({process.program}) at {url} (nothing is kept after exit)", err=True
        )
    if settings.anthropic_api_key is None:
        click.echo("No ANTHROPIC_API_KEY: starting the offline emulator…", err=True)
        log_path = stack.workdir / "emulator.log"
        try:
            with log_path.open("ab") as log_file:
                url, process = start_emulator(stdout=log_file, own_group=True)
        except LocalStackError as exc:
            message = f"the emulator did not start: {exc} (log: {log_path})"
            raise click.ClickException(message) from None
        stack.processes.append(process)
        stack.state = replace(stack.state, anthropic_base_url=url, anthropic_api_key=EMULATOR_KEY)
        env["ANTHROPIC_API_KEY"] = EMULATOR_KEY
        env["ANTHROPIC_BASE_URL"] = url
        click.echo(f"  emulator at {url} (request log: {log_path})", err=True)
    else:
        click.echo(f"Using the Claude API with model {settings.model}.", err=True)
    env["TRIAGE_LOG_FORMAT"] = "json"
    if "metrics_port" not in settings.model_fields_set:
        env["TRIAGE_METRICS_PORT"] = "0"  # a demo needs no Prometheus endpoint on 0.0.0.0
    warnings = env.get("PYTHONWARNINGS", "")
    env["PYTHONWARNINGS"] = f"{warnings},{QUIET_ROOT_WARNING}" if warnings else QUIET_ROOT_WARNING
    return env


def answer_clarifications(
    client: redis.Redis, enqueuer: Enqueuer, done: set[Path], tag: str
) -> None:
    """Play the customer: reply to each clarification the samples expect to answer."""
    outbox: list[Any] = client.xrevrange(keys.OUTBOX, count=OUTBOX_LOOKBACK)  # type: ignore[assignment]
    sent = {fields[b"thread_id"].decode(): fields[b"message_id"].decode() for _, fields in outbox}
    for path in sorted((sample_dir() / "replies").glob("*.eml")):
        if path in done:
            continue
        text = fresh_ids(path.read_text(encoding="utf-8"), tag)
        answers = next(line for line in text.splitlines() if line.startswith(ANSWERS_HEADER))
        original = answers.removeprefix(ANSWERS_HEADER).strip()
        question_id = sent.get(thread_id_for(original))
        if question_id is None:
            continue
        click.echo(f"Customer replies to our question {question_id} ({path.name})", err=True)
        enqueuer.enqueue_bytes(text.replace("{in_reply_to}", question_id).encode(), str(path))
        done.add(path)


def print_report(
    client: redis.Redis, settings: Settings, thread_ids: list[str], calls: list[dict[str, Any]]
) -> None:
    store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
    ledger = Ledger(client, settings.prices, settings.thread_ttl_seconds)
    for thread_id in thread_ids:
        snapshot = store.peek(thread_id)
        meta = snapshot.meta
        click.echo(
            f"\n== thread {thread_id}  status={snapshot.status}"
            f"  category={meta.get('category', '-')}"
            f"  clarifications={snapshot.clarifications}  subject={meta.get('subject', '')!r}"
        )
        events = thread_events(client, thread_id, meta)
        view = ThreadView(snapshot, events, ledger.thread(thread_id), settings.prices)
        click.echo("\n".join(line for line in body_lines(view)[1:]))
    click.echo("\n== claude.call log lines")
    for call in calls:
        click.echo("  " + " ".join(f"{f}={call.get(f)}" for f in CALL_FIELDS))


def print_next_steps(stack: Stack, tag: str) -> None:
    """The exact commands to continue from another shell while this run serves."""
    triage = command_prefix()
    example = stack.workdir / "try-me.eml"
    message_id = f"<try-{tag}@example.org>"
    example.write_text(
        f"From: Sam Customer <sam+{tag}@example.org>\nTo: Support <support@example.com>\n"
        f"Subject: It stopped again\nMessage-ID: {message_id}\n\n{TRY_TEXT}\n",
        encoding="utf-8",
    )
    thread_id = thread_id_for(message_id)
    where = (
        f"they find this run's Redis and emulator through {stack.state_file}"
        if stack.state_file
        else "with the same TRIAGE_REDIS_URL and ANTHROPIC_API_KEY as this one"
    )
    click.echo(f"\nServing until Ctrl-C. Continue from another shell ({where}):")
    steps = [
        (f"{triage} enqueue {example}", "a vague email: the worker asks a question"),
        (f"{triage} outbox --full", "the question, as the customer receives it"),
        (f'{triage} answer {thread_id} --text "{TRY_ANSWER}"', "answer as the customer"),
        (f"{triage} thread show {thread_id}", "the conversation, tokens and cost"),
        (f"{triage} thread list", "every thread"),
    ]
    for command, what in steps:
        click.echo(f"  # {what}\n  {command}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run like Ctrl-C does


def run(exit_when_drained: bool, timeout: float) -> None:
    settings = load_settings()
    stack = Stack()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve(settings, stack, secrets.token_hex(4), exit_when_drained, timeout)
    except KeyboardInterrupt:
        click.echo("\nStopping…", err=True)
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short (each stop is bounded).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
            sys.stdout.flush()


def serve(
    settings: Settings, stack: Stack, tag: str, exit_when_drained: bool, timeout: float
) -> None:
    env = prepare_environment(settings, stack)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("TRIAGE_", "ANTHROPIC_"))})
    settings = load_settings()
    stack.publish()
    worker = start_worker(env, stdout=subprocess.PIPE, quiet=True, own_group=True)
    stack.processes.append(worker)
    relay = stack.relay = LogRelay(worker.popen.stdout)
    relay.start()
    client = redis_client(settings.redis_url)
    store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
    enqueuer = Enqueuer(settings, client)
    thread_ids: list[str] = []
    for path in iter_eml_files([sample_dir()]):
        if path.parent.name == "replies":
            continue
        raw = fresh_ids(path.read_text(encoding="utf-8"), tag).encode()
        result = enqueuer.enqueue_bytes(raw, str(path))
        if isinstance(result, Submitted) and result.thread_id not in thread_ids:
            thread_ids.append(result.thread_id)
            click.echo(f"Enqueued {path.name} -> thread {result.thread_id} ({result.status})")
    answered: set[Path] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise click.ClickException(f"the worker exited with code {worker.popen.returncode}")
        answer_clarifications(client, enqueuer, answered, tag)
        states = [store.snapshot(t) for t in thread_ids]
        if all(s.status in FINAL_STATES and not s.inbox for s in states):
            break
        time.sleep(0.2)
    else:
        raise click.ClickException(f"threads were not all decided within {timeout:.0f}s")
    relay.wait_for_calls(len(thread_ids) + len(answered), timeout=2.0)
    print_report(client, settings, thread_ids, relay.calls)
    click.echo(f"\nAll {len(thread_ids)} sample threads decided.")
    if exit_when_drained:
        return
    print_next_steps(stack, tag)
    while worker.alive():
        time.sleep(0.5)
    raise click.ClickException(f"the worker exited with code {worker.popen.returncode}")
