"""An empty ANTHROPIC_API_KEY (as .env files ship it) is "not set" for every entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import run_triage

REFUSAL = (
    "invalid setting ANTHROPIC_API_KEY: not set (use `triage run` to start the offline emulator, "
    "or set a key)"
)


def blank_key_env(tmp_path, key: str, **settings: str) -> dict[str, str]:
    """No TRIAGE_*/ANTHROPIC_* from the caller, the blank key, and a home of its own (so a
    `triage run` serving on this machine is not picked up)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    return env | {
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "ANTHROPIC_API_KEY": key,
        **settings,
    }


@pytest.mark.parametrize("key", ["", "   "], ids=["empty", "blank"])
def test_triage_worker_refuses_a_blank_key_in_one_line(tmp_path, key):
    """`triage worker` with `ANTHROPIC_API_KEY=` exits 2 with one line saying it is not set."""
    result = run_triage("worker", env=blank_key_env(tmp_path, key))
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"Error: {REFUSAL}"]


def test_plain_celery_worker_refuses_a_blank_key_in_one_line(tmp_path):
    """`celery -A worker.app worker` with `ANTHROPIC_API_KEY=` exits 2 naming the setting."""
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker"],
        env=blank_key_env(tmp_path, ""),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"triage: {REFUSAL}"]


def test_doctor_reports_a_blank_key_as_not_set(tmp_path, r, state_url):
    """`triage doctor` with `ANTHROPIC_API_KEY=` fails the api check: "not set", exit 1."""
    env = blank_key_env(tmp_path, "", TRIAGE_REDIS_URL=state_url)
    result = run_triage("doctor", "--json", env=env)
    assert result.returncode == 1, result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["api"] == {
        "name": "api",
        "status": "fail",
        "detail": "ANTHROPIC_API_KEY is not set",
    }
    assert checks["redis"]["status"] == "ok"
    plain = run_triage("doctor", env=env)
    assert plain.returncode == 1
    assert "FAIL  api                        ANTHROPIC_API_KEY is not set" in plain.stdout
