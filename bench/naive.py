"""The naive baseline: the seed article's pattern done the obvious way.

One Celery task per email: GET the thread's history as one JSON string, append the turn, call
Claude, append the answer, SET the JSON back. Default Celery settings (prefork pool, concurrency =
cores), no inbox, no fencing, no structured output. Run by `bench.suite` as
`celery -A bench.naive worker`; configured from NAIVE_BROKER_URL / NAIVE_REDIS_URL and the
ANTHROPIC_* variables.
"""

from __future__ import annotations

import json
import os

import anthropic
import redis
from celery import Celery

SYSTEM = (
    "You are a support triage assistant. Classify each request as BILLING, SHIPPING, TECHNICAL, "
    "or OTHER. If the request is too vague to classify confidently, ask one short clarifying "
    "question instead."
)

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/12"))
app.conf.broker_connection_retry_on_startup = True
_state: dict[str, object] = {}


def _clients() -> tuple[redis.Redis, anthropic.Anthropic]:
    if "pid" not in _state or _state["pid"] != os.getpid():
        _state["redis"] = redis.Redis.from_url(
            os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/11")
        )
        _state["claude"] = anthropic.Anthropic()
        _state["pid"] = os.getpid()
    return _state["redis"], _state["claude"]  # type: ignore[return-value]


@app.task(name="naive.triage")
def triage(thread_id: str, text: str) -> str:
    store, claude = _clients()
    raw = store.get(f"naive:{thread_id}")
    messages = json.loads(raw) if raw else []
    messages.append({"role": "user", "content": text})
    response = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=256, system=SYSTEM, messages=messages
    )
    answer = response.content[0].text  # type: ignore[union-attr]
    messages.append({"role": "assistant", "content": answer})
    store.set(f"naive:{thread_id}", json.dumps(messages))
    store.rpush("naive:done", thread_id)
    return answer
