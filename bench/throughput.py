"""Emails/s of one worker process against the emulator at a given latency (prints JSON).

    .venv/bin/python -m bench.throughput --emails 2000 --latency-ms 500 --pool threads \
        --concurrency 16 64 128

Each run: a fresh Redis DB, the emulator in-process, one `celery worker` subprocess, N one-turn
emails enqueued up front; the clock runs from the first enqueue to the N-th classification event.
The ceiling is concurrency / latency.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import redis
import structlog

from bench.common import email, redis_base, worker_env
from emulator.config import EmulatorConfig
from emulator.server import EmulatorThread
from producers.enqueue import Enqueuer
from triage.localstack import start_worker
from worker import keys
from worker.settings import Settings


def one_run(base: str, emulator_url: str, n: int, pool: str, concurrency: int) -> dict[str, object]:
    state, broker = f"{base}/11", f"{base}/12"
    env = worker_env(state, broker, emulator_url)
    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    with log.open("ab") as out:
        worker = start_worker(env, pool=pool, concurrency=concurrency, stdout=out)
    client = redis.Redis.from_url(state)
    os.environ.update(env)
    enqueuer = Enqueuer(Settings(), client)
    time.sleep(3)  # worker start-up is not part of the measurement
    started = time.perf_counter()
    for i in range(n):
        enqueuer.enqueue_bytes(email(i))
    enqueued = time.perf_counter() - started
    while client.xlen(keys.EVENTS) < n:
        if not worker.alive():
            raise SystemExit(f"worker died, see {log}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    worker.stop()
    return {
        "pool": pool,
        "concurrency": concurrency,
        "emails": n,
        "seconds": round(elapsed, 2),
        "enqueue_seconds": round(enqueued, 2),
        "emails_per_s": round(n / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 128])
    args = parser.parse_args()
    # The in-process emulator logs every request; keep stdout for the JSON results.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    emulator = EmulatorThread(EmulatorConfig(latency_ms=args.latency_ms))
    emulator.start()
    with redis_base() as base:
        for concurrency in args.concurrency:
            result = one_run(base, emulator.base_url, args.emails, args.pool, concurrency)
            result["latency_ms"] = args.latency_ms
            result["ceiling_per_s"] = round(concurrency / (args.latency_ms / 1000), 1)
            result["share_of_ceiling"] = round(
                float(str(result["emails_per_s"])) / float(str(result["ceiling_per_s"])), 3
            )
            print(json.dumps(result), flush=True)
    emulator.stop()


if __name__ == "__main__":
    main()
