"""The aiohttp application: Messages API routes, admin routes, error envelope, request log.

Also `EmulatorThread`, which runs the app on its own event loop in a background thread so that
synchronous tests and benchmarks can use it in-process. Responses are written in one piece
(aiohttp keeps TCP_NODELAY on), so keep-alive clients never hit the Nagle/delayed-ACK stall.

Over the usual 400 lines on purpose: the routes share one request pipeline (auth, size limit,
validation, faults, rate limits, recording) that reads best in one place; the brain, faults,
validation, batches and streaming are their own modules.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pydantic
import structlog
from aiohttp import web

from emulator import batches, respond
from emulator.brain import user_text
from emulator.config import EmulatorConfig
from emulator.errors import RETRYABLE_STATUS, ApiError, invalid
from emulator.faults import FAULT_ERRORS, body_digest
from emulator.state import EmulatorState, safe_headers
from emulator.streaming import encode_sse, sse_events
from emulator.tokens import count_prompt
from emulator.validation import parse_json_object, validate_request

__all__ = ["STATE_KEY", "EmulatorThread", "create_app"]

log = structlog.get_logger("emulator")

STATE_KEY = web.AppKey("emulator_state", EmulatorState)


@dataclass
class RequestInfo:
    """Per-request facts collected by handlers for the log line and the recording."""

    request_id: str
    message_id: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    dropped: bool = False


INFO_KEY = web.RequestKey("emulator_info", RequestInfo)


def _json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        headers=headers,
    )


def _error_response(exc: ApiError, request_id: str) -> web.Response:
    headers = dict(exc.headers)
    if exc.status in RETRYABLE_STATUS:
        headers["x-should-retry"] = "true"
    return _json_response(exc.envelope(request_id), status=exc.status, headers=headers)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return ApiError("not_found_error", f"Not found: {request.method} {request.path}")
    if exc.status == 405:
        return ApiError(
            "invalid_request_error",
            f"Method {request.method} is not allowed for {request.path}",
            status=405,
        )
    if exc.status == 413:
        return ApiError("request_too_large", "Request exceeds the maximum allowed size")
    if exc.status < 500:
        return ApiError("invalid_request_error", exc.reason, status=exc.status)
    return ApiError("api_error", exc.reason, status=exc.status)


@web.middleware
async def _envelope_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Request ids, the error envelope for every failure, and one log line per request."""
    state = request.app[STATE_KEY]
    request_id, message_id = state.next_ids()
    info = RequestInfo(request_id, message_id)
    request[INFO_KEY] = info
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(exc, request_id)
    except web.HTTPException as exc:
        response = _error_response(_from_http_exception(request, exc), request_id)
    except Exception:
        log.exception("emulator.handler_failed", path=request.path, request_id=request_id)
        response = _error_response(ApiError("api_error", "Internal server error"), request_id)
    if not response.prepared:
        response.headers["request-id"] = request_id
        for name, value in info.extra_headers.items():
            response.headers.setdefault(name, value)
    log.info(
        "emulator.request",
        method=request.method,
        path=request.path,
        status=None if info.dropped else response.status,
        input_tokens=info.input_tokens,
        output_tokens=info.output_tokens,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        request_id=request_id,
    )
    return response


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = ApiError(
        "request_too_large", f"Request exceeds the maximum allowed number of bytes ({limit})"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _check_headers(request: web.Request, config: EmulatorConfig) -> None:
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise ApiError("authentication_error", "x-api-key header is required")
    if config.api_key is not None and key != config.api_key:
        raise ApiError("authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        raise invalid("anthropic-version: header is required")


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


async def _recorded(request: web.Request, inner: Any) -> web.StreamResponse:
    """Run an API handler and record request and response, errors included."""
    state = request.app[STATE_KEY]
    info = request[INFO_KEY]
    holder: dict[str, Any] = {"body": None}
    response: web.StreamResponse | None = None
    try:
        response = await inner(request, holder)
        return response
    except ApiError as exc:
        response = _error_response(exc, info.request_id)
        return response
    finally:
        if response is not None:
            state.record(_record_entry(request, info, holder, response))


def _record_entry(
    request: web.Request, info: RequestInfo, holder: dict[str, Any], response: web.StreamResponse
) -> dict[str, Any]:
    payload: Any = holder.get("message")
    if payload is None and isinstance(response, web.Response) and not info.dropped:
        try:
            payload = json.loads(response.body) if isinstance(response.body, bytes) else None
        except ValueError:
            payload = None
    return {
        "path": request.path,
        "status": None if info.dropped else response.status,
        "request_id": info.request_id,
        "fault": holder.get("fault"),
        "headers": safe_headers(request.headers),
        "body": holder["body"],
        "response": payload,
    }


async def _parse(
    request: web.Request,
    config: EmulatorConfig,
    holder: dict[str, Any],
    *,
    limit: int | None = None,
) -> tuple[bytes, dict[str, Any]]:
    raw = await _read_body(request, config.max_body_bytes if limit is None else limit)
    try:
        holder["body"] = json.loads(raw)
    except (ValueError, RecursionError):
        holder["body"] = None
    _check_headers(request, config)
    return raw, parse_json_object(raw)


async def _messages_inner(request: web.Request, holder: dict[str, Any]) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    config = state.config
    info = request[INFO_KEY]
    raw, body = await _parse(request, config, holder)
    validate_request(body, config)

    prompt = count_prompt(body)
    if prompt.total > config.context_window_tokens:
        raise invalid(
            f"prompt is too long: {prompt.total} tokens > {config.context_window_tokens} maximum"
        )
    admission = state.limiter.admit(prompt.total, config.rpm, config.itpm)
    info.extra_headers.update(admission.headers)
    if not admission.allowed:
        raise ApiError(
            "rate_limit_error",
            f"This request would exceed the rate limit for your organization of "
            f"{config.rpm if admission.limit_name == 'requests' else config.itpm} "
            f"{admission.limit_name.replace('_', ' ')} per minute.",
            headers={"retry-after": str(admission.retry_after_s)},
        )

    plan = state.planner.plan(config, body_digest(raw), user_text(body["messages"]))
    holder["fault"] = plan.fault
    if plan.delay_s > 0:
        await asyncio.sleep(plan.delay_s)
    if plan.fault == "reset":
        info.dropped = True
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    if plan.fault in FAULT_ERRORS:
        error_type, error_message = FAULT_ERRORS[plan.fault]
        headers = {}
        if plan.fault == "rate_limit":
            headers["retry-after"] = _format_seconds(config.retry_after_s)
        raise ApiError(error_type, error_message, headers=headers)

    usage = respond.account_input(
        body, state.cache, min_tokens=config.cache_min_tokens, ttl_s=config.cache_ttl_s
    )
    message = respond.build_message(
        body, message_id=info.message_id, cache_usage=usage, fault=plan.fault, fault_text=plan.text
    )
    info.input_tokens = usage.input_tokens
    info.output_tokens = message["usage"]["output_tokens"]
    if body.get("stream"):
        holder["message"] = message
        return web.Response(
            body=encode_sse(sse_events(message)),
            content_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )
    return _json_response(message)


async def _count_tokens_inner(request: web.Request, holder: dict[str, Any]) -> web.StreamResponse:
    config = request.app[STATE_KEY].config
    _, body = await _parse(request, config, holder)
    validate_request(body, config, require_max_tokens=False)
    total = count_prompt(body).total
    request[INFO_KEY].input_tokens = total
    return _json_response({"input_tokens": total})


async def _messages(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, _messages_inner)


async def _count_tokens(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, _count_tokens_inner)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _batch(request: web.Request) -> batches.Batch:
    """The batch named in the path, processed first if it is due."""
    state = request.app[STATE_KEY]
    batch = state.batches.get(request.match_info["batch_id"])
    state.batches.advance(batch, config=state.config, cache=state.cache, planner=state.planner)
    return batch


async def _create_batch_inner(request: web.Request, holder: dict[str, Any]) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    config = state.config
    _, body = await _parse(request, config, holder, limit=config.batch_max_body_bytes)
    parsed = batches.parse_create_body(body, config)
    batch = state.batches.create(config, parsed)
    state.batches.advance(batch, config=config, cache=state.cache, planner=state.planner)
    return _json_response(batch.to_json(_base_url(request)))


async def _create_batch(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, _create_batch_inner)


async def _retrieve_batch(request: web.Request) -> web.StreamResponse:
    _check_headers(request, request.app[STATE_KEY].config)
    return _json_response(_batch(request).to_json(_base_url(request)))


def _query_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return batches.LIST_DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit: Input should be a valid integer") from None
    if not 1 <= limit <= batches.LIST_MAX_LIMIT:
        raise invalid(f"limit: Input should be between 1 and {batches.LIST_MAX_LIMIT}")
    return limit


async def _list_batches(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    config = state.config
    _check_headers(request, config)
    limit = _query_limit(request)
    before_id = request.query.get("before_id")
    after_id = request.query.get("after_id")
    if before_id is not None and after_id is not None:
        raise invalid("before_id and after_id cannot both be set")
    everything = state.batches.newest_first()
    page, has_more = batches.list_page(
        everything, limit=limit, before_id=before_id, after_id=after_id
    )
    for batch in page:
        state.batches.advance(batch, config=config, cache=state.cache, planner=state.planner)
    base_url = _base_url(request)
    return _json_response(
        {
            "data": [batch.to_json(base_url) for batch in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }
    )


async def _cancel_batch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _check_headers(request, state.config)
    batch = state.batches.get(request.match_info["batch_id"])
    state.batches.cancel(batch, config=state.config, cache=state.cache, planner=state.planner)
    return _json_response(batch.to_json(_base_url(request)))


async def _delete_batch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _check_headers(request, state.config)
    batch = _batch(request)
    if batch.ended_at is None:
        raise invalid(
            f"message_batch {batch.id} cannot be deleted while it is {batch.status}; "
            "cancel it and wait for it to end first"
        )
    state.batches.delete(batch.id)
    return _json_response({"id": batch.id, "type": "message_batch_deleted"})


async def _batch_results(request: web.Request) -> web.StreamResponse:
    _check_headers(request, request.app[STATE_KEY].config)
    batch = _batch(request)
    if batch.ended_at is None:
        raise invalid(
            f"message_batch {batch.id} has not finished processing ({batch.status}); "
            "results are available once processing_status is 'ended'"
        )
    return web.Response(body=batch.results_jsonl(), content_type="application/x-jsonl")


async def _get_config(request: web.Request) -> web.StreamResponse:
    return _json_response(request.app[STATE_KEY].config.public_dict())


async def _post_config(request: web.Request) -> web.StreamResponse:
    fields = parse_json_object(await request.read())
    try:
        config = request.app[STATE_KEY].configure(**fields)
    except pydantic.ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise invalid(f"invalid emulator config: {details}") from None
    return _json_response(config.public_dict())


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return _json_response({"ok": True})


async def _requests(request: web.Request) -> web.StreamResponse:
    return _json_response(request.app[STATE_KEY].records())


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator application for `config` (defaults: a healthy, fast API)."""
    app = web.Application(middlewares=[_envelope_middleware])
    app[STATE_KEY] = EmulatorState(config or EmulatorConfig())
    app.router.add_post("/v1/messages", _messages)
    app.router.add_post("/v1/messages/count_tokens", _count_tokens)
    app.router.add_post("/v1/messages/batches", _create_batch)
    app.router.add_get("/v1/messages/batches", _list_batches)
    app.router.add_get("/v1/messages/batches/{batch_id}", _retrieve_batch)
    app.router.add_delete("/v1/messages/batches/{batch_id}", _delete_batch)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", _cancel_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", _batch_results)
    app.router.add_get("/_emulator/config", _get_config)
    app.router.add_post("/_emulator/config", _post_config)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/requests", _requests)
    return app


class EmulatorThread:
    """The emulator on a background thread with its own event loop.

    `start()` blocks until the port is listening and returns the base URL; `stop()` closes it.
    `configure()`, `reset()` and `requests` are safe to call from any thread.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._app = create_app(config)
        self._state = self._app[STATE_KEY]
        self._host = host
        self._port = port
        self._base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("emulator is not running; call start() first")
        return self._base_url

    @property
    def config(self) -> EmulatorConfig:
        return self._state.config

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded /v1/messages and count_tokens requests, oldest first."""
        return self._state.records()

    def configure(self, **fields: Any) -> EmulatorConfig:
        """Change config fields at runtime (validated; thread-safe)."""
        return self._state.configure(**fields)

    def reset(self) -> None:
        """Clear recordings, caches, rate windows and fault counters; restore the first config."""
        self._state.reset()

    def start(self) -> str:
        if self._thread is not None:
            return self.base_url
        self._thread = threading.Thread(target=self._run, name="emulator-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("emulator did not start within 30 s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"emulator failed to start: {self._error}") from self._error
        return self.base_url

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self._host, self._port)
            loop.run_until_complete(site.start())
            host, port = runner.addresses[0][:2]
            self._base_url = f"http://{host}:{port}"
        except BaseException as exc:
            self._error = exc
            loop.run_until_complete(runner.cleanup())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
