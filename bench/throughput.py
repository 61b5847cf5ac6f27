"""Emails/s of one worker process against the emulator, for several concurrencies (prints JSON).

    .venv/bin/python -m bench.throughput --emails 2000 --latency-ms 500 --pool threads \
        --concurrency 16 64 128 256

Each run is the suite's worker run (`bench.suite.worker_run`): a fresh Redis DB, the emulator in
its own process, one `celery worker` subprocess, the backlog of one-turn emails loaded before the
worker starts consuming; emails/s is the steady-state rate (10th to 90th percentile of
completions), the ceiling concurrency / latency.
"""

from __future__ import annotations

import argparse
import json
import logging

import structlog

from bench.common import redis_base
from bench.suite import RemoteEmulator, worker_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 128])
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    emulator = RemoteEmulator()
    with redis_base() as base:
        for concurrency in args.concurrency:
            result = worker_run(
                base,
                emulator,
                pool=args.pool,
                concurrency=concurrency,
                threads=args.emails,
                latency_ms=args.latency_ms,
                vague_every=0,
            )
            print(json.dumps(result), flush=True)
    emulator.stop()


if __name__ == "__main__":
    main()
