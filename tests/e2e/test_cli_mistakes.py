"""Ordinary mistakes get one line naming the problem and the setting, never a traceback."""

from __future__ import annotations

import pytest
from helpers import run_triage

from triage.localstack import free_port

COMMANDS = [
    ("thread", "show", "t1"),
    ("thread", "list"),
    ("outbox",),
    ("stats",),
    ("dlq", "list"),
]


def env_with(**settings: str) -> dict[str, str]:
    """A clean environment (no TRIAGE_*/ANTHROPIC_* from the caller) plus `settings`."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    return env | settings


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unreachable_redis_is_one_line_naming_the_setting(command):
    """A Redis that does not answer: exit 1, one `Error:` line naming TRIAGE_REDIS_URL."""
    env = env_with(TRIAGE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = run_triage(*command, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("Error: cannot reach Redis") and "TRIAGE_REDIS_URL" in line


@pytest.mark.parametrize("command", [*COMMANDS, ("enqueue", "-"), ("doctor",)], ids=" ".join)
def test_a_url_without_a_scheme_is_a_bad_setting(command):
    """`TRIAGE_REDIS_URL=localhost:6411`: exit 2 and one line saying how to write the URL."""
    result = run_triage(*command, env=env_with(TRIAGE_REDIS_URL="localhost:6411"))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert "invalid setting TRIAGE_REDIS_URL" in result.stderr and "redis://" in result.stderr


def test_help_has_a_short_flag_and_log_level_ignores_case():
    """`triage -h` prints the help; `TRIAGE_LOG_LEVEL=info` is accepted."""
    result = run_triage("-h", env=env_with(TRIAGE_LOG_LEVEL="info"))
    assert result.returncode == 0 and "Usage: triage" in result.stdout
