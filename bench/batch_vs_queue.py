"""A backlog through the Message Batches API against the same backlog through the queue.

    .venv/bin/python -m bench.batch_vs_queue --emails 10000 --latency-ms 500 --batch-delay-s 5

One mbox of N first-turn emails (every 4th vague, so it gets a clarifying question). Batch path:
`triage backlog` (stage, submit, wait, apply) with one worker running for the reply tasks. Queue
path: the same emails staged for the queue, one worker (threads, concurrency 64) calling the
emulator at `--latency-ms`. Cost per path comes from the usage ledger (batch results at the
batch price). The emulator's batch delay stands in for the real API's minutes-to-hours: the wall
time of the batch path here is our own overhead plus that delay, not a forecast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import redis_base, worker_env
from bench.suite import RemoteEmulator
from common import keys
from common.settings import Settings
from triage.localstack import start_worker
from worker.state.ledger import Ledger

TOPICS = [
    "I was charged twice for my subscription.",
    "My parcel never arrived and the tracking is stuck.",
    "The app shows an error message when I log in.",
    "Hi, my thing isn't working. Can you help?",
]


def write_mbox(path: Path, count: int) -> None:
    stamp = time.time_ns()
    with path.open("w") as out:
        for i in range(count):
            out.write(
                f"From c{i}@example.org Mon Nov 23 09:00:00 2026\n"
                f"From: c{i}@example.org\nTo: support@example.com\nSubject: Case {i}\n"
                f"Message-ID: <backlog-{stamp}-{i}@example.org>\n\n{TOPICS[i % 4]}\n\n"
            )


def decided(client: redis.Redis) -> int:
    return int(client.xlen(keys.EVENTS))


def one_path(
    via: str, base: str, emulator: RemoteEmulator, mbox: Path, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    emulator.reset()
    emulator.configure(latency_ms=args.latency_ms, batch_delay_s=args.batch_delay_s)
    env = worker_env(f"{base}/11", f"{base}/12", emulator.base_url)
    client = redis.Redis.from_url(env["TRIAGE_REDIS_URL"])
    worker = start_worker(env, pool="threads", concurrency=64, stdout=subprocess.DEVNULL)
    time.sleep(5)
    started = time.perf_counter()
    command = ["triage", "backlog", str(mbox), "--via", via, "--poll-seconds", "1"]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{via}: {result.stderr[-2000:]}")
    while decided(client) < count:
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    worker.stop()
    os.environ.update(env)
    settings = Settings()
    totals = Ledger(client, settings.prices, 3600).totals(dt.datetime.now(dt.UTC).date())
    cost = totals.total["cost_micro_usd"] / 1e6
    return {
        "via": via,
        "emails": count,
        "latency_ms": args.latency_ms,
        "batch_delay_s": args.batch_delay_s if via == "batch" else None,
        "wall_seconds": round(elapsed, 1),
        "calls": totals.total["calls"],
        "cost_usd": round(cost, 4),
        "cost_per_1000_emails_usd": round(cost / count * 1000, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--batch-delay-s", type=float, default=5)
    args = parser.parse_args()
    mbox = Path(tempfile.mkdtemp(prefix="bench-backlog-")) / "backlog.mbox"
    write_mbox(mbox, args.emails)
    emulator = RemoteEmulator()
    rows = []
    with redis_base() as base:
        for via in ("batch", "queue"):
            row = one_path(via, base, emulator, mbox, args.emails, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    emulator.stop()
    batch, queue = rows
    print(
        f"\nbatch: ${batch['cost_usd']} in {batch['wall_seconds']} s; "
        f"queue: ${queue['cost_usd']} in {queue['wall_seconds']} s; "
        f"batch/queue cost {batch['cost_usd'] / max(queue['cost_usd'], 1e-9):.2f}"
    )


if __name__ == "__main__":
    main()
