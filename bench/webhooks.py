"""Webhook delivery: deliveries per second to a local receiver, and the delay from an event's
commit to its arrival at the receiver.

    .venv/bin/python -m bench.webhooks [--events 5000] [--threads 500] [--concurrency 8]
                                       [--latency-ms 0]

The receiver (aiohttp, answers 200 after `--latency-ms`, records arrivals) runs in its own
process, so its CPU is not counted. The delivery worker runs here exactly as in `triage worker`
(`build_service`, default settings but the concurrency, INFO JSON logs written to /dev/null).
Two phases:

- **throughput**: EVENTS events over THREADS threads appended at once (one pipeline, as a backlog
  of commits); deliveries/s from the first append to the last arrival, CPU ms of this process
  per delivery;
- **delay**: 300 events appended one at a time, 20 ms apart (an idle worker picking up each
  commit); commit -> arrival p50/p95/p99 in ms.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import redis

from bench.common import redis_base
from common import keys
from common.logging import configure_logging
from common.settings import load_settings
from triage.localstack import free_port
from worker.deliver.envelope import sample_event
from worker.deliver.service import build_service

SECRET = "whsec_bench_0123456789"


def serve_receiver(port: int, latency_ms: float) -> None:
    """The receiver process: POST /hooks records (event id, arrival); GET /stats returns them."""
    from aiohttp import web

    arrivals: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        arrivals.setdefault(request.headers.get("X-Triage-Event-Id", ""), time.time())
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    app = web.Application()
    app.router.add_post("/hooks", hook)
    app.router.add_get("/stats", stats)
    print(f"listening on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def arrivals(port: int) -> dict[str, float]:
    import httpx2

    found: dict[str, float] = httpx2.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
    return found


def publish(client: redis.Redis, events: list[tuple[str, str]]) -> list[tuple[str, float]]:
    """Append (type, thread) events in one pipeline; their ids and when they were appended."""
    pipe = client.pipeline(transaction=False)
    for kind, thread_id in events:
        event = sample_event(kind, thread_id)
        pipe.xadd(
            keys.EVENTS,
            {"type": kind, "thread_id": thread_id, "category": "", "payload": json.dumps(event)},
        )
    at = time.time()
    return [(entry_id.decode(), at) for entry_id in pipe.execute()]


def wait_arrived(port: int, ids: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = arrivals(port)
        if all(event_id in got for event_id in ids):
            return got
        time.sleep(0.1)  # polling the receiver's count
    raise SystemExit(f"only {len(arrivals(port))} of {len(ids)} events arrived in {timeout}s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(events: int, threads: int, concurrency: int, latency_ms: float) -> dict[str, Any]:
    port = free_port()
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.webhooks",
            "--receiver",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    receiver.stdout.readline()  # "listening on …"
    try:
        with redis_base() as base:
            url = f"{base}/11"
            client = redis.Redis.from_url(url)
            client.flushdb()
            settings = load_settings(
                redis_url=url,
                webhook_url=f"http://127.0.0.1:{port}/hooks",
                webhook_secret=SECRET,
                webhook_concurrency=concurrency,
                log_format="json",
                log_level="INFO",
            )
            saved, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
            try:
                configure_logging(settings)
                service = build_service(settings, lambda: client)
                assert service is not None
                service.start()
                kinds = ("classified", "clarification", "escalated")
                batch = [(kinds[n % 3], f"bench-{n % threads}") for n in range(events)]
                cpu = time.process_time()
                published = publish(client, batch)
                got = wait_arrived(port, [i for i, _ in published], 600)
                cpu = time.process_time() - cpu
                elapsed = max(got.values()) - published[0][1]
                paced: list[tuple[str, float]] = []
                for n in range(300):
                    paced += publish(client, [("classified", f"paced-{n}")])
                    time.sleep(0.02)  # the pacing of the delay phase
                got = wait_arrived(port, [i for i, _ in paced], 60)
                delays = [(got[i] - at) * 1000 for i, at in paced]
                service.stop()
            finally:
                sys.stderr.close()
                sys.stderr = saved
    finally:
        receiver.terminate()
        receiver.wait(10)
    return {
        "bench": "webhooks",
        "events": events,
        "threads": threads,
        "concurrency": concurrency,
        "receiver_latency_ms": latency_ms,
        "deliveries_per_s": round(events / elapsed, 1),
        "cpu_ms_per_delivery": round(cpu * 1000 / events, 3),
        "delay_ms": {
            "p50": round(statistics.median(delays), 2),
            "p95": round(percentile(delays, 0.95), 2),
            "p99": round(percentile(delays, 0.99), 2),
            "max": round(max(delays), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the receiver's latency")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver, args.latency_ms)
        return
    print(json.dumps(run(args.events, args.threads, args.concurrency, args.latency_ms)))


if __name__ == "__main__":
    main()
