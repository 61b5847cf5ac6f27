"""Prometheus metrics: scrape a real worker after a run and check they match what happened."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

import redis
from helpers import base_env, make_email, settings_from_env, wait_for
from prometheus_client.parser import text_string_to_metric_families

from common import keys
from producers.enqueue import Enqueuer
from triage.localstack import free_port, start_worker

CLEAR = [
    "My parcel never arrived.",
    "I was charged twice for my subscription.",
    "The app crashes with an error when I log in.",
    "OVERLOAD-ME: where is my parcel? The tracking has not moved for a week.",
]
VAGUE = "Hi, my thing isn't working. Can you help?"


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_scraped_metrics_match_the_run(r, emulator, worker_factory):
    """Scraped counters and gauges match the run's calls, tokens, outcomes and retries."""
    emulator.configure(faults=[{"kind": "overloaded", "times": 1, "match": "OVERLOAD-ME"}])
    port = free_port()
    handle = worker_factory(TRIAGE_METRICS_PORT=str(port), TRIAGE_API_MAX_RETRIES="0")
    enqueuer = Enqueuer(handle.settings(), r)
    for i, body in enumerate([*CLEAR, VAGUE]):
        enqueuer.enqueue_bytes(make_email(f"<metrics-{i}@example.org>", body, subject=f"S{i}"))
    wait_for(lambda: r.xlen(keys.EVENTS) >= 5, 30, "five decisions")

    calls = [q for q in emulator.requests if q["path"] == "/v1/messages"]
    ok = [q for q in calls if q["status"] == 200]
    assert len(calls) == 6 and len(ok) == 5  # one 529, retried by the task

    def settled():
        m = scrape(port)
        return m if sum(m["triage_emails_total"].values()) >= 5 else None

    m = wait_for(settled, 10, "the counters")
    assert m["triage_claude_calls_total"] == {
        (("status", "200"), ("stop_reason", "end_turn")): 5.0,
        (("status", "529"), ("stop_reason", "none")): 1.0,
    }
    assert m["triage_claude_call_seconds_count"][()] == 6.0
    expected_tokens: dict[str, float] = defaultdict(float)
    for call in ok:
        for name, value in call["response"]["usage"].items():
            if name.endswith("_tokens") and value:
                expected_tokens[name.removesuffix("_tokens")] += value
    tokens = {labels[0][1]: value for labels, value in m["triage_tokens_total"].items()}
    assert tokens == dict(expected_tokens) and tokens["input"] > 0 and tokens["output"] > 0

    emails = {dict(labels)["outcome"]: 0.0 for labels in m["triage_emails_total"]}
    for labels, value in m["triage_emails_total"].items():
        emails[dict(labels)["outcome"]] += value
    assert emails == {"classified": 4.0, "clarified": 1.0}
    categories = {
        dict(labels)["category"]: value
        for labels, value in m["triage_emails_total"].items()
        if dict(labels)["outcome"] == "classified"
    }
    assert sum(categories.values()) == 4 and "SHIPPING" in categories
    assert m["triage_email_end_to_end_seconds_count"][()] == 5.0
    assert m["triage_task_retries_total"] == {
        (("reason", "api_529"), ("task", "triage.drain_thread")): 1.0
    }
    assert m["triage_ratelimit_wait_seconds_total"][()] == 0.0

    # Gauges, read from Redis at scrape time.
    assert m["triage_redis_up"][()] == 1.0
    assert m["triage_threads_awaiting_customer"][()] == 1.0
    assert m["triage_dlq_size"][()] == 0.0
    assert set(m["triage_queue_depth"]) == {(("queue", "triage"),), (("queue", "replies"),)}
    r.xadd(keys.DEAD_LETTERS, {"reason": "test", "thread_id": "", "payload": "{}"})
    assert scrape(port)["triage_dlq_size"][()] == 1.0


def test_prefork_pool_aggregates_children_with_multiproc_dir(
    r, state_url, broker_url, emulator, tmp_path
):
    """With PROMETHEUS_MULTIPROC_DIR, the parent serves what the pool's children counted."""
    own_broker = broker_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(own_broker).flushdb()
    port = free_port()
    (tmp_path / "prom").mkdir()
    env = base_env(
        state_url,
        own_broker,
        emulator.base_url,
        TRIAGE_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    log_path = tmp_path / "prefork.log"
    with log_path.open("ab") as log_file:
        process = start_worker(env, concurrency=2, pool="prefork", stdout=log_file)
    try:
        wait_for(lambda: "ready" in log_path.read_text(errors="replace"), 30, "the worker")
        enqueuer = Enqueuer(settings_from_env(env), r)
        for i in range(3):
            enqueuer.enqueue_bytes(make_email(f"<prefork-{i}@example.org>", CLEAR[0]))
        wait_for(lambda: r.xlen(keys.EVENTS) >= 3, 30, "three decisions")
        m = wait_for(lambda: (s := scrape(port))["triage_emails_total"] and s, 10, "the counters")
        assert m["triage_emails_total"] == {
            (("category", "SHIPPING"), ("outcome", "classified")): 3.0
        }
        assert sum(m["triage_claude_calls_total"].values()) == 3.0
        assert m["triage_dlq_size"][()] == 0.0
    finally:
        process.stop()
