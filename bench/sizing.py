"""Redis memory per thread and per email, live and after idle threads are packed.

    .venv/bin/python -m bench.sizing [--threads 100000] [--clarified-share 0.2] [--words 80]

Creates `--threads` threads through the real path (the producers' submit, the drain step in this
process, the real SDK over HTTP to the emulator, a private Redis): most are one email classified
at once; `--clarified-share` of them are a vague email, our question, the customer's answer and
a classification (two customer emails, four turns). Then it packs every idle thread (what the
sweeper does after `TRIAGE_COMPACT_AFTER_SECONDS`) and measures again. Prints one JSON line per
stage and a table: bytes per thread (thread keys and indexes, without the streams), bytes per
event and per outbox entry (the streams, trimmed by age), bytes per email (the Message-ID index),
and threads per GiB.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from typing import Any

import redis
import structlog

from bench.common import redis_base
from common import keys
from common.contract import ReplyTask
from common.settings import Settings
from emulator.server import EmulatorThread
from producers.parse import parse_email
from producers.submit import Submitter
from worker.runtime import build_drain_step
from worker.state.compaction import Compactor

WORDS = [
    "order",
    "invoice",
    "payment",
    "charged",
    "twice",
    "refund",
    "subscription",
    "account",
    "card",
    "bank",
    "statement",
    "month",
    "parcel",
    "delivery",
    "tracking",
    "courier",
    "address",
    "package",
    "arrived",
    "damaged",
    "app",
    "login",
    "error",
    "password",
    "screen",
    "update",
    "crash",
    "version",
    "phone",
    "browser",
    "settings",
    "please",
    "help",
    "thanks",
    "regards",
    "since",
    "week",
]
VAGUE = "Hi, my thing isn't working. Can you help?"
ANSWER = "Sorry, I mean I was charged twice for my subscription this month."


class Replies:
    """Records our questions so the benchmark can answer them as the customer."""

    def __init__(self) -> None:
        self.last: ReplyTask | None = None

    def drain(self, thread_id: str) -> None:
        pass

    def reply(self, reply: ReplyTask) -> None:
        self.last = reply


def email(message_id: str, body: str, customer: int, **headers: str) -> bytes:
    """One customer's email (the answer to our question comes from the same customer)."""
    lines = [
        f"From: Customer {customer} <c{customer:08d}@example.org>",
        "To: support@example.com",
        f"Subject: {headers.get('subject', 'Help with my account')}",
        f"Message-ID: {message_id}",
        "Date: Mon, 30 Nov 2026 09:00:00 +0000",
    ]
    if "in_reply_to" in headers:
        lines.append(f"In-Reply-To: {headers['in_reply_to']}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def memory(client: redis.Redis) -> dict[str, int]:
    """Used memory, and the streams' share (measured with MEMORY USAGE, all samples)."""
    used = int(client.info("memory")["used_memory"])
    streams = sum(
        client.memory_usage(stream, samples=0) or 0 for stream in (keys.EVENTS, keys.OUTBOX)
    )
    return {"used": used, "streams": streams}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--clarified-share", type=float, default=0.2)
    parser.add_argument("--words", type=int, default=80, help="words per customer email")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rng = random.Random(7)
    with EmulatorThread() as emulator, redis_base() as base:
        state = f"{base}/11"
        client = redis.Redis.from_url(state)
        client.flushdb()
        os.environ.update(
            {
                "TRIAGE_REDIS_URL": state,
                "TRIAGE_BROKER_URL": f"{base}/12",
                "ANTHROPIC_API_KEY": "sk-bench",
                "ANTHROPIC_BASE_URL": emulator.base_url,
                "TRIAGE_LOOP_ANSWER_SECONDS": "0",
                "TRIAGE_MAX_QUESTIONS_PER_RECIPIENT_PER_DAY": "1000000",
            }
        )
        settings = Settings()
        replies = Replies()
        step = build_drain_step(settings, client, replies)
        submitter = Submitter(settings, client, replies)
        baseline = memory(client)["used"]
        started = time.monotonic()
        emails = 0
        for i in range(args.threads):
            body = " ".join(rng.choice(WORDS) for _ in range(args.words))
            clarified = rng.random() < args.clarified_share
            first = email(f"<s{i:08d}@example.org>", VAGUE if clarified else body, i)
            thread_id = submitter.submit(parse_email(first)).thread_id
            step.drain(thread_id)
            emails += 1
            if clarified and replies.last is not None:
                answer = email(
                    f"<a{i:08d}@example.org>",
                    f"{ANSWER} {body}",
                    i,
                    subject="Re: Help with my account",
                    in_reply_to=replies.last.message_id,
                )
                submitter.submit(parse_email(answer))
                step.drain(thread_id)
                emails += 1
                replies.last = None
            if (i + 1) % 10_000 == 0:
                print(f"# {i + 1} threads, {time.monotonic() - started:.0f} s", flush=True)
        events = int(client.xlen(keys.EVENTS))
        rows: list[dict[str, Any]] = []
        for stage in ("live", "packed"):
            if stage == "packed":
                Compactor(client).compact_idle(0, args.threads * 2, now=time.time() + 1)
            now = memory(client)
            threads_bytes = now["used"] - baseline - now["streams"]
            row = {
                "stage": stage,
                "threads": args.threads,
                "emails": emails,
                "events": events,
                "bytes_per_thread": round(threads_bytes / args.threads),
                "bytes_per_event": round(now["streams"] / max(1, events)),
                "threads_per_gib": round(2**30 / (threads_bytes / args.threads)),
                "used_memory_mb": round(now["used"] / 2**20, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        per_email = [
            client.memory_usage(keys.message_index(f"<s{i:08d}@example.org>")) or 0
            for i in range(min(args.threads, 1000))
        ]
        print(json.dumps({"bytes_per_email_index_entry": round(sum(per_email) / len(per_email))}))
        print()
        print("stage   bytes/thread  threads/GiB  bytes/event (streams)")
        for row in rows:
            print(
                f"{row['stage']:<7} {row['bytes_per_thread']:<13} {row['threads_per_gib']:<12} "
                f"{row['bytes_per_event']}"
            )


if __name__ == "__main__":
    main()
