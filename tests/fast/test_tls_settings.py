"""Redis TLS options: one spelling for the broker and the state client, verified by default, off
only by an explicit setting, and reported by doctor. (tests/e2e/test_ops_tls.py connects.)"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import redis
from kombu import Connection

from common.celery_config import celery_config
from common.connections import redis_client, ssl_options, tls_url
from common.errors import ConfigError
from common.settings import load_settings
from triage.doctor import tls_check


def settings(**overrides):
    return load_settings(anthropic_api_key="sk-test", **overrides)


def pool_tls(client: redis.Redis) -> tuple[type, object, object]:
    """The connection class, ssl_cert_reqs and ssl_ca_certs a client's pool will connect with."""
    kwargs = client.connection_pool.connection_kwargs
    return (
        client.connection_pool.connection_class,
        kwargs.get("ssl_cert_reqs"),
        kwargs.get("ssl_ca_certs"),
    )


def test_a_bare_rediss_url_verifies_for_both_clients():
    """`rediss://` alone: the state client and the broker both require a verified certificate."""
    config = settings(redis_url="rediss://:pw@redis.example.com:6380/0")
    assert config.redis_url == "rediss://:pw@redis.example.com:6380/0?ssl_cert_reqs=required"
    celery = celery_config(config)
    assert celery["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert celery["broker_transport"] is None  # kombu's own transport for rediss://
    connection = Connection(celery["broker_url"], ssl=celery["broker_use_ssl"])
    assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}  # not kombu's CERT_NONE default
    assert pool_tls(redis_client(config.redis_url)) == (
        redis.SSLConnection,
        ssl.CERT_REQUIRED,
        None,  # the system store
    )


@pytest.mark.parametrize("spelling", ["CERT_REQUIRED", "required", "Required", "cert_required"])
def test_celery_and_redis_py_spellings_mean_the_same(spelling):
    """Celery's `CERT_REQUIRED` and redis-py's `required` work for both clients."""
    url = f"rediss://redis.example.com:6380/1?ssl_cert_reqs={spelling}&ssl_ca_certs=/ca.pem"
    assert pool_tls(redis_client(url)) == (redis.SSLConnection, ssl.CERT_REQUIRED, "/ca.pem")
    config = settings(broker_url=url)
    assert config.broker_url == (
        "rediss://redis.example.com:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"
    )
    assert celery_config(config)["broker_use_ssl"] == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/ca.pem",
    }


def test_the_ca_comes_from_the_url_else_the_setting(tmp_path: Path):
    """TRIAGE_REDIS_CA_FILE applies to every rediss:// URL that does not name its own CA."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    config = settings(
        redis_url="rediss://state:6380/0",
        broker_url="rediss://broker:6380/0?ssl_ca_certs=/broker-ca.pem",
        redis_ca_file=str(ca),
    )
    assert ssl_options(config.redis_url) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(ca),
    }
    assert celery_config(config)["broker_use_ssl"]["ssl_ca_certs"] == "/broker-ca.pem"


def test_turning_verification_off_takes_the_setting():
    """A URL alone cannot turn verification off; TRIAGE_REDIS_TLS_VERIFY=false can, for both."""
    with pytest.raises(ConfigError, match=r"TRIAGE_REDIS_URL: .*TRIAGE_REDIS_TLS_VERIFY=false"):
        settings(redis_url="rediss://redis:6380/0?ssl_cert_reqs=CERT_NONE")
    config = settings(redis_url="rediss://redis:6380/0", redis_tls_verify=False)
    assert config.redis_url.endswith("?ssl_cert_reqs=none")
    assert celery_config(config)["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert pool_tls(redis_client(config.redis_url))[1] == ssl.CERT_NONE
    with pytest.raises(ConfigError, match="contradicts TRIAGE_REDIS_TLS_VERIFY=false"):
        settings(broker_url="rediss://b:6380/0?ssl_cert_reqs=required", redis_tls_verify=False)


def test_bad_tls_options_name_the_variable(tmp_path: Path):
    """An unknown ssl_cert_reqs or a missing CA file is a bad setting naming its variable."""
    with pytest.raises(ConfigError, match=r"TRIAGE_BROKER_URL: ssl_cert_reqs='maybe'"):
        settings(broker_url="rediss://b:6380/0?ssl_cert_reqs=maybe")
    with pytest.raises(ConfigError, match="TRIAGE_REDIS_CA_FILE: no such file"):
        settings(redis_ca_file=str(tmp_path / "missing.pem"))


def test_plain_urls_are_left_alone():
    """redis:// and unix:// URLs are unchanged and get no TLS options."""
    for url in ("redis://127.0.0.1:6379/0", "unix:///run/redis.sock?db=1"):
        assert tls_url(url) == url and ssl_options(url) is None
    assert celery_config(settings())["broker_use_ssl"] is False


def test_other_query_options_are_kept():
    """Non-TLS query options and client certificates survive the rewrite."""
    url = tls_url(
        "rediss://h:6380/0?health_check_interval=5&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
        "&ssl_check_hostname=False"
    )
    assert url == (
        "rediss://h:6380/0?health_check_interval=5&ssl_cert_reqs=required"
        "&ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_check_hostname=false"
    )
    assert ssl_options(url) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_certfile": "/c.pem",
        "ssl_keyfile": "/k.pem",
        "ssl_check_hostname": False,
    }


def test_doctor_reports_the_tls_state():
    """doctor: plain is ok, verified is ok with its CA, unverified or no host name check warns."""
    plain = tls_check("redis", "redis://r:6379/0")
    assert (plain.name, plain.status) == ("redis.tls", "ok") and "not encrypted" in plain.detail
    verified = tls_check("broker", settings(broker_url="rediss://b:6380/0").broker_url or "")
    assert verified.status == "ok" and "the system store" in verified.detail
    off = tls_check("redis", settings(redis_url="rediss://r/0", redis_tls_verify=False).redis_url)
    assert off.status == "warn" and "NOT verified (TRIAGE_REDIS_TLS_VERIFY=false)" in off.detail
    no_host = tls_check("redis", tls_url("rediss://r/0?ssl_check_hostname=false"))
    assert no_host.status == "warn" and "host name is not checked" in no_host.detail
