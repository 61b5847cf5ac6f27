"""The pages (GET): each reads what it shows and renders one template. Nothing here writes state.

Email bodies (customer turns, dead-letter payloads, report texts that quote cases) are shown to
signed-in users only; the open console's anonymous viewer sees the rest.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from common import keys
from common.contract import THREAD_STATUSES
from common.deadletters import DeadLetter, DeadLetterStream
from console import charts
from console.auth import NONCE_COOKIE, Identity
from console.overview import OUTCOMES, read_overview
from console.reports import find_reports, inside, list_runs, load_report, load_run, render_markdown
from console.threads import PRIORITIES, ThreadQuery, list_threads, meta_fields, transcript
from console.web import Parts, base_path, path_for, render
from worker.state.browse import decision_fields, load_view, turn_texts
from worker.state.runs import RUN_NAME

ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
REVIEW_PAGE = 25
DLQ_PAGE = 500
OUTCOME_SERIES = [charts.Series(label, f"s-{key}") for key, label in OUTCOMES]
COST_SERIES = [charts.Series("cost", "s-cost")]


def when(stamp: Any) -> str:
    """A unix time as UTC text, '-' when absent."""
    try:
        value = float(stamp)
    except (TypeError, ValueError):
        return "-"
    if not value:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def not_found(request: Request, parts: Parts, who: Identity, what: str) -> Response:
    return render(request, parts, who, "error.html", {"title": "Not found", "message": what}, 404)


def overview(request: Request, parts: Parts, who: Identity) -> Response:
    numbers = read_overview(parts.state, parts.broker, parts.settings)
    hourly = numbers.hourly
    chart = charts.stacked_bars(
        hourly.labels,
        hourly.rows(),
        OUTCOME_SERIES,
        title="Emails decided per hour (UTC) by outcome, last 24 hours",
        every=3,
    )
    cost_chart = charts.stacked_bars(
        [label for label, _ in numbers.daily_cost],
        [[cost] for _, cost in numbers.daily_cost],
        COST_SERIES,
        title="Cost per day (USD), last 7 days",
        money=True,
    )
    context = {
        "title": "Overview",
        "numbers": numbers,
        "chart": chart,
        "legend": charts.legend(OUTCOME_SERIES),
        "cost_chart": cost_chart,
        "outcome_labels": dict(OUTCOMES),
        "now": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return render(request, parts, who, "overview.html", context)


def threads(request: Request, parts: Parts, who: Identity) -> Response:
    query, errors = ThreadQuery.parse(request.query_params, parts.settings)
    found = list_threads(parts.state, query)
    context = {
        "title": "Threads",
        "query": query,
        "errors": errors,
        "found": found,
        "statuses": THREAD_STATUSES,
        "priorities": PRIORITIES,
        "when": when,
        "page_url": lambda number: path_for(request, "threads", query.params(page=number)),
    }
    return render(request, parts, who, "threads.html", context, 400 if errors else 200)


def thread(request: Request, parts: Parts, who: Identity) -> Response:
    thread_id = request.path_params["thread_id"]
    view = load_view(parts.state, parts.settings, thread_id)
    if view is None:
        return not_found(request, parts, who, f"No thread {thread_id}.")
    context = {
        "title": f"Thread {thread_id}",
        "thread_id": thread_id,
        "view": view,
        "t": transcript(view, parts.settings),
        "fields": meta_fields(view.snapshot.meta),
        "declared": parts.settings.fields,
        "when": when,
    }
    return render(request, parts, who, "thread.html", context)


def review(request: Request, parts: Parts, who: Identity) -> Response:
    items = []
    for item in parts.lane.waiting(REVIEW_PAGE):
        snapshot = parts.store.peek(item.thread_id)
        if not snapshot.meta:
            continue
        turns: list[dict[str, Any]] = []
        for turn in snapshot.messages:
            if turn.get("role") == "user":
                turns.append({"who": "customer", "texts": turn_texts(turn)})
            else:
                turns.append({"who": "assistant", "decision": decision_fields(turn) or {}})
        items.append(
            {
                "thread_id": item.thread_id,
                "since": when(item.since),
                "meta": snapshot.meta,
                "version": snapshot.version,
                "turns": turns,
                "fields": meta_fields(snapshot.meta),
            }
        )
    total = int(parts.state.zcard(keys.REVIEW))
    context = {
        "title": "Review",
        "items": items,
        "declared": parts.settings.fields,
        "total": total,
        "more": total > len(items),
    }
    return render(request, parts, who, "review.html", context)


def _letter_kind(letter: DeadLetter) -> str:
    payload = letter.body.get("payload")
    if isinstance(payload, dict):
        for key, kind in (
            ("webhook", "webhook"),
            ("reply_id", "reply"),
            ("message_id", "email"),
            ("raw", "raw email"),
        ):
            if key in payload:
                return kind
    return "other"


def _letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.entry_id,
        "reason": letter.reason,
        "thread_id": letter.thread_id,
        "kind": _letter_kind(letter),
        "error": str(letter.body.get("error", "")),
        "attempts": letter.body.get("attempts"),
        "at": when(letter.body.get("at")),
        "body": letter.body,
    }


def dead_letters(request: Request, parts: Parts, who: Identity) -> Response:
    stream = DeadLetterStream(parts.state)
    letters = [_letter(letter) for letter in stream.list(DLQ_PAGE)]
    context = {
        "title": "Dead letters",
        "letters": letters,
        "total": stream.size(),
        "can_replay": parts.replayer is not None,
    }
    return render(request, parts, who, "dead_letters.html", context)


def dead_letter(request: Request, parts: Parts, who: Identity) -> Response:
    entry_id = request.path_params["entry_id"]
    letter = DeadLetterStream(parts.state).get(entry_id) if ENTRY_ID.match(entry_id) else None
    if letter is None:
        return not_found(request, parts, who, f"No dead letter {entry_id}.")
    context = {
        "title": f"Dead letter {entry_id}",
        "letter": _letter(letter),
        "can_replay": parts.replayer is not None,
    }
    return render(request, parts, who, "dead_letter.html", context)


def purge_confirm(request: Request, parts: Parts, who: Identity) -> Response:
    count = DeadLetterStream(parts.state).size()
    return render(
        request, parts, who, "purge.html", {"title": "Purge dead letters", "count": count}
    )


def runs(request: Request, parts: Parts, who: Identity) -> Response:
    root = parts.settings.console_reports_dir
    context = {
        "title": "Runs",
        "runs": list_runs(parts.state, parts.settings),
        "reports": find_reports(root) if root is not None else [],
        "reports_dir": root,
        "when": when,
    }
    return render(request, parts, who, "runs.html", context)


def run(request: Request, parts: Parts, who: Identity) -> Response:
    name = request.path_params["name"]
    found = load_run(parts.state, parts.settings, name) if RUN_NAME.match(name) else None
    if found is None:
        return not_found(request, parts, who, f"No run {name}.")
    root = parts.settings.console_reports_dir
    reports = [r for r in find_reports(root) if name in r.path.split("/")] if root else []
    context = {"title": f"Run {name}", "run": found, "reports": reports, "when": when}
    return render(request, parts, who, "run.html", context)


def report(request: Request, parts: Parts, who: Identity) -> Response:
    root = parts.settings.console_reports_dir
    path = request.path_params["path"]
    found = load_report(root, path) if root is not None else None
    if found is None or root is None:
        return not_found(request, parts, who, f"No report at {path}.")
    body = None
    if who.signed_in:
        directory = inside(root, found.path)
        assert directory is not None

        def image_url(name: str) -> str | None:
            if name not in found.images:
                return None
            return path_for(request, "report_file", path=f"{found.path}/{name}")

        text = (directory / found.markdown).read_text(encoding="utf-8", errors="replace")
        body = render_markdown(text, image_url)
    context = {"title": found.title, "report": found, "body": body, "when": when}
    return render(request, parts, who, "report.html", context)


def report_file(request: Request, parts: Parts, who: Identity) -> Response:
    """A PNG plot of a report (nothing else is ever served from the reports directory)."""
    root = parts.settings.console_reports_dir
    path = request.path_params["path"]
    found = inside(root, path) if root is not None and path.endswith(".png") else None
    if found is None or not found.is_file() or not who.signed_in:
        return not_found(request, parts, who, "No such plot.")
    return FileResponse(found, media_type="image/png", headers={"Cache-Control": "no-store"})


def login_form(request: Request, parts: Parts, who: Identity | None, **context: Any) -> Response:
    """The sign-in form, with a CSRF token bound to a fresh anonymous nonce cookie."""
    nonce = request.cookies.get(NONCE_COOKIE) or secrets.token_urlsafe(24)
    status = int(context.pop("status", 200))
    next_path = str(context.pop("next", "") or request.query_params.get("next", ""))
    response = render(
        request,
        parts,
        who,
        "login.html",
        {
            "title": "Sign in",
            "login_csrf": parts.gate.csrf_token(f"anon:{nonce}"),
            "next": next_path,
            **context,
        },
        status,
    )
    response.set_cookie(
        NONCE_COOKIE,
        nonce,
        max_age=parts.gate.session_seconds,
        path=base_path(request),
        httponly=True,
        samesite="strict",
        secure=parts.settings.console_secure_cookies,
    )
    return response
