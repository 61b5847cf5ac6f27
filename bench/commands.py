"""Redis commands per email, by who sent them and how: counted with MONITOR on a small run.

`INFO commandstats` (what the suite's throughput runs report) counts every command the server
executed, including each command inside our Lua scripts and the Celery broker's traffic, with no
way to tell them apart. This run watches MONITOR instead and attributes every command:

- to a process: the worker or the producer (this process), by the client's TCP port, looked
  up in each process's open connections at the end of the run; the bench's own polling
  connection is left out;
- to a database: thread state (`TRIAGE_REDIS_URL`) or the Celery broker (`TRIAGE_BROKER_URL`);
- as a round trip the client sent (a command, an EVALSHA, a MULTI that opens a transaction), a
  command sent in the same round trip (inside MULTI ... EXEC), or a command run inside a script
  (attributed to the client whose EVAL/EVALSHA started it).

MONITOR slows Redis down, so this run measures counts only, never speed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from typing import Any

import psutil
import redis

from bench.common import worker_env
from common import keys
from common.settings import Settings
from producers.enqueue import Enqueuer
from triage.localstack import start_worker

SENTINEL = "triage-bench-monitor-end"
SCRIPT_CALLS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL"}


class Monitor(threading.Thread):
    """Tallies MONITOR lines by (client address, db, kind, command) until the sentinel ECHO."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self._client = redis.Redis.from_url(url)
        self.tally: Counter[tuple[str, int, str, str]] = Counter()
        self.ready = threading.Event()
        self.finished = threading.Event()

    def run(self) -> None:
        last_caller = "?"
        in_transaction: set[str] = set()  # MULTI ... EXEC is sent as one round trip
        with self._client.monitor() as monitor:
            self.ready.set()
            for line in monitor.listen():
                command = str(line["command"])
                name = command.split(" ", 1)[0].upper()
                if name == "ECHO" and SENTINEL in command:
                    break
                address = str(line["client_address"])
                if address == "lua":
                    self.tally[(last_caller, int(line["db"]), "script", name)] += 1
                    continue
                caller = f"{address}:{line['client_port']}"
                if name in SCRIPT_CALLS:
                    last_caller = caller
                kind = "pipelined" if caller in in_transaction else "client"
                if name == "MULTI":
                    in_transaction.add(caller)
                elif name in ("EXEC", "DISCARD"):
                    in_transaction.discard(caller)
                self.tally[(caller, int(line["db"]), kind, name)] += 1
        self.finished.set()


def ports_of(pid: int) -> set[str]:
    """`address:port` of every TCP connection a process tree has open (the client side)."""
    found: set[str] = set()
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        for conn in proc.net_connections(kind="tcp"):
            if conn.laddr:
                found.add(f"{conn.laddr.ip}:{conn.laddr.port}")
    return found


def accounting_run(base: str, emulator: Any, emails: int) -> dict[str, Any]:
    """One worker (threads), `emails` one-turn threads; commands per email by origin."""
    emulator.reset()
    emulator.configure(latency_ms=0)
    state, broker = f"{base}/11", f"{base}/12"
    state_db, broker_db = 11, 12
    env = worker_env(state, broker, emulator.base_url)
    worker = start_worker(env, pool="threads", concurrency=64, stdout=subprocess.DEVNULL)
    os.environ.update(env)
    client = redis.Redis.from_url(state)
    enqueuer = Enqueuer(Settings(), client)
    poller = redis.Redis.from_url(state, single_connection_client=True)
    poller_address = str(poller.client_info()["addr"])
    time.sleep(6)  # start-up traffic (queue declarations, ...) is not part of the count
    monitor = Monitor(state)
    monitor.start()
    monitor.ready.wait(10)
    time.sleep(0.2)
    from bench.common import TOPICS

    for i in range(emails):
        headers = f"From: c@example.org\r\nTo: support@example.com\r\nSubject: Case {i}\r\n"
        message = f"{headers}Message-ID: <acct-{i}-{time.time_ns()}@example.org>\r\n\r\n"
        enqueuer.enqueue_bytes((message + TOPICS[i % 3] + "\r\n").encode())
    deadline = time.monotonic() + 300
    while int(poller.xlen(keys.EVENTS)) < emails:
        if time.monotonic() > deadline:
            raise SystemExit("accounting run: not done within 300 s")
        time.sleep(0.2)
    worker_ports = ports_of(worker.pid)
    own_ports = ports_of(os.getpid()) - {poller_address}
    poller.echo(SENTINEL)
    monitor.finished.wait(30)
    worker.stop()

    per_email: dict[str, float] = Counter()
    by_command: Counter[str] = Counter()
    for (caller, db, kind, name), count in monitor.tally.items():
        if caller == poller_address:
            continue
        who = "worker" if caller in worker_ports else "producer" if caller in own_ports else "other"
        where = "state" if db == state_db else "broker" if db == broker_db else f"db{db}"
        per_email[f"{who}_{where}_{kind}"] += count
        if who == "worker":
            by_command[f"{where}:{kind}:{name}"] += count
    result: dict[str, Any] = {
        "run": "redis-accounting",
        "emails": emails,
        **{key: round(value / emails, 2) for key, value in sorted(per_email.items())},
    }
    round_trips = sum(v for k, v in per_email.items() if k.endswith("_client"))
    client_commands = sum(v for k, v in per_email.items() if k.endswith(("_client", "_pipelined")))
    state_round_trips = sum(
        v for k, v in per_email.items() if "_state_" in k and k.endswith("_client")
    )
    result["round_trips_per_email"] = round(round_trips / emails, 2)
    result["client_commands_per_email"] = round(client_commands / emails, 2)
    result["state_round_trips_per_email"] = round(state_round_trips / emails, 2)
    result["server_commands_per_email"] = round(sum(per_email.values()) / emails, 2)
    result["redis_commands_per_email"] = result["server_commands_per_email"]  # the table's column
    result["worker_commands"] = {
        name: round(count / emails, 2) for name, count in by_command.most_common()
    }
    return result
