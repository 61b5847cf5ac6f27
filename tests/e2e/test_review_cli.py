"""The review lane as people use it: a real worker decides, `triage review` confirms or corrects."""

from __future__ import annotations

import json

from helpers import events, make_email, run_triage, wait_for

from common import keys
from producers.enqueue import Enqueuer

BILLING = "I was charged twice for my subscription, please refund the duplicate payment."


def test_review_list_accept_correct_and_export(r, emulator, worker_factory, tmp_path):
    """A low-confidence decision is listed; accept and correct emit events and set the status."""
    worker = worker_factory(TRIAGE_REVIEW_BELOW="0.95")
    env = worker.env
    enqueuer = Enqueuer(worker.settings(), r)
    first = enqueuer.enqueue_bytes(make_email("<rc-1@example.org>", BILLING)).thread_id
    second = enqueuer.enqueue_bytes(make_email("<rc-2@example.org>", BILLING)).thread_id
    wait_for(lambda: len(events(r)) >= 2, what="two decisions")
    assert all(event["needs_review"] for event in events(r))
    listed = run_triage("review", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    waiting = {json.loads(line)["thread_id"] for line in listed.stdout.splitlines()}
    assert waiting == {first, second}
    accepted = run_triage("review", "accept", first, env=env)
    assert accepted.returncode == 0 and "accepted as BILLING" in accepted.stdout
    corrected = run_triage(
        "review", "correct", second, "other", "--field", "note=x", "--note", "wrong", env=env
    )
    assert corrected.returncode == 0, corrected.stderr
    assert "BILLING -> OTHER" in corrected.stdout
    types = [e["type"] for e in events(r, ("review_accepted", "corrected"))]
    assert types == ["review_accepted", "corrected"]
    assert r.hget(keys.thread_meta(first), "status") == b"classified"
    assert r.hget(keys.thread_meta(second), "category") == b"OTHER"
    assert run_triage("review", "list", "--json", env=env).stdout == ""
    again = run_triage("review", "accept", first, env=env)
    assert again.returncode == 1 and "is classified" in again.stderr
    unknown = run_triage("review", "correct", first, "NOPE", env=env)
    assert unknown.returncode == 2 and "BILLING" in unknown.stderr
    exported = tmp_path / "labelled.jsonl"
    assert run_triage("review", "export", str(exported), env=env).returncode == 0
    cases = [json.loads(line) for line in exported.read_text().splitlines()]
    assert {case["expected"]["category"] for case in cases} == {"BILLING", "OTHER"}


def test_config_show_prints_prompt_schema_and_version(r, worker):
    """`triage config show --json` gives the effective prompt, schema and prompt version."""
    shown = run_triage("config", "show", "--json", env=worker.env)
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    assert len(config["prompt_version"]) == 12 and "BILLING" in config["system_prompt"]
    assert "priority" in config["schema"]["properties"]


def test_thread_list_filters_by_priority_and_language(r, emulator, worker, enqueue):
    """`thread list --priority/--language` select on the decision's fields; JSON shows them."""
    english = enqueue(make_email("<pl-1@example.org>", BILLING)).thread_id
    german = enqueue(
        make_email("<pl-2@example.org>", "Ich wurde zweimal abgebucht, bitte um Erstattung.")
    ).thread_id
    wait_for(lambda: len(events(r)) >= 2, what="two decisions")
    by_language = run_triage("thread", "list", "--language", "de", "--json", env=worker.env)
    assert by_language.returncode == 0, by_language.stderr
    [row] = [json.loads(line) for line in by_language.stdout.splitlines()]
    assert row["thread_id"] == german and row["language"] == "de"
    assert isinstance(row["fields"], dict) and row["priority"] == "urgent"
    urgent = run_triage("thread", "list", "--priority", "urgent", "--json", env=worker.env)
    assert {json.loads(line)["thread_id"] for line in urgent.stdout.splitlines()} == {
        english,
        german,
    }
    none = run_triage("thread", "list", "--priority", "low", "--json", env=worker.env)
    assert none.returncode == 0 and none.stdout == ""
