"""Redis connections: one timeout and retry policy for every entry point.

The worker, the producers, every CLI command, doctor and the metrics server open their clients
here, and the Celery broker gets the same figures as transport options, so an outage looks the same
everywhere: connecting gives up after `CONNECT_TIMEOUT`, a command after `SOCKET_TIMEOUT`, and a
timed-out command is retried once on a fresh connection.

TLS (`rediss://`) is verified the same way for the broker and the state client: the certificate
is checked against the URL's `ssl_ca_certs`, else `TRIAGE_REDIS_CA_FILE`, else the system store,
unless `TRIAGE_REDIS_TLS_VERIFY=false` says otherwise. `tls_url` (applied by `Settings`) writes a
URL's TLS options one way that redis-py and kombu both read; `ssl_options` turns them into the
keyword arguments both libraries take (Celery's `broker_use_ssl`, `redis.Redis`).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import redis

#: Seconds to open a TCP (and TLS) connection before the attempt counts as failed.
CONNECT_TIMEOUT = 5.0
#: Seconds one command may take; the longest is a commit script over a flooded inbox.
SOCKET_TIMEOUT = 15.0
#: Idle connections are pinged before reuse after this many seconds (load balancers drop them).
HEALTH_CHECK_INTERVAL = 25


def client_options() -> dict[str, Any]:
    """The keyword arguments every client gets (also the broker's transport options)."""
    return {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry_on_timeout": True,
    }


def as_text(value: Any) -> str:
    """A reply value as text: clients without `decode_responses` return bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


TLS_SCHEME = "rediss"
#: `ssl_cert_reqs` in redis-py's spelling; Celery documents `CERT_REQUIRED` etc., accepted too.
CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
#: The TLS options a URL may carry, in the order `tls_url` writes them.
TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
VERIFY_SETTING = "TRIAGE_REDIS_TLS_VERIFY"


def cert_reqs_name(value: str) -> str:
    """`required`, `optional` or `none`, from either spelling (`CERT_REQUIRED`, `required`)."""
    name = value.strip().lower().removeprefix("cert_")
    if name not in CERT_REQS:
        raise ValueError(
            f"ssl_cert_reqs={value!r} is not one of required, optional, none "
            "(or Celery's CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE)"
        )
    return name


def _query(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs, safe="/:", quote_via=quote)


def _flag(name: str, value: str) -> str:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return "true"
    if value.strip().lower() in ("0", "false", "no", "off"):
        return "false"
    raise ValueError(f"{name}={value!r} is not true or false")


def tls_url(url: str, *, verify: bool = True, ca_file: str | None = None) -> str:
    """`url` with its TLS options written one way (redis-py's names and values, which kombu also
    reads); other URLs are returned unchanged.

    The certificate is verified unless `verify` is False: a bare `rediss://` gets
    `ssl_cert_reqs=required` (kombu alone would not verify it) and `ca_file` as `ssl_ca_certs`
    unless the URL names its own. A URL asking for `ssl_cert_reqs=none` while `verify` is on, or
    for verification while it is off, is refused (ValueError): one switch decides.
    """
    parts = urlsplit(url)
    if parts.scheme != TLS_SCHEME:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {name: value for name, value in query if name in TLS_OPTIONS}
    others = [(name, value) for name, value in query if name not in TLS_OPTIONS]
    reqs = cert_reqs_name(given["ssl_cert_reqs"]) if "ssl_cert_reqs" in given else None
    if verify and reqs == "none":
        raise ValueError(
            f"ssl_cert_reqs={given['ssl_cert_reqs']} turns certificate verification off: "
            f"set {VERIFY_SETTING}=false to mean it"
        )
    if not verify and reqs not in (None, "none"):
        raise ValueError(
            f"ssl_cert_reqs={given['ssl_cert_reqs']} contradicts {VERIFY_SETTING}=false"
        )
    options = dict(given, ssl_cert_reqs=reqs or ("required" if verify else "none"))
    if verify and ca_file and "ssl_ca_certs" not in options:
        options["ssl_ca_certs"] = ca_file
    if "ssl_check_hostname" in options:
        options["ssl_check_hostname"] = _flag("ssl_check_hostname", options["ssl_check_hostname"])
    ordered = [(name, options[name]) for name in TLS_OPTIONS if name in options]
    return urlunsplit(parts._replace(query=_query(others + ordered)))


def ssl_options(url: str) -> dict[str, Any] | None:
    """The TLS keyword arguments of a `rediss://` URL (None for any other), as redis-py's
    clients and Celery's `broker_use_ssl` take them; verified unless the URL says otherwise."""
    parts = urlsplit(url)
    if parts.scheme != TLS_SCHEME:
        return None
    given = {k: v for k, v in parse_qsl(parts.query) if k in TLS_OPTIONS}
    options: dict[str, Any] = {
        "ssl_cert_reqs": CERT_REQS[cert_reqs_name(given.pop("ssl_cert_reqs", "required"))]
    }
    if "ssl_check_hostname" in given:
        flag = given.pop("ssl_check_hostname")
        options["ssl_check_hostname"] = _flag("ssl_check_hostname", flag) == "true"
    return options | given


def without_tls_options(url: str) -> str:
    """`url` without its TLS query options (they are passed as keyword arguments instead)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return urlunsplit(
        parts._replace(query=_query([(k, v) for k, v in query if k not in TLS_OPTIONS]))
    )


def redis_client(url: str, **overrides: Any) -> redis.Redis:
    """A client for `url` with the project's policy; `overrides` only for tools (e.g. a probe).

    A `rediss://` URL's TLS options are read by `ssl_options`, so either spelling of
    `ssl_cert_reqs` works and the certificate is verified unless the URL says `none`.
    """
    tls = ssl_options(url)
    if tls is None:
        return redis.Redis.from_url(url, **(client_options() | overrides))
    return redis.Redis.from_url(without_tls_options(url), **(client_options() | tls | overrides))
