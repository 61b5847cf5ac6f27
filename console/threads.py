"""The threads list (filters, search, pages) and one thread as a transcript, read-only.

Listing is `worker.state.browse.iter_threads` (newest update first, packed threads decoded where
they lie); a search reads at most `MAX_SCANNED` threads and says so. The transcript pairs each
assistant turn with the decision event that wrote it (the event's `turns` is the array's length
after it), as `triage thread show` does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from common.contract import THREAD_STATUSES
from common.settings import Settings
from worker.decide.bands import confidence_band
from worker.state.browse import ThreadView, decision_fields, event_cost, iter_threads, turn_texts
from worker.state.usage import Usage

PRIORITIES = ("urgent", "high", "normal", "low")
PAGE_SIZE = 50
MAX_SCANNED = 50_000
MAX_QUERY = 200


class _ScanLimit(Exception):
    """The search read `MAX_SCANNED` threads."""


@dataclass(frozen=True)
class ThreadQuery:
    """The list's filters as given in the URL (blank: any)."""

    status: str = ""
    category: str = ""
    priority: str = ""
    language: str = ""
    date_from: str = ""
    date_to: str = ""
    q: str = ""
    page: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str], settings: Settings) -> tuple[ThreadQuery, list[str]]:
        """The query and what was wrong with it (unknown values are dropped and named)."""
        errors: list[str] = []

        def pick(name: str, allowed: tuple[str, ...] | list[str], fold: str = "") -> str:
            value = params.get(name, "").strip()
            value = value.upper() if fold == "upper" else value.lower() if fold else value
            if value and value not in allowed:
                errors.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
                return ""
            return value

        dates = {}
        for name in ("from", "to"):
            text = params.get(name, "").strip()
            try:
                dates[name] = dt.date.fromisoformat(text).isoformat() if text else ""
            except ValueError:
                errors.append(f"{name} {text!r} is not a date (YYYY-MM-DD)")
                dates[name] = ""
        try:
            page = max(1, min(10_000, int(params.get("page", "1") or 1)))
        except ValueError:
            page = 1
        query = cls(
            status=pick("status", THREAD_STATUSES),
            category=pick("category", settings.category_names, "upper"),
            priority=pick("priority", PRIORITIES, "lower"),
            language=params.get("language", "").strip().lower()[:35],
            date_from=dates["from"],
            date_to=dates["to"],
            q=params.get("q", "").strip()[:MAX_QUERY],
            page=page,
        )
        return query, errors

    def window(self) -> tuple[float | None, float | None]:
        """Last-update bounds (unix seconds, UTC days inclusive)."""
        since = until = None
        if self.date_from:
            start = dt.datetime.fromisoformat(self.date_from).replace(tzinfo=dt.UTC)
            since = start.timestamp()
        if self.date_to:
            end = dt.datetime.fromisoformat(self.date_to).replace(tzinfo=dt.UTC)
            until = (end + dt.timedelta(days=1)).timestamp() - 0.001
        return since, until

    def params(self, **changes: Any) -> dict[str, Any]:
        """The query as URL parameters (blank ones left out), with `changes`."""
        values = {
            "status": self.status,
            "category": self.category,
            "priority": self.priority,
            "language": self.language,
            "from": self.date_from,
            "to": self.date_to,
            "q": self.q,
            "page": self.page if self.page > 1 else "",
        }
        values.update(changes)
        return {name: value for name, value in values.items() if value not in ("", None, 1)}


@dataclass(frozen=True)
class ThreadPage:
    rows: list[dict[str, str]]
    has_more: bool
    scan_limited: bool


def matches(meta: Mapping[str, str], thread_id: str, text: str) -> bool:
    """A search: the thread id, or a case-insensitive part of the customer or the subject."""
    needle = text.casefold()
    return (
        needle == thread_id.casefold()
        or needle in meta.get("customer", "").casefold()
        or needle in meta.get("subject", "").casefold()
    )


def list_threads(client: redis.Redis, query: ThreadQuery, size: int = PAGE_SIZE) -> ThreadPage:
    since, until = query.window()
    scanned = 0

    def where(thread_id: str, meta: dict[str, str]) -> bool:
        nonlocal scanned
        scanned += 1
        if scanned > MAX_SCANNED:
            raise _ScanLimit
        return matches(meta, thread_id, query.q)

    found = iter_threads(
        client,
        query.status or None,
        query.category or None,
        since=since,
        until=until,
        where=where if query.q else None,
        priority=query.priority or None,
        language=query.language or None,
    )
    skip = (query.page - 1) * size
    rows: list[dict[str, str]] = []
    limited = False
    try:
        for index, meta in enumerate(found):
            if index < skip:
                continue
            rows.append(meta)
            if len(rows) > size:
                break
    except _ScanLimit:
        limited = True
    return ThreadPage(rows[:size], len(rows) > size, limited)


# --- the transcript ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One turn of the conversation, or an escalation, as the thread page shows it."""

    number: int
    kind: str  # customer, question, classification, other, escalation
    texts: list[str] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] | None = None
    band: str | None = None
    usage: Usage | None = None
    cost: float | None = None

    @property
    def fields(self) -> dict[str, Any]:
        found = (self.event or {}).get("fields") or self.decision.get("fields") or {}
        return found if isinstance(found, dict) else {}


@dataclass(frozen=True)
class Transcript:
    entries: list[Entry]
    events: list[dict[str, Any]]
    pending: int
    total: Usage | None
    total_cost: float | None
    calls: int
    meta: dict[str, str]


def _decision_entry(
    number: int, turn: dict[str, Any], event: dict[str, Any] | None, view: ThreadView, s: Settings
) -> Entry:
    decision = decision_fields(turn)
    if decision is None:
        return Entry(number, "other", texts=["".join(turn_texts(turn))], event=event)
    kind = "question" if decision.get("action") == "clarify" else "classification"
    entry = Entry(number, kind, decision=decision, event=event)
    confidence = decision.get("confidence")
    if event is not None and event.get("confidence_band"):
        entry.band = str(event["confidence_band"])
    elif isinstance(confidence, int | float):
        entry.band = confidence_band(float(confidence), s)
    if event is not None and (event.get("usage") or event.get("request_id")):
        entry.usage, entry.cost = event_cost(event, view.prices)
    return entry


def transcript(view: ThreadView, settings: Settings) -> Transcript:
    """Who said what, each decision with its event, calls and cost; then escalations."""
    by_turns = {
        int(e.get("turns", -1)): e
        for e in view.events
        if e.get("type") in ("classified", "clarification")
    }
    entries: list[Entry] = []
    for index, turn in enumerate(view.snapshot.messages):
        number = index + 1
        if turn.get("role") == "user":
            entries.append(Entry(number, "customer", texts=turn_texts(turn)))
        else:
            event = by_turns.get(number)
            entries.append(_decision_entry(number, turn, event, view, settings))
    for event in view.events:
        if event.get("type") == "escalated":
            entry = Entry(0, "escalation", event=event)
            if event.get("request_id"):
                entry.usage, entry.cost = event_cost(event, view.prices)
            entries.append(entry)
    ledger = view.ledger
    total = Usage.from_mapping(ledger) if ledger else None
    cost = ledger.get("cost_micro_usd", 0) / 1_000_000 if ledger else None
    return Transcript(
        entries=entries,
        events=view.events,
        pending=len(view.snapshot.inbox),
        total=total,
        total_cost=cost,
        calls=ledger.get("calls", 0) if ledger else 0,
        meta=view.snapshot.meta,
    )


def meta_fields(meta: Mapping[str, str]) -> dict[str, Any]:
    """The thread's extracted fields (JSON in its meta), {} when none or unreadable."""
    try:
        value = json.loads(meta.get("fields") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
