"""What every page and action goes through: who is asking, may they, the CSRF check, rendering,
the one-time notice after an action, and the security headers.

A page (`page`) needs a signed-in user, or nobody when the console is open (no user configured).
An action (`action`) is a POST that also needs a valid CSRF token for the identity that asks
and the reviewer role; a cross-site request (by `Origin` or `Sec-Fetch-Site`) is refused before
that. Refusals answer 401 (who are you?) or 403 (not you, not this, not from there) and every
refused action is logged and kept in the audit trail.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import keys
from common.settings import Settings
from console.audit import AuditTrail, ConsoleAction
from console.auth import ANONYMOUS, NONCE_COOKIE, SESSION_COOKIE, Gate, Identity
from worker.recovery.replay import Replayer
from worker.state.review import ReviewLane
from worker.state.store import ThreadStore

log = structlog.get_logger("console.web")

FLASH_COOKIE = "triage_console_flash"
MAX_FORM_FIELDS = 100
#: The console's forms are small; a bigger body is refused before it is read (413).
MAX_FORM_BYTES = 64 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass
class Parts:
    """What the handlers share, built once per app."""

    settings: Settings
    gate: Gate
    state: redis.Redis
    broker: redis.Redis
    templates: Jinja2Templates
    audit: AuditTrail
    store: ThreadStore
    lane: ReviewLane
    replayer: Callable[[], Replayer] | None


Page = Callable[[Request, Parts, Identity], Response]
Act = Callable[[Request, Parts, Identity, FormData], Response]


def parts_of(request: Request) -> Parts:
    found: Parts = request.app.state.console
    return found


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def is_loopback_host(request: Request) -> bool:
    """The Host header names this machine (an open console answers nothing else: a page of
    another site cannot reach it by DNS rebinding)."""
    host = (request.url.hostname or "").strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_path(request: Request) -> str:
    """Where the console is mounted ("/" on its own), for cookie paths and redirects."""
    return str(request.scope.get("root_path") or "").rstrip("/") + "/"


def path_for(
    request: Request, name: str, query: dict[str, Any] | None = None, /, **params: Any
) -> str:
    """A route's path (under the mount point, without scheme and host: right behind a proxy
    too), with an optional query."""
    relative = request.app.url_path_for(name, **params)  # the console's own routes, mounted
    path = str(request.scope.get("root_path") or "").rstrip("/") + str(relative)
    return f"{path}?{urlencode(query)}" if query else path


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


# --- who is asking -------------------------------------------------------------------------------


def identify(request: Request, parts: Parts) -> Identity | None:
    """The identity of a request; None if it gave wrong credentials or none when some are
    needed."""
    header = request.headers.get("authorization")
    if header:
        return parts.gate.authorization(header)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = parts.gate.from_session(cookie)
        if found is not None:
            return found
    return ANONYMOUS if parts.gate.open else None


def unauthorized(request: Request, parts: Parts) -> Response:
    """Browsers go to the login form; scripts get a basic-auth challenge."""
    if wants_html(request) and not request.headers.get("authorization"):
        target = path_for(request, "login", {"next": request.url.path})
        return RedirectResponse(target, status_code=303)
    return render(
        request,
        parts,
        None,
        "error.html",
        {"title": "Sign in", "message": "This page needs a console user (basic auth or sign in)."},
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="triage console", charset="UTF-8"'},
    )


def refuse(
    request: Request,
    parts: Parts,
    who: Identity | None,
    status: int,
    message: str,
    *,
    action: str | None = None,
    reason: str,
    target: str | None = None,
) -> Response:
    """A refused request: logged, kept in the audit trail if it was an action, answered."""
    parts.audit.record(
        ConsoleAction(
            action=action or f"{request.method} {request.url.path}",
            by=who.name if who else "unknown",
            role=who.role if who else "none",
            via=who.via if who else "none",
            target=target,
            outcome="refused",
            detail={"reason": reason},
            client=client_of(request),
        )
    )
    context = {"title": "Refused", "message": message}
    return render(request, parts, who, "error.html", context, status)


def redis_down(request: Request, parts: Parts, who: Identity, exc: Exception) -> Response:
    """Redis could not be read or written: 503 with the reason (the page can be reloaded)."""
    log.warning("console.redis_error", path=request.url.path, error=str(exc))
    message = (
        f"Redis could not be reached or answered with an error ({type(exc).__name__}: {exc}); "
        "check TRIAGE_REDIS_URL and reload."
    )
    context = {"title": "Redis unavailable", "message": message}
    return render(request, parts, who, "error.html", context, 503)


def host_refused(request: Request, parts: Parts) -> Response | None:
    if parts.gate.open and not is_loopback_host(request):
        return refuse(
            request,
            parts,
            None,
            403,
            "This console has no users configured, so it only answers on this machine's own "
            "address. Set TRIAGE_CONSOLE_USERS to open it to others.",
            reason="open_console_remote_host",
        )
    return None


def cross_site(request: Request) -> bool:
    """A state-changing request sent from another site's page."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


# --- pages and actions ---------------------------------------------------------------------------


class FormTooLarge(Exception):
    """The body is over `MAX_FORM_BYTES`."""


async def read_form(request: Request) -> FormData:
    """An urlencoded form body, read up to `MAX_FORM_BYTES` (no multipart: no form here sends
    files); anything else reads as an empty form (and then fails its CSRF check)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return FormData()
    text = body.decode("utf-8", errors="replace")
    pairs: list[tuple[str, str | UploadFile]] = list(parse_qsl(text, keep_blank_values=True))
    return FormData(pairs[:MAX_FORM_FIELDS])


def too_large() -> Response:
    return PlainTextResponse("form too large", status_code=413)


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A GET page: the identity is checked, then the handler runs in a worker thread."""

    def checked(request: Request) -> Response:
        parts = parts_of(request)
        refused = host_refused(request, parts)
        if refused is not None:
            return refused
        who = identify(request, parts)
        if who is None:
            return unauthorized(request, parts)
        try:
            return handler(request, parts, who)
        except redis.RedisError as exc:
            return redis_down(request, parts, who, exc)

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(checked, request)

    return endpoint


def _refusal(
    request: Request, parts: Parts, who: Identity | None, token: str | None, needs_role: bool
) -> tuple[int, str, str] | None:
    """Why an action is refused (status, message, reason), or None."""
    if who is None:
        return 401, "Wrong credentials.", "credentials"
    if cross_site(request):
        return 403, "Refused: this request came from another site.", "cross_site"
    if not parts.gate.csrf_ok(who.csrf_key, token):
        message = (
            "Refused: the form's CSRF token is missing, wrong or expired. Reload the page and "
            "try again."
        )
        return 403, message, "csrf"
    if needs_role and not who.may_act:
        if not who.signed_in:
            return 403, "Refused: this console is read-only (no users configured).", "role"
        return 403, f"Refused: {who.name} is a {who.role}; this needs the reviewer role.", "role"
    return None


def action(
    name: str, handler: Act, *, needs_role: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    """A POST action: identity, same-site, CSRF token, the reviewer role (unless not
    `needs_role`: signing out); then the handler."""

    def checked(request: Request, form: FormData) -> Response:
        parts = parts_of(request)
        refused = host_refused(request, parts)
        if refused is not None:
            return refused
        who = identify(request, parts)
        if who is None and not request.headers.get("authorization"):
            return unauthorized(request, parts)
        token = form.get("csrf")
        csrf = token if isinstance(token, str) else None
        problem = _refusal(request, parts, who, csrf, needs_role)
        if problem is not None:
            status, message, reason = problem
            target = request.path_params.get("thread_id") or request.path_params.get("entry_id")
            return refuse(
                request, parts, who, status, message, action=name, reason=reason, target=target
            )
        assert who is not None
        try:
            return handler(request, parts, who, form)
        except redis.RedisError as exc:
            return redis_down(request, parts, who, exc)

    async def endpoint(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormTooLarge:
            return too_large()
        return await run_in_threadpool(checked, request, form)

    return endpoint


def record(
    request: Request,
    parts: Parts,
    who: Identity,
    name: str,
    outcome: str,
    target: str | None = None,
    **detail: Any,
) -> None:
    parts.audit.record(
        ConsoleAction(
            action=name,
            by=who.name,
            role=who.role,
            via=who.via,
            target=target,
            outcome="failed" if outcome == "failed" else "done",
            detail=detail,
            client=client_of(request),
        )
    )


# --- rendering -----------------------------------------------------------------------------------


def csrf_for(parts: Parts, who: Identity | None, request: Request) -> str:
    if who is not None and who.signed_in:
        return parts.gate.csrf_token(who.csrf_key)
    if who is not None:  # the open console's anonymous viewer: forms show, actions are refused
        return parts.gate.csrf_token(who.csrf_key)
    nonce = request.cookies.get(NONCE_COOKIE, "")
    return parts.gate.csrf_token(f"anon:{nonce}") if nonce else ""


def _counts(parts: Parts) -> dict[str, int | None]:
    try:
        pipe = parts.state.pipeline(transaction=False)
        pipe.zcard(keys.REVIEW)
        pipe.xlen(keys.DEAD_LETTERS)
        review, dead = pipe.execute()
        return {"review": int(review), "dead_letters": int(dead)}
    except redis.RedisError:
        return {"review": None, "dead_letters": None}


def flash(response: Response, request: Request, parts: Parts, kind: str, text: str) -> Response:
    """A one-time notice for the next page (a signed cookie; read and cleared by `render`)."""
    body = base64.urlsafe_b64encode(json.dumps([kind, text[:2000]]).encode()).decode()
    response.set_cookie(
        FLASH_COOKIE,
        f"{body}.{parts.gate.sign('flash', body)}",
        max_age=120,
        path=base_path(request),
        httponly=True,
        samesite="strict",
        secure=parts.settings.console_secure_cookies,
    )
    return response


def _read_flash(request: Request, parts: Parts) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    body, _, signature = raw.partition(".")
    if not signature or signature != parts.gate.sign("flash", body):
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, binascii.Error):
        return None
    return str(kind), str(text)


def redirect(
    request: Request, parts: Parts, route: str, kind: str, text: str, **params: str
) -> Response:
    """303 to a page (by route name), with a one-time notice."""
    url = path_for(request, route, **params)
    return flash(RedirectResponse(url, status_code=303), request, parts, kind, text)


def render(
    request: Request,
    parts: Parts,
    who: Identity | None,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    notice = _read_flash(request, parts)
    response = parts.templates.TemplateResponse(
        request,
        template,
        {
            "who": who,
            "open": parts.gate.open,
            "csrf": csrf_for(parts, who, request),
            "counts": _counts(parts) if who is not None else {},
            "notice": notice,
            "categories": parts.settings.category_names,
            **context,
        },
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path=base_path(request))
    return response


class SecurityHeaders:
    """Adds the security headers to every response (pages, static files, redirects)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
