"""The review lane: decisions a person confirms or corrects, and the examples that leaves.

A classification under the review threshold leaves its thread in status `needs_review` and in
`triage:threads:review` (written by the commit). `accept` makes it final (`review_accepted`
event); `correct` changes its category and fields (`corrected` event, previous and new values);
any classified thread can be corrected, not only those in review. Both are one script, fenced by
the thread version the reviewer saw, and both keep a labelled example (the customer's emails, the
final category and fields) in `triage:labelled`, which `export` writes in the evaluation dataset
format (JSONL: `id`, `emails`, `expected`, `note`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from common import keys
from common.connections import as_text
from worker.events import Corrected, Labelled, ReviewAccepted
from worker.state import scripts
from worker.state.snapshot import Snapshot
from worker.state.store import ThreadStore

REVIEWABLE = ("needs_review",)
CORRECTABLE = ("needs_review", "classified")


class ReviewError(Exception):
    """The thread cannot be reviewed as asked; the message says why (for the CLI)."""


@dataclass(frozen=True)
class ReviewItem:
    thread_id: str
    since: float
    meta: dict[str, str]


def customer_emails(snapshot: Snapshot) -> list[str]:
    """The customer's turns as text, oldest first (each turn holds that round's emails)."""
    texts: list[str] = []
    for turn in snapshot.messages:
        if turn.get("role") != "user":
            continue
        content = turn.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.append("\n\n".join(str(block.get("text", "")) for block in content))
    return texts


def _fields(meta: dict[str, str]) -> dict[str, Any]:
    try:
        value = json.loads(meta.get("fields") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class ReviewLane:
    def __init__(self, client: redis.Redis, store: ThreadStore, events_maxlen: int) -> None:
        self._redis = client
        self._store = store
        self._events_maxlen = events_maxlen
        self._script = client.register_script(scripts.load("review"))

    def waiting(self, limit: int = 100) -> list[ReviewItem]:
        """Threads waiting for a person, oldest first."""
        entries: Any = self._redis.zrange(keys.REVIEW, 0, limit - 1, withscores=True)
        items = []
        for raw_id, since in entries:
            thread_id = as_text(raw_id)
            items.append(ReviewItem(thread_id, float(since), self._store.peek(thread_id).meta))
        return items

    def accept(
        self,
        thread_id: str,
        note: str | None = None,
        by: str | None = None,
        expected_version: int | None = None,
    ) -> ReviewAccepted:
        """`by`: who, recorded in the event; `expected_version`: the version the reviewer saw
        (a thread that moved on since is refused as stale)."""
        snapshot = self._seen(thread_id, expected_version)
        category = snapshot.meta.get("category", "")
        event = ReviewAccepted(
            thread_id=thread_id,
            category=category,
            fields=_fields(snapshot.meta),
            note=note,
            by=by,
            reviewed_at=round(time.time(), 3),
        )
        self._apply(snapshot, REVIEWABLE, {}, event, corrected=False, note=note)
        return event

    def correct(
        self,
        thread_id: str,
        category: str,
        fields: dict[str, Any] | None = None,
        note: str | None = None,
        by: str | None = None,
        expected_version: int | None = None,
    ) -> Corrected:
        snapshot = self._seen(thread_id, expected_version)
        previous_fields = _fields(snapshot.meta)
        new_fields = {**previous_fields, **(fields or {})}
        event = Corrected(
            thread_id=thread_id,
            category=category,
            previous=Labelled(category=snapshot.meta.get("category"), fields=previous_fields),
            new=Labelled(category=category, fields=new_fields),
            note=note,
            by=by,
            reviewed_at=round(time.time(), 3),
        )
        meta = {"category": category, "fields": json.dumps(new_fields)}
        self._apply(snapshot, CORRECTABLE, meta, event, corrected=True, note=note)
        return event

    def _seen(self, thread_id: str, expected_version: int | None) -> Snapshot:
        snapshot = self._store.peek(thread_id)
        if expected_version is not None and snapshot.meta and snapshot.version != expected_version:
            raise ReviewError(f"thread {thread_id} changed meanwhile: look again")
        return snapshot

    def _apply(
        self,
        snapshot: Snapshot,
        allowed: tuple[str, ...],
        meta: dict[str, str],
        event: ReviewAccepted | Corrected,
        *,
        corrected: bool,
        note: str | None,
    ) -> None:
        if not snapshot.meta:
            raise ReviewError(f"no thread {snapshot.thread_id}")
        self._store.restore(snapshot.thread_id)  # a packed thread is unpacked first
        now = time.time()
        example = {
            "id": snapshot.thread_id,
            "emails": customer_emails(snapshot),
            "subject": snapshot.meta.get("subject", ""),
            "customer": snapshot.meta.get("customer", ""),
            "category": event.category,
            "fields": json.loads(meta["fields"]) if "fields" in meta else _fields(snapshot.meta),
            "corrected": corrected,
            "note": note,
            "at": round(now, 3),
        }
        argument = {
            "thread_id": snapshot.thread_id,
            "expected_version": snapshot.version,
            "allowed": list(allowed),
            "meta": {
                **meta,
                "status": "classified",
                "reviewed_at": f"{now:.3f}",
                "review": "corrected" if corrected else "accepted",
            },
            "event": {
                "type": event.type,
                "category": event.category,
                "payload": event.model_dump_json(),
            },
            "example": json.dumps(example),
            "now": f"{now:.3f}",
            "events_maxlen": self._events_maxlen,
        }
        script_keys = [
            keys.thread_meta(snapshot.thread_id),
            keys.EVENTS,
            keys.REVIEW,
            keys.IDLE,
            keys.LABELLED,
        ]
        status, detail = self._script(keys=script_keys, args=[json.dumps(argument)])
        outcome = as_text(status)
        if outcome == "stale":
            raise ReviewError(f"thread {snapshot.thread_id} changed meanwhile: look again")
        if outcome == "status":
            current = as_text(detail) or "unknown"
            raise ReviewError(
                f"thread {snapshot.thread_id} is {current}, not {' or '.join(allowed)}"
            )

    def examples(self) -> list[dict[str, Any]]:
        """Every labelled example kept, oldest first; a thread's latest verdict wins."""
        latest: dict[str, dict[str, Any]] = {}
        entries: Any = self._redis.xrange(keys.LABELLED)
        for _, entry in entries:
            example = json.loads(entry[b"example"])
            latest[example["id"]] = example
        return list(latest.values())

    def learned_examples(
        self, per_category: int, max_chars: int, scan: int = 2000
    ) -> dict[str, list[str]]:
        """The newest corrected examples per category (first customer turn, bounded)."""
        found: dict[str, list[str]] = {}
        seen: set[str] = set()
        entries: Any = self._redis.xrevrange(keys.LABELLED, count=scan)
        for _, entry in entries:
            example = json.loads(entry[b"example"])
            if not example.get("corrected") or example["id"] in seen or not example["emails"]:
                continue
            seen.add(example["id"])
            texts = found.setdefault(example["category"], [])
            if len(texts) < per_category:
                text = " ".join(str(example["emails"][0]).split())
                texts.append(text if len(text) <= max_chars else text[: max_chars - 1] + "…")
        return found

    def export(self, path: Path) -> int:
        """Write the examples as an evaluation dataset (JSONL); returns how many."""
        lines = []
        for example in self.examples():
            emails = [
                {
                    "from": example["customer"] or "customer@example.invalid",
                    "subject": example["subject"],
                    "text": text,
                }
                for text in example["emails"]
            ]
            case = {
                "id": example["id"],
                "emails": emails,
                "expected": {
                    "category": example["category"],
                    "clarify": None,  # unknown: the first move was not reviewed
                    "fields": example["fields"],
                },
                "note": example["note"]
                or (
                    "corrected by a reviewer" if example["corrected"] else "confirmed by a reviewer"
                ),
            }
            lines.append(json.dumps(case, ensure_ascii=False))
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return len(lines)
