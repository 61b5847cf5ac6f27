"""The actions (POST forms): sign in and out, accept or correct a review, replay or purge dead
letters. Each runs after `console.web.action` checked the identity, the site, the CSRF token and
the role; each is logged and kept in the audit trail with who, what and when, then answers 303
to a page with a one-time notice (post/redirect/get).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from common.deadletters import DeadLetterStream
from common.taxonomy import FieldSpec
from console.audit import ConsoleAction
from console.auth import NONCE_COOKIE, SESSION_COOKIE, Identity
from console.pages import ENTRY_ID, login_form
from console.web import (
    Parts,
    base_path,
    client_of,
    cross_site,
    parts_of,
    path_for,
    record,
    redirect,
)
from worker.state.review import ReviewError

MAX_NOTE = 2000


def _text(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _version(form: FormData) -> int | None:
    text = _text(form, "version", 20)
    return int(text) if text.isdigit() else None


def safe_next(request: Request, target: str) -> str:
    """A redirect target inside the console (a path, never another site)."""
    parsed = urlsplit(target)
    base = base_path(request)
    if parsed.scheme or parsed.netloc or not target.startswith(base) or target.startswith("//"):
        return path_for(request, "overview")
    return target


# --- signing in ----------------------------------------------------------------------------------


def login(request: Request, form: FormData) -> Response:
    """The login form: CSRF token bound to the anonymous nonce cookie, then name and password."""
    parts = parts_of(request)
    nonce = request.cookies.get(NONCE_COOKIE, "")
    token = form.get("csrf")
    name = _text(form, "name", 64)
    next_path = _text(form, "next", 500)
    if parts.gate.open:
        return redirect(request, parts, "overview", "info", "No users are configured.")
    if (
        cross_site(request)
        or not nonce
        or not parts.gate.csrf_ok(f"anon:{nonce}", token if isinstance(token, str) else None)
    ):
        _login_record(request, parts, name, "refused", "csrf")
        return login_form(
            request, parts, None, error="The form expired: try again.", status=403, next=next_path
        )
    password = form.get("password")
    who = parts.gate.password(name, password if isinstance(password, str) else "")
    if who is None:
        _login_record(request, parts, name, "failed", "wrong_credentials")
        return login_form(
            request, parts, None, error="Wrong name or password.", status=401, next=next_path
        )
    _login_record(request, parts, who.name, "done", None, who)
    response = RedirectResponse(safe_next(request, next_path or base_path(request)), 303)
    response.set_cookie(
        SESSION_COOKIE,
        parts.gate.session(who.name),
        max_age=parts.gate.session_seconds,
        path=base_path(request),
        httponly=True,
        samesite="lax",
        secure=parts.settings.console_secure_cookies,
    )
    return response


def _login_record(
    request: Request,
    parts: Parts,
    name: str,
    outcome: Any,
    reason: str | None,
    who: Identity | None = None,
) -> None:
    parts.audit.record(
        ConsoleAction(
            action="login",
            by=name or "unknown",
            role=who.role if who else "none",
            via="form",
            outcome=outcome,
            detail={"reason": reason} if reason else {},
            client=client_of(request),
        )
    )


def logout(request: Request, parts: Parts, who: Identity, form: FormData) -> Response:
    record(request, parts, who, "logout", "done")
    response = RedirectResponse(path_for(request, "login"), 303)
    response.delete_cookie(SESSION_COOKIE, path=base_path(request))
    return response


# --- the review lane -----------------------------------------------------------------------------


def _back(
    request: Request, parts: Parts, form: FormData, thread_id: str, kind: str, text: str
) -> Response:
    """Back where the form was: the thread page, or the review lane (the next item)."""
    if _text(form, "back", 10) == "thread":
        return redirect(request, parts, "thread", kind, text, thread_id=thread_id)
    return redirect(request, parts, "review", kind, text)


def field_value(spec: FieldSpec, raw: str) -> Any:
    """A form value as the field's type; blank is null. ValueError says what is wrong."""
    text = raw.strip()
    if not text:
        return None
    value: Any = text
    if spec.type == "integer":
        value = int(text)
    elif spec.type == "number":
        value = float(text)
    elif spec.type == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError("true or false")
        value = text.lower() == "true"
    if not spec.accepts(value):
        allowed = f"one of {', '.join(spec.values)}" if spec.values else spec.pattern or spec.type
        raise ValueError(f"not {allowed}")
    return value


def accept(request: Request, parts: Parts, who: Identity, form: FormData) -> Response:
    thread_id = request.path_params["thread_id"]
    note = _text(form, "note", MAX_NOTE) or None
    try:
        event = parts.lane.accept(thread_id, note, by=who.name, expected_version=_version(form))
    except ReviewError as exc:
        record(request, parts, who, "review_accept", "failed", thread_id, error=str(exc))
        return _back(request, parts, form, thread_id, "error", str(exc))
    record(request, parts, who, "review_accept", "done", thread_id, category=event.category)
    text = f"{thread_id}: accepted as {event.category}"
    return _back(request, parts, form, thread_id, "ok", text)


def correct(request: Request, parts: Parts, who: Identity, form: FormData) -> Response:
    thread_id = request.path_params["thread_id"]
    category = _text(form, "category", 40).upper()
    if category not in parts.settings.category_names:
        message = f"{category or '(none)'} is not one of {', '.join(parts.settings.category_names)}"
        record(request, parts, who, "review_correct", "failed", thread_id, error=message)
        return _back(request, parts, form, thread_id, "error", message)
    fields: dict[str, Any] = {}
    for spec in parts.settings.fields:
        raw = form.get(f"field.{spec.name}")
        if not isinstance(raw, str):
            continue
        try:
            fields[spec.name] = field_value(spec, raw)
        except ValueError as exc:
            message = f"field {spec.name}: {raw.strip()[:80]!r} is {exc}"
            record(request, parts, who, "review_correct", "failed", thread_id, error=message)
            return _back(request, parts, form, thread_id, "error", message)
    note = _text(form, "note", MAX_NOTE) or None
    try:
        event = parts.lane.correct(
            thread_id, category, fields, note, by=who.name, expected_version=_version(form)
        )
    except ReviewError as exc:
        record(request, parts, who, "review_correct", "failed", thread_id, error=str(exc))
        return _back(request, parts, form, thread_id, "error", str(exc))
    record(
        request,
        parts,
        who,
        "review_correct",
        "done",
        thread_id,
        previous=event.previous.category,
        category=event.new.category,
        fields=json.dumps(fields, ensure_ascii=False) if fields else None,
    )
    text = f"{thread_id}: {event.previous.category} -> {event.new.category}"
    return _back(request, parts, form, thread_id, "ok", text)


# --- dead letters --------------------------------------------------------------------------------


def replay_one(request: Request, parts: Parts, who: Identity, form: FormData) -> Response:
    entry_id = request.path_params["entry_id"]
    stream = DeadLetterStream(parts.state)
    letter = stream.get(entry_id) if ENTRY_ID.match(entry_id) else None
    replayer = parts.replayer() if parts.replayer is not None else None
    if letter is None or replayer is None:
        error = f"no dead letter {entry_id}" if letter is None else "replay is not available here"
        record(request, parts, who, "dlq_replay", "failed", entry_id, error=error)
        return redirect(request, parts, "dead_letters", "error", error)
    result = replayer.replay(letter)
    outcome = "done" if result.outcome == "replayed" else "failed"
    record(request, parts, who, "dlq_replay", outcome, entry_id, result=result.outcome,
           result_detail=result.detail)  # fmt: skip
    kind = "ok" if outcome == "done" else "error"
    return redirect(
        request, parts, "dead_letters", kind, f"{entry_id}: {result.outcome}: {result.detail}"
    )


def replay_all(request: Request, parts: Parts, who: Identity, form: FormData) -> Response:
    replayer = parts.replayer() if parts.replayer is not None else None
    if replayer is None:
        record(request, parts, who, "dlq_replay_all", "failed", error="replay is not available")
        return redirect(request, parts, "dead_letters", "error", "replay is not available here")
    letters = DeadLetterStream(parts.state).list(None)
    kept = [r for r in (replayer.replay(letter) for letter in letters) if r.outcome == "kept"]
    replayed = len(letters) - len(kept)
    record(request, parts, who, "dlq_replay_all", "done", replayed=replayed, kept=len(kept))
    text = f"{replayed} replayed, {len(kept)} kept"
    if kept:
        text += ": " + "; ".join(f"{r.entry_id} {r.detail}" for r in kept[:5])
    return redirect(request, parts, "dead_letters", "error" if kept else "ok", text)


def purge(request: Request, parts: Parts, who: Identity, form: FormData) -> Response:
    """Only with the confirmation box ticked, and only if the count is still the one confirmed."""
    stream = DeadLetterStream(parts.state)
    expected = _text(form, "expected", 20)
    if _text(form, "confirm", 10) != "yes":
        return redirect(request, parts, "purge_confirm", "error", "Tick the box to confirm.")
    size = stream.size()
    if expected != str(size):
        message = f"there are {size} dead letters now, not {expected or '?'}: confirm again"
        record(request, parts, who, "dlq_purge", "failed", error=message)
        return redirect(request, parts, "purge_confirm", "error", message)
    deleted = stream.purge()
    record(request, parts, who, "dlq_purge", "done", deleted=deleted)
    return redirect(request, parts, "dead_letters", "ok", f"{deleted} dead letters deleted")
