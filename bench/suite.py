"""The benchmark suite: our worker against the physical ceiling, a floor and a naive baseline.

    .venv/bin/python -m bench.suite                 # defaults: about 6 minutes on 2 cores
    .venv/bin/python -m bench.suite --quick         # a smoke run in about two minutes

Everything runs on this machine: a private Redis started for the run (`TRIAGE_BENCH_REDIS` for an
external one, whose DBs 11 and 12 are flushed), the emulator in its own process at a fixed
latency, and worker processes started with `celery worker`. Each run prints one JSON line; a table
follows at the end. Runs: the floor (bare SDK call + Redis write), Celery alone (`bench/noop.py`),
our worker on a preloaded backlog of one-turn threads, paced at half its ceiling, and on a mix
with two-turn threads (a vague email, a clarifying question, the customer's answer played by this
script), a MONITOR accounting run (`bench/commands.py`), the naive baseline (`bench/naive.py`),
pools at 0 and 500 ms, and a 20,000-email run for RSS growth.

Measured per run: emails/s (steady state: completions between the 10th and 90th percentile) and
wall emails/s, end-to-end latency from enqueue to the classification event (p50/p95/p99), worker
CPU ms per email (all worker processes), Redis commands per email (INFO commandstats delta,
everything that touched the server: producer, broker, worker), peak RSS per worker process, and
the ceiling concurrency / latency.

One module on purpose (over the usual 400 lines): it is the single script a reader follows from
set-up to table, and its runs share the same measurement helpers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import message_from_string, policy
from functools import partial
from typing import Any

import anthropic
import psutil
import redis
import structlog

from bench.commands import accounting_run
from bench.common import redis_base, worker_env
from common import keys
from common.contract import QUEUE_TRIAGE
from common.publish import producer_app
from common.settings import Settings
from producers.enqueue import Enqueuer
from triage.localstack import Process, start_emulator, start_worker

CLEAR = [
    "I was charged twice for my subscription.",
    "My parcel never arrived and tracking is stuck.",
    "The app shows an error when I log in.",
]
VAGUE = "Hi, my thing isn't working. Can you help?"
ANSWER = "Sorry, I mean I was charged twice for my subscription this month."


def mail(message_id: str, text: str, in_reply_to: str | None = None) -> bytes:
    headers = "From: c@example.org\r\nTo: support@example.com\r\nSubject: Case\r\n"
    headers += f"Message-ID: {message_id}\r\n"
    if in_reply_to:
        headers += f"In-Reply-To: {in_reply_to}\r\n"
    return f"{headers}\r\n{text}\r\n".encode()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def command_count(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return sum(int(v["calls"]) for v in stats.values())


class RemoteEmulator:
    """The emulator in its own process (so its CPU is not counted), driven by its admin API."""

    def __init__(self) -> None:
        self.base_url, self.process = start_emulator(stdout=subprocess.DEVNULL)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()

    def reset(self) -> None:
        self._post("/_emulator/reset", {})
        self._post("/_emulator/config", {"max_recorded": 100})

    def configure(self, **fields: Any) -> None:
        self._post("/_emulator/config", fields)

    def stop(self) -> None:
        self.process.stop()


class ProcessMeter(threading.Thread):
    """Samples a process tree: CPU seconds used since start, and peak RSS per process."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.rss_series: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.sample()
        self.cpu_at_start = sum(self.cpu.values())

    def sample(self) -> None:
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for proc in tree:
            try:
                rss = proc.memory_info().rss
                self.peak[proc.pid] = max(self.peak.get(proc.pid, 0), rss)
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
                total += rss
            except psutil.Error:
                continue
        self.rss_series.append((time.monotonic(), total))

    def rss_growth_mb(self) -> float:
        """Total RSS at the end minus at a quarter of the run (after warm-up), in MB."""
        if len(self.rss_series) < 4:
            return 0.0
        start, end = self.rss_series[0][0], self.rss_series[-1][0]
        quarter = next(rss for t, rss in self.rss_series if t >= start + (end - start) / 4)
        return round((self.rss_series[-1][1] - quarter) / 2**20, 1)

    def run(self) -> None:
        while not self.stopped.wait(0.25):
            self.sample()

    def stop(self) -> tuple[float, list[int]]:
        """CPU seconds used since the meter started, and the peak RSS of each process."""
        self.sample()
        self.stopped.set()
        return sum(self.cpu.values()) - self.cpu_at_start, sorted(self.peak.values())


@dataclass
class Load:
    """Plays the producers and the customers: enqueues, answers questions, waits for events."""

    enqueue: Callable[[bytes], object]
    client: redis.Redis
    threads: int
    vague_every: int  # every Nth thread starts vague and needs the customer's answer (0: none)
    tag: str
    answers: int = 0
    completions: list[float] | None = None  # decided_at of each classification

    def enqueue_all(self, per_second: float = 0.0) -> None:
        """Every thread's first email: all at once, or paced at `per_second` arrivals."""
        started = time.perf_counter()
        for i in range(self.threads):
            if per_second:
                time.sleep(max(0.0, started + i / per_second - time.perf_counter()))
            vague = bool(self.vague_every) and i % self.vague_every == 0
            self.enqueue(mail(f"<{self.tag}-{i}@example.org>", VAGUE if vague else CLEAR[i % 3]))

    def follow(self, timeout: float) -> list[float]:
        """Answer every question, read events as they come (incrementally: the driver shares
        the two cores with the worker), until every thread is classified."""
        cursors = {keys.OUTBOX: "0", keys.EVENTS: "0"}
        latencies: list[float] = []
        self.completions = []
        deadline = time.monotonic() + timeout
        while len(latencies) < self.threads:
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.tag}: not done within {timeout:.0f}s")
            found: Any = self.client.xread(cursors, count=1000, block=50)  # type: ignore[arg-type]
            for stream, entries in found or []:
                name = stream.decode()
                for entry_id, fields in entries:
                    cursors[name] = entry_id.decode()
                    if name == keys.EVENTS:
                        event = json.loads(fields[b"payload"])
                        if event["type"] == "classified":
                            latencies.append(event["decided_at"] - event["first_received_at"])
                            self.completions.append(event["decided_at"])
                        continue
                    ours = message_from_string(fields[b"message"].decode(), policy=policy.default)
                    answer_id = f"<{self.tag}-a{self.answers}@example.org>"
                    self.enqueue(mail(answer_id, ANSWER, str(ours["Message-ID"])))
                    self.answers += 1
        return latencies


def consume_triage_queue(settings: Settings, queue: str = QUEUE_TRIAGE) -> None:
    """Tell the (only) worker to start consuming `queue`; waits for its answer."""
    app = producer_app(settings)
    answers = app.control.add_consumer(queue, reply=True, timeout=10, limit=1)
    if not answers:
        raise SystemExit("the worker did not answer add_consumer")


def celery_noop_run(
    base: str, emulator: RemoteEmulator, *, concurrency: int, tasks: int
) -> dict[str, Any]:
    """Celery alone: our configuration, a task that does nothing (see `bench/noop.py`)."""
    from bench.noop import QUEUE

    env = worker_env(f"{base}/11", f"{base}/12", emulator.base_url)
    os.environ.update(env)
    settings = Settings()
    command = [sys.executable, "-m", "celery", "-A", "bench.noop", "worker", "-Q", "replies"]
    command += ["--pool", "threads", "--concurrency", str(concurrency), "--loglevel", "WARNING"]
    command += ["--without-mingle", "--without-gossip"]
    popen = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = Process("noop", popen)
    broker = redis.Redis.from_url(env["TRIAGE_BROKER_URL"])
    app = producer_app(settings)
    for _ in range(tasks):
        app.send_task("bench.noop", queue=QUEUE)
    time.sleep(6)
    meter = ProcessMeter(worker.pid)
    meter.start()
    started = time.perf_counter()
    consume_triage_queue(settings, QUEUE)
    deadline = time.monotonic() + 300
    while broker.llen(QUEUE) or broker.hlen("unacked"):
        if time.monotonic() > deadline:
            raise SystemExit("no-op tasks not done within 300 s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    cpu, peaks = meter.stop()
    worker.stop()
    return summarise(
        "celery-noop",
        emails=tasks,
        elapsed=elapsed,
        completions=[],
        latencies=[],
        cpu_seconds=cpu,
        commands=0,
        peaks=peaks,
        concurrency=concurrency,
        latency_ms=0,
    )


def steady_rate(completions: list[float]) -> float:
    """Completions per second between the 10th and the 90th percentile of completion times:
    the rate a long backlog would see, without the ramp-up and the tail of a finite batch."""
    ordered = sorted(completions)
    if len(ordered) < 20:
        return 0.0
    low, high = len(ordered) // 10, len(ordered) * 9 // 10
    span = ordered[high] - ordered[low]
    return (high - low) / span if span > 0 else 0.0


def summarise(
    run: str,
    *,
    emails: int,
    elapsed: float,
    completions: list[float],
    latencies: list[float],
    cpu_seconds: float,
    commands: int,
    peaks: list[int],
    concurrency: int,
    latency_ms: float,
    **extra: Any,
) -> dict[str, Any]:
    ceiling = concurrency / (latency_ms / 1000) if latency_ms else None
    # Completions are classifications; in the two-turn mix an email is a thread's first email or
    # its answer, so the rate of classifications is scaled to emails.
    steady = steady_rate(completions) * emails / max(1, len(completions))
    rate = steady or emails / elapsed
    return {
        "run": run,
        **extra,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "emails": emails,
        "seconds": round(elapsed, 2),
        "emails_per_s": round(rate, 1),
        "wall_emails_per_s": round(emails / elapsed, 1),
        "ceiling_per_s": round(ceiling, 1) if ceiling else None,
        "share_of_ceiling": round(rate / ceiling, 3) if ceiling else None,
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "cpu_ms_per_email": round(cpu_seconds * 1000 / max(1, emails), 3),
        "redis_commands_per_email": round(commands / max(1, emails), 1),
        "peak_rss_mb": [round(p / 2**20, 1) for p in peaks],
    }


def worker_run(
    base: str,
    emulator: RemoteEmulator,
    *,
    pool: str,
    concurrency: int,
    threads: int,
    latency_ms: float,
    vague_every: int,
    log_level: str = "INFO",
    paced_per_second: float = 0.0,
) -> dict[str, Any]:
    """Our worker: one process of the given pool, the emulator at `latency_ms`.

    By default the whole backlog is loaded before the worker consumes (throughput); with
    `paced_per_second`, emails arrive at that rate while it runs (service latency)."""
    emulator.reset()
    emulator.configure(latency_ms=latency_ms)
    env = worker_env(f"{base}/11", f"{base}/12", emulator.base_url, TRIAGE_LOG_LEVEL=log_level)
    # The worker starts on the replies queue only; the backlog is loaded, then the triage queue
    # is added by remote control and the clock starts: start-up and the producer's parsing (CPU
    # shared on this machine, elsewhere in production) are not part of the measurement.
    worker = start_worker(
        env, pool=pool, concurrency=concurrency, stdout=subprocess.DEVNULL, queues="replies"
    )
    client = redis.Redis.from_url(env["TRIAGE_REDIS_URL"])
    os.environ.update(env)
    settings = Settings()
    enqueuer = Enqueuer(settings, client)
    time.sleep(6)  # start-up (and prefork's children) are not measured
    commands_before = command_count(client)
    load = Load(enqueuer.enqueue_bytes, client, threads, vague_every, f"w{time.time_ns()}")
    if not paced_per_second:
        load.enqueue_all()
    meter = ProcessMeter(worker.pid)
    meter.start()
    started = time.perf_counter()
    consume_triage_queue(settings)
    if paced_per_second:
        pacer = threading.Thread(target=load.enqueue_all, args=(paced_per_second,), daemon=True)
        pacer.start()
    latencies = load.follow(900)
    elapsed = time.perf_counter() - started
    commands = command_count(client) - commands_before
    cpu, peaks = meter.stop()
    worker.stop()
    return summarise(
        f"worker-{pool}",
        rss_growth_after_warmup_mb=meter.rss_growth_mb(),
        pool=pool,
        threads=threads,
        emails=threads + load.answers,
        elapsed=elapsed,
        completions=load.completions or [],
        latencies=latencies,
        cpu_seconds=cpu,
        commands=commands,
        peaks=peaks,
        concurrency=concurrency,
        latency_ms=latency_ms,
    )


def floor_run(
    base: str, emulator: RemoteEmulator, *, concurrency: int, emails: int, latency_ms: float
) -> dict[str, Any]:
    """The floor: a bare loop doing one SDK call and one Redis write per email, nothing else."""
    emulator.reset()
    emulator.configure(latency_ms=latency_ms)
    client = redis.Redis.from_url(f"{base}/11")
    client.flushdb()
    claude = anthropic.Anthropic(api_key="sk-bench", base_url=emulator.base_url, max_retries=0)
    schema = {"type": "object", "properties": {"category": {"type": "string"}}}

    def one(i: int) -> float:
        begun = time.perf_counter()
        message = claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=256,
            system="Classify the email.",
            messages=[{"role": "user", "content": CLEAR[i % 3]}],
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
        client.set(f"floor:{i}", message.content[0].text)  # type: ignore[union-attr]
        completions.append(time.time())
        return time.perf_counter() - begun

    completions: list[float] = []

    process = psutil.Process()
    cpu_before = sum(process.cpu_times()[:2])
    commands_before = command_count(client)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(emails)))
    elapsed = time.perf_counter() - started
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    return summarise(
        "floor",
        emails=emails,
        elapsed=elapsed,
        completions=completions,
        latencies=latencies,
        cpu_seconds=cpu,
        commands=command_count(client) - commands_before,
        peaks=[process.memory_info().rss],
        concurrency=concurrency,
        latency_ms=latency_ms,
    )


def naive_run(
    base: str, emulator: RemoteEmulator, *, emails: int, latency_ms: float
) -> dict[str, Any]:
    """The seed's pattern the obvious way: JSON GET/SET per task, default prefork pool."""
    emulator.reset()
    emulator.configure(latency_ms=latency_ms)
    state, broker = f"{base}/11", f"{base}/12"
    env = worker_env(state, broker, emulator.base_url)
    env |= {"NAIVE_REDIS_URL": state, "NAIVE_BROKER_URL": broker}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.naive",
        "worker",
        "--loglevel",
        "WARNING",
    ]
    popen = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = Process("naive", popen)
    client = redis.Redis.from_url(state)
    from bench.naive import app

    app.conf.broker_url = broker
    time.sleep(6)
    meter = ProcessMeter(worker.pid)
    meter.start()
    commands_before = command_count(client)
    started = time.perf_counter()
    sent: dict[str, float] = {}
    for i in range(emails):
        thread_id = f"n{i}"
        sent[thread_id] = time.time()
        app.send_task("naive.triage", args=[thread_id, CLEAR[i % 3]])
    latencies: list[float] = []
    completions: list[float] = []
    deadline = time.monotonic() + 900
    while len(latencies) < emails:
        if time.monotonic() > deadline:
            raise SystemExit("naive baseline not done within 900 s")
        done = client.blpop(["naive:done"], timeout=1)
        if done:
            latencies.append(time.time() - sent[done[1].decode()])
            completions.append(time.time())
    elapsed = time.perf_counter() - started
    commands = command_count(client) - commands_before
    cpu, peaks = meter.stop()
    worker.stop()
    concurrency = len(peaks) - 1 or 1  # prefork children
    return summarise(
        "naive-prefork",
        emails=emails,
        elapsed=elapsed,
        completions=completions,
        latencies=latencies,
        cpu_seconds=cpu,
        commands=commands,
        peaks=peaks,
        concurrency=concurrency,
        latency_ms=latency_ms,
    )


def table(results: list[dict[str, Any]]) -> str:
    columns = [
        ("run", "run"),
        ("concurrency", "conc"),
        ("latency_ms", "lat ms"),
        ("emails", "emails"),
        ("emails_per_s", "emails/s"),
        ("wall_emails_per_s", "wall emails/s"),
        ("share_of_ceiling", "of ceiling"),
        ("p50_ms", "p50 ms"),
        ("p95_ms", "p95 ms"),
        ("p99_ms", "p99 ms"),
        ("cpu_ms_per_email", "cpu ms/email"),
        ("redis_commands_per_email", "redis cmds/email"),
        ("round_trips_per_email", "round trips/email"),
        ("peak_rss_mb", "peak RSS MB"),
    ]
    rows = [[title for _, title in columns]]
    rows += [[str(r.get(key, "")) for key, _ in columns] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--emails", type=int, default=2000, help="threads per worker run")
    parser.add_argument("--naive-emails", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--vague-every", type=int, default=5, help="every Nth thread is two-turn")
    parser.add_argument("--rss-emails", type=int, default=20_000, help="the long run (0: skip)")
    parser.add_argument(
        "--accounting-emails", type=int, default=500, help="the MONITOR run (0: skip)"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="the worker's TRIAGE_LOG_LEVEL (default: as shipped)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.emails, args.naive_emails, args.rss_emails, args.accounting_emails = 200, 20, 0, 100
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("celery").setLevel(logging.WARNING)
    results: list[dict[str, Any]] = []

    def emit(result: dict[str, Any]) -> None:
        results.append(result)
        print(json.dumps(result), flush=True)

    latency = args.latency_ms
    run_worker = partial(worker_run, log_level=args.log_level)
    emulator = RemoteEmulator()
    with redis_base() as base:
        emit(
            floor_run(
                base, emulator, concurrency=args.concurrency, emails=args.emails, latency_ms=latency
            )
        )
        emit(celery_noop_run(base, emulator, concurrency=args.concurrency, tasks=args.emails * 2))
        one_turn = run_worker(
            base,
            emulator,
            pool="threads",
            concurrency=args.concurrency,
            threads=args.emails,
            latency_ms=latency,
            vague_every=0,
        )
        emit(one_turn | {"mix": "one-turn only"})
        paced = args.concurrency / (latency / 1000) / 2 if latency else 100.0
        emit(
            run_worker(
                base,
                emulator,
                pool="threads",
                concurrency=args.concurrency,
                threads=args.emails // 2,
                latency_ms=latency,
                vague_every=0,
                paced_per_second=paced,
            )
            | {"mix": f"one-turn, paced at {paced:.0f}/s (half the ceiling): service latency"}
        )
        emit(
            run_worker(
                base,
                emulator,
                pool="threads",
                concurrency=args.concurrency,
                threads=args.emails,
                latency_ms=latency,
                vague_every=args.vague_every,
            )
            | {"mix": f"1 in {args.vague_every} two-turn"}
        )
        if args.accounting_emails:
            emit(accounting_run(base, emulator, args.accounting_emails))
        emit(naive_run(base, emulator, emails=args.naive_emails, latency_ms=latency))
        for pool_latency in (0.0, latency):
            for pool, concurrency in (
                ("threads", 64),
                ("prefork", 2),
                ("gevent", args.concurrency),
            ):
                if pool == "gevent" and not gevent_available():
                    continue
                size = args.naive_emails if pool == "prefork" and pool_latency else args.emails // 2
                emit(
                    run_worker(
                        base,
                        emulator,
                        pool=pool,
                        concurrency=concurrency,
                        threads=size,
                        latency_ms=pool_latency,
                        vague_every=0,
                    )
                    | {"mix": "pools"}
                )
        if args.rss_emails:
            emit(
                run_worker(
                    base,
                    emulator,
                    pool="threads",
                    concurrency=args.concurrency,
                    threads=args.rss_emails,
                    latency_ms=0,
                    vague_every=0,
                )
                | {"mix": "long run (RSS growth)"}
            )
    emulator.stop()
    print()
    print(table(results))


def gevent_available() -> bool:
    try:
        import gevent  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
