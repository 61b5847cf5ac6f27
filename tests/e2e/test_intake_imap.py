"""`triage imap` against a real IMAP server: Dovecot from Debian's packages, started by the test
on a free port in a temporary directory with its own configuration and user. Mail is delivered
with IMAP APPEND (the standard library's imaplib, not the watcher's client)."""

from __future__ import annotations

import contextlib
import getpass
import grp
import imaplib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import dead_letters, ingest_env, make_email, wait_for

from triage.localstack import free_port

USER, PASSWORD = "support", "imap-test-secret"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None
    )


@dataclass
class Dovecot:
    port: int
    config: Path
    directory: Path
    process: subprocess.Popen[bytes]

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(USER, PASSWORD)
        return conn

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        conn = self.client()
        try:
            for raw in messages:
                status, _ = conn.append(folder, None, None, raw)
                assert status == "OK"
        finally:
            conn.logout()

    def flags(self, folder: str = "INBOX") -> list[str]:
        conn = self.client()
        try:
            conn.select(folder)
            _, data = conn.uid("FETCH", "1:*", "(FLAGS)")
            return [item.decode() for item in data if isinstance(item, bytes)]
        finally:
            conn.logout()

    def count(self, folder: str) -> int:
        conn = self.client()
        try:
            status, data = conn.select(folder)
            return int(data[0]) if status == "OK" else -1
        finally:
            conn.logout()

    def set_uidvalidity(self, value: int) -> None:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [
                doveadm,
                "-c",
                str(self.config),
                "mailbox",
                "update",
                "-u",
                USER,
                "--uid-validity",
                str(value),
                "INBOX",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )


def dovecot_config(directory: Path, port: int) -> str:
    """A private instance: its own base dir, log, users file and Maildirs; plain IMAP on
    loopback. As root, mail is owned by `nobody` (Dovecot refuses uid 0); otherwise by us."""
    if os.getuid() == 0:
        uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        users = ""
    else:
        uid, gid = os.getuid(), os.getgid()
        me = getpass.getuser()
        users = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
        users += f"default_internal_group = {grp.getgrgid(gid).gr_name}\n"
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {directory}/run
state_dir = {directory}/state
instance_name = triage-test-{port}
log_path = {directory}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{directory}/mail/%u
first_valid_uid = 1
{users}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {directory}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={directory}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    binary = dovecot_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed (.ci/run installs dovecot-imapd)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    directory = Path(tempfile.mkdtemp(prefix="triage-dovecot-"))
    directory.chmod(0o755)  # the mail user (nobody, under root) must reach its Maildir
    try:
        for sub in ("run", "state", "mail"):
            (directory / sub).mkdir()
        if os.getuid() == 0:
            shutil.chown(directory / "mail", "nobody", "nogroup")
        (directory / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        port = free_port()
        config = directory / "dovecot.conf"
        config.write_text(dovecot_config(directory, port))
        process = subprocess.Popen(
            [binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        server = Dovecot(port, config, directory, process)

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError((directory / "dovecot.log").read_text(errors="replace"))
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                server.client().logout()
                return True
            return False

        wait_for(answers, 20, "dovecot to accept logins")
        yield server
        process.terminate()
        process.wait(timeout=20)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class ImapWatcher:
    process: subprocess.Popen[bytes]
    log_path: Path

    def logs(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found


@pytest.fixture
def watcher(dovecot: Dovecot, state_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start `triage imap` (a subprocess, as deployed) against the test server; stopped after."""
    started: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "imap.log"

    def start(**overrides: str) -> ImapWatcher:
        env = ingest_env(
            state_url,
            TRIAGE_IMAP_HOST="127.0.0.1",
            TRIAGE_IMAP_PORT=str(dovecot.port),
            TRIAGE_IMAP_USERNAME=USER,
            TRIAGE_IMAP_PASSWORD=PASSWORD,
            TRIAGE_IMAP_TLS="none",
            TRIAGE_IMAP_IDLE_SECONDS="30",
            **overrides,
        )
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "triage", "imap"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return ImapWatcher(process, log_path)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


def inbox_ids(r: redis.Redis) -> list[str]:
    """Message-IDs of every email waiting in a thread inbox (no worker drains these threads)."""
    found = []
    for key in r.scan_iter(match="triage:thread:*:inbox"):
        found += [json.loads(entry)["message_id"] for entry in r.lrange(key, 0, -1)]
    return found


def mail(n: int, tag: str = "m") -> bytes:
    return make_email(
        f"<{tag}-{n}@example.org>",
        f"Message {n}: my order {n} is late.",
        sender=f"Customer {n} <c{n}@example.org>",
    )


def test_each_message_enqueued_once_across_kill_and_restart(
    dovecot: Dovecot, watcher: Any, r: redis.Redis
) -> None:
    """Mail present at start, mail arriving while killed (SIGKILL mid-stream) and mail arriving
    during IDLE are each enqueued exactly once, and flagged \\Seen on the server."""
    dovecot.deliver(*(mail(n) for n in range(1, 41)))
    first = watcher(TRIAGE_IMAP_BATCH_SIZE="1")
    wait_for(lambda: len(inbox_ids(r)) >= 5, 30, "the first messages to be enqueued")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=20)
    assert len(inbox_ids(r)) < 40, "killed after the last message: not mid-stream"
    dovecot.deliver(*(mail(n) for n in range(41, 44)))
    second = watcher(TRIAGE_IMAP_BATCH_SIZE="7")
    wait_for(lambda: len(set(inbox_ids(r))) == 43, 60, "all 43 messages after the restart")
    wait_for(lambda: second.logs("imap.batch") and second.process.poll() is None, 10, "a batch")
    dovecot.deliver(mail(44))  # arrives while the watcher IDLEs
    expected = sorted(f"<m-{n}@example.org>" for n in range(1, 45))
    wait_for(lambda: sorted(set(inbox_ids(r))) == expected, 30, "the message sent during IDLE")
    assert sorted(inbox_ids(r)) == expected  # each once: nothing skipped, nothing twice
    wait_for(lambda: all("\\Seen" in f for f in dovecot.flags()), 20, "every message flagged")
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=30) == 0


def test_broken_message_is_dead_lettered_and_processed_mail_moved(
    dovecot: Dovecot, watcher: Any, r: redis.Redis
) -> None:
    """A message without a sender is dead-lettered with its reason and UID; the good one is
    enqueued; both are moved to the Triaged folder (TRIAGE_IMAP_AFTER=move)."""
    broken = b"Subject: who am I\r\nMessage-ID: <broken@example.org>\r\n\r\nno sender here\r\n"
    dovecot.deliver(broken, mail(1, "good"))
    watcher(TRIAGE_IMAP_AFTER="move")
    wait_for(lambda: inbox_ids(r) == ["<good-1@example.org>"], 30, "the good message")
    wait_for(lambda: dead_letters(r), 20, "the broken message's dead letter")
    [letter] = dead_letters(r)
    payload = letter.body["payload"]
    assert letter.reason == "no_sender"
    assert payload["source"] == "imap:127.0.0.1/INBOX" and payload["position"] == "uid 1"
    assert "no sender here" in payload["raw"]
    wait_for(lambda: dovecot.count("Triaged") == 2 and dovecot.count("INBOX") == 0, 20, "moves")


def test_uidvalidity_change_rereads_the_folder_without_duplicates(
    dovecot: Dovecot, watcher: Any, r: redis.Redis
) -> None:
    """After the folder's UIDVALIDITY changes, the watcher logs it, reads the folder again, and
    dedupe keeps the old messages from being enqueued twice; the new one is enqueued."""
    dovecot.deliver(mail(1, "uv"), mail(2, "uv"))
    first = watcher()
    wait_for(lambda: len(inbox_ids(r)) == 2, 30, "the first two messages")
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0
    dovecot.set_uidvalidity(4242)
    dovecot.deliver(mail(3, "uv"))
    second = watcher()
    wait_for(lambda: len(inbox_ids(r)) == 3, 30, "the new message")
    changed = wait_for(lambda: second.logs("imap.uidvalidity_changed"), 10, "the change logged")
    assert changed[0]["new"] == 4242
    [batch] = wait_for(
        lambda: [b for b in second.logs("imap.batch") if b.get("duplicate")], 10, "the re-read"
    )
    assert batch["duplicate"] == 2 and batch["enqueued"] == 1
    assert sorted(inbox_ids(r)) == [f"<uv-{n}@example.org>" for n in (1, 2, 3)]
