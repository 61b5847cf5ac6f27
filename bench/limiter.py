"""The fleet rate limiter against a hard RPM limit: share of the limit reached, share of 429s.

    .venv/bin/python -m bench.limiter --rpm 600 --workers 3 --seconds 60

The emulator enforces `--rpm` with a sliding 60 s window and answers 429 past it. N worker
processes (threads pool) drain a backlog large enough to outlast the measurement, once with
`TRIAGE_RATE_LIMIT_RPM` set to the same limit and once without. Prints one JSON line per mode:
requests answered 200 per minute over the window, as a share of the limit, and the share of 429s.
SDK retries are off so every 429 is visible.
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
from common.settings import Settings
from emulator.config import EmulatorConfig
from emulator.server import EmulatorThread
from producers.enqueue import Enqueuer
from triage.localstack import start_worker


def one_mode(
    base: str, emulator: EmulatorThread, args: argparse.Namespace, limited: bool
) -> dict[str, object]:
    emulator.reset()
    extra = {"TRIAGE_API_MAX_RETRIES": "0", "TRIAGE_TASK_MAX_ATTEMPTS": "100"}
    if limited:
        extra["TRIAGE_RATE_LIMIT_RPM"] = str(args.rpm)
    env = worker_env(f"{base}/11", f"{base}/12", emulator.base_url, **extra)
    workers = []
    for n in range(args.workers):
        log = Path(tempfile.mkstemp(prefix=f"bench-limiter-{n}-", suffix=".log")[1])
        with log.open("ab") as out:
            workers.append(start_worker(env, pool="threads", concurrency=16, stdout=out))
    os.environ.update(env)
    enqueuer = Enqueuer(Settings(), redis.Redis.from_url(env["TRIAGE_REDIS_URL"]))
    backlog = int(args.rpm / 60 * (args.seconds + 20) * 1.5)
    for i in range(backlog):
        enqueuer.enqueue_bytes(email(i, "limiter"))
    time.sleep(5)  # start-up and the first burst are not part of the window
    window_start = len(emulator.requests)
    time.sleep(args.seconds)
    window = emulator.requests[window_start:]
    for worker in workers:
        worker.stop()
    ok = sum(1 for q in window if q["status"] == 200)
    limited_429 = sum(1 for q in window if q["status"] == 429)
    per_minute = ok * 60 / args.seconds
    return {
        "limiter": limited,
        "workers": args.workers,
        "rpm_limit": args.rpm,
        "window_s": args.seconds,
        "ok_per_minute": round(per_minute, 1),
        "share_of_limit": round(per_minute / args.rpm, 3),
        "responses_429": limited_429,
        "share_429": round(limited_429 / max(1, len(window)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--latency-ms", type=float, default=200)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    config = EmulatorConfig(
        rpm=args.rpm, latency_ms=args.latency_ms, retry_after_s=0.5, max_recorded=1_000_000
    )
    with EmulatorThread(config) as emulator, redis_base() as base:
        for limited in (True, False):
            print(json.dumps(one_mode(base, emulator, args, limited)), flush=True)


if __name__ == "__main__":
    main()
