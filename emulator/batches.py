"""The Message Batches API: validation of a new batch, processing, and the batch store.

Processing is deterministic and lazy: a batch is due `batch_delay_s` seconds after creation and is
processed (every request at once, with the same brain, usage and fault rules as /v1/messages) the
first time anything looks at it after that moment; its `ended_at` is the due time, not the time
it was looked at. A cancel initiated before then marks the batch `canceling`; the next look ends
it with every request `canceled`. No background task, so nothing races the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator import respond
from emulator.brain import user_text
from emulator.config import EmulatorConfig
from emulator.errors import ApiError, invalid
from emulator.faults import FAULT_ERRORS, MESSAGES_ONLY_KINDS, FaultPlanner, body_digest
from emulator.tokens import PromptCache, count_prompt
from emulator.validation import validate_request

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EXPIRY_S = 24 * 3600.0
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 1000
RESULT_KEYS = ("succeeded", "errored", "canceled", "expired")


def rfc3339(timestamp: float | None) -> str | None:
    """RFC 3339 UTC with microseconds and a `Z`, as the real API writes its timestamps."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_create_body(body: dict[str, Any], config: EmulatorConfig) -> list[tuple[str, Any]]:
    """Check the batch as a whole; per-request params are only checked at processing time."""
    if "requests" not in body:
        raise invalid("requests: Field required")
    requests = body["requests"]
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not requests:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > config.batch_max_requests:
        raise invalid(
            f"requests: List should have at most {config.batch_max_requests} items after "
            f"validation, not {len(requests)}"
        )
    seen: set[str] = set()
    parsed: list[tuple[str, Any]] = []
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise invalid(f"requests.{i}: Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if "custom_id" not in item:
            raise invalid(f"requests.{i}.custom_id: Field required")
        if not isinstance(custom_id, str):
            raise invalid(f"requests.{i}.custom_id: Input should be a valid string")
        if not CUSTOM_ID_PATTERN.match(custom_id):
            raise invalid(
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise invalid(
                f"requests.{i}.custom_id: Duplicate custom_id {custom_id!r}; "
                "custom_id must be unique within a batch"
            )
        seen.add(custom_id)
        if "params" not in item:
            raise invalid(f"requests.{i}.params: Field required")
        extra = set(item) - {"custom_id", "params"}
        if extra:
            raise invalid(f"requests.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
        parsed.append((custom_id, item["params"]))
    return parsed


def _errored(error_type: str, message: str) -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": error_type, "message": message}},
    }


def process_request(
    params: Any,
    *,
    config: EmulatorConfig,
    cache: PromptCache,
    planner: FaultPlanner,
    message_id: str,
) -> dict[str, Any]:
    """The `result` object of one batch request: succeeded, errored or expired."""
    try:
        if not isinstance(params, dict):
            raise invalid("params: Input should be a valid dictionary")
        validate_request(params, config)
        if params.get("stream"):
            raise invalid("stream: streaming is not supported for Message Batch requests")
        prompt = count_prompt(params)
        if prompt.total > config.context_window_tokens:
            raise invalid(
                f"prompt is too long: {prompt.total} tokens > "
                f"{config.context_window_tokens} maximum"
            )
    except ApiError as exc:
        return _errored(exc.error_type, exc.message)
    raw = json.dumps(params, sort_keys=True, ensure_ascii=False).encode("utf-8")
    plan = planner.plan(
        config, body_digest(raw), user_text(params["messages"]), skip_kinds=MESSAGES_ONLY_KINDS
    )
    if plan.fault == "expired":
        return {"type": "expired"}
    if plan.fault in FAULT_ERRORS:
        return _errored(*FAULT_ERRORS[plan.fault])
    usage = respond.account_input(
        params, cache, min_tokens=config.cache_min_tokens, ttl_s=config.cache_ttl_s
    )
    message = respond.build_message(
        params, message_id=message_id, cache_usage=usage, fault=plan.fault, fault_text=plan.text
    )
    message["usage"]["service_tier"] = "batch"
    return {"type": "succeeded", "message": message}


@dataclass
class Batch:
    """One Message Batch and, once ended, its results (in request order)."""

    id: str
    requests: list[tuple[str, Any]]
    created_at: float
    due_at: float
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    results: list[dict[str, Any]] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The MessageBatch object; `results_url` is absolute on `base_url` once ended."""
        ended = self.ended_at is not None
        counts = {"processing": 0 if ended else len(self.requests)}
        counts.update({key: self.counts.get(key, 0) for key in RESULT_KEYS})
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": counts,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + EXPIRY_S),
            "ended_at": rfc3339(self.ended_at),
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }

    def results_jsonl(self) -> bytes:
        lines = [
            json.dumps({"custom_id": custom_id, "result": result}, ensure_ascii=False)
            for (custom_id, _), result in zip(self.requests, self.results or [], strict=True)
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")


class BatchStore:
    """Batches by id, newest last, bounded; thread-safe (one lock, never held across awaits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process_lock = threading.Lock()
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._counter = 0

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()
            self._counter = 0

    def create(self, config: EmulatorConfig, requests: list[tuple[str, Any]]) -> Batch:
        now = time.time()
        with self._lock:
            self._counter += 1
            digest = hashlib.sha256(f"{config.seed}:batch:{self._counter}".encode()).hexdigest()
            batch = Batch(
                id=f"msgbatch_{digest[:24]}",
                requests=requests,
                created_at=now,
                due_at=now + config.batch_delay_s,
            )
            self._batches[batch.id] = batch
            while len(self._batches) > config.max_batches:
                self._batches.popitem(last=False)
        return batch

    def get(self, batch_id: str) -> Batch:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError("not_found_error", f"message_batch: {batch_id} not found")
        return batch

    def delete(self, batch_id: str) -> None:
        with self._lock:
            self._batches.pop(batch_id, None)

    def newest_first(self) -> list[Batch]:
        with self._lock:
            return list(reversed(self._batches.values()))

    def advance(
        self,
        batch: Batch,
        *,
        config: EmulatorConfig,
        cache: PromptCache,
        planner: FaultPlanner,
    ) -> None:
        """End `batch` if it is due or being canceled (idempotent, serialised)."""
        with self._process_lock:
            _advance(batch, config=config, cache=cache, planner=planner, now=time.time())

    def cancel(
        self,
        batch: Batch,
        *,
        config: EmulatorConfig,
        cache: PromptCache,
        planner: FaultPlanner,
    ) -> None:
        """Initiate cancellation; a batch that is already due ends normally first."""
        with self._process_lock:
            now = time.time()
            _advance(batch, config=config, cache=cache, planner=planner, now=now)
            if batch.ended_at is not None:
                raise invalid(
                    f"message_batch {batch.id} has already ended and can no longer be canceled"
                )
            if batch.cancel_initiated_at is None:
                batch.cancel_initiated_at = now


def _advance(
    batch: Batch, *, config: EmulatorConfig, cache: PromptCache, planner: FaultPlanner, now: float
) -> None:
    if batch.ended_at is not None:
        return
    if batch.cancel_initiated_at is not None:
        batch.results = [{"type": "canceled"} for _ in batch.requests]
        batch.ended_at = max(now, batch.cancel_initiated_at)
    elif now >= batch.due_at:
        results = []
        for index, (_, params) in enumerate(batch.requests):
            digest = hashlib.sha256(f"{config.seed}:{batch.id}:{index}".encode()).hexdigest()
            results.append(
                process_request(
                    params,
                    config=config,
                    cache=cache,
                    planner=planner,
                    message_id=f"msg_{digest[:24]}",
                )
            )
        batch.results = results
        batch.ended_at = batch.due_at
    else:
        return
    counts = dict.fromkeys(RESULT_KEYS, 0)
    for result in batch.results:
        counts[result["type"]] += 1
    batch.counts = counts


def list_page(
    batches: list[Batch], *, limit: int, before_id: str | None, after_id: str | None
) -> tuple[list[Batch], bool]:
    """One page of `batches` (newest first) and whether more lie beyond it in that direction."""
    ids = [batch.id for batch in batches]
    if before_id is not None:
        if before_id not in ids:
            raise invalid(f"before_id: unknown message batch id {before_id!r}")
        end = ids.index(before_id)
        start = max(0, end - limit)
        return batches[start:end], start > 0
    start = 0
    if after_id is not None:
        if after_id not in ids:
            raise invalid(f"after_id: unknown message batch id {after_id!r}")
        start = ids.index(after_id) + 1
    page = batches[start : start + limit]
    return page, start + limit < len(batches)
