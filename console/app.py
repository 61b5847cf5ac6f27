"""The console's ASGI app (Starlette): its routes, templates and static files.

`create_app(settings, replayer=...)` builds it; `triage console` serves it with uvicorn
(`console.server`), and another Starlette app can mount it under a path
(`Mount("/console", app=create_app(settings, replayer=...))`): every link, redirect and cookie
follows the mount's `root_path`. The app needs no lifespan (a mounted app gets none): its Redis
clients connect on first use.

Routes (docs/console.md has the reference):

- pages: `/` overview, `/threads`, `/threads/{id}`, `/review`, `/dead-letters`,
  `/dead-letters/{id}`, `/dead-letters/purge` (the confirmation), `/runs`, `/runs/{name}`,
  `/reports/{path}` and their PNG plots, `/login`; `/healthz` answers without credentials;
- actions (POST): `/review/{id}/accept`, `/review/{id}/correct`, `/dead-letters/{id}/replay`,
  `/dead-letters/replay`, `/dead-letters/purge`, `/login`, `/logout`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import jinja2
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from common.connections import redis_client
from common.settings import Settings
from console import actions, pages
from console.audit import AuditTrail
from console.auth import Gate, Identity
from console.web import (
    FormTooLarge,
    Parts,
    SecurityHeaders,
    action,
    host_refused,
    identify,
    page,
    parts_of,
    path_for,
    read_form,
    too_large,
)
from worker.recovery.replay import Replayer
from worker.state.review import ReviewLane
from worker.state.store import ThreadStore


@jinja2.pass_context
def url_for(context: dict[str, Any], name: str, /, **params: Any) -> str:
    """Links are paths (under the mount point), never absolute URLs."""
    return path_for(context["request"], name, **params)


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url_for"] = url_for
    env.filters["usd"] = lambda value: "-" if value is None else f"${value:,.6f}"
    env.filters["pct"] = lambda value: "-" if value is None else f"{value:.1%}"
    env.filters["thousands"] = lambda value: f"{int(value):,}"
    # JSON for reading (escaped as text by autoescape, unlike `tojson`'s \u003c escapes).
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    return Jinja2Templates(env=env)


def _once(factory: Callable[[], Replayer]) -> Callable[[], Replayer]:
    """The replayer is built on first use (it opens clients and the producers), then kept."""
    lock = threading.Lock()
    built: list[Replayer] = []

    def get() -> Replayer:
        with lock:
            if not built:
                built.append(factory())
            return built[0]

    return get


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def login_page(request: Request) -> Response:
    def show() -> Response:
        parts = parts_of(request)
        refused = host_refused(request, parts)
        if refused is not None:
            return refused
        who: Identity | None = identify(request, parts)
        return pages.login_form(request, parts, who)

    return await run_in_threadpool(show)


async def login_post(request: Request) -> Response:
    try:
        form = await read_form(request)
    except FormTooLarge:
        return too_large()

    def check() -> Response:
        refused = host_refused(request, parts_of(request))
        return refused if refused is not None else actions.login(request, form)

    return await run_in_threadpool(check)


def create_app(
    settings: Settings,
    *,
    replayer: Callable[[], Replayer] | None = None,
    state: redis.Redis | None = None,
    broker: redis.Redis | None = None,
) -> ASGIApp:
    """The console. `replayer` builds the dead-letter replayer (the producers' re-parse and the
    webhook requeue are wired by the caller, e.g. `triage.resources.open_replayer`); without
    it, replay answers that it is not available here."""
    state = state or redis_client(settings.redis_url)
    broker = broker or redis_client(settings.effective_broker_url)
    store = ThreadStore(state, settings.thread_ttl_seconds, settings.events_maxlen)
    parts = Parts(
        settings=settings,
        gate=Gate(settings),
        state=state,
        broker=broker,
        templates=templates(),
        audit=AuditTrail(state),
        store=store,
        lane=ReviewLane(state, store, settings.events_maxlen),
        replayer=_once(replayer) if replayer is not None else None,
    )
    routes = [
        Route("/", page(pages.overview), name="overview"),
        Route("/threads", page(pages.threads), name="threads"),
        Route("/threads/{thread_id}", page(pages.thread), name="thread"),
        Route("/review", page(pages.review), name="review"),
        Route(
            "/review/{thread_id}/accept",
            action("review_accept", actions.accept),
            methods=["POST"],
            name="review_accept",
        ),
        Route(
            "/review/{thread_id}/correct",
            action("review_correct", actions.correct),
            methods=["POST"],
            name="review_correct",
        ),
        Route("/dead-letters", page(pages.dead_letters), name="dead_letters"),
        Route(
            "/dead-letters/replay",
            action("dlq_replay_all", actions.replay_all),
            methods=["POST"],
            name="dead_letters_replay",
        ),
        Route("/dead-letters/purge", page(pages.purge_confirm), name="purge_confirm"),
        Route(
            "/dead-letters/purge",
            action("dlq_purge", actions.purge),
            methods=["POST"],
            name="purge",
        ),
        Route("/dead-letters/{entry_id}", page(pages.dead_letter), name="dead_letter"),
        Route(
            "/dead-letters/{entry_id}/replay",
            action("dlq_replay", actions.replay_one),
            methods=["POST"],
            name="dead_letter_replay",
        ),
        Route("/runs", page(pages.runs), name="runs"),
        Route("/runs/{name}", page(pages.run), name="run"),
        Route("/reports/{path:path}", page(pages.report), name="report"),
        Route("/report-files/{path:path}", page(pages.report_file), name="report_file"),
        Route("/login", login_page, name="login"),
        Route("/login", login_post, methods=["POST"], name="login_post"),
        Route(
            "/logout",
            action("logout", actions.logout, needs_role=False),
            methods=["POST"],
            name="logout",
        ),
        Route("/healthz", healthz, name="healthz"),
        Mount("/static", StaticFiles(packages=[("console", "static")]), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.console = parts
    return SecurityHeaders(app)
