"""The HTTP intake: an ASGI app (Starlette) that takes one email per request.

Routes (docs/intake.md has the reference):

- `POST /v1/emails`: raw MIME (`message/rfc822`) or one record in our JSON schema
  (`application/json`), bearer token -> 202 enqueued, 200 duplicate (or reply_bounced), 422
  rejected (the email is in the dead-letter stream), 413 over TRIAGE_MAX_EMAIL_BYTES, 415 another
  content type, 401 no or a wrong token, 503 + Retry-After when the triage queue is too deep or
  Redis cannot take the email.
- `POST /v1/inbound/{mailgun,mailgun/mime,sendgrid,postmark}`: the providers' webhooks
  (`intake.providers`), each closed (404) until its credential is set.
- `GET /healthz` (the process answers), `GET /readyz` (Redis and broker answer), `GET /metrics`.

Every request is logged once (`intake.request`: route, status, duration, size, request id and
the outcome), never with its body; a refused one also as `intake.refused` with the reason.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.connections import redis_client
from common.settings import Settings
from intake import metrics
from intake.auth import basic_ok, bearer_ok
from intake.backpressure import Backpressure
from intake.forms import BadForm, Form, TooLarge, parse_form, read_body
from intake.gateway import Gateway
from intake.providers import Unauthorized, mailgun, postmark, sendgrid
from producers.enqueue import Enqueuer, Rejected
from producers.parse import REASON_TOO_LARGE
from producers.sources import Item, Kind
from producers.submit import Submitted

log = structlog.get_logger("intake.app")

RAW_TYPES = ("message/rfc822",)
JSON_TYPES = ("application/json",)
#: Form and JSON envelopes carry the email base64-encoded or escaped: room for that, plus fields.
ENVELOPE_FACTOR = 1.4
ENVELOPE_EXTRA = 1024 * 1024


@dataclass
class Parts:
    """What the handlers share, built once per app."""

    settings: Settings
    gateway: Gateway
    backpressure: Backpressure
    state: redis.Redis
    broker: redis.Redis
    sendgrid_key: Any = None

    @property
    def raw_limit(self) -> int:
        return self.settings.max_email_bytes

    @property
    def envelope_limit(self) -> int:
        return int(self.settings.max_email_bytes * ENVELOPE_FACTOR) + ENVELOPE_EXTRA


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def _note(request: Request, **fields: Any) -> None:
    """Fields for this request's access-log line."""
    request.state.log = {**getattr(request.state, "log", {}), **fields}


def refuse(
    request: Request, source: str, status: int, reason: str, error: str, **headers: str
) -> Response:
    metrics.REFUSED.labels(source, reason).inc()
    _note(request, refused=reason)
    log.warning(
        "intake.refused",
        source=source,
        reason=reason,
        error=error,
        request_id=request.state.request_id,
        client=request.client.host if request.client else None,
    )
    return _json(status, {"status": "refused", "reason": reason, "error": error}, headers or None)


def _unavailable(request: Request, parts: Parts, source: str, reason: str, error: str) -> Response:
    retry = str(parts.settings.intake_retry_after_seconds)
    return refuse(request, source, 503, reason, error, **{"Retry-After": retry})


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    return await read_body(request.stream(), limit, size)


async def _take(
    request: Request, parts: Parts, source: str, item: Item, rejected_status: int
) -> Response:
    """Hand the item to the producers and answer with the outcome."""
    try:
        outcome = await parts.gateway.enqueue(item)
    except (redis.RedisError, OSError) as exc:
        return _unavailable(request, parts, source, "unavailable", f"{type(exc).__name__}: {exc}")
    if isinstance(outcome, Rejected):
        metrics.EMAILS.labels(source, "rejected").inc()
        _note(request, outcome="rejected", reason=outcome.reason)
        status = 413 if outcome.reason == REASON_TOO_LARGE else rejected_status
        body = {"status": "rejected", "reason": outcome.reason, "error": outcome.error}
        return _json(status, body)
    assert isinstance(outcome, Submitted)
    metrics.EMAILS.labels(source, metrics.outcome_label(outcome.status)).inc()
    _note(
        request, outcome=outcome.status, thread_id=outcome.thread_id, message_id=outcome.message_id
    )
    return _json(202 if outcome.status == "enqueued" else 200, outcome.as_dict())


def _parts(request: Request) -> Parts:
    parts: Parts = request.app.state.parts
    return parts


# --- our own endpoint -----------------------------------------------------------------------


async def post_email(request: Request) -> Response:
    parts = _parts(request)
    source = "http"
    if not bearer_ok(request.headers.get("authorization"), parts.settings.intake_tokens):
        return refuse(
            request,
            source,
            401,
            "auth",
            "missing or invalid bearer token",
            **{"WWW-Authenticate": 'Bearer realm="triage"'},
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    kind: Kind
    if content_type in RAW_TYPES:
        kind = "email"
    elif content_type in JSON_TYPES:
        kind = "jsonl"
    else:
        error = f"send message/rfc822 or application/json, not {content_type or 'nothing'!r}"
        return refuse(request, source, 415, "content_type", error)
    if await parts.backpressure.overloaded():
        return _unavailable(request, parts, source, "backpressure", "the triage queue is full")
    try:
        body = await _body(request, parts.raw_limit)
    except TooLarge as exc:
        return refuse(request, source, 413, "too_large", str(exc))
    item = Item(f"http:{request.state.request_id}", "", kind, body, len(body))
    return await _take(request, parts, source, item, 422)


# --- provider webhooks ----------------------------------------------------------------------


async def _provider_body(request: Request, parts: Parts, source: str) -> bytes | Response:
    if await parts.backpressure.overloaded():
        return _unavailable(request, parts, source, "backpressure", "the triage queue is full")
    try:
        return await _body(request, parts.envelope_limit)
    except TooLarge as exc:
        return refuse(request, source, 413, "too_large", str(exc))


def _form(request: Request, body: bytes, source: str) -> Form | Response:
    try:
        return parse_form(request.headers.get("content-type", ""), body)
    except BadForm as exc:
        return refuse(request, source, 422, "bad_form", str(exc))


def _not_configured(request: Request, source: str, setting: str) -> Response:
    _note(request, refused="not_configured")
    return _json(404, {"status": "refused", "reason": "not_configured", "error": f"set {setting}"})


async def post_mailgun(request: Request) -> Response:
    parts = _parts(request)
    key = parts.settings.mailgun_signing_key
    if key is None:
        return _not_configured(request, "mailgun", "TRIAGE_MAILGUN_SIGNING_KEY")
    body = await _provider_body(request, parts, "mailgun")
    if isinstance(body, Response):
        return body
    form = _form(request, body, "mailgun")
    if isinstance(form, Response):
        return form
    try:
        mailgun.verify(form, key, time.time(), parts.settings.webhook_max_age_seconds)
    except Unauthorized as exc:
        return refuse(request, "mailgun", 401, "signature", str(exc))
    item = mailgun.to_item(form, body)
    return await _take(request, parts, "mailgun", _tagged(item, request), mailgun.REJECTED_STATUS)


async def post_sendgrid(request: Request) -> Response:
    parts = _parts(request)
    settings = parts.settings
    basic = settings.sendgrid_username is not None and settings.sendgrid_password is not None
    if parts.sendgrid_key is None and not basic:
        return _not_configured(
            request, "sendgrid", "TRIAGE_SENDGRID_PUBLIC_KEY or TRIAGE_SENDGRID_USERNAME/PASSWORD"
        )
    if basic and not basic_ok(
        request.headers.get("authorization"),
        settings.sendgrid_username or "",
        settings.sendgrid_password,  # type: ignore[arg-type]
    ):
        return refuse(
            request,
            "sendgrid",
            401,
            "auth",
            "missing or wrong basic auth",
            **{"WWW-Authenticate": 'Basic realm="triage"'},
        )
    body = await _provider_body(request, parts, "sendgrid")
    if isinstance(body, Response):
        return body
    if parts.sendgrid_key is not None:
        try:
            sendgrid.verify_signature(
                request.headers,
                body,
                parts.sendgrid_key,
                time.time(),
                settings.webhook_max_age_seconds,
            )
        except Unauthorized as exc:
            return refuse(request, "sendgrid", 401, "signature", str(exc))
    form = _form(request, body, "sendgrid")
    if isinstance(form, Response):
        return form
    item = sendgrid.to_item(form, body)
    return await _take(request, parts, "sendgrid", _tagged(item, request), sendgrid.REJECTED_STATUS)


async def post_postmark(request: Request) -> Response:
    parts = _parts(request)
    settings = parts.settings
    if settings.postmark_username is None or settings.postmark_password is None:
        return _not_configured(request, "postmark", "TRIAGE_POSTMARK_USERNAME/PASSWORD")
    if not basic_ok(
        request.headers.get("authorization"), settings.postmark_username, settings.postmark_password
    ):
        return refuse(
            request,
            "postmark",
            401,
            "auth",
            "missing or wrong basic auth",
            **{"WWW-Authenticate": 'Basic realm="triage"'},
        )
    body = await _provider_body(request, parts, "postmark")
    if isinstance(body, Response):
        return body
    item = postmark.to_item(body)
    return await _take(request, parts, "postmark", _tagged(item, request), postmark.REJECTED_STATUS)


def _tagged(item: Item, request: Request) -> Item:
    """The item named after the request, so its dead letter can be traced to the access log."""
    return Item(
        f"{item.source}:{request.state.request_id}",
        item.position,
        item.kind,
        item.data,
        item.size,
        item.error,
    )


# --- health and metrics ---------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return _json(200, {"status": "ok"})


async def readyz(request: Request) -> Response:
    parts = _parts(request)

    def ping(client: redis.Redis) -> str:
        try:
            client.ping()
            return "ok"
        except (redis.RedisError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]

    redis_state, broker = await asyncio.gather(
        asyncio.to_thread(ping, parts.state), asyncio.to_thread(ping, parts.broker)
    )
    ready = redis_state == "ok" and broker == "ok"
    body = {"status": "ready" if ready else "not_ready", "redis": redis_state, "broker": broker}
    return _json(200 if ready else 503, body)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


# --- access log -----------------------------------------------------------------------------


class AccessLog:
    """One `intake.request` line and the request metrics per request; bodies never logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = given if given.isprintable() and given else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route_of(scope)
            seconds = time.perf_counter() - started
            metrics.REQUESTS.labels(route, str(status[0])).inc()
            metrics.REQUEST_SECONDS.labels(route).observe(seconds)
            if route not in ("/healthz", "/metrics"):
                client = scope.get("client")
                log.info(
                    "intake.request",
                    method=scope.get("method"),
                    route=route,
                    status=status[0],
                    ms=round(seconds * 1000, 2),
                    bytes_in=int(headers.get(b"content-length", b"0") or 0),
                    client=client[0] if client else None,
                    request_id=request_id,
                    **scope["state"].get("log", {}),
                )


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


# --- the app --------------------------------------------------------------------------------


def create_app(settings: Settings, enqueuer: Enqueuer | None = None) -> ASGIApp:
    """The intake app; `enqueuer` for tests (else one from the settings)."""
    state = redis_client(settings.redis_url)
    broker = redis_client(settings.effective_broker_url)
    gateway = Gateway(enqueuer or Enqueuer(settings, state))
    parts = Parts(
        settings=settings,
        gateway=gateway,
        backpressure=Backpressure(broker, settings.intake_max_queue),
        state=state,
        broker=broker,
        sendgrid_key=sendgrid.public_key(settings.sendgrid_public_key)
        if settings.sendgrid_public_key
        else None,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway.start()
        log.info("intake.started", endpoints=open_endpoints(settings))
        try:
            yield
        finally:
            gateway.stop()
            state.close()
            broker.close()

    routes = [
        Route("/v1/emails", post_email, methods=["POST"]),
        Route("/v1/inbound/mailgun", post_mailgun, methods=["POST"]),
        Route("/v1/inbound/mailgun/mime", post_mailgun, methods=["POST"]),
        Route("/v1/inbound/sendgrid", post_sendgrid, methods=["POST"]),
        Route("/v1/inbound/postmark", post_postmark, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.parts = parts
    return AccessLog(app)


def open_endpoints(settings: Settings) -> list[str]:
    """Which email endpoints accept mail with these settings (logged at start-up)."""
    found = ["/v1/emails"] if settings.intake_tokens else []
    if settings.mailgun_signing_key is not None:
        found.append("/v1/inbound/mailgun")
    if settings.sendgrid_public_key or (settings.sendgrid_username and settings.sendgrid_password):
        found.append("/v1/inbound/sendgrid")
    if settings.postmark_username and settings.postmark_password:
        found.append("/v1/inbound/postmark")
    return found
