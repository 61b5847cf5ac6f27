"""The Prometheus alert rules in deploy/prometheus: valid, unit-tested with promtool, and about
metrics the worker really exports.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it): without it these tests
skip locally and fail in CI.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from helpers import promtool

from worker.observe import metrics
from worker.observe.metrics_server import BacklogCollector

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts.test.yml"
JOB = "triage-worker"


def alerts() -> dict[str, str]:
    """Alert name -> expression, from the rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False, cwd=RULES_DIR
    )


def test_promtool_accepts_the_rules_and_the_compose_config():
    """`promtool check` accepts alerts.yml and the compose Prometheus config that loads it."""
    checked = run("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = run("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_unit_tests_pass():
    """`promtool test rules`: all workers down, nothing scraped, Redis unreadable, dead letters,
    a growing backlog, API errors and no progress fire; a healthy fleet fires nothing."""
    tested = run("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_rules_fire_on_missing_data():
    """ "Nothing reports" is covered: `absent()` of the worker job and of the triage metrics."""
    rules = alerts()
    assert f'absent(up{{job="{JOB}"}})' in rules["TriageWorkersDown"]
    assert f'sum(up{{job="{JOB}"}}) == 0' in rules["TriageWorkersDown"]
    assert rules["TriageMetricsAbsent"].startswith("absent(")
    for name in (
        "TriageRedisUnreadable",
        "TriageDeadLetters",
        "TriageBacklogGrowing",
        "TriageApiErrors",
        "TriageNoWorkerProgress",
    ):
        assert name in rules


def test_every_alert_has_a_unit_test():
    """Every alert in alerts.yml is evaluated by at least one promtool test case."""
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {check["alertname"] for case in cases for check in case["alert_rule_test"]}
    untested = sorted(set(alerts()) - tested)
    assert not untested, f"alerts without a promtool test: {untested}"


def exported_names(r) -> set[str]:
    """Every sample name a worker's /metrics can show: counters, histograms and the gauges."""
    names: set[str] = set()
    families = [
        metrics.EMAILS,
        metrics.CALLS,
        metrics.TOKENS,
        metrics.CALL_SECONDS,
        metrics.END_TO_END_SECONDS,
        metrics.RETRIES,
        metrics.RATELIMIT_WAIT,
    ]
    for family in families:
        for described in family.describe():
            if described.type == "counter":
                names.add(described.name + "_total")
            elif described.type == "histogram":
                names.update(described.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    names.update(family.name for family in BacklogCollector(lambda: r, lambda: r, 60).collect())
    return names


def test_rules_only_use_metrics_the_worker_exports(r):
    """Every triage_* name in the rules is one the worker exports (a typo would never fire)."""
    used = set(re.findall(r"\btriage_[a-z_]+\b", RULES.read_text()))
    unknown = sorted(used - exported_names(r))
    assert used and not unknown, f"alerts.yml uses metrics no worker exports: {unknown}"


def test_the_compose_prometheus_scrapes_the_job_the_rules_match():
    """prometheus.yml loads alerts.yml and names its worker job as the rules' `up` matchers do."""
    config = yaml.safe_load((RULES_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == [RULES.name]
    assert [job["job_name"] for job in config["scrape_configs"]] == [JOB]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    worker_port = compose["services"]["worker"]["expose"][0]
    assert config["scrape_configs"][0]["dns_sd_configs"][0]["port"] == int(worker_port)


def test_the_operations_guide_lists_every_alert():
    """docs/operations.md names every alert of the rules file (and points at the file)."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "deploy/prometheus/alerts.yml" in guide
    missing = sorted(name for name in alerts() if name not in guide)
    assert not missing, f"docs/operations.md does not mention: {missing}"
