"""`triage stats`: outcomes, clarification rate, turns, tokens and cost since a date."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from typing import Any

from common import keys
from common.deadletters import DeadLetterStream
from common.settings import Settings
from triage.resources import open_redis
from worker.state.ledger import Ledger

RELATIVE = re.compile(r"^(\d+)([dh])$")


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`7d`, `12h` or an ISO date/time (UTC)."""
    now = now or dt.datetime.now(dt.UTC)
    match = RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - (dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount))
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def collect(settings: Settings, since: dt.datetime) -> dict[str, Any]:
    client = open_redis(settings)
    start_ms = int(since.timestamp() * 1000)
    entries: Any = client.xrange(keys.EVENTS, min=start_ms)
    outcomes: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    threads: set[str] = set()
    clarified: set[str] = set()
    turns: dict[str, int] = {}
    emails = 0
    for _, fields in entries:
        event = json.loads(fields[b"payload"])
        threads.add(event["thread_id"])
        outcomes[event["type"]] += 1
        emails += len(event.get("email_ids", []))
        if event["type"] == "classified":
            categories[event["category"]] += 1
            turns[event["thread_id"]] = event["turns"]
        if event["type"] == "clarification":
            clarified.add(event["thread_id"])
    ledger = Ledger(client, settings.prices, settings.thread_ttl_seconds).totals(since.date())
    usage = ledger.usage
    cost = ledger.total["cost_micro_usd"] / 1_000_000
    return {
        "since": since.isoformat(),
        "emails": emails,
        "threads": len(threads),
        "outcomes": dict(outcomes),
        "categories": dict(categories),
        "clarification_rate": round(len(clarified) / len(threads), 3) if threads else 0.0,
        "turns_per_classified_thread": round(sum(turns.values()) / len(turns), 2) if turns else 0.0,
        "tokens": usage.as_dict(),
        "calls": ledger.total["calls"],
        "cost_usd": round(cost, 6),
        "cost_per_email_usd": round(cost / emails, 6) if emails else 0.0,
        "cache_read_share": round(usage.cache_read_input_tokens / usage.total_input_tokens, 3)
        if usage.total_input_tokens
        else 0.0,
        "cache_saving_usd": round(ledger.total["saving_micro_usd"] / 1_000_000, 6),
        "cost_by_model_usd": {
            model: round(row["cost_micro_usd"] / 1_000_000, 6)
            for model, row in ledger.by_model.items()
        },
        "dlq_size": DeadLetterStream(client).size(),
        "note": "ledger totals count whole UTC days from the --since date",
    }


def render(stats: dict[str, Any]) -> str:
    lines = [
        f"since {stats['since']}",
        f"emails {stats['emails']}   threads {stats['threads']}   "
        f"clarification rate {stats['clarification_rate']:.1%}   "
        f"turns per classified thread {stats['turns_per_classified_thread']}",
        "outcomes    " + ", ".join(f"{k} {v}" for k, v in sorted(stats["outcomes"].items())),
        "categories  " + ", ".join(f"{k} {v}" for k, v in sorted(stats["categories"].items())),
        "tokens      "
        + ", ".join(f"{k.removesuffix('_tokens')} {v}" for k, v in stats["tokens"].items()),
        f"calls {stats['calls']}   cost ${stats['cost_usd']:.4f}   "
        f"per email ${stats['cost_per_email_usd']:.6f}   cache read share "
        f"{stats['cache_read_share']:.1%}   cache saving ${stats['cache_saving_usd']:.4f}",
        f"dead letters {stats['dlq_size']}",
    ]
    return "\n".join(lines)
