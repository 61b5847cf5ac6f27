"""Helpers for the ingestion tests: emails built with the stdlib, an Enqueuer on the test Redis.

Producers publish drain tasks to broker DB 13 here (no worker consumes it during these tests),
so the shared worker on DB 14 never picks up ingestion-test threads.
"""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from helpers import base_env, settings_from_env

from common.settings import Settings
from producers.enqueue import Enqueuer

INGEST_BROKER_DB = 13
REPO = Path(__file__).resolve().parents[1]


def ingest_env(state_url: str, **overrides: str) -> dict[str, str]:
    broker = state_url.rsplit("/", 1)[0] + f"/{INGEST_BROKER_DB}"
    return base_env(state_url, broker, "http://127.0.0.1:9", **overrides)


def ingest_settings(state_url: str, **overrides: str) -> Settings:
    return settings_from_env(ingest_env(state_url, **overrides))


def make_enqueuer(state_url: str, client: Any, **overrides: str) -> Enqueuer:
    return Enqueuer(ingest_settings(state_url, **overrides), client)


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
    record: dict[str, Any] = {
        "from": "Dana <dana@example.org>",
        "subject": "Order",
        "text": "My order #1 is late.",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def run_enqueue(
    *args: str, env: dict[str, str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "triage", "enqueue", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
