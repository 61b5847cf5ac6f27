"""The `triage` command as a user runs it: subprocesses, real services, readable errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import TEST_KEY, base_env, make_email, run_triage

from triage.localstack import free_port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    env.update(extra)
    return env


def test_bad_setting_fails_with_one_clear_message(tmp_path):
    """A bad setting makes `triage` fail with one message naming it, no traceback."""
    eml = tmp_path / "a.eml"
    eml.write_bytes(make_email("<cli-1@example.org>", "hello"))
    result = run_triage("enqueue", str(eml), env=clean_env(TRIAGE_MAX_TOKENS="lots"))
    assert result.returncode != 0
    assert "invalid setting TRIAGE_MAX_TOKENS" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_celery_worker_reports_a_bad_setting():
    """A plain `celery worker` exits 2 naming the bad setting."""
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker"],
        env=clean_env(TRIAGE_MAX_CLARIFICATIONS="many"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid setting TRIAGE_MAX_CLARIFICATIONS" in result.stderr


def test_worker_refuses_to_start_without_a_key():
    """`triage worker` refuses to start without ANTHROPIC_API_KEY."""
    result = run_triage("worker", env=clean_env(), timeout=60)
    assert result.returncode != 0
    assert "ANTHROPIC_API_KEY" in result.stderr


def test_enqueue_and_thread_show(r, state_url, broker_url, emulator, worker, tmp_path):
    """`triage enqueue` counts and reports rejects; `thread show` and `dlq list` show results."""
    env = base_env(state_url, broker_url, emulator.base_url)
    good = tmp_path / "good.eml"
    good.write_bytes(make_email("<cli-2@example.org>", "My parcel never arrived."))
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"Subject: no sender\r\n\r\nbody\r\n")
    report = tmp_path / "rejects.jsonl"
    result = run_triage("enqueue", str(good), str(bad), str(good), "--report", str(report), env=env)
    assert result.returncode == 1, result.stderr
    assert "1 enqueued, 1 duplicate, 1 rejected" in result.stdout
    assert "no_sender" in result.stderr
    rejected = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["reason"] for r in rejected if r["type"] == "rejected"] == ["no_sender"]
    thread_id = result.stdout.split("-> thread ")[1].split()[0]
    missing = run_triage("thread", "show", "t-no-such-thread", env=env)
    assert missing.returncode == 1 and "no thread" in missing.stderr
    shown = run_triage("thread", "show", thread_id, env=env)
    assert shown.returncode == 0 and '"role": "user"' in shown.stdout
    assert TEST_KEY not in shown.stdout + shown.stderr + result.stdout + result.stderr
    letters = run_triage("dlq", "list", env=env)
    assert "no_sender" in letters.stdout


def test_run_command_from_nothing_plays_the_seed_conversation(tmp_path):
    """No Redis at the configured URL and no API key: `triage run` starts both itself."""
    env = clean_env(
        TRIAGE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        TRIAGE_RUN_EXIT_WHEN_DRAINED="1",
        TRIAGE_WORKER_CONCURRENCY="8",
        HOME=str(tmp_path),
    )
    result = run_triage("run", env=env, timeout=150)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "starting a private one" in output
    assert "starting the offline emulator" in output
    assert "All 4 sample threads decided." in output
    assert output.count("status=classified") == 4
    assert "category=BILLING" in output and "category=SHIPPING" in output
    assert "category=TECHNICAL" in output
    assert "clarifications=1" in output
    assert "Customer replies to our question <triage." in output
    assert output.count("stop_reason=end_turn") == 5  # four first turns + the seed's answer
