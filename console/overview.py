"""The overview's numbers: emails decided per hour by outcome (from the events stream), the
backlog gauges (the same reads as the workers' /metrics), and cost from the usage ledger.

`hourly` and `summarize` are pure; `read_overview` does the reading. The hourly chart reads at
most `MAX_EVENTS` events of the last 24 hours (newest first) and says so when it stopped there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from common import keys
from common.connections import as_text
from common.settings import Settings
from worker.observe.metrics_server import BacklogCollector
from worker.state.ledger import Ledger, LedgerTotals

HOURS = 24
DAYS = 7
MAX_EVENTS = 20_000
#: Outcomes of the hourly chart, in stacking order: (key, legend).
OUTCOMES = (
    ("classified", "classified"),
    ("review", "classified, to review"),
    ("clarified", "asked the customer"),
    ("escalated", "escalated"),
)


def outcome_of(event: dict[str, Any]) -> str | None:
    """The chart's outcome of a decision event; None for other events (reviews, reruns)."""
    kind = event.get("type")
    if kind == "classified":
        return "review" if event.get("needs_review") else "classified"
    if kind == "clarification":
        return "clarified"
    if kind == "escalated":
        return "escalated"
    return None


@dataclass
class Hourly:
    """Emails decided per hour (UTC) by outcome, oldest hour first."""

    starts: list[dt.datetime]
    counts: list[dict[str, int]]
    emails_today: int = 0
    outcomes_today: dict[str, int] = field(default_factory=dict)
    truncated: bool = False

    @property
    def labels(self) -> list[str]:
        return [start.strftime("%H") for start in self.starts]

    def rows(self) -> list[list[float]]:
        return [[float(row.get(key, 0)) for key, _ in OUTCOMES] for row in self.counts]

    @property
    def total(self) -> int:
        return sum(sum(row.values()) for row in self.counts)


def hourly(
    events: Iterable[tuple[float, dict[str, Any]]], now: dt.datetime, hours: int = HOURS
) -> Hourly:
    """Bucket (unix time, event) pairs into the last `hours` whole hours, the current one last;
    each decision counts its emails. Also the emails decided since midnight UTC."""
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - dt.timedelta(hours=hours - 1 - i) for i in range(hours)]
    first = starts[0].timestamp()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    counts: list[dict[str, int]] = [{} for _ in starts]
    result = Hourly(starts, counts)
    for at, event in events:
        outcome = outcome_of(event)
        if outcome is None or at < first:
            continue
        emails = max(1, len(event.get("email_ids") or []))
        index = min(hours - 1, int((at - first) // 3600))
        counts[index][outcome] = counts[index].get(outcome, 0) + emails
        if at >= midnight:
            result.emails_today += emails
            result.outcomes_today[outcome] = result.outcomes_today.get(outcome, 0) + emails
    return result


@dataclass(frozen=True)
class Overview:
    hourly: Hourly
    gauges: dict[str, float]
    queues: dict[str, float]
    redis_up: bool
    today: LedgerTotals
    daily_cost: list[tuple[str, float]]

    @property
    def cost_today(self) -> float:
        return self.today.total.get("cost_micro_usd", 0) / 1_000_000

    @property
    def calls_today(self) -> int:
        return self.today.total.get("calls", 0)

    @property
    def cost_per_email(self) -> float | None:
        emails = self.hourly.emails_today
        return self.cost_today / emails if emails else None

    @property
    def cache_share(self) -> float | None:
        """Share of today's input tokens read from the prompt cache."""
        usage = self.today.usage
        total = usage.total_input_tokens
        return usage.cache_read_input_tokens / total if total else None


def recent_events(
    client: redis.Redis, since: float, limit: int = MAX_EVENTS
) -> tuple[list[tuple[float, dict[str, Any]]], bool]:
    """Events since `since` (unix time), newest first, at most `limit`; True if it stopped there."""
    entries: Any = client.xrevrange(keys.EVENTS, max="+", min=int(since * 1000), count=limit)
    found = []
    for entry_id, fields in entries:
        at = int(as_text(entry_id).split("-")[0]) / 1000
        try:
            found.append((at, json.loads(fields[b"payload"])))
        except (KeyError, ValueError):
            continue
    return found, len(entries) >= limit


def gauges(client: redis.Redis, broker: redis.Redis, ttl: int) -> tuple[dict[str, float], bool]:
    """The backlog gauges exactly as a worker's /metrics reports them (queue depths keyed
    `triage_queue_depth:<queue>`), and whether Redis could be read."""
    values: dict[str, float] = {}
    for family in BacklogCollector(lambda: client, lambda: broker, ttl).collect():
        for sample in family.samples:
            queue = sample.labels.get("queue")
            values[f"{family.name}:{queue}" if queue else family.name] = sample.value
    return values, bool(values.get("triage_redis_up"))


def read_overview(
    client: redis.Redis, broker: redis.Redis, settings: Settings, now: dt.datetime | None = None
) -> Overview:
    now = now or dt.datetime.now(dt.UTC)
    since = (now - dt.timedelta(hours=HOURS)).timestamp()
    events, truncated = recent_events(client, since)
    chart = hourly(events, now)
    chart.truncated = truncated
    values, up = gauges(client, broker, settings.thread_ttl_seconds)
    queues = {
        name.split(":", 1)[1]: value
        for name, value in values.items()
        if name.startswith("triage_queue_depth:")
    }
    ledger = Ledger(client, settings.prices, settings.thread_ttl_seconds)
    daily = []
    totals = LedgerTotals()
    for back in range(DAYS - 1, -1, -1):
        day = now.date() - dt.timedelta(days=back)
        totals = ledger.totals(day, day)
        daily.append((day.strftime("%m-%d"), totals.total.get("cost_micro_usd", 0) / 1_000_000))
    return Overview(chart, values, queues, up, totals, daily)  # `totals`: today's, the last
