"""The /metrics server: a failed start leaves nothing behind, a later start serves."""

from __future__ import annotations

import socket
import urllib.request

from helpers import base_env, settings_from_env

from triage.localstack import free_port
from worker.observe import metrics_server


def test_a_start_after_a_failed_bind_serves_instead_of_raising(state_url, broker_url):
    """Port taken: start() returns False; once free, a second start() serves the gauges."""
    port = free_port()
    env = base_env(state_url, broker_url, "http://127.0.0.1:9", TRIAGE_METRICS_PORT=str(port))
    env["TRIAGE_METRICS_ADDRESS"] = "127.0.0.1"
    settings = settings_from_env(env)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert metrics_server.start(settings) is False
    assert metrics_server.start(settings) is True  # no "Duplicated timeseries" error
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert "triage_redis_up 1.0" in body and "triage_dlq_size" in body
