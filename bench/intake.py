"""Intake throughput: requests/s and latency of `POST /v1/emails` (raw MIME) on one process.

```bash
.venv/bin/python -m bench.intake                      # 5,000 emails, 32 connections
.venv/bin/python -m bench.intake --emails 20000 --connections 64 --access-log
```

`triage serve` runs as a subprocess (one uvicorn process, pinned to CPU 0 with `taskset` when it
is available) against a private Redis that is also the broker (no worker: drain tasks queue up,
TRIAGE_INTAKE_MAX_QUEUE=0 so backpressure never answers). The load generator is an asyncio
client in this process (pinned to CPU 1) with N keep-alive connections, each posting one email
after another, every email new (its own Message-ID), so each request parses, threads, dedupes
and publishes a drain task. A warm-up of 200 requests is not counted. Prints one JSON line:
emails/s, latency p50/p90/p99/max in ms, the server's CPU seconds per email, and the statuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

import psutil

from bench.common import email, redis_base, worker_env
from triage.localstack import free_port, http_ready, wait_until

TOKEN = "bench-token"


def request(raw: bytes, port: int) -> bytes:
    head = (
        f"POST /v1/emails HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: message/rfc822\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode()
    return head + raw


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def load(
    port: int, emails: int, connections: int, offset: int
) -> tuple[list[float], dict[int, int]]:
    counter = iter(range(offset, offset + emails))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                data = request(email(i, "intake"), port)
                start = time.perf_counter()
                status = await post(reader, writer, data)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, statuses


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--access-log", action="store_true", help="log every request (INFO)")
    args = parser.parse_args()
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    with redis_base() as base:
        env = worker_env(
            f"{base}/11",
            f"{base}/12",
            "http://127.0.0.1:9",
            TRIAGE_INTAKE_TOKENS=TOKEN,
            TRIAGE_INTAKE_MAX_QUEUE="0",
            TRIAGE_LOG_LEVEL="INFO" if args.access_log else "WARNING",
        )
        port = free_port()
        command = [sys.executable, "-m", "triage", "serve", "--port", str(port)]
        server = subprocess.Popen(
            (["taskset", "-c", "0"] if pin else []) + command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: http_ready(f"http://127.0.0.1:{port}/healthz"), 30, "triage serve")
            if pin:
                os.sched_setaffinity(0, {1})
            asyncio.run(load(port, 200, args.connections, 10_000_000))  # warm-up
            process = psutil.Process(server.pid)
            cpu_before = sum(process.cpu_times()[:2])
            started = time.perf_counter()
            latencies, statuses = asyncio.run(load(port, args.emails, args.connections, 0))
            seconds = time.perf_counter() - started
            cpu = sum(process.cpu_times()[:2]) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        json.dumps(
            {
                "bench": "intake",
                "emails": args.emails,
                "connections": args.connections,
                "access_log": args.access_log,
                "server_pinned_to_one_core": pin,
                "emails_per_s": round(args.emails / seconds, 1),
                "latency_ms": {
                    "p50": round(percentile(latencies, 0.50), 2),
                    "p90": round(percentile(latencies, 0.90), 2),
                    "p99": round(percentile(latencies, 0.99), 2),
                    "max": round(max(latencies) * 1000, 2),
                },
                "server_cpu_ms_per_email": round(cpu / args.emails * 1000, 3),
                "statuses": statuses,
            }
        )
    )


if __name__ == "__main__":
    main()
