"""Token economy of a 3-turn thread: input tokens and cost with/without caching and quote stripping.

    .venv/bin/python -m bench.economy [--threads 10] [--body-words 60 1200]

Each thread is three customer emails (a vague one, then two replies that quote everything before
them, as mail clients do); after the first, the worker asks a question (max 2 here), then
classifies. The triage core runs in this process against the emulator over HTTP (the real SDK)
and real Redis: the same code path as the worker, without Celery, so the figures are exact.
Per combination of prompt caching (on/off) and quoted-history stripping (on/off, by feeding the
replies' raw text or the parser's stripped text), it prints the input tokens sent per thread
(total, of which cache writes and cache reads) and the cost per thread from the price table.
The emulator's minimum cacheable prefix is 1024 tokens (Haiku 4.5's is larger): short emails
show no caching at all, which is what happens in reality too; long ones show the saving.

    .venv/bin/python -m bench.economy --long-thread [--turns 50] [--budget 6000] [--body-words 300]

`--long-thread` measures history pruning instead: one thread of `--turns` turns (a customer email
and a decision per call), with `TRIAGE_HISTORY_TOKEN_BUDGET=--budget` so that pruning starts part
of the way in, once with prompt caching and once without. It prints, for all calls and for the
calls from the first pruned one on, the input tokens, cache writes and reads and the cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import redis
import structlog

from bench.common import redis_base
from common.contract import ReplyTask
from common.settings import Settings
from emulator.config import EmulatorConfig
from emulator.server import EmulatorThread
from producers.parse import parse_email
from producers.submit import Submitter
from worker.decide.pruning import MARKER
from worker.decide.ratelimit import RateLimiter
from worker.runtime import build_drain_step
from worker.state.ledger import Ledger
from worker.state.pricing import cost_usd, price_for
from worker.state.usage import Usage

OPENING = "Hi, my thing isn't working since this morning. Can you help?"
REPLIES = [
    "It is the subscription page: I was charged twice this month.",
    "Also the second charge shows a different amount on my invoice.",
]


def filler(words: int) -> str:
    base = "Here is some more context about my account and what I tried so far."
    text = " ".join([base] * max(1, words // 13))
    return f"\n\n{text}" if words else ""


def raw_email(message_id: str, body: str, in_reply_to: str | None, quoted: str) -> bytes:
    headers = (
        f"From: Dana <dana@example.org>\r\nTo: support@example.com\r\nSubject: Help\r\n"
        f"Message-ID: {message_id}\r\n"
    )
    if in_reply_to:
        headers += f"In-Reply-To: {in_reply_to}\r\n"
    quote = ""
    if quoted:
        quote = "\r\n\r\nOn Mon, 23 Nov 2026, Support wrote:\r\n" + "\r\n".join(
            "> " + line for line in quoted.splitlines()
        )
    return f"{headers}\r\n{body}{quote}\r\n".encode()


class NoPublisher:
    """Publishes nothing: drains run in this process, replies are not sent."""

    def drain(self, thread_id: str) -> None:
        pass

    def reply(self, reply: ReplyTask) -> None:
        pass


def run_combo(
    base: str, emulator_url: str, threads: int, words: int, caching: bool, strip: bool
) -> dict[str, Any]:
    state, broker = f"{base}/11", f"{base}/12"
    client = redis.Redis.from_url(state)
    client.flushdb()
    os.environ.update(
        {
            "TRIAGE_REDIS_URL": state,
            "TRIAGE_BROKER_URL": broker,
            "ANTHROPIC_API_KEY": "sk-bench",
            "ANTHROPIC_BASE_URL": emulator_url,
            "TRIAGE_PROMPT_CACHING": "true" if caching else "false",
            "TRIAGE_MAX_CLARIFICATIONS": "2",
        }
    )
    settings = Settings()
    ledger = Ledger(client, settings.prices, settings.thread_ttl_seconds)
    publisher = NoPublisher()  # the benchmark drains in-process; nothing is queued or sent
    drain_step = build_drain_step(
        settings, client, publisher, limiter=RateLimiter(client, 0, 0, 1.0, 0)
    )
    submitter = Submitter(settings, client, publisher)
    per_thread: list[dict[str, int]] = []
    for t in range(threads):
        history = ""
        previous: str | None = None
        thread_id = ""
        for turn, text in enumerate([OPENING, *REPLIES]):
            body = text + filler(words)
            message_id = f"<eco-{t}-{turn}-{caching}-{strip}@example.org>"
            raw = raw_email(message_id, body, previous, history)
            parsed = parse_email(raw)
            if not strip:  # what the model would see without quoted-history stripping
                full = raw.decode().split("\r\n\r\n", 1)[1].replace("\r\n", "\n").strip()
                parsed = parsed.__class__(**{**parsed.__dict__, "text": full})
            thread_id = submitter.submit(parsed).thread_id
            drain_step.drain(thread_id)
            history = f"{body}\n{history}" if history else body
            previous = message_id
        per_thread.append(ledger.thread(thread_id))
    sums = {k: sum(row.get(k, 0) for row in per_thread) / threads for k in per_thread[0]}
    total_input = (
        sums.get("input_tokens", 0)
        + sums.get("cache_creation_input_tokens", 0)
        + sums.get("cache_read_input_tokens", 0)
    )
    return {
        "body_words": words,
        "caching": caching,
        "quote_stripping": strip,
        "calls_per_thread": sums.get("calls", 0),
        "input_tokens_per_thread": round(total_input),
        "cache_write_tokens": round(sums.get("cache_creation_input_tokens", 0)),
        "cache_read_tokens": round(sums.get("cache_read_input_tokens", 0)),
        "output_tokens": round(sums.get("output_tokens", 0)),
        "cost_usd_per_thread": round(sums.get("cost_micro_usd", 0) / 1e6, 6),
    }


FOLLOW_UP = "Follow-up {n}: I was charged twice for my subscription and the refund is missing."
PRUNED = MARKER.split("{count}")[1]


def run_long_thread(
    base: str, emulator: EmulatorThread, turns: int, words: int, budget: int, caching: bool
) -> dict[str, Any]:
    """One thread of `turns` turns drained in-process; per-call usage from the emulator."""
    state, broker = f"{base}/11", f"{base}/12"
    client = redis.Redis.from_url(state)
    client.flushdb()
    emulator.reset()
    os.environ.update(
        {
            "TRIAGE_REDIS_URL": state,
            "TRIAGE_BROKER_URL": broker,
            "ANTHROPIC_API_KEY": "sk-bench",
            "ANTHROPIC_BASE_URL": emulator.base_url,
            "TRIAGE_PROMPT_CACHING": "true" if caching else "false",
            "TRIAGE_HISTORY_TOKEN_BUDGET": str(budget),
        }
    )
    settings = Settings()
    publisher = NoPublisher()
    drain_step = build_drain_step(
        settings, client, publisher, limiter=RateLimiter(client, 0, 0, 1.0, 0)
    )
    submitter = Submitter(settings, client, publisher)
    previous: str | None = None
    for n in range(turns // 2):
        message_id = f"<long-{n}-{caching}@example.org>"
        raw = raw_email(message_id, FOLLOW_UP.format(n=n) + filler(words), previous, "")
        drain_step.drain(submitter.submit(parse_email(raw)).thread_id)
        previous = message_id
    price = price_for(settings.model, settings.prices)
    calls = [q for q in emulator.requests if q["path"] == "/v1/messages" and q.get("status") == 200]
    rows = []
    for call in calls:
        sent = call["body"]["messages"]
        pruned = len(sent) > 1 and PRUNED in json.dumps(sent[1]["content"])
        rows.append((pruned, Usage.from_mapping(call["response"]["usage"])))
    first = next((i for i, (pruned, _) in enumerate(rows) if pruned), len(rows))

    def totals(usages: list[Usage]) -> dict[str, Any]:
        total = sum(usages, Usage())
        return {
            "calls": len(usages),
            "input_tokens": total.total_input_tokens,
            "cache_write_tokens": total.cache_creation_input_tokens,
            "cache_read_tokens": total.cache_read_input_tokens,
            "cost_usd": round(cost_usd(total, price), 6),
        }

    return {
        "turns": turns,
        "body_words": words,
        "budget": budget,
        "caching": caching,
        "first_pruned_call": first + 1 if first < len(rows) else None,
        "all_calls": totals([usage for _, usage in rows]),
        "after_pruning": totals([usage for _, usage in rows[first:]]),
    }


TAXONOMY_TOPICS = [
    ("BILLING", "charges, invoices, refunds, payment methods, subscriptions and plans"),
    ("SHIPPING", "deliveries, tracking numbers, couriers, lost, late or damaged parcels"),
    ("RETURNS", "sending an item back, return labels, exchanges and return deadlines"),
    ("ACCOUNT_ACCESS", "log-in problems, passwords, two-factor codes, locked accounts"),
    ("TECHNICAL", "errors, crashes, bugs in the app or the website, performance problems"),
    ("ORDERS", "changing or cancelling an order, missing items, wrong items"),
    ("PRODUCT_INFO", "questions about sizes, materials, compatibility, availability"),
    ("PRIVACY", "personal data, deletion requests, marketing consent, GDPR requests"),
    ("WARRANTY", "repairs, defects after some months of use, warranty claims"),
    ("BUSINESS", "wholesale, partnerships, invoices for companies, VAT numbers"),
    ("FEEDBACK", "praise, complaints about service, suggestions for the product"),
    ("OTHER", "anything clear that fits none of the categories above"),
]
EXAMPLE_LINES = [
    "I was charged twice this month for the same plan and would like one payment back",
    "My parcel has shown 'in transit' for nine days and the courier does not answer",
    "The app closes as soon as I open the settings page on my phone since the update",
]


def write_taxonomy(path: Path) -> Path:
    """A realistic taxonomy: 12 categories, each with a description and three examples."""
    lines = ["categories:"]
    for name, description in TAXONOMY_TOPICS:
        lines += [f"  - name: {name}", f"    description: {description}", "    examples:"]
        lines += [f'      - "{example} ({name.lower()})"' for example in EXAMPLE_LINES]
    lines += [
        "fields:",
        "  - name: order_number",
        "    type: string",
        "    description: the order number the customer gives, if any",
        '    pattern: "^[A-Z]{2}-[0-9]{4,8}$"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_taxonomy(base: str, emulator_url: str, emails: int, mode: str) -> dict[str, Any]:
    """First-turn emails under a realistic taxonomy; `mode`: caching with the system-prompt
    breakpoint ("system+auto"), the automatic breakpoint only ("auto"), or no caching ("off")."""
    state = f"{base}/11"
    client = redis.Redis.from_url(state)
    client.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "TRIAGE_REDIS_URL": state,
                "TRIAGE_BROKER_URL": f"{base}/12",
                "ANTHROPIC_API_KEY": "sk-bench",
                "ANTHROPIC_BASE_URL": emulator_url,
                "TRIAGE_PROMPT_CACHING": "false" if mode == "off" else "true",
                "TRIAGE_CACHE_SYSTEM_PROMPT": "true" if mode == "system+auto" else "false",
                "TRIAGE_TAXONOMY_FILE": str(write_taxonomy(Path(tmp) / "taxonomy.yaml")),
                "TRIAGE_LOOP_ANSWER_SECONDS": "0",
                "TRIAGE_MAX_QUESTIONS_PER_RECIPIENT_PER_DAY": "1000000",
            }
        )
        settings = Settings()
    publisher = NoPublisher()
    drain_step = build_drain_step(
        settings, client, publisher, limiter=RateLimiter(client, 0, 0, 1.0, 0)
    )
    submitter = Submitter(settings, client, publisher)
    ledger = Ledger(client, settings.prices, settings.thread_ttl_seconds)
    usage = Usage()
    for i in range(emails):
        body = f"{EXAMPLE_LINES[i % 3]}. Case {i}." + filler(40)
        raw = raw_email(f"<tax-{i}-{mode}@example.org>", body, None, "")
        thread_id = submitter.submit(parse_email(raw)).thread_id
        drain_step.drain(thread_id)
        usage = usage + Usage.from_mapping(ledger.thread(thread_id))
    drain_step.close()
    today = dt.datetime.now(dt.UTC).date()
    # Every call of this run: the database was flushed first (a run across midnight sums 2 days).
    cost = ledger.totals(today - dt.timedelta(days=1)).total.get("cost_micro_usd", 0) / 1e6
    return {
        "caching": mode,
        "emails": emails,
        "input_tokens": usage.input_tokens,
        "cache_write_tokens": usage.cache_creation_input_tokens,
        "cache_read_tokens": usage.cache_read_input_tokens,
        "cost_usd_per_1000_emails": round(cost * 1000 / emails, 4),
    }


def main_taxonomy(args: argparse.Namespace) -> None:
    rows = []
    with EmulatorThread(EmulatorConfig(cache_min_tokens=1024)) as emulator, redis_base() as base:
        for mode in ("system+auto", "auto", "off"):
            emulator.reset()
            row = run_taxonomy(base, emulator.base_url, args.emails, mode)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("caching       input tok  cache write  cache read  $ per 1,000 first-turn emails")
    for row in rows:
        print(
            f"{row['caching']:<13} {row['input_tokens']:<10} "
            f"{row['cache_write_tokens']:<12} {row['cache_read_tokens']:<11} "
            f"{row['cost_usd_per_1000_emails']:.4f}"
        )


def main_long_thread(args: argparse.Namespace) -> None:
    words = args.body_words[0] if args.body_words else 300
    rows = []
    with EmulatorThread(EmulatorConfig(cache_min_tokens=1024)) as emulator, redis_base() as base:
        for caching in (True, False):
            row = run_long_thread(base, emulator, args.turns, words, args.budget, caching)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("caching  calls  from call  input tok  cache write  cache read  cost $   (after pruning)")
    for row in rows:
        after = row["after_pruning"]
        print(
            f"{row['caching']!s:<8} {after['calls']:<6} {row['first_pruned_call']!s:<10} "
            f"{after['input_tokens']:<10} {after['cache_write_tokens']:<12} "
            f"{after['cache_read_tokens']:<11} {after['cost_usd']:.6f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--body-words", type=int, nargs="+", default=None)
    parser.add_argument("--long-thread", action="store_true", help="measure history pruning")
    parser.add_argument(
        "--taxonomy", action="store_true", help="measure the system-prompt cache breakpoint"
    )
    parser.add_argument("--emails", type=int, default=200, help="first-turn emails (--taxonomy)")
    parser.add_argument("--turns", type=int, default=50, help="turns of the --long-thread thread")
    parser.add_argument("--budget", type=int, default=6000, help="--long-thread history budget")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.taxonomy:
        main_taxonomy(args)
        return
    if args.long_thread:
        main_long_thread(args)
        return
    args.body_words = args.body_words or [60, 1200]
    rows = []
    with EmulatorThread(EmulatorConfig(cache_min_tokens=1024)) as emulator, redis_base() as base:
        for words in args.body_words:
            for caching in (True, False):
                for strip in (True, False):
                    emulator.reset()
                    row = run_combo(base, emulator.base_url, args.threads, words, caching, strip)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    header = "words  caching  stripping  input tok/thread  cache write  cache read  cost $/thread"
    print(header)
    for row in rows:
        print(
            f"{row['body_words']:<6} {row['caching']!s:<8} {row['quote_stripping']!s:<10} "
            f"{row['input_tokens_per_thread']:<16} {row['cache_write_tokens']:<12} "
            f"{row['cache_read_tokens']:<11} {row['cost_usd_per_thread']:.6f}"
        )


if __name__ == "__main__":
    main()
