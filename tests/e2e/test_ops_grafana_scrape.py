"""The Grafana dashboard against a real worker: every metric its queries use is in the worker's
/metrics after a run, and the new cost and review series match the ledger and the lane."""

from __future__ import annotations

import datetime as dt
import urllib.request

from helpers import dashboard_queries, exposed_names, make_email, metric_names, wait_for
from prometheus_client.parser import text_string_to_metric_families

from common import keys
from producers.enqueue import Enqueuer
from triage.localstack import free_port
from worker.state.ledger import Ledger

#: Prometheus's own series (per scrape target), not the worker's.
PROMETHEUS_OWN = {"up"}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_every_dashboard_metric_is_in_a_workers_metrics_output(r, emulator, worker_factory):
    """After a run (a question, a classification, one sent to review), the worker's /metrics
    shows every metric the dashboard queries; triage_cost_usd_total equals the ledger's cost
    and triage_threads_in_review counts the review lane."""
    emulator.configure(faults=[{"kind": "low_confidence", "match": "wobbles"}])
    port = free_port()
    handle = worker_factory(TRIAGE_METRICS_PORT=str(port))
    enqueuer = Enqueuer(handle.settings(), r)
    for index, body in enumerate(
        [
            "Hi, my thing isn't working. Can you help?",
            "I was charged twice for my subscription.",
            "My parcel wobbles on the tracking page.",
        ]
    ):
        enqueuer.enqueue_bytes(make_email(f"<grafana-{index}@example.org>", body))
    wait_for(lambda: r.xlen(keys.EVENTS) >= 3, 30, "three decisions")
    settings = handle.settings()
    ledger = Ledger(r, settings.prices, settings.thread_ttl_seconds)
    expected = ledger.totals(dt.datetime.now(dt.UTC).date()).total["cost_micro_usd"] / 1e6

    def cost_counted() -> str | None:
        text = scrape(port)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = families["triage_cost_usd"].samples
        cost = sum(s.value for s in samples if s.name.endswith("_total"))
        return text if abs(cost - expected) < 1e-9 and expected > 0 else None

    text = wait_for(cost_counted, 10, "the cost counter to match the ledger")
    used: set[str] = set()
    for query in dashboard_queries():
        used |= metric_names(query)
    missing = sorted(used - exposed_names(text) - PROMETHEUS_OWN)
    assert not missing, f"the dashboard queries metrics the worker's /metrics lacks: {missing}"
    assert "triage_threads_in_review 1.0" in text
