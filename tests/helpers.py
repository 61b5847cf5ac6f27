"""Every helper the tests share, fast and end-to-end tiers alike, in one plain module.

One module on purpose: the suite's shared helpers live in one place (the issue asks for exactly
that), so no test module imports from another test module or from a conftest (conftest files are
not importable anyway), and there is one file to look in. pyproject puts tests/ on the path, so
`from helpers import ...` works from every tier. It is long, so it is kept in sections:

1. Waiting: `wait_for` and the conditions tests wait on instead of sleeping.
2. Workers and the `triage` command: environments, worker subprocesses, settings.
3. Reading results: decision events, the outbox, dead letters, the emulator's requests.
4. Emails: RFC 5322 messages built with the standard library; mbox, Maildir and JSONL inputs.
5. Ingestion: an Enqueuer on its own broker DB, `triage enqueue` in a subprocess.
6. SMTP: a real server on loopback (aiosmtpd) that records what it receives.
7. The emulator's API: the model, the worker's schema, message builders, the command's URL.
8. Webhook receivers: a real HTTP server on loopback that records, answers as told, dedupes.
9. The web console: served by uvicorn on a free port, an HTTP client with cookies, Chromium;
   the Grafana dashboard's queries and the metric names they use.
"""

from __future__ import annotations

import http.server
import json
import mailbox
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import psutil
import redis
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from common import keys
from common.contract import QUEUE_REPLIES, QUEUE_TRIAGE
from common.deadletters import DeadLetterStream
from common.settings import Settings
from producers.enqueue import Enqueuer
from triage.localstack import Process, start_worker

REPO = Path(__file__).resolve().parents[1]
STATE_DB = 15
BROKER_DB = 14
TEST_KEY = "sk-test-key"


# --- 1. Waiting -----------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)  # the polling interval of this wait on a condition
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def settled(r: redis.Redis, thread_ids: Iterable[str]) -> bool:
    """No drain task queued or running for these threads, and no email left in their inboxes."""
    return all(
        r.get(keys.thread_scheduled(t)) is None and not r.exists(keys.thread_inbox(t))
        for t in thread_ids
    )


def wait_settled(r: redis.Redis, thread_ids: Iterable[str], timeout: float = 30.0) -> None:
    """Wait until nothing more can happen to these threads, before asserting that nothing more
    happened (each email applied once): nothing is left that could apply an email again."""
    ids = list(thread_ids)
    wait_for(lambda: settled(r, ids), timeout, f"{len(ids)} thread(s) to settle")


def broker_idle(broker_url: str) -> bool:
    """No task waiting on the triage or replies queue, and none delivered but not yet acked.

    Tasks are acked late, so a running task is still in kombu's `unacked` hash (our transport
    keeps kombu's keys). Only meaningful for a broker DB that no killed worker used: a killed
    worker's unacked tasks stay there until the visibility timeout.
    """
    client = redis.Redis.from_url(broker_url)
    try:
        waiting = client.llen(QUEUE_TRIAGE) + client.llen(QUEUE_REPLIES)
        return waiting == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def connections_to(pid: int, url: str) -> int:
    """Established TCP connections from process `pid` to the server at `url`.

    For a worker that has made no call yet, the number of its calls on the wire.
    """
    port = urlsplit(url).port
    return sum(
        1
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


# --- 2. Workers and the `triage` command ----------------------------------------------------


def base_env(
    state_url: str, broker_url: str, emulator_url: str, **overrides: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    env.update(
        {
            "TRIAGE_REDIS_URL": state_url,
            "TRIAGE_BROKER_URL": broker_url,
            "ANTHROPIC_API_KEY": TEST_KEY,
            "ANTHROPIC_BASE_URL": emulator_url,
            "TRIAGE_LOG_FORMAT": "json",
            "TRIAGE_RETRY_BACKOFF_SECONDS": "0.2",
            "TRIAGE_RETRY_BACKOFF_MAX_SECONDS": "2",
            "TRIAGE_API_MAX_RETRIES": "2",
            "TRIAGE_METRICS_PORT": "0",
        }
    )
    env.update(overrides)
    return env


class WorkerHandle:
    """A running worker subprocess and its JSON log file."""

    def __init__(self, process: Process, log_path: Path, env: dict[str, str]) -> None:
        self.process = process
        self.log_path = log_path
        self.env = env

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                records.append(record)
        return records

    def settings(self) -> Settings:
        return settings_from_env(self.env)


def settings_from_env(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def launch_worker(env: dict[str, str], log_path: Path, concurrency: int = 8) -> WorkerHandle:
    with log_path.open("ab") as log_file:  # the child keeps its own descriptor
        process = start_worker(env, concurrency=concurrency, pool="threads", stdout=log_file)
    handle = WorkerHandle(process, log_path, env)
    wait_for(
        lambda: "ready" in log_path.read_text(errors="replace") or not process.alive(),
        30,
        "the worker to be ready",
    )
    assert process.alive(), log_path.read_text()
    return handle


def run_triage(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The `triage` command in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "triage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- 3. Reading results ---------------------------------------------------------------------


def events(r: Any, types: tuple[str, ...] = ("classified", "escalated")) -> list[dict[str, Any]]:
    """Decision events of the given types (clarification events are left out by default)."""
    found = [json.loads(f[b"payload"]) for _, f in r.xrange(keys.EVENTS)]
    return [event for event in found if event["type"] in types]


def outbox(r: Any) -> list[dict[str, str]]:
    """Replies rendered to the outbox stream, fields decoded."""
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(keys.OUTBOX)]


def user_texts(turn: dict[str, Any]) -> str:
    """The text of a turn, whether its content is a string or a list of text blocks."""
    content = turn["content"]
    return content if isinstance(content, str) else " ".join(b["text"] for b in content)


def api_requests(emulator: Any) -> list[dict[str, Any]]:
    """The emulator's recorded /v1/messages calls (count_tokens left out)."""
    return [q for q in emulator.requests if q["path"] == "/v1/messages"]


def dead_letters(r: Any) -> list[Any]:
    return DeadLetterStream(r).list()


# --- 4. Emails ------------------------------------------------------------------------------

SEED_FIRST = "Hi, my thing isn't working. Can you help?"
SEED_REPLY = "Sorry, I mean I was charged twice for my subscription this month."


def make_email(
    message_id: str | None,
    body: str,
    *,
    subject: str = "Help",
    sender: str = "Dana Customer <dana@example.org>",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    html: bool = False,
) -> bytes:
    """A raw RFC 5322 email, as a customer's mail client sends it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body, subtype="html" if html else "plain")
    return msg.as_bytes()


def message(
    message_id: str | None,
    body: str | None = "Hello, my parcel never arrived.",
    *,
    sender: str = "Dana Customer <dana@example.org>",
    subject: str = "Help",
    html: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> EmailMessage:
    """An email with optional HTML alternative and attachments, for the ingestion tests."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Support <support@example.com>"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value
    if body is not None:
        msg.set_content(body)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for name, ctype, data in attachments or []:
        if body is None and html is None and not msg.is_multipart():
            msg.make_mixed()
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def raw_email(
    message_id: str | None, body: str = "Hello, my parcel never arrived.", **kw: Any
) -> bytes:
    return message(message_id, body, **kw).as_bytes()


def write_mbox(path: Path, messages: list[EmailMessage]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.mbox(path, create=True)
    box.lock()
    try:
        for msg in messages:
            box.add(msg)
        box.flush()
    finally:
        box.unlock()
        box.close()
    return path


def write_maildir(path: Path, messages: list[EmailMessage]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for msg in messages:
        box.add(msg)
    box.close()
    return path


def jsonl_line(**fields: Any) -> str:
    """One JSONL input record; a field given as None is left out."""
    record: dict[str, Any] = {
        "from": "Dana <dana@example.org>",
        "subject": "Order",
        "text": "My order #1 is late.",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


# --- 5. Ingestion ---------------------------------------------------------------------------

# Producers in the ingestion tests publish drain tasks to broker DB 13 (no worker consumes it
# during those tests), so the shared worker on DB 14 never picks up ingestion-test threads.
INGEST_BROKER_DB = 13


def ingest_env(state_url: str, **overrides: str) -> dict[str, str]:
    broker = state_url.rsplit("/", 1)[0] + f"/{INGEST_BROKER_DB}"
    return base_env(state_url, broker, "http://127.0.0.1:9", **overrides)


def ingest_settings(state_url: str, **overrides: str) -> Settings:
    return settings_from_env(ingest_env(state_url, **overrides))


def make_enqueuer(state_url: str, client: Any, **overrides: str) -> Enqueuer:
    return Enqueuer(ingest_settings(state_url, **overrides), client)


def run_enqueue(
    *args: str, env: dict[str, str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`triage enqueue` in a subprocess, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "triage", "enqueue", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


# --- 6. SMTP --------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class RecordingHandler:
    """Accepts mail, or answers RCPT with scripted codes first (e.g. 451 twice, or 550 always)."""

    rcpt_replies: list[str] = field(default_factory=list)
    always: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.always:
            return self.always
        with self.lock:
            if self.rcpt_replies:
                return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted"


class Credentials:
    def __init__(self, login: str, password: str) -> None:
        self.login, self.password = login.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.login,
            self.password,
        )
        return AuthResult(success=ok, handled=False)


def start_smtp(
    port: int,
    handler: RecordingHandler,
    credentials: Credentials | None = None,
    tls: ssl.SSLContext | None = None,
) -> Controller:
    """Plain SMTP, or STARTTLS required (with `tls`) and then AUTH (with `credentials`)."""
    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs |= {"tls_context": tls, "require_starttls": True}
    if credentials is not None:
        kwargs |= {"authenticator": credentials, "auth_required": True}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller


def tls_setup(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1; returns the server context and
    the CA file to give clients (SSL_CERT_FILE makes Python's default context trust it)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


# --- 7. The emulator's API ------------------------------------------------------------------

MODEL = "claude-sonnet-4-6"
WORKER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "question", "category", "confidence", "reason"],
    "properties": {
        "action": {"type": "string", "enum": ["clarify", "classify"]},
        "question": {"type": "string"},
        "category": {"type": "string", "enum": ["BILLING", "SHIPPING", "TECHNICAL", "OTHER"]},
        "confidence": {"type": "number"},
        "reason": {"type": "string"},
    },
}
# The seed conversation's two customer turns, under the emulator tests' names.
TURN1 = SEED_FIRST
TURN2 = SEED_REPLY


def structured(schema: dict[str, Any] = WORKER_SCHEMA) -> dict[str, Any]:
    """The `output_config` argument asking for JSON valid against `schema`."""
    return {"format": {"type": "json_schema", "schema": schema}}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def emulator_url(proc: subprocess.Popen[bytes], out: Path, timeout: float = 20.0) -> str:
    """The base URL `python -m emulator` prints once it listens (fails at once if it exits)."""

    def listening() -> str | None:
        text = out.read_text()
        match = re.search(r"listening on (http://\S+)", text)
        if match:
            return match.group(1)
        assert proc.poll() is None, text
        return None

    url: str = wait_for(listening, timeout, f"the emulator to print its URL in {out}")
    return url


# --- In-process drain step (fast tier) -------------------------------------------------------


class Recorder:
    """A task publisher that records instead of sending: the drain step runs in the test."""

    def __init__(self) -> None:
        self.drains: list[str] = []
        self.replies: list[Any] = []

    def drain(self, thread_id: str) -> None:
        self.drains.append(thread_id)

    def reply(self, reply: Any) -> None:
        self.replies.append(reply)


class InProcess:
    """Settings, the worker's own drain step, and the producers' submit, wired to one Redis."""

    def __init__(self, settings: Settings, client: Any) -> None:
        from producers.submit import Submitter
        from worker.runtime import build_drain_step

        self.settings = settings
        self.published = Recorder()
        self.step = build_drain_step(settings, client, self.published)
        self._submitter = Submitter(settings, client, self.published)

    def submit(self, raw: bytes) -> str:
        """Parse, thread, dedupe and put an email in its inbox, as `triage enqueue` does."""
        from producers.parse import parse_email

        return self._submitter.submit(parse_email(raw)).thread_id

    def close(self) -> None:
        self.step.close()


def stream_events(r: Any, *types: str) -> list[dict[str, Any]]:
    """Every event payload in the stream (of the given types, if any), oldest first."""
    found = [json.loads(f[b"payload"]) for _, f in r.xrange(keys.EVENTS)]
    return [event for event in found if not types or event["type"] in types]


# --- 8. Webhook receivers -------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request a receiver got: headers (lower-case names), the raw body, when."""

    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event_id(self) -> str:
        return self.headers.get("x-triage-event-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


#: What a receiver answers: status, extra headers, seconds to wait before answering.
Reply = tuple[int, dict[str, str], float]


class Receiver:
    """A webhook receiver on loopback (`http.server`, one thread per connection, keep-alive).

    `respond(hit, index)` decides each answer (`index` counts the requests with that event id,
    from 0); by default 200 at once. Like a careful receiver, it dedupes by event id: an event
    is `processed` once, when first answered 2xx; later 2xx copies only count as `duplicates`.
    """

    def __init__(self, respond: Callable[[Hit, int], Reply] | None = None, port: int = 0) -> None:
        self.respond = respond or (lambda hit, index: (200, {}, 0.0))
        self.hits: list[Hit] = []
        self.processed: list[Hit] = []
        self.duplicates = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hit = Hit({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                with receiver.lock:
                    index = sum(1 for h in receiver.hits if h.event_id == hit.event_id)
                    receiver.hits.append(hit)
                status, headers, delay = receiver.respond(hit, index)
                if delay:
                    time.sleep(delay)  # the receiver under test is slow on purpose
                if 200 <= status < 300:
                    with receiver.lock:
                        if any(p.event_id == hit.event_id for p in receiver.processed):
                            receiver.duplicates += 1
                        else:
                            receiver.processed.append(hit)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeout, killed worker) is part of the tests

        self.server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        """Event ids of the processed events, in the order they were processed."""
        with self.lock:
            return [hit.event_id for hit in self.processed]

    def attempts(self, event_id: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.event_id == event_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def publish_event(r: Any, kind: str, thread_id: str) -> str:
    """Append a valid sample event to the events stream as the commit script does; its id."""
    from worker.deliver.envelope import sample_event

    event = sample_event(kind, thread_id)
    fields = {
        "type": kind,
        "thread_id": thread_id,
        "category": str(event.get("category") or ""),
        "payload": json.dumps(event),
    }
    entry_id = r.xadd(keys.EVENTS, fields)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def webhook_signed(hit: Hit, secret: str, tolerance: float = 300) -> bool:
    """A receiver's own check of X-Triage-Signature, sharing no code with the worker:
    HMAC-SHA256 keyed with `secret` over "<t>.<raw body>", any v1 matching, t within 5 min."""
    import hashlib
    import hmac

    pairs = [part.split("=", 1) for part in hit.headers["x-triage-signature"].split(",")]
    stamp = next(value for key, value in pairs if key == "t")
    digests = [value for key, value in pairs if key == "v1"]
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + hit.body, hashlib.sha256)
    return mac.hexdigest() in digests and abs(time.time() - int(stamp)) <= tolerance


# --- 9. The web console ---------------------------------------------------------------------


@dataclass
class ConsoleServer:
    """The console app served by a real uvicorn on a free loopback port."""

    url: str
    settings: Settings
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_console(settings: Settings, app: Any = None, replay: bool = True) -> ConsoleServer:
    """Serve `app` (default: the console for `settings`, replay wired like `triage console`)."""
    import uvicorn

    from console.app import create_app
    from triage.resources import open_replayer

    if app is None:
        replayer = (lambda: open_replayer(settings)) if replay else None
        app = create_app(settings, replayer=replayer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, "the console to serve")
    return ConsoleServer(f"http://127.0.0.1:{sock.getsockname()[1]}", settings, server, thread)


@dataclass
class Page:
    """One HTTP answer: status, headers (lower-case names), the body as text."""

    status: int
    headers: dict[str, str]
    text: str
    cookies: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def csrf(self) -> str:
        """The CSRF token of the page's first form (else of its `csrf-token` meta tag)."""
        match = re.search(r'name="csrf" value="([^"]+)"', self.text) or re.search(
            r'name="csrf-token" content="([^"]+)"', self.text
        )
        assert match, f"no CSRF token in the page ({self.status})"
        return match.group(1)


class Http:
    """A minimal HTTP client with a cookie jar (no redirects followed: tests look at them)."""

    def __init__(self, base: str, *, auth: tuple[str, str] | None = None, token: str = "") -> None:
        import base64

        self.base = base
        self.cookies: dict[str, str] = {}
        self.headers: dict[str, str] = {}
        if auth is not None:
            basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {basic}"
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        import http.client

        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        sent = {**self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body, sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", errors="replace")
            raw = response.getheaders()
        finally:
            conn.close()
        set_cookies = [value for name, value in raw if name.lower() == "set-cookie"]
        for cookie in set_cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0].strip().strip('"')
            if "max-age=0" in cookie.lower() or "expires=thu, 01 jan 1970" in cookie.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Page(response.status, {k.lower(): v for k, v in raw}, text, set_cookies)

    def get(self, path: str, **headers: str) -> Page:
        return self.request("GET", path, headers={"Accept": "*/*", **headers})

    def post(self, path: str, form: dict[str, str], **headers: str) -> Page:
        from urllib.parse import urlencode

        body = urlencode(form).encode()
        sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        return self.request("POST", path, body, sent)


def artifacts_dir(name: str) -> Path:
    """Where tests write artifacts (screenshots): $TRIAGE_TEST_ARTIFACTS or ./artifacts/NAME."""
    root = Path(os.environ.get("TRIAGE_TEST_ARTIFACTS") or REPO / "artifacts")
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_tool(message: str) -> NoReturn:
    """A Debian tool a test needs is not installed: skip locally, fail in CI (`.ci/run` installs
    it)."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + "; .ci/run installs it")
    pytest.skip(message)


def promtool() -> str:
    """Debian's promtool (the prometheus package)."""
    import shutil

    found = shutil.which("promtool")
    if found is None:
        missing_tool(
            "promtool not found: install Debian's prometheus package (apt-get install prometheus)"
        )
    return found


def chromium_driver() -> Any:
    """Headless Debian Chromium through chromedriver (Selenium); skip without it locally, fail
    in CI (`.ci/run` installs the `chromium` and `chromium-driver` packages)."""
    import shutil
    import tempfile

    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver_path).exists()):
        missing_tool(
            "Chromium or chromedriver not found: install Debian's chromium and chromium-driver "
            "packages (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="triage-chromium-")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.profile_dir = profile  # removed by the caller after quit()
    return driver


DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "triage-worker.json"
#: PromQL words that look like metric names but are not (functions, keywords, label names).
_PROMQL_WORDS = frozenset(
    {"sum", "max", "min", "by", "rate", "histogram_quantile", "clamp_min", "le", "without"}
)


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the Grafana dashboard's panels."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label values and label matchers left out)."""
    unquoted = re.sub(r'"[^"]*"', '""', expr)
    unlabelled = re.sub(r"\{[^}]*\}", "", unquoted)
    unranged = re.sub(r"\[[^\]]*\]", "", unlabelled)
    grouped = re.sub(r"\b(by|without)\s*\([^)]*\)", "", unranged)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", grouped))
    return {w for w in words if w not in _PROMQL_WORDS and not re.fullmatch(r"e\d*", w)}


def exposed_names(text: str) -> set[str]:
    """Every series name a /metrics text can show: its samples, and for each declared family
    the names its samples take (a counter's `_total`, a histogram's `_bucket`, `_sum`,
    `_count`) even before a labelled family has its first sample."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


#: The default categories plus RETURNS: reprocessing runs re-decide live threads under it (the
#: emulator classifies a custom label when the customer writes its word).
RETURNS_TAXONOMY = """\
categories:
  - name: BILLING
    description: charges, invoices, refunds, payments, subscriptions
  - name: SHIPPING
    description: deliveries, tracking, lost or damaged parcels
  - name: TECHNICAL
    description: errors, bugs, log-in and app or website problems
  - name: RETURNS
    description: sending an item back, return labels, exchanges
  - name: OTHER
    description: anything else that is clear but fits none of the above
"""


def reply_id_pattern(thread_id: str, version: int, domain: str) -> str:
    """A regex for the Message-ID of our question `version` of a thread: its random tag is
    unknown in advance (`worker.reply.headers.reply_message_id`)."""
    return rf"<triage\.{re.escape(thread_id)}\.{version}\.[0-9a-f]{{16}}@{re.escape(domain)}>"
