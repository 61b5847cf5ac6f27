"""`triage eval` as a user runs it (a subprocess against the emulator over HTTP): Ctrl-C still
reports the cases that finished, and the shipped labelled set runs end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from helpers import REPO, TEST_KEY, api_requests, wait_for


def eval_env(emulator: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    env.update({"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url})
    return env


def test_ctrl_c_stops_the_run_and_reports_the_finished_cases(tmp_path, emulator):
    """SIGINT mid-run: exit 130, and the report (terminal and report.json) holds exactly the
    cases that finished, marked interrupted."""
    emulator.configure(latency_ms=250)
    dataset = tmp_path / "slow.jsonl"
    case = {
        "emails": [
            {"from": "dana@example.org", "subject": "Parcel", "text": "My parcel never arrived."}
        ],
        "expected": {"category": "SHIPPING", "clarify": False},
    }
    dataset.write_text("".join(json.dumps({"id": f"c{n}", **case}) + "\n" for n in range(40)))
    out = tmp_path / "report"
    process = subprocess.Popen(
        [sys.executable, "-m", "triage", "eval", str(dataset), "--concurrency", "1",
         "--report", str(out)],
        env=eval_env(emulator), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: len(api_requests(emulator)) >= 3, 60, "three calls to be made")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    report = json.loads((out / "report.json").read_text())
    finished = report["run"]["cases_finished"]
    assert report["run"]["interrupted"] is True and 2 <= finished < 40
    assert [c["id"] for c in report["cases"]] == [f"c{n}" for n in range(finished)]
    assert all(c["predicted"] == "SHIPPING" for c in report["cases"])
    assert f"interrupted: {finished} of 40 cases finished" in stderr
    assert f"INTERRUPTED: {finished} of 40 cases finished" in stdout


def test_the_shipped_set_runs_end_to_end_against_the_emulator(tmp_path, emulator):
    """`triage eval evals/` on every shipped case: no failures, a report directory with plots,
    and --fail-under as a CI gate (the figures measure the harness, not a model)."""
    out = tmp_path / "report"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "triage", "eval", "evals/", "--report", str(out),
         "--fail-under", "50"],
        env=eval_env(emulator), cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]
    assert report["run"]["cases_total"] == report["run"]["cases_finished"] >= 200
    assert metrics["failures"]["total"] == 0
    assert metrics["accuracy"]["value"] >= 0.5
    assert {p.name for p in out.iterdir()} >= {"report.md", "confusion.png", "reliability.png"}
    assert time.monotonic() - started < 120
