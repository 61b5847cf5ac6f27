"""The usage ledger: tokens, calls and USD cost of every Claude call, kept in Redis.

Two views (failed calls bill nothing). A decision's calls are written by the same script that
commits the decision (no extra round trip); calls that end without a commit (a retry, a crash of
the step) are written by `Ledger.write`. A worker killed between a call and its commit loses that
call's entry (the API billed it all the same).
- per day x model x category: hash `triage:ledger:{YYYY-MM-DD}`, fields `model|category|counter`;
  `category` is the decision's label, or CLARIFY, ESCALATED, TRUNCATED, INVALID,
  UNEXPECTED_STOP, STALE (a batch result for a thread that moved on);
- per thread: hash `triage:ledger:thread:{id}` (expires with the thread).
Costs are stored in micro-USD (integers), from the price table in settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import redis

from common import keys
from common.connections import as_text
from common.prices import ModelPrice
from worker.observe import metrics
from worker.state.pricing import cache_saving_usd, cost_usd, price_for
from worker.state.usage import Usage

COUNTERS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "calls",
    "cost_micro_usd",
    "saving_micro_usd",
)


def entry(usage: Usage, price: ModelPrice, batch: bool = False) -> dict[str, int]:
    """The counters one call adds (pure)."""
    return {
        **usage.as_dict(),
        "calls": 1,
        "cost_micro_usd": round(cost_usd(usage, price, batch) * 1_000_000),
        "saving_micro_usd": round(cache_saving_usd(usage, price) * 1_000_000),
    }


@dataclass(frozen=True)
class Charge:
    """One call's counters, computed when it returns and written later (see `Ledger.write`)."""

    day: str
    model: str
    category: str
    counters: dict[str, int]

    def increments(self, thread_key: str) -> list[tuple[str, str, int]]:
        """(key, field, amount) for HINCRBY: the day view and the thread view."""
        day_key = keys.ledger_day(self.day)
        out: list[tuple[str, str, int]] = []
        for counter, value in self.counters.items():
            if value:
                out.append((day_key, f"{self.model}|{self.category}|{counter}", value))
                out.append((thread_key, counter, value))
        return out


@dataclass
class LedgerTotals:
    """Summed counters, with breakdowns by model and by category."""

    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, model: str, category: str, counter: str, value: int) -> None:
        self.total[counter] = self.total.get(counter, 0) + value
        for table, key in ((self.by_model, model), (self.by_category, category)):
            row = table.setdefault(key, dict.fromkeys(COUNTERS, 0))
            row[counter] = row.get(counter, 0) + value

    @property
    def usage(self) -> Usage:
        return Usage.from_mapping(self.total)


class Ledger:
    def __init__(
        self, client: redis.Redis, prices: dict[str, ModelPrice], ttl_seconds: int
    ) -> None:
        self._redis = client
        self._prices = prices
        self._ttl = ttl_seconds

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def charge(
        self,
        model: str,
        category: str,
        usage: Usage,
        batch: bool = False,
        when: dt.datetime | None = None,
    ) -> Charge:
        """What one call costs, priced now; nothing is written yet (the cost is counted in the
        `triage_cost_usd` metric now: the API billed the call whether or not it is committed)."""
        counters = entry(usage, price_for(model, self._prices), batch)
        day = (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d")
        metrics.record_cost(model, counters["cost_micro_usd"] / 1_000_000)
        return Charge(day, model, category, counters)

    def write(self, thread_id: str, charges: list[Charge]) -> None:
        """Add charges to the ledger in one round trip (the path without a commit)."""
        if not charges:
            return
        pipe = self._redis.pipeline(transaction=False)
        thread_key = keys.ledger_thread(thread_id)
        for charge in charges:
            for key, name, value in charge.increments(thread_key):
                pipe.hincrby(key, name, value)
        pipe.expire(thread_key, self._ttl)
        pipe.execute()

    def record(
        self,
        thread_id: str,
        model: str,
        category: str,
        usage: Usage,
        batch: bool = False,
        when: dt.datetime | None = None,
    ) -> dict[str, int]:
        """Charge one call and write it at once."""
        charge = self.charge(model, category, usage, batch, when)
        self.write(thread_id, [charge])
        return charge.counters

    def totals(self, since: dt.date, until: dt.date | None = None) -> LedgerTotals:
        """Sum of the day hashes from `since` to `until` (today) inclusive."""
        until = until or dt.datetime.now(dt.UTC).date()
        totals = LedgerTotals()
        day = since
        while day <= until:
            raw: Any = self._redis.hgetall(keys.ledger_day(day.strftime("%Y-%m-%d")))
            for name, value in raw.items():
                model, category, counter = as_text(name).split("|")
                totals.add(model, category, counter, int(value))
            day += dt.timedelta(days=1)
        return totals

    def thread(self, thread_id: str) -> dict[str, int]:
        raw: Any = self._redis.hgetall(keys.ledger_thread(thread_id))
        return {as_text(k): int(v) for k, v in raw.items()}
