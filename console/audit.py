"""The console's audit trail: every action and every refused one, logged and kept in a stream.

Each is one `console.action` (or `console.refused`) log line and one entry of the stream
`triage:console:audit` (fields `action`, `by`, `outcome`, `payload` = the `ConsoleAction` as
JSON), trimmed to about `AUDIT_MAXLEN` entries. Review verdicts are also the `review_accepted` /
`corrected` events of `triage:events`, which carry `by`.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import redis
import structlog
from pydantic import BaseModel, ConfigDict, Field

from common import keys
from common.connections import as_text

log = structlog.get_logger("console.audit")

AUDIT_MAXLEN = 100_000

Outcome = Literal["done", "failed", "refused"]


class ConsoleAction(BaseModel):
    """Who did what, when, to what, and how it ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["console_action"] = "console_action"
    action: str = Field(
        description="login, logout, review_accept, review_correct, dlq_replay, dlq_replay_all, "
        "dlq_purge"
    )
    by: str = Field(description="The user or token name (anonymous when nobody signed in)")
    role: str
    via: str = Field(description="basic, bearer, session or anonymous")
    target: str | None = Field(default=None, description="Thread id, dead-letter id, …")
    outcome: Outcome
    detail: dict[str, Any] = Field(default_factory=dict)
    client: str | None = None
    at: float = Field(default_factory=lambda: round(time.time(), 3))


class AuditTrail:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def record(self, action: ConsoleAction) -> None:
        fields = action.model_dump(exclude={"detail", "type", "at"})
        if action.outcome == "refused":
            log.warning("console.refused", **fields, **action.detail)
        else:
            log.info("console.action", **fields, **action.detail)
        try:
            self._redis.xadd(
                keys.CONSOLE_AUDIT,
                {
                    "action": action.action,
                    "by": action.by,
                    "outcome": action.outcome,
                    "payload": action.model_dump_json(),
                },
                maxlen=AUDIT_MAXLEN,
                approximate=True,
            )
        except redis.RedisError as exc:  # the log line stands; the page says what happened
            log.warning("console.audit_failed", action=action.action, error=str(exc))

    def recent(self, count: int = 50) -> list[ConsoleAction]:
        entries: Any = self._redis.xrevrange(keys.CONSOLE_AUDIT, count=count)
        found = []
        for _, fields in entries:
            try:
                found.append(ConsoleAction.model_validate_json(as_text(fields[b"payload"])))
            except (KeyError, ValueError):
                continue
        return found
