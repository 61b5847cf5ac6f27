"""Reprocessing runs at scale: wall time, our CPU, peak RSS and cost of `triage reprocess`.

    .venv/bin/python -m bench.reprocess [--emails 10000] [--latency-ms 200] [--concurrency 64]
                                        [--vias batch live] [--sources backlog threads]

Each run is the real command in a child process (`python -m triage reprocess ... --yes`), and
its CPU time and peak RSS are that process's own (`wait4` rusage); the emulator runs in its own
process and Redis is private, so neither is counted. Sources:
- `backlog`: an mbox of `--emails` new emails (five topics, one of them vague), read, threaded
  and decided from the PATH;
- `threads`: the same mail first triaged into live threads (`triage backlog`, through a Message
  Batch: no worker needed), then every stored thread re-decided.
Vias: `batch` (Message Batches: the emulator ends a batch `--batch-delay` seconds after it is
created, the real API within 24 h) and `live` (`--concurrency` calls in flight, the emulator
answering each after `--latency-ms`). Cost is the run's own record (the price table: Haiku 4.5,
batch at half price). Prints one JSON line per run, then a table.
"""

from __future__ import annotations

import argparse
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

REPO = Path(__file__).resolve().parents[1]
TOPICS = [
    "I was charged twice for my subscription this month.",
    "My parcel came broken: I want to start returns, how long do returns take?",
    "The app shows an error message every time I log in.",
    "My parcel never arrived and the tracking has been stuck for a week.",
    "Hi, my thing isn't working. Can you help?",
]
TAXONOMY = """\
categories:
  - {name: BILLING, description: "charges, invoices, refunds, payments, subscriptions"}
  - {name: SHIPPING, description: "deliveries, tracking, lost or damaged parcels"}
  - {name: TECHNICAL, description: "errors, bugs, log-in and app or website problems"}
  - {name: RETURNS, description: "sending an item back, return labels, exchanges"}
  - {name: OTHER, description: "anything else that is clear but fits none of the above"}
"""


def write_mbox(path: Path, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            out.write(
                f"From c{i}@example.org Mon Nov 23 09:00:00 2026\n"
                f"From: Customer {i} <c{i}@example.org>\nTo: support@example.com\n"
                f"Subject: Case {i}\nMessage-ID: <rp-bench-{i}@example.org>\n\n"
                f"{TOPICS[i % len(TOPICS)]}\nOrder reference {100000 + i}.\n\n"
            )


def run_command(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """`python -m triage ARGS` in a child; its wall time, CPU and peak RSS (wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "triage", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            process.communicate()
            return {"timeout": True}
        time.sleep(0.05)
    wall = time.perf_counter() - started
    out = process.stdout.read().decode(errors="replace") if process.stdout else ""
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stdout:
        process.stdout.close()
    if process.stderr:
        process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": process.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        **({"stderr_tail": err[-600:], "stdout_tail": out[-300:]} if process.returncode else {}),
    }


def run_meta(client: redis.Redis, name: str) -> dict[str, str]:
    raw = client.hgetall(f"triage:run:{name}")
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


def run_bytes(client: redis.Redis, name: str, meta: dict[str, str]) -> int | None:
    """Redis memory the run's records keep once it is done, per email (MEMORY USAGE)."""
    emails = int(meta.get("emails_decided", 0))
    if not emails:
        return None
    total = sum(
        int(client.memory_usage(key, samples=0) or 0) for key in client.keys(f"triage:run:{name}*")
    )
    return round(total / emails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-delay", type=float, default=2.0)
    parser.add_argument("--vias", nargs="+", default=["batch", "live"], choices=["batch", "live"])
    parser.add_argument(
        "--sources", nargs="+", default=["backlog", "threads"], choices=["backlog", "threads"]
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, redis_base() as base:
        mbox = Path(tmp) / "backlog.mbox"
        write_mbox(mbox, args.emails)
        taxonomy = Path(tmp) / "returns.yaml"
        taxonomy.write_text(TAXONOMY)
        emulator = RemoteEmulator()
        try:
            for source in args.sources:
                state = f"{base}/11"
                env = worker_env(state, f"{base}/12", emulator.base_url)
                client = redis.Redis.from_url(state)
                emulator.reset()
                if source == "threads":
                    emulator.configure(batch_delay_s=args.batch_delay)
                    seeded = run_command(
                        ["backlog", str(mbox), "--poll-seconds", "0.5"], env, timeout=3600
                    )
                    seeded |= {"threads": client.zcard("triage:threads")}
                    print(json.dumps({"seed": "triage backlog", **seeded}), flush=True)
                for via in args.vias:
                    emulator.reset()
                    emulator.configure(
                        latency_ms=args.latency_ms if via == "live" else 0.0,
                        batch_delay_s=args.batch_delay,
                    )
                    name = f"bench-{source}-{via}"
                    command = ["reprocess", "--run", name, "--taxonomy", str(taxonomy)]
                    command += [str(mbox)] if source == "backlog" else []
                    command += ["--via", via, "--yes", "--poll-seconds", "0.5"]
                    command += ["--concurrency", str(args.concurrency)]
                    measured = run_command(command, env, timeout=3600)
                    meta = run_meta(client, name)
                    result = {
                        "source": source,
                        "via": via,
                        "emails": int(meta.get("emails_decided", 0)),
                        "threads": int(meta.get("items_decided", 0)),
                        "calls": int(meta.get("calls", 0)),
                        "changed": int(meta.get("changed", 0)),
                        "cost_usd": int(meta.get("cost_micro_usd", 0)) / 1_000_000,
                        "latency_ms": args.latency_ms if via == "live" else None,
                        "concurrency": args.concurrency if via == "live" else None,
                        "run_keys": len(client.keys(f"triage:run:{name}*")),
                        "redis_bytes_per_email": run_bytes(client, name, meta),
                        **measured,
                    }
                    cpu = result.get("cpu_s")
                    if cpu and result["emails"]:
                        result["cpu_ms_per_email"] = round(cpu / result["emails"] * 1000, 3)
                    results.append(result)
                    print(json.dumps(result), flush=True)
        finally:
            emulator.stop()
    print()
    print(
        "| source | via | emails | wall s | CPU s | CPU ms/email | RSS MB | Redis B/email | cost |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['source']} | {r['via']} | {r['emails']} | {r.get('wall_s')} | "
            f"{r.get('cpu_s')} | {r.get('cpu_ms_per_email', '-')} | {r.get('peak_rss_mb')} | "
            f"{r.get('redis_bytes_per_email')} | ${r['cost_usd']:.2f} |"
        )


if __name__ == "__main__":
    main()
