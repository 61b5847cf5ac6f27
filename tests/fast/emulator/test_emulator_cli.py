"""The click command in a subprocess, and the admin endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest
from click.testing import CliRunner
from helpers import MODEL, TURN2, emulator_url, user

from emulator.command import emulator_command
from emulator.server import EmulatorThread


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`python -m emulator` on a free port; yields (base URL, stdout file, record file)."""
    out = tmp_path / "stdout.log"
    record = tmp_path / "record.jsonl"
    env = {**os.environ, "EMULATOR_API_KEY": "secret", "EMULATOR_SEED": "3"}
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "--port",
                "0",
                "--record",
                str(record),
                "--fault",
                "overloaded:0",
                "--latency-ms",
                "5",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield emulator_url(proc, out), out, record
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0, out.read_text()


def test_cli_serves_the_sdk(cli_server: tuple[str, Path, Path]) -> None:
    """The emulator command serves the SDK, checks the key, records calls, never logs the key."""
    url, out, record = cli_server
    with anthropic.Anthropic(api_key="secret", base_url=url, max_retries=0) as client:
        message = client.messages.create(model=MODEL, max_tokens=50, messages=[user(TURN2)])
        assert message.content[0].type == "text" and message.content[0].text == "BILLING"
        with pytest.raises(anthropic.AuthenticationError):
            client.with_options(api_key="nope").messages.create(
                model=MODEL, max_tokens=50, messages=[user(TURN2)]
            )
    config = httpx2.get(f"{url}/_emulator/config").json()
    assert config["seed"] == 3 and config["api_key"] == "***"
    assert config["faults"] == [
        {"kind": "overloaded", "rate": 0.0, "match": None, "times": None, "text": None}
    ]
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [entry["status"] for entry in lines] == [200, 401]
    logs = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    requests = [
        entry
        for entry in logs
        if entry.get("event") == "emulator.request" and entry["path"] == "/v1/messages"
    ]
    assert len(requests) == 2 and requests[0]["status"] == 200
    assert {"method", "path", "input_tokens", "output_tokens", "latency_ms", "request_id"} <= set(
        requests[0]
    )
    assert "secret" not in out.read_text()


def test_cli_rejects_bad_fault() -> None:
    """An unknown fault kind on the command line is an error."""
    result = CliRunner().invoke(emulator_command, ["--fault", "gremlins:0.5"])
    assert result.exit_code != 0
    assert "unknown fault kind" in result.output


def test_admin_endpoints(emulator: EmulatorThread) -> None:
    """The admin endpoints read and change the config, list recorded requests, and reset."""
    base = emulator.base_url
    assert httpx2.get(f"{base}/_emulator/config").json()["latency_ms"] == 0
    changed = httpx2.post(
        f"{base}/_emulator/config",
        json={"rpm": 5, "faults": [{"kind": "refusal", "times": 1}]},
    )
    assert changed.status_code == 200 and changed.json()["rpm"] == 5
    assert emulator.config.rpm == 5
    bad = httpx2.post(f"{base}/_emulator/config", json={"rpm": "lots", "nope": 1})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"

    with anthropic.Anthropic(api_key="k", base_url=base, max_retries=0) as client:
        refused = client.messages.create(model=MODEL, max_tokens=50, messages=[user(TURN2)])
        assert refused.stop_reason == "refusal"
        client.messages.count_tokens(model=MODEL, messages=[user(TURN2)])
    recorded = httpx2.get(f"{base}/_emulator/requests").json()
    assert [r["path"] for r in recorded] == ["/v1/messages", "/v1/messages/count_tokens"]
    assert recorded[1]["response"]["input_tokens"] > 0

    assert httpx2.post(f"{base}/_emulator/reset").json() == {"ok": True}
    assert httpx2.get(f"{base}/_emulator/requests").json() == []
    assert emulator.config.rpm is None and emulator.config.faults == ()


def test_recording_is_bounded(emulator: EmulatorThread) -> None:
    """Only the newest max_recorded requests are kept."""
    emulator.configure(max_recorded=3)
    with anthropic.Anthropic(api_key="k", base_url=emulator.base_url, max_retries=0) as client:
        for i in range(5):
            client.messages.create(model=MODEL, max_tokens=20, messages=[user(f"hi {i}")])
    assert [r["body"]["messages"][0]["content"] for r in emulator.requests] == [
        "hi 2",
        "hi 3",
        "hi 4",
    ]
