"""Webhook subscriptions: where events are POSTed, which types, with what secret.

One endpoint receiving every event type needs only `TRIAGE_WEBHOOK_URL` and
`TRIAGE_WEBHOOK_SECRET` (it is named `default`); any number more come from a file
(`TRIAGE_WEBHOOKS_FILE`, YAML, TOML or JSON):

```yaml
webhooks:
  - name: helpdesk                      # a-z, 0-9, _ and -: names metrics, logs, dead letters
    url: https://helpdesk.example.com/hooks/triage
    secret: "whsec_6f1c…"               # HMAC-SHA256 key of the X-Triage-Signature header
    previous_secrets: ["whsec_old…"]    # also signed with these while receivers roll over
    events: [classified, escalated]     # default: every type
    headers: {Authorization: "Bearer …"}
    timeout_seconds: 5                  # default: TRIAGE_WEBHOOK_TIMEOUT_SECONDS
```

A bad file stops start-up with one message naming the file, the entry and the problem. The file
holds secrets: keep it readable by the worker only. Delivery itself is `worker.deliver`.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

#: Every event type (`worker.events.EVENT_TYPES`; a test keeps the two in step).
EVENT_TYPES = (
    "classified",
    "clarification",
    "escalated",
    "review_accepted",
    "corrected",
    "reclassified",
)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
#: Headers a subscription may not set: they carry the event id, the signature and the body type.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "user-agent"}
)
RESERVED_PREFIX = "x-triage-"
DEFAULT_NAME = "default"
MIN_SECRET_CHARS = 16


def check_url(value: str) -> str:
    """An http(s) URL with a host (the scheme decides TLS; redirects are not followed)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value.strip()


def check_secret(value: str) -> str:
    if len(value) < MIN_SECRET_CHARS:
        raise ValueError(f"a secret needs at least {MIN_SECRET_CHARS} characters")
    return value


def parse_events(value: Any) -> tuple[str, ...]:
    """Event types from a list or a comma-separated string; `*` or nothing: every type."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    kinds = [str(kind).strip() for kind in value]
    if not kinds or kinds == ["*"]:
        return EVENT_TYPES
    unknown = [kind for kind in kinds if kind not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; valid: {', '.join(EVENT_TYPES)} or *"
        )
    return tuple(dict.fromkeys(kinds))


class Subscription(BaseModel):
    """One endpoint and what it receives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    secret: SecretStr
    previous_secrets: tuple[SecretStr, ...] = ()
    events: tuple[str, ...] = EVENT_TYPES
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"name {value!r} must match {NAME_PATTERN.pattern}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        check_secret(value.get_secret_value())
        return value

    @field_validator("previous_secrets")
    @classmethod
    def _previous(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in value:
            check_secret(secret.get_secret_value())
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        return parse_events(value) if isinstance(value, str | list | tuple) else value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIX):
                raise ValueError(f"header {name!r} is set by the delivery worker")
        return value

    def signing_secrets(self) -> list[bytes]:
        """The current secret first, then the previous ones (each gets a `v1=` signature)."""
        return [s.get_secret_value().encode() for s in (self.secret, *self.previous_secrets)]

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


class WebhooksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhooks: list[Subscription] = Field(min_length=1)


class WebhooksFileError(ValueError):
    """A subscriptions file that cannot be used; the message names the file, entry, problem."""


def load_webhooks_file(path: Path) -> list[Subscription]:
    """Read and check a subscriptions file (`.toml`, `.json`, or YAML for anything else)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WebhooksFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise WebhooksFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise WebhooksFileError(f"{path}: expected a mapping with a `webhooks` list")
    try:
        subscriptions = WebhooksFile.model_validate(data).webhooks
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise WebhooksFileError(f"{path}: {where}: {first['msg']}") from None
    names = [s.name for s in subscriptions]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise WebhooksFileError(f"{path}: webhook name(s) declared twice: {', '.join(doubled)}")
    return subscriptions
