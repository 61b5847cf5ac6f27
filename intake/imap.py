"""The IMAP watcher (`triage imap`): new messages in one or more folders, each enqueued once.

One thread and one connection per folder (IDLE watches the selected folder only). A cycle
selects the folder, reads UIDVALIDITY and asks for the UIDs above the folder's durable cursor
(`keys.imap_cursor`: UIDVALIDITY + last UID), takes at most TRIAGE_IMAP_BATCH_SIZE of them,
oldest first, fetches them without setting \\Seen (BODY.PEEK; a message over
TRIAGE_MAX_EMAIL_BYTES only its header, dead-lettered as too_large), hands them to the producers'
`Enqueuer` (parse, thread, dedupe, submit; a broken message is dead-lettered with its reason),
then moves the cursor and only then flags or moves the messages. So a restart neither skips (the
cursor moves only after the enqueue) nor re-ingests: a crash between the enqueue and the cursor
re-reads at most one batch, which dedupe (Message-ID and sender; a stable synthetic id for mail
without one) answers as duplicates. A new UIDVALIDITY (the folder was recreated) resets the
cursor: the folder is read again from the start, and dedupe keeps what was already taken from
being taken twice. When nothing is left the watcher IDLEs (or polls when the server has no IDLE
or TRIAGE_IMAP_IDLE=false). Any failure ends the session: it reconnects with capped exponential
backoff and logs why; the password is never logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from imapclient import IMAPClient

from common import keys
from common.connections import as_text
from common.settings import Settings
from intake import metrics
from producers.enqueue import Enqueuer
from producers.sources import Item
from producers.submit import Submitted
from worker.recovery.backoff import compute_backoff

log = structlog.get_logger("intake.imap")

#: Bytes of message bodies fetched per FETCH command at most (memory stays bounded).
FETCH_BUDGET = 32 * 1024 * 1024
#: Seconds between checks of the stop flag while idling.
IDLE_TICK = 1.0


@dataclass(frozen=True)
class Cursor:
    """Where a folder's watcher stands, durably, in Redis."""

    client: redis.Redis
    key: str
    name: str

    @classmethod
    def for_folder(cls, client: redis.Redis, settings: Settings, folder: str) -> Cursor:
        port = settings.imap_port or (993 if settings.imap_tls == "implicit" else 143)
        name = f"{settings.imap_username}@{settings.imap_host}:{port}/{folder}"
        digest = hashlib.sha256(name.encode()).hexdigest()[:20]
        return cls(client, keys.imap_cursor(digest), f"{settings.imap_host}/{folder}")

    def read(self) -> tuple[int | None, int]:
        validity, last = self.client.hmget(self.key, ["uidvalidity", "last_uid"])
        return (int(as_text(validity)) if validity else None), int(as_text(last) if last else 0)

    def write(self, uidvalidity: int, last_uid: int) -> None:
        self.client.hset(
            self.key,
            mapping={"uidvalidity": uidvalidity, "last_uid": last_uid, "name": self.name},
        )


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(settings.imap_ca_file) if settings.imap_ca_file else None
    )
    if not settings.imap_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(settings: Settings) -> IMAPClient:
    """A logged-in session with the settings' TLS."""
    implicit = settings.imap_tls == "implicit"
    port = settings.imap_port or (993 if implicit else 143)
    context = ssl_context(settings) if settings.imap_tls != "none" else None
    conn = IMAPClient(
        settings.imap_host or "localhost",
        port=port,
        ssl=implicit,
        ssl_context=context,
        timeout=settings.imap_timeout_seconds,
    )
    try:
        if settings.imap_tls == "starttls":
            conn.starttls(context)
        password = settings.imap_password.get_secret_value() if settings.imap_password else ""
        conn.login(settings.imap_username or "", password)
    except BaseException:
        _close(conn)
        raise
    return conn


def _close(conn: IMAPClient) -> None:
    try:
        conn.logout()
    except Exception:
        with contextlib.suppress(Exception):
            conn.shutdown()


def _batches(sizes: dict[int, int], limit: int) -> Iterator[list[int]]:
    """UIDs in order, grouped so one FETCH carries at most `FETCH_BUDGET` bytes."""
    group: list[int] = []
    total = 0
    for uid in sorted(sizes):
        size = min(sizes[uid], limit)
        if group and total + size > FETCH_BUDGET:
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


class FolderWatcher:
    """Watches one folder until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        folder: str,
        enqueuer: Enqueuer,
        client: redis.Redis,
        stop: threading.Event,
        connector: Callable[[Settings], IMAPClient] = connect,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.enqueuer = enqueuer
        self.cursor = Cursor.for_folder(client, settings, folder)
        self.stop = stop
        self.connector = connector
        self.log = log.bind(folder=folder)

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                conn = self.connector(self.settings)
            except Exception as exc:
                failures += 1
                self._wait_after(failures, "connect", exc)
                continue
            self.log.info("imap.connected", host=self.settings.imap_host)
            try:
                self._session(conn)
                failures = 0
            except Exception as exc:
                failures = 1 if failures == 0 else failures + 1
                self._wait_after(failures, "session", exc)
            finally:
                _close(conn)
        self.log.info("imap.stopped")

    def _wait_after(self, failures: int, stage: str, exc: Exception) -> None:
        delay = compute_backoff(failures, base=1.0, cap=self.settings.imap_reconnect_max_seconds)
        self.log.warning(
            "imap.disconnected",
            stage=stage,
            error=f"{type(exc).__name__}: {exc}"[:300],
            failures=failures,
            retry_in_s=round(delay, 2),
        )
        self.stop.wait(delay)

    def _session(self, conn: IMAPClient) -> None:
        if self.settings.imap_after == "move" and not conn.folder_exists(
            self.settings.imap_move_to
        ):
            conn.create_folder(self.settings.imap_move_to)
        idle = self.settings.imap_idle and conn.has_capability("IDLE")
        while not self.stop.is_set():
            taken = self.cycle(conn)
            if taken >= self.settings.imap_batch_size:
                continue  # more may be waiting: the next batch before any wait
            if idle:
                self._idle(conn)
            else:
                self.stop.wait(self.settings.imap_poll_seconds)

    def _idle(self, conn: IMAPClient) -> None:
        conn.idle()
        deadline = time.monotonic() + self.settings.imap_idle_seconds
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                responses = conn.idle_check(timeout=IDLE_TICK)
                if any(_is_exists(response) for response in responses):
                    return
        finally:
            conn.idle_done()

    # --- one cycle -----------------------------------------------------------------------

    def cycle(self, conn: IMAPClient) -> int:
        """Take at most one batch of new messages; returns how many UIDs it handled."""
        selected = conn.select_folder(self.folder)
        validity = int(selected[b"UIDVALIDITY"])
        stored, last = self.cursor.read()
        if stored is not None and stored != validity:
            self.log.warning("imap.uidvalidity_changed", old=stored, new=validity, last_uid=last)
            last = 0
        if stored != validity:
            self.cursor.write(validity, last)
        found = [uid for uid in conn.search(["UID", f"{last + 1}:*"]) if uid > last]
        uids = sorted(found)[: self.settings.imap_batch_size]
        if not uids:
            return 0
        items = self._fetch(conn, uids)
        outcomes = list(self.enqueuer.enqueue_items(items, batch_size=len(items)))
        self.cursor.write(validity, uids[-1])
        self._after(conn, uids)
        counts: dict[str, int] = {}
        for _, outcome in outcomes:
            label = outcome.status if isinstance(outcome, Submitted) else "rejected"
            counts[label] = counts.get(label, 0) + 1
            metrics.EMAILS.labels("imap", metrics.outcome_label(label)).inc()
        self.log.info("imap.batch", uids=f"{uids[0]}:{uids[-1]}", last_uid=uids[-1], **counts)
        return len(uids)

    def _fetch(self, conn: IMAPClient, uids: list[int]) -> list[Item]:
        limit = self.settings.max_email_bytes
        sizes = {
            uid: int(data.get(b"RFC822.SIZE", 0))
            for uid, data in conn.fetch(uids, ["RFC822.SIZE"]).items()
        }
        source = f"imap:{self.cursor.name}"
        items: dict[int, Item] = {}
        large = [uid for uid in uids if sizes.get(uid, 0) > limit]
        if large:
            for uid, data in conn.fetch(large, ["BODY.PEEK[HEADER]"]).items():
                head = bytes(data.get(b"BODY[HEADER]", b""))
                items[uid] = Item(source, f"uid {uid}", "oversize", head, sizes[uid])
        small = {uid: sizes.get(uid, 0) for uid in uids if uid not in items}
        for group in _batches(small, limit):
            for uid, data in conn.fetch(group, ["BODY.PEEK[]"]).items():
                raw = bytes(data.get(b"BODY[]", b""))
                items[uid] = Item(source, f"uid {uid}", "email", raw, len(raw))
        for uid in uids:  # expunged meanwhile: nothing to take, nothing to keep
            if uid not in items:
                self.log.info("imap.vanished", uid=uid)
        return [items[uid] for uid in uids if uid in items]

    def _after(self, conn: IMAPClient, uids: list[int]) -> None:
        after = self.settings.imap_after
        if after == "flag":
            conn.add_flags(uids, [self.settings.imap_flag.encode()])
        elif after == "move":
            if conn.has_capability("MOVE"):
                conn.move(uids, self.settings.imap_move_to)
            else:
                conn.copy(uids, self.settings.imap_move_to)
                conn.delete_messages(uids)
                if conn.has_capability("UIDPLUS"):
                    conn.expunge(uids)
                else:
                    conn.expunge()


def _is_exists(response: Any) -> bool:
    return (
        isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")
    )


class Watcher:
    """Every configured folder, one thread each, until `stop()` (or SIGTERM in the command)."""

    def __init__(self, settings: Settings, enqueuer: Enqueuer, client: redis.Redis) -> None:
        self.stop_event = threading.Event()
        self.folders = [
            FolderWatcher(settings, folder, enqueuer, client, self.stop_event)
            for folder in settings.imap_folders
        ]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for watcher in self.folders:
            thread = threading.Thread(
                target=watcher.run, name=f"imap-{watcher.folder}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)

    def wait(self) -> None:
        while any(thread.is_alive() for thread in self._threads):
            for thread in self._threads:
                thread.join(IDLE_TICK)
