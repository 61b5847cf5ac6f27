"""Reprocessing runs in-process: real Redis, the emulator over HTTP (Messages and Batches), the
worker's own drain step for the live side, `triage reprocess` through click in this process.

The live side is triaged first with the default taxonomy; runs then re-decide it with a taxonomy
that adds RETURNS (the emulator classifies a custom label when the customer writes its word).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from click.testing import CliRunner, Result
from helpers import RETURNS_TAXONOMY, SEED_FIRST, base_env, make_email, stream_events, wait_for

from common import keys
from common.errors import ConfigError
from common.prices import DEFAULT_PRICES
from common.runconfig import RunConfigError, load_run_config, parse_override
from emulator.config import FaultRule
from reprocess.apply import matches, parse_pair
from reprocess.diff import Summary
from reprocess.execute import Executor
from reprocess.plan import Planner, Selection
from reprocess.report import matrix
from triage.main import cli
from worker.decide.claude import BatchClient, make_client
from worker.decide.rerun import derive_spec
from worker.events import run_json_schema
from worker.shadow import ShadowService, build_shadow, sampled
from worker.state.ledger import Ledger
from worker.state.runs import LEDGER_REPROCESS, SHADOW, RunStore
from worker.state.store import ThreadStore

#: Message-ID suffix -> (body, live label, label under the RETURNS taxonomy).
MAIL = {
    "0": ("I was charged twice for my subscription.", "BILLING", "BILLING"),
    "1": (
        "I want to send the parcel back. How do returns work? Are returns free?",
        "SHIPPING",
        "RETURNS",
    ),
    "2": ("My parcel never arrived and the tracking is stuck.", "SHIPPING", "SHIPPING"),
    "3": ("The app shows an error message when I log in.", "TECHNICAL", "TECHNICAL"),
    "4": (SEED_FIRST, "(question)", "OTHER"),  # live asked: the run may not ask again
    "5": ("Two returns are still open: please process my returns.", "(question)", "RETURNS"),
    "6": (
        "My parcel came broken: I want to start returns, and how long do returns take?",
        "SHIPPING",
        "RETURNS",
    ),
}


def raw(key: str, tag: str = "rp") -> bytes:
    return make_email(f"<{tag}-{key}@example.org>", MAIL[key][0], sender=f"c{key}@example.org")


@pytest.fixture
def world(in_process: Any) -> Any:
    return in_process()


@pytest.fixture
def taxonomy(tmp_path: Path) -> Path:
    path = tmp_path / "returns.yaml"
    path.write_text(RETURNS_TAXONOMY)
    return path


@pytest.fixture
def live(world: Any) -> dict[str, str]:
    """The mail triaged live (default taxonomy): email key -> thread id."""
    threads = {key: world.submit(raw(key)) for key in MAIL}
    for thread_id in threads.values():
        world.step.drain(thread_id)
    return threads


@pytest.fixture
def env(state_url: str, broker_url: str, emulator: Any) -> dict[str, str]:
    return base_env(state_url, broker_url, emulator.base_url)


def triage(env: dict[str, str], *args: str) -> Result:
    """`triage ...` in this process, as a user types it."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def live_state(r: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key but the runs' and the ledger's days, as DUMP bytes (streams included)."""
    names = sorted(k for k in r.keys("*") if not k.startswith((b"triage:run", b"triage:ledger:2")))
    return {name: r.dump(name) for name in names}


def ledger_day(r: redis.Redis) -> dict[str, int]:
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return {k.decode(): int(v) for k, v in r.hgetall(keys.ledger_day(day)).items()}


def run_totals(r: redis.Redis) -> Any:
    return Ledger(r, DEFAULT_PRICES, 3600).totals(dt.datetime.now(dt.UTC).date())


def diff_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = triage(env, "reprocess", "diff", *args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# --- runs over stored threads -----------------------------------------------------------------


def test_a_run_over_stored_threads_changes_nothing_live(r, world, live, env, taxonomy, broker_url):
    """The run decides every stored thread; every live key and stream is byte-identical after
    it, nothing is published, and the ledger's day only gains the run's REPROCESS calls."""
    before, ledger_before = live_state(r), ledger_day(r)
    broker = redis.Redis.from_url(broker_url)
    broker_before = {k: broker.dump(k) for k in broker.keys("*")}
    replies_before = len(world.published.replies)

    result = triage(
        env, "reprocess", "--run", "r1", "--taxonomy", str(taxonomy), "--via", "live", "--yes"
    )

    assert result.exit_code == 0, result.output
    assert f"run r1 done: {len(MAIL)} threads ({len(MAIL)} emails) decided" in result.stdout
    assert live_state(r) == before
    assert {k: broker.dump(k) for k in broker.keys("*")} == broker_before
    assert len(world.published.replies) == replies_before
    ledger_after = ledger_day(r)
    added = {k: v - ledger_before.get(k, 0) for k, v in ledger_after.items()}
    assert {k for k, v in added.items() if v} == {
        k for k in added if f"|{LEDGER_REPROCESS}|" in k and added[k]
    }
    assert run_totals(r).by_category[LEDGER_REPROCESS]["calls"] == len(MAIL)
    runs = RunStore(r, 30)
    decided = {d.thread_id: d for d in runs.scan_decisions("r1")}
    assert set(decided) == set(live.values())
    assert all(d.run == "r1" for d in decided.values())
    events = [json.loads(f[b"payload"]) for _, f in r.xrange(keys.run_events("r1"))]
    assert {e["thread_id"] for e in events} == set(live.values())
    assert all(e["type"] == "run_decision" and e["run"] == "r1" for e in events)


def test_the_estimate_is_shown_first_and_nothing_is_spent_without_confirmation(
    r, live, env, taxonomy, emulator
):
    """--estimate prints emails, calls and the live and batch cost and keeps nothing; without
    --yes off a terminal the run does not start and is not kept."""
    calls_before = len(emulator.requests)
    shown = triage(env, "reprocess", "--run", "r2", "--taxonomy", str(taxonomy), "--estimate")
    assert shown.exit_code == 0, shown.output
    assert f"run r2: {len(MAIL)} emails in {len(MAIL)} threads" in shown.stderr
    assert "estimated cost: $" in shown.stderr and "through the Message Batches API" in shown.stderr
    assert "via live" in shown.stderr  # 7 calls, under TRIAGE_REPROCESS_BATCH_FROM
    unconfirmed = triage(env, "reprocess", "--run", "r2", "--taxonomy", str(taxonomy))
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.output
    assert len(emulator.requests) == calls_before
    assert RunStore(r, 30).names() == []


def test_filters_select_the_stored_threads_a_run_covers(r, live, env, taxonomy):
    """--status and --thread choose the threads; the others are not decided."""
    by_status = triage(
        env,
        "reprocess",
        "--run",
        "asked",
        "--status",
        "awaiting_customer",
        "--via",
        "live",
        "--yes",
    )
    assert by_status.exit_code == 0, by_status.output
    runs = RunStore(r, 30)
    assert {d.thread_id for d in runs.scan_decisions("asked")} == {live["4"], live["5"]}
    one = triage(
        env,
        "reprocess",
        "--run",
        "one",
        "--thread",
        live["1"],
        "--taxonomy",
        str(taxonomy),
        "--yes",
    )
    assert one.exit_code == 0, one.output
    [decision] = list(runs.scan_decisions("one"))
    assert (decision.thread_id, decision.category) == (live["1"], "RETURNS")


# --- diff and apply ---------------------------------------------------------------------------


def test_the_diff_lists_the_threads_whose_category_changes_after_a_taxonomy_change(
    r, live, env, taxonomy, tmp_path
):
    """After adding RETURNS, the diff's pairs and rows are exactly the threads that move; the
    report directory has diff.md, diff.json and the change matrix."""
    assert (
        triage(env, "reprocess", "--run", "tx", "--taxonomy", str(taxonomy), "--yes").exit_code == 0
    )
    document = diff_json(env, "tx")
    moved = {live[k]: (MAIL[k][1], MAIL[k][2]) for k in MAIL if MAIL[k][1] != MAIL[k][2]}
    rows = {row["thread_id"]: (row["from"], row["to"]) for row in document["rows"]}
    assert rows == moved
    pairs = {(p["from"], p["to"]): p["count"] for p in document["summary"]["pairs"]}
    assert pairs == {
        ("SHIPPING", "RETURNS"): 2,
        ("(question)", "OTHER"): 1,
        ("(question)", "RETURNS"): 1,
    }
    assert document["summary"]["unchanged"] == len(MAIL) - len(moved)
    text = triage(env, "reprocess", "diff", "tx")
    assert "SHIPPING" in text.stdout and "-> RETURNS" in text.stdout and live["1"] in text.stdout
    report = triage(env, "reprocess", "diff", "tx", "--report", str(tmp_path / "report"))
    assert report.exit_code == 0, report.output
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "diff.md",
        "diff.json",
        "change-matrix.png",
    }
    assert (tmp_path / "report" / "change-matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_apply_emits_one_reclassified_event_per_changed_thread_and_a_second_apply_none(
    r, live, env, taxonomy
):
    """apply promotes the classified threads that moved (the ones waiting for the customer are
    left alone) with one `reclassified` event each; applying again emits nothing."""
    assert (
        triage(env, "reprocess", "--run", "tx", "--taxonomy", str(taxonomy), "--yes").exit_code == 0
    )
    dry = triage(env, "reprocess", "apply", "tx", "--dry-run")
    assert "would apply 2" in dry.stdout, dry.output
    assert stream_events(r, "reclassified") == []
    first = triage(env, "reprocess", "apply", "tx", "--yes")
    assert first.exit_code == 0, first.output
    events = stream_events(r, "reclassified")
    assert sorted(e["thread_id"] for e in events) == sorted([live["1"], live["6"]])
    assert all(
        (e["run"], e["previous"]["category"], e["new"]["category"]) == ("tx", "SHIPPING", "RETURNS")
        for e in events
    )
    store = ThreadStore(r, 3600, 10_000)
    assert store.peek(live["1"]).meta["category"] == "RETURNS"
    assert store.peek(live["1"]).meta["reclassified_by"] == "tx"
    assert "live_awaiting_customer 2" in first.stdout
    second = triage(env, "reprocess", "apply", "tx", "--yes")
    assert second.exit_code == 0 and "applied 0" in second.stdout
    assert len(stream_events(r, "reclassified")) == 2
    assert diff_json(env, "tx")["summary"]["pairs"] == [
        {"from": "(question)", "to": "OTHER", "count": 1},
        {"from": "(question)", "to": "RETURNS", "count": 1},
    ]


def test_apply_only_promotes_the_pairs_asked_for(r, live, env, taxonomy):
    """--only FROM->TO limits what is promoted; the rest is left for later."""
    assert (
        triage(env, "reprocess", "--run", "tx", "--taxonomy", str(taxonomy), "--yes").exit_code == 0
    )
    result = triage(env, "reprocess", "apply", "tx", "--only", "BILLING->RETURNS", "--yes")
    assert "applied 0" in result.stdout and "not_in_only 4" in result.stdout
    assert stream_events(r, "reclassified") == []


def test_two_runs_compare_with_each_other(r, live, env, taxonomy):
    """diff --against OTHER_RUN compares two runs thread by thread."""
    assert triage(env, "reprocess", "--run", "old", "--yes").exit_code == 0
    assert (
        triage(env, "reprocess", "--run", "new", "--taxonomy", str(taxonomy), "--yes").exit_code
        == 0
    )
    document = diff_json(env, "new", "--against", "old")
    pairs = {(p["from"], p["to"]): p["count"] for p in document["summary"]["pairs"]}
    assert pairs[("SHIPPING", "RETURNS")] == 2
    assert document["summary"]["only_in_run"] == 0


# --- a backlog PATH ---------------------------------------------------------------------------


def test_a_backlog_of_already_seen_mail_is_decided_again_not_dropped(
    r, world, live, env, taxonomy, tmp_path
):
    """Every email of a backlog the live side already triaged is decided by the run, in its
    live thread; the same email twice in the PATH is decided once; live is untouched."""
    backlog = tmp_path / "backlog"
    backlog.mkdir()
    for key in MAIL:
        (backlog / f"{key}.eml").write_bytes(raw(key))
    (backlog / "again.eml").write_bytes(raw("1"))
    before = live_state(r)
    result = triage(
        env, "reprocess", "--run", "bl", str(backlog), "--taxonomy", str(taxonomy), "--yes"
    )
    assert result.exit_code == 0, result.output
    assert (
        f"run bl: {len(MAIL)} emails in {len(MAIL)} threads ({len(MAIL)} already seen live)"
        in result.stderr
    )
    assert "duplicate_in_run 1" in result.stderr
    decisions = {d.thread_id: d for d in RunStore(r, 30).scan_decisions("bl")}
    assert set(decisions) == set(live.values())
    assert decisions[live["1"]].email_ids == ["<rp-1@example.org>"]
    assert decisions[live["1"]].category == "RETURNS" and decisions[live["1"]].changed
    assert decisions[live["4"]].outcome == "clarified"  # a fresh first turn may ask
    assert live_state(r) == before
    assert r.hlen(keys.run_input("bl")) == 0  # the emails are dropped once the run is done


def test_a_backlog_thread_of_new_mail_is_one_item(r, env, tmp_path):
    """New mail: a reply in the same backlog joins its thread (one decision, both emails)."""
    first = make_email("<nb-1@example.org>", "Where is my parcel?", sender="n@example.org")
    reply = make_email(
        "<nb-2@example.org>",
        "It was a parcel with a refund problem, the invoice is wrong.",
        sender="n@example.org",
        in_reply_to="<nb-1@example.org>",
    )
    path = tmp_path / "new.mbox"
    path.write_bytes(
        b"From n@example.org Mon Nov 23 09:00:00 2026\n"
        + first
        + b"\nFrom n@example.org Mon Nov 23 09:00:00 2026\n"
        + reply
        + b"\n"
    )
    result = triage(env, "reprocess", "--run", "nb", str(path), "--yes")
    assert result.exit_code == 0, result.output
    [decision] = list(RunStore(r, 30).scan_decisions("nb"))
    assert decision.email_ids == ["<nb-1@example.org>", "<nb-2@example.org>"]
    assert decision.live is None and not decision.changed
    assert r.keys("triage:thread:*") == []  # nothing live was created


# --- batches and resume -----------------------------------------------------------------------


def test_a_batch_run_decides_as_a_live_run_does(r, live, env, taxonomy, emulator):
    """--via batch gives the same decisions as --via live, at the batch price."""
    emulator.configure(batch_delay_s=0.2)
    live_run = triage(
        env, "reprocess", "--run", "l", "--taxonomy", str(taxonomy), "--via", "live", "--yes"
    )
    batch_run = triage(
        env,
        "reprocess",
        "--run",
        "b",
        "--taxonomy",
        str(taxonomy),
        "--via",
        "batch",
        "--poll-seconds",
        "0.1",
        "--yes",
    )
    assert live_run.exit_code == 0 and batch_run.exit_code == 0, batch_run.output
    runs = RunStore(r, 30)
    labels = {
        run: {d.thread_id: (d.outcome, d.category) for d in runs.scan_decisions(run)}
        for run in "lb"
    }
    assert labels["l"] == labels["b"]
    cost = {run: int(runs.meta(run)["cost_micro_usd"]) for run in "lb"}
    assert cost["b"] == pytest.approx(cost["l"] / 2, rel=0.01)
    assert all(d.batch for d in runs.scan_decisions("b"))


def batch_count(settings: Any) -> int:
    """Message Batches the emulator was asked to create."""
    sdk = make_client(settings)
    try:
        return len(list(sdk.messages.batches.list(limit=1000)))
    finally:
        sdk.close()


def submit_then_crash(r: redis.Redis, world: Any, taxonomy: Path, name: str) -> str:
    """Plan a run and submit its batch, then stop as a crash would: the batch is recorded in
    the run, never waited for."""
    runs = RunStore(r, 30)
    spec = derive_spec(world.settings, {"taxonomy_file": taxonomy})
    source = {"kind": "threads", "selection": Selection().describe()}
    fields = {"kind": "reprocess", "spec": json.dumps(spec.stored()), "config": "{}"}
    runs.create(name, {**fields, "source": json.dumps(source), "status": "running", "via": "batch"})
    threads = ThreadStore(r, 3600, 10_000)
    totals = Planner(name, runs, threads, r, spec).stored(Selection())
    runs.update(name, plan=json.dumps(totals.as_dict()))
    executor = Executor(name, runs, threads, r, spec, LEDGER_REPROCESS)
    sdk = make_client(spec.settings)
    try:
        [batch_id] = executor._submit(BatchClient(sdk), 100, lambda *_: None)
    finally:
        sdk.close()
    return batch_id


def test_a_run_interrupted_after_submitting_its_batch_resumes_without_paying_again(
    r, world, live, env, taxonomy, emulator
):
    """A batch submitted before an interruption is collected by --resume: no second batch, one
    ledger call per email, every thread decided once."""
    emulator.configure(batch_delay_s=0.2)
    batch_id = submit_then_crash(r, world, taxonomy, "rs")
    runs = RunStore(r, 30)
    assert runs.batch_ids("rs") == [batch_id] and runs.decision_count("rs") == 0
    resumed = triage(env, "reprocess", "--run", "rs", "--resume", "--yes", "--poll-seconds", "0.1")
    assert resumed.exit_code == 0, resumed.output
    assert runs.batch_ids("rs") == [] and runs.decision_count("rs") == len(MAIL)
    assert run_totals(r).by_category[LEDGER_REPROCESS]["calls"] == len(MAIL)
    assert batch_count(world.settings) == 1
    again = triage(env, "reprocess", "--run", "rs", "--resume", "--yes")
    assert again.exit_code == 0 and "nothing left to decide" in again.stderr
    assert batch_count(world.settings) == 1


def test_a_truncated_batch_result_is_tried_again_with_twice_the_budget(
    r, world, live, env, taxonomy, emulator
):
    """A result cut at max_tokens goes into a second batch with twice the budget; both calls
    are charged to the decision."""
    emulator.configure(
        batch_delay_s=0.1, faults=[FaultRule(kind="max_tokens", match="charged twice", times=1)]
    )
    result = triage(
        env,
        "reprocess",
        "--run",
        "tr",
        "--taxonomy",
        str(taxonomy),
        "--via",
        "batch",
        "--poll-seconds",
        "0.05",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    decision = RunStore(r, 30).decision("tr", live["0"])
    assert decision is not None and (decision.outcome, decision.calls) == ("classified", 2)
    assert batch_count(world.settings) == 2
    assert run_totals(r).by_category[LEDGER_REPROCESS]["calls"] == len(MAIL) + 1


def test_a_run_of_that_name_is_not_started_twice(r, live, env):
    """Starting an existing run is refused (--resume continues it; delete removes it)."""
    assert triage(env, "reprocess", "--run", "x", "--yes").exit_code == 0
    again = triage(env, "reprocess", "--run", "x", "--yes")
    assert again.exit_code == 2 and "--resume" in again.output
    listed = triage(env, "reprocess", "list")
    assert listed.stdout.startswith("x ")
    assert triage(env, "reprocess", "delete", "x", "--yes").exit_code == 0
    assert r.keys("triage:run:x*") == []


# --- shadow mode ------------------------------------------------------------------------------


def normalised(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Events without what differs from one run to another (times, request ids)."""
    return sorted(
        (e["thread_id"], e["type"], e.get("category"), e.get("reply_id"), tuple(e["email_ids"]))
        for e in events
    )


def shadow_service(world: Any, r: redis.Redis, taxonomy: Path, **overrides: Any) -> ShadowService:
    settings = world.settings.model_copy(update={"shadow_sample": 1.0, **overrides})
    spec = derive_spec(settings, {"taxonomy_file": taxonomy})
    from worker.decide.claude import ClaudeClient

    return ShadowService(lambda: r, settings, spec, ClaudeClient(make_client(spec.settings)), "t")


def test_shadow_records_a_decision_per_live_one_and_live_is_unchanged(
    r, in_process, taxonomy, state_url, broker_url, emulator
):
    """At sample 1.0 every live decision gets a shadow decision (run `shadow`) while live events
    and replies are what they are without the shadow."""
    plain = in_process()
    for key in MAIL:
        plain.step.drain(plain.submit(raw(key)))
    without = normalised(stream_events(r))
    replies_without = len(plain.published.replies)
    r.flushdb()

    world = in_process()
    shadow = shadow_service(world, r, taxonomy)
    shadow.start()
    try:
        for key in MAIL:
            world.step.drain(world.submit(raw(key)))
        runs = RunStore(r, 30)
        wait_for(lambda: runs.decision_count(SHADOW) == len(MAIL), 20, "a shadow decision each")
    finally:
        shadow.stop()
    assert normalised(stream_events(r)) == without
    assert len(world.published.replies) == replies_without
    shadowed = {d.thread_id: d for d in RunStore(r, 30).scan_decisions(SHADOW)}
    one = world.submit(raw("1"))  # already seen: the same thread id
    assert shadowed[one].category == "RETURNS" and shadowed[one].live.category == "SHIPPING"
    assert stream_events(r, "run_decision") == []  # never in triage:events
    assert run_totals(r).by_category["SHADOW"]["calls"] == len(MAIL)


def test_a_failing_shadow_never_changes_the_live_decision(r, world, taxonomy, emulator):
    """A shadow model the API rejects gives `failed` shadow records; live decides as ever."""
    shadow_settings = world.settings.model_copy(update={"shadow_sample": 1.0})
    spec = derive_spec(
        shadow_settings, {"taxonomy_file": taxonomy, "model": "claude-nonexistent-1"}
    )
    from worker.decide.claude import ClaudeClient

    shadow = ShadowService(
        lambda: r, shadow_settings, spec, ClaudeClient(make_client(spec.settings)), "t"
    )
    shadow.start()
    try:
        thread_id = world.submit(raw("0"))
        world.step.drain(thread_id)
        runs = RunStore(r, 30)
        wait_for(lambda: runs.decision_count(SHADOW) == 1, 20, "the shadow's failure recorded")
    finally:
        shadow.stop()
    [failed] = list(RunStore(r, 30).scan_decisions(SHADOW))
    assert failed.outcome == "failed" and "api_" in (failed.error or "")
    assert [e["category"] for e in stream_events(r, "classified")] == ["BILLING"]


# --- pure parts -------------------------------------------------------------------------------


def test_sampling_is_a_stable_share():
    """The same decision is always in or out of the sample; about `rate` of them are in."""
    ids = [(f"t{i}", [f"<{i}@x>"]) for i in range(4000)]
    inside = [sampled(t, e, 0.25) for t, e in ids]
    assert inside == [sampled(t, e, 0.25) for t, e in ids]
    assert 0.22 < sum(inside) / len(inside) < 0.28
    assert all(sampled(t, e, 1.0) for t, e in ids[:10]) and not any(
        sampled(t, e, 0.0) for t, e in ids[:10]
    )


def test_a_run_configuration_file_names_only_decision_settings(tmp_path):
    """Paths are relative to the file; unknown keys and non-decision settings are refused."""
    (tmp_path / "tax.yaml").write_text(RETURNS_TAXONOMY)
    good = tmp_path / "shadow.yaml"
    good.write_text("taxonomy: tax.yaml\nmodel: claude-sonnet-4-6\nsettings:\n  max_tokens: 2048\n")
    assert load_run_config(good) == {
        "taxonomy_file": tmp_path / "tax.yaml",
        "model": "claude-sonnet-4-6",
        "max_tokens": 2048,
    }
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "x"\n[settings]\nredis_url = "redis://elsewhere"\n')
    with pytest.raises(RunConfigError, match="redis_url is not a decision setting"):
        load_run_config(bad)
    assert parse_override("TRIAGE_MAX_TOKENS=99") == ("max_tokens", "99")
    with pytest.raises(RunConfigError):
        parse_override("reply_transport=smtp")


@pytest.mark.parametrize(
    ("text", "pair", "hit"),
    [
        ("SHIPPING->RETURNS", ("SHIPPING", "RETURNS"), True),
        ("* -> RETURNS", ("(question)", "RETURNS"), True),
        ("BILLING->*", ("SHIPPING", "RETURNS"), False),
    ],
)
def test_only_pairs_match_with_wildcards(text, pair, hit):
    """`--only FROM->TO` with `*` for any label."""
    assert matches(pair, [parse_pair(text)]) is hit


def test_the_change_matrix_puts_unchanged_threads_on_the_diagonal():
    """Rows are the baseline's labels, columns the run's; unchanged threads sit on the diagonal."""
    summary = Summary("r", "live")
    summary.before.update({"SHIPPING": 5, "BILLING": 2})
    summary.after.update({"SHIPPING": 3, "RETURNS": 2, "BILLING": 2})
    summary.pairs[("SHIPPING", "RETURNS")] = 2
    rows, columns, counts = matrix(summary)
    assert rows == ["BILLING", "SHIPPING"] and columns == ["BILLING", "RETURNS", "SHIPPING"]
    assert counts == [[2, 0, 0], [0, 2, 3]]


def test_run_decisions_validate_against_the_published_run_events_schema(r, live, env):
    """docs/run-events.schema.json is what `python -m worker.events --run` prints, and every
    event a run writes validates against it."""
    root = Path(__file__).resolve().parents[2]
    published = json.loads((root / "docs" / "run-events.schema.json").read_text())
    assert published == run_json_schema()
    assert triage(env, "reprocess", "--run", "v", "--yes").exit_code == 0
    for _, fields in r.xrange(keys.run_events("v")):
        jsonschema.validate(json.loads(fields[b"payload"]), published)


def test_a_run_configuration_file_sets_the_runs_model_and_taxonomy(r, live, env, tmp_path):
    """--config names the taxonomy and model; `show` reports them with the run's counters."""
    (tmp_path / "tax.yaml").write_text(RETURNS_TAXONOMY)
    config = tmp_path / "run.yaml"
    config.write_text(
        "taxonomy: tax.yaml\nmodel: claude-sonnet-4-6\nsettings:\n  max_tokens: 900\n"
    )
    result = triage(env, "reprocess", "--run", "cfg", "--config", str(config), "--yes")
    assert result.exit_code == 0, result.output
    shown = json.loads(triage(env, "reprocess", "show", "cfg").stdout)
    assert shown["config"]["model"] == "claude-sonnet-4-6"
    assert "RETURNS" in shown["config"]["categories"]
    assert shown["counters"]["items_decided"] == len(MAIL) and shown["status"] == "done"
    stored = json.loads(RunStore(r, 30).meta("cfg")["spec"])
    assert stored["settings"]["max_tokens"] == 900
    assert all(d.model == "claude-sonnet-4-6" for d in RunStore(r, 30).scan_decisions("cfg"))


def test_a_refusal_is_recorded_as_escalated(r, world, env, emulator):
    """A refused re-decision is an `escalated` record, as the worker would escalate it."""
    thread_id = world.submit(make_email("<rf-1@example.org>", "refuse-me: my parcel is late"))
    world.step.drain(thread_id)
    emulator.configure(faults=[FaultRule(kind="refusal", match="refuse-me")])
    assert triage(env, "reprocess", "--run", "rf", "--yes").exit_code == 0
    decision = RunStore(r, 30).decision("rf", thread_id)
    assert decision is not None and decision.outcome == "escalated" and decision.category is None


def test_a_bad_shadow_configuration_stops_the_worker_at_start(world, tmp_path):
    """No shadow without TRIAGE_SHADOW_CONFIG; a configuration whose taxonomy does not load is
    a setting error naming the file."""
    assert build_shadow(world.settings, lambda: None, "w") is None
    (tmp_path / "tax.yaml").write_text("categories: [{name: lower case}]\n")
    config = tmp_path / "shadow.yaml"
    config.write_text("taxonomy: tax.yaml\n")
    settings = world.settings.model_copy(update={"shadow_config": config, "shadow_sample": 1.0})
    with pytest.raises(ConfigError, match=r"shadow\.yaml"):
        build_shadow(settings, lambda: None, "w")


def test_apply_leaves_alone_a_thread_that_got_mail_after_the_run(r, world, live, env, taxonomy):
    """A thread decided again live after the run decided it is `stale`: the run did not see its
    newest email, so its decision is not promoted there."""
    assert (
        triage(env, "reprocess", "--run", "tx", "--taxonomy", str(taxonomy), "--yes").exit_code == 0
    )
    follow_up = make_email(
        "<rp-1-more@example.org>",
        "Also my parcel tracking is stuck.",
        sender="c1@example.org",
        in_reply_to="<rp-1@example.org>",
    )
    assert world.submit(follow_up) == live["1"]
    world.step.drain(live["1"])
    result = triage(env, "reprocess", "apply", "tx", "--yes")
    assert "applied 1" in result.stdout and "stale 1" in result.stdout, result.output
    assert [e["thread_id"] for e in stream_events(r, "reclassified")] == [live["6"]]
