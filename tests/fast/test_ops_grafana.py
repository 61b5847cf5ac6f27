"""The Grafana dashboard in deploy/grafana: valid PromQL, only metrics the worker registers,
every topic the operations guide promises, and provisioned by the compose `monitoring` profile.

The check against a running worker's /metrics is tests/e2e/test_ops_grafana_scrape.py; promtool
(Debian's `prometheus` package) parses the queries here: without it that test skips locally and
fails in CI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from helpers import DASHBOARD, dashboard_queries, exposed_names, metric_names, promtool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import REGISTRY

from worker.observe import metrics  # noqa: F401  (registers the worker's counters)
from worker.observe.metrics_server import BacklogCollector

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
#: Prometheus's own series (per scrape target), not the worker's.
PROMETHEUS_OWN = {"up"}


def worker_exposition(r) -> str:
    """What a worker's /metrics handler renders: its registry plus the Redis gauges."""
    gauges = CollectorRegistry()
    gauges.register(BacklogCollector(lambda: r, lambda: r, 60))
    return generate_latest(REGISTRY).decode() + generate_latest(gauges).decode()


def used_metrics() -> set[str]:
    names: set[str] = set()
    for query in dashboard_queries():
        names |= metric_names(query)
    return names


def test_the_dashboard_only_uses_metrics_the_worker_registers(r):
    """Every metric name in every panel query is one a worker exposes (a typo shows nothing)."""
    exposed = exposed_names(worker_exposition(r))
    unknown = sorted(used_metrics() - exposed - PROMETHEUS_OWN)
    assert not unknown, f"the dashboard queries metrics no worker exports: {unknown}"


def test_the_dashboard_covers_throughput_api_cost_backlog_retries_and_review():
    """Panels exist for outcomes, latency and errors, tokens and cost, queue depth, retries and
    limiter waits, dead letters and the review backlog."""
    used = used_metrics()
    for name in (
        "triage_emails_total",
        "triage_claude_call_seconds_bucket",
        "triage_claude_calls_total",
        "triage_tokens_total",
        "triage_cost_usd_total",
        "triage_queue_depth",
        "triage_task_retries_total",
        "triage_ratelimit_wait_seconds_total",
        "triage_dlq_size",
        "triage_threads_in_review",
    ):
        assert name in used, name
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query (as a recording rule, Grafana's $__rate_interval as 5m)."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": query.replace("$__rate_interval", "5m")}
        for index, query in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_provisions_the_dashboard_on_the_compose_prometheus():
    """The monitoring profile runs Grafana with the provisioning and dashboard directories
    mounted where the providers look, and the data source is the compose Prometheus."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    assert compose["services"]["prometheus"]["profiles"] == ["monitoring"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["./deploy/grafana/dashboards"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/triage-worker.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == dashboards_dir
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
    [source] = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert (
        source["url"] == "http://prometheus:9090"
        and "127.0.0.1:9090:9090" in (compose["services"]["prometheus"]["ports"])
    )
    variable = json.loads(DASHBOARD.read_text())["templating"]["list"][0]
    assert variable["type"] == "datasource" and variable["current"]["value"] == source["uid"]
