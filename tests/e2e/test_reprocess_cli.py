"""Reprocessing end to end: a real worker triages a backlog, `triage reprocess` (a subprocess, as a
user runs it) re-decides it under a taxonomy with an added category; runs killed mid-way resume;
shadow mode in a real worker. The emulator serves Messages and Message Batches."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from helpers import (
    RETURNS_TAXONOMY,
    base_env,
    outbox,
    run_triage,
    stream_events,
    wait_for,
    wait_settled,
)

from common import keys
from common.prices import DEFAULT_PRICES
from producers.submit import thread_id_for
from worker.state.ledger import Ledger
from worker.state.runs import LEDGER_REPROCESS, SHADOW, RunStore

#: (body, live category, category under the RETURNS taxonomy); the last one is vague.
TOPICS = [
    ("I was charged twice for my subscription.", "BILLING", "BILLING"),
    (
        "My parcel came broken: I want to start returns, how long do returns take?",
        "SHIPPING",
        "RETURNS",
    ),
    ("The app shows an error message when I log in.", "TECHNICAL", "TECHNICAL"),
    ("My parcel never arrived and the tracking is stuck.", "SHIPPING", "SHIPPING"),
    ("Hi, my thing isn't working. Can you help?", None, None),
]


def write_mbox(path: Path, count: int, tag: str) -> Path:
    with path.open("w") as out:
        for i in range(count):
            out.write(
                f"From c{i}@example.org Mon Nov 23 09:00:00 2026\n"
                f"From: c{i}@example.org\nTo: support@example.com\nSubject: Case {i}\n"
                f"Message-ID: <{tag}-{i}@example.org>\n\n{TOPICS[i % len(TOPICS)][0]}\n\n"
            )
    return path


def live_state(r: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key but the runs', the ledger's days and the running workers' heartbeats, as DUMP
    bytes (streams included)."""
    skip = (b"triage:run", b"triage:ledger:2", b"triage:worker:")
    names = sorted(k for k in r.keys("*") if not k.startswith(skip))
    return {name: r.dump(name) for name in names}


def reprocess_calls(r: redis.Redis) -> int:
    totals = Ledger(r, DEFAULT_PRICES, 3600).totals(dt.datetime.now(dt.UTC).date())
    return int(totals.by_category.get(LEDGER_REPROCESS, {}).get("calls", 0))


def test_a_backlog_reprocessed_under_a_new_taxonomy_leaves_live_alone_until_applied(
    r, state_url, broker_url, emulator, worker, tmp_path
):
    """A backlog triaged once by the worker, then reprocessed with RETURNS added: every email is
    decided again (through a Message Batch), live threads, events and outbox are untouched and no
    reply is sent; the diff shows the moved emails; apply emits one `reclassified` event per
    changed thread and a second apply emits none."""
    count = 40
    mbox = write_mbox(tmp_path / "backlog.mbox", count, "bk")
    taxonomy = tmp_path / "returns.yaml"
    taxonomy.write_text(RETURNS_TAXONOMY)
    env = base_env(state_url, broker_url, emulator.base_url)
    enqueued = run_triage("enqueue", str(mbox), env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    threads = {i: thread_id_for(f"<bk-{i}@example.org>") for i in range(count)}
    wait_settled(r, threads.values(), 60)
    decided = stream_events(r, "classified", "clarification")
    assert len(decided) == count
    # the worker may still be sending the questions it decided: wait for every one to be sent
    wait_for(lambda: r.hlen(keys.REPLIES_PENDING) == 0, 60, "the questions to be sent")
    before, replies = live_state(r), outbox(r)

    emulator.configure(batch_delay_s=0.3)
    run = run_triage(
        "reprocess",
        "--run",
        "returns",
        str(mbox),
        "--taxonomy",
        str(taxonomy),
        "--via",
        "batch",
        "--poll-seconds",
        "0.1",
        "--yes",
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert f"{count} emails in {count} threads ({count} already seen live)" in run.stderr
    assert f"run returns done: {count} threads ({count} emails) decided" in run.stdout
    assert live_state(r) == before and outbox(r) == replies
    assert reprocess_calls(r) == count

    document = json.loads(run_triage("reprocess", "diff", "returns", "--json", env=env).stdout)
    moved = {
        threads[i] for i in range(count) if TOPICS[i % len(TOPICS)][1:] == ("SHIPPING", "RETURNS")
    }
    rows = {row["thread_id"]: (row["from"], row["to"]) for row in document["rows"]}
    assert {t for t, pair in rows.items() if pair == ("SHIPPING", "RETURNS")} == moved
    summary = document["summary"]
    assert {"from": "SHIPPING", "to": "RETURNS", "count": len(moved)} in summary["pairs"]

    applied = run_triage("reprocess", "apply", "returns", "--yes", env=env)
    assert applied.returncode == 0, applied.stderr
    events = stream_events(r, "reclassified")
    assert sorted(e["thread_id"] for e in events) == sorted(moved)
    assert all(e["run"] == "returns" and e["new"]["category"] == "RETURNS" for e in events)
    again = run_triage("reprocess", "apply", "returns", "--yes", env=env)
    assert again.returncode == 0 and "applied 0" in again.stdout
    assert len(stream_events(r, "reclassified")) == len(moved)
    assert outbox(r) == replies  # promoting a decision never mails anyone


def start_run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "triage", "reprocess", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_run_stopped_mid_way_resumes_without_paying_for_finished_emails(
    r, state_url, broker_url, emulator, tmp_path
):
    """Ctrl-C, then kill -9, in the middle of a live run: each `--resume` goes on where it
    stopped, and in the end the ledger has one call per email (nothing finished was paid for
    twice) and the run one decision per email."""
    count = 30
    mbox = write_mbox(tmp_path / "new.mbox", count, "kill")
    emulator.configure(latency_ms=150)
    env = base_env(state_url, broker_url, emulator.base_url)
    runs = RunStore(r, 30)
    args = ("--run", "k", "--via", "live", "--concurrency", "2", "--yes")

    first = start_run(env, *args, str(mbox))
    wait_for(lambda: runs.decision_count("k") >= 6, 30, "six decisions")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130, err
    assert "--resume` continues" in err
    stopped_at = runs.decision_count("k")
    assert stopped_at < count and runs.meta("k")["status"] == "interrupted"

    resume = (*args[:2], "--resume", "--concurrency", "2", "--yes")
    second = start_run(env, *resume)
    wait_for(lambda: runs.decision_count("k") >= stopped_at + 6, 30, "six more decisions")
    second.kill()  # a crash, or a lost machine: nothing runs after this
    second.communicate(timeout=10)
    assert runs.decision_count("k") < count

    third = run_triage("reprocess", *resume, env=env, timeout=90)
    assert third.returncode == 0, third.stderr
    assert runs.decision_count("k") == count
    assert reprocess_calls(r) == count  # one paid call per email recorded
    assert r.xlen(keys.run_events("k")) == count  # each decided once
    calls = [q for q in emulator.requests if q["path"] == "/v1/messages"]
    assert len(calls) <= count + 2  # at most the calls in flight when it was killed, again


SHADOW_CONFIG = "taxonomy: returns.yaml\n"


def comparable(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (e["thread_id"], e["type"], e.get("category"), e.get("reply_id"), tuple(e["email_ids"]))
        for e in events
    )


def test_shadow_mode_records_every_live_decision_and_changes_none(
    r, state_url, broker_url, emulator, worker, worker_factory, tmp_path
):
    """A worker with TRIAGE_SHADOW_CONFIG at sample 1.0 records a shadow decision for each live
    decision; its live events and replies are those of a worker without shadow."""
    count = 15
    mbox = write_mbox(tmp_path / "live.mbox", count, "sh")
    (tmp_path / "returns.yaml").write_text(RETURNS_TAXONOMY)
    (tmp_path / "shadow.yaml").write_text(SHADOW_CONFIG)

    plain_env = base_env(state_url, broker_url, emulator.base_url)
    assert run_triage("enqueue", str(mbox), env=plain_env).returncode == 0
    ids = [thread_id_for(f"<sh-{i}@example.org>") for i in range(count)]
    wait_settled(r, ids, 60)
    wait_for(lambda: len(outbox(r)) == count // len(TOPICS), 30, "the questions sent")
    without, replies_without = comparable(stream_events(r)), len(outbox(r))
    r.flushdb()

    handle = worker_factory(
        TRIAGE_SHADOW_CONFIG=str(tmp_path / "shadow.yaml"), TRIAGE_SHADOW_SAMPLE="1.0"
    )
    shadow_env = handle.env
    assert run_triage("enqueue", str(mbox), env=shadow_env).returncode == 0
    wait_settled(r, ids, 60)
    runs = RunStore(r, 30)
    wait_for(lambda: runs.decision_count(SHADOW) == count, 60, "a shadow decision per email")
    wait_for(lambda: len(outbox(r)) == replies_without, 30, "the questions sent")
    assert comparable(stream_events(r)) == without
    assert len(outbox(r)) == replies_without
    shadowed = list(runs.scan_decisions(SHADOW))
    returns = [d for d in shadowed if d.category == "RETURNS"]
    assert len(returns) == count // len(TOPICS)
    assert all(d.live is not None and d.live.category == "SHIPPING" for d in returns)
    assert handle.logs("shadow.serving")
    document = json.loads(run_triage("reprocess", "diff", SHADOW, "--json", env=shadow_env).stdout)
    assert {"from": "SHIPPING", "to": "RETURNS", "count": len(returns)} in document["summary"][
        "pairs"
    ]
