"""`triage doctor`: is this deployment healthy? One line per check, exit code 1 if any failed.

Checks are plain functions returning `Check`s, so they are easy to read and to extend. Failures
are things that lose work or stop it (Redis unreachable or evicting, the API key rejected);
warnings are things to look at (AOF off, dead letters, threads waiting long).
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import click
import redis

from common import keys
from common.connections import VERIFY_SETTING, redis_client, ssl_options
from common.contract import QUEUE_REPLIES, QUEUE_TRIAGE
from common.settings import Settings

Status = Literal["ok", "warn", "fail", "skip"]
MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
COLOR = {"ok": "green", "warn": "yellow", "fail": "red", "skip": None}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def _client(url: str) -> redis.Redis:
    # Doctor probes: fail fast and do not retry, so a dead server is reported in seconds.
    return redis_client(url, socket_timeout=5, socket_connect_timeout=3, retry_on_timeout=False)


def _safe_url(url: str) -> str:
    """The URL without a password."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def redis_checks(label: str, url: str) -> tuple[list[Check], redis.Redis | None]:
    """Reachable, never evicts, persists: the guarantees rest on all three."""
    client = _client(url)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            hint = (
                " (the server's certificate is not signed by a CA we trust: set "
                "TRIAGE_REDIS_CA_FILE or ssl_ca_certs= in the URL)"
            )
        return [Check(f"{label}", "fail", f"unreachable at {_safe_url(url)}: {exc}{hint}")], None
    checks = [Check(label, "ok", f"reachable at {_safe_url(url)}")]
    try:
        config: Any = client.config_get("maxmemory*")
        persistence: Any = client.config_get("appendonly")
    except redis.ResponseError as exc:  # managed Redis often disables CONFIG
        checks.append(Check(f"{label}.config", "warn", f"cannot read the config: {exc}"))
        return checks, client
    policy = str(config.get("maxmemory-policy", "?"))
    maxmemory = int(config.get("maxmemory", 0) or 0)
    if policy == "noeviction":
        checks.append(Check(f"{label}.maxmemory_policy", "ok", "noeviction"))
    elif maxmemory == 0:
        checks.append(
            Check(
                f"{label}.maxmemory_policy",
                "warn",
                f"{policy} (inactive while maxmemory is 0, but set noeviction before a limit)",
            )
        )
    else:
        checks.append(
            Check(
                f"{label}.maxmemory_policy",
                "fail",
                f"{policy} with maxmemory {maxmemory}: Redis may evict keys (lost emails); "
                "set maxmemory-policy noeviction",
            )
        )
    aof = str(persistence.get("appendonly", "no"))
    checks.append(
        Check(f"{label}.aof", "ok", "appendonly yes")
        if aof == "yes"
        else Check(f"{label}.aof", "warn", "appendonly no: a Redis restart loses queued work")
    )
    return checks, client


def tls_check(label: str, url: str) -> Check:
    """Is the connection encrypted, and is the server's certificate verified?"""
    options = ssl_options(url)
    if options is None:
        scheme = url.split("://", 1)[0]
        return Check(f"{label}.tls", "ok", f"off ({scheme}://, not encrypted)")
    if options["ssl_cert_reqs"] == ssl.CERT_NONE:
        return Check(
            f"{label}.tls",
            "warn",
            f"encrypted, certificate NOT verified ({VERIFY_SETTING}=false): anyone on the "
            "network path can pose as this Redis",
        )
    ca = options.get("ssl_ca_certs") or "the system store"
    if options.get("ssl_check_hostname") is False:
        return Check(
            f"{label}.tls",
            "warn",
            f"encrypted, certificate verified (CA: {ca}) but its host name is not checked "
            "(ssl_check_hostname=false)",
        )
    return Check(f"{label}.tls", "ok", f"encrypted, certificate and host name verified (CA: {ca})")


def broker_settings_check(settings: Settings) -> Check:
    from common.celery_config import celery_config

    config = celery_config(settings)
    options = config["broker_transport_options"]
    return Check(
        "broker.settings",
        "ok",
        f"acks_late={config['task_acks_late']} "
        f"reject_on_worker_lost={config['task_reject_on_worker_lost']} "
        f"prefetch={config['worker_prefetch_multiplier']} "
        f"visibility_timeout={options['visibility_timeout']}s "
        f"> time_limit {config['task_time_limit']}s + max backoff "
        f"{settings.retry_backoff_max_seconds:g}s; pool={settings.worker_pool} "
        f"concurrency={settings.worker_concurrency}; "
        f"task_events={'on' if config['worker_send_task_events'] else 'off'}",
    )


def retention_check(settings: Settings) -> Check:
    """How long what we keep lives (memory grows with these; docs/operations.md sizes it)."""
    compaction = (
        f"idle threads packed after {settings.compact_after_seconds:g}s"
        if settings.compact_after_seconds
        else "idle threads never packed (TRIAGE_COMPACT_AFTER_SECONDS=0)"
    )
    return Check(
        "retention",
        "ok",
        f"threads {settings.thread_ttl_seconds // 86400}d after their last update; events "
        f"{settings.events_retention_days:g}d, outbox {settings.outbox_retention_days:g}d, "
        f"dead letters {settings.dead_letter_retention_days:g}d; {compaction}",
    )


def api_check(settings: Settings) -> Check:
    """The key is valid and the model known: one `count_tokens` request (free, no generation)."""
    import anthropic

    if settings.anthropic_api_key is None:
        return Check("api", "fail", "ANTHROPIC_API_KEY is not set")
    client = anthropic.Anthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        timeout=min(settings.api_timeout_seconds, 15),
        max_retries=1,
    )
    where = settings.anthropic_base_url or "the Claude API"
    try:
        counted = client.messages.count_tokens(
            model=settings.model, messages=[{"role": "user", "content": "ping"}]
        )
    except anthropic.AuthenticationError:
        return Check("api", "fail", f"{where}: the API key was rejected (401)")
    except anthropic.PermissionDeniedError:
        return Check("api", "fail", f"{where}: the API key may not use this API (403)")
    except anthropic.NotFoundError as exc:
        return Check("api", "fail", f"{where}: model {settings.model!r} not found: {exc.message}")
    except anthropic.APIConnectionError as exc:
        return Check("api", "fail", f"{where} unreachable: {exc}")
    except anthropic.APIStatusError as exc:
        busy = exc.status_code in (429, 529) or exc.status_code >= 500
        status: Status = "warn" if busy else "fail"
        return Check("api", status, f"{where}: {exc.status_code} {exc.message}")
    return Check(
        "api",
        "ok",
        f"{where} reachable, key valid, model {settings.model} "
        f"(count_tokens: {counted.input_tokens})",
    )


def queue_checks(broker: redis.Redis) -> list[Check]:
    depths = {queue: int(broker.llen(queue)) for queue in (QUEUE_TRIAGE, QUEUE_REPLIES)}
    detail = ", ".join(f"{queue}={depth}" for queue, depth in depths.items())
    return [Check("broker.queues", "ok", f"tasks waiting: {detail}")]


def state_checks(client: redis.Redis, settings: Settings, now: float) -> list[Check]:
    checks: list[Check] = []
    dlq = int(client.xlen(keys.DEAD_LETTERS))
    checks.append(
        Check("dlq", "warn", f"{dlq} dead letters (`triage dlq list`)")
        if dlq
        else Check("dlq", "ok", "empty")
    )
    cutoff = now - settings.drain_stale_seconds
    stuck: list[Any] = client.zrangebyscore(keys.PENDING, "-inf", cutoff, start=0, num=5)
    stuck_count = int(client.zcount(keys.PENDING, "-inf", cutoff))
    if stuck_count:
        names = ", ".join(item.decode() for item in stuck)
        checks.append(
            Check(
                "threads.stuck",
                "warn",
                f"{stuck_count} threads have waited over {settings.drain_stale_seconds:g}s "
                f"(TRIAGE_DRAIN_STALE_SECONDS) for a drainer: {names}; is a worker running?",
            )
        )
    else:
        checks.append(Check("threads.stuck", "ok", "none"))
    replies: Any = client.hvals(keys.REPLIES_PENDING)
    stale = 0
    for raw in replies:
        try:
            decided = float(json.loads(raw).get("decided_at", now))
        except (ValueError, AttributeError):
            continue
        stale += decided < now - settings.reply_stale_seconds
    if stale:
        checks.append(
            Check(
                "replies.pending",
                "warn",
                f"{len(replies)} replies not yet sent, {stale} older than "
                f"{settings.reply_stale_seconds:g}s (TRIAGE_REPLY_STALE_SECONDS)",
            )
        )
    else:
        checks.append(Check("replies.pending", "ok", f"{len(replies)} replies not yet sent"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    now = time.time()
    checks, state = redis_checks("redis", settings.redis_url)
    checks.append(tls_check("redis", settings.redis_url))
    broker = state
    if settings.broker_url and settings.broker_url != settings.redis_url:
        broker_checks, broker = redis_checks("broker", settings.broker_url)
        checks += [*broker_checks, tls_check("broker", settings.broker_url)]
    checks.append(broker_settings_check(settings))
    checks.append(retention_check(settings))
    checks.append(api_check(settings))
    try:
        if broker is None:
            checks.append(Check("broker.queues", "skip", "broker unreachable"))
        else:
            checks += queue_checks(broker)
        if state is None:
            checks += [Check(n, "skip", "Redis unreachable") for n in ("dlq", "threads.stuck")]
        else:
            checks += state_checks(state, settings, now)
    except (redis.RedisError, OSError) as exc:
        checks.append(Check("redis.read", "fail", str(exc)))
    return checks


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: healthy + checks.")
def doctor(as_json: bool) -> None:
    """Check Redis, the broker, the API key and the backlog; exit 1 if anything failed."""
    from triage.resources import settings_or_exit

    checks = run_checks(settings_or_exit())
    healthy = not any(check.status == "fail" for check in checks)
    if as_json:
        document = {"healthy": healthy, "checks": [asdict(check) for check in checks]}
        click.echo(json.dumps(document, indent=2))
    else:
        for check in checks:
            mark = click.style(MARK[check.status], fg=COLOR[check.status])
            click.echo(f"{mark}  {check.name:<26} {check.detail}")
        summary = "healthy" if healthy else "UNHEALTHY"
        warnings = sum(check.status == "warn" for check in checks)
        click.echo(f"{summary} ({warnings} warnings)")
    if not healthy:
        raise SystemExit(1)
