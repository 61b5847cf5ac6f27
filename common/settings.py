"""All configuration, from `TRIAGE_*` environment variables or a `.env` file.

Built once at an entry point (`load_settings`) and passed down; nothing reads the environment at
import time. `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` keep the names the SDK uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from common.access import MIN_PASSWORD, MIN_TOKEN, Principal, parse_principals
from common.connections import tls_url
from common.errors import ConfigError
from common.prices import DEFAULT_PRICES, ModelPrice
from common.runconfig import RunConfigError, load_run_config
from common.taxonomy import Category, FieldSpec, TaxonomyError, load_taxonomy
from common.webhooks import DEFAULT_NAME as DEFAULT_WEBHOOK
from common.webhooks import (
    Subscription,
    WebhooksFileError,
    check_secret,
    check_url,
    load_webhooks_file,
    parse_events,
)

ENV_PREFIX = "TRIAGE_"
LABEL_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
ADDRESS_PATTERN = re.compile(r"^[^@\s,<>]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")


DEFAULT_CATEGORIES = (
    Category(name="BILLING", description="charges, invoices, refunds, payments, subscriptions"),
    Category(name="SHIPPING", description="deliveries, tracking, lost or damaged parcels"),
    Category(name="TECHNICAL", description="errors, bugs, log-in and app or website problems"),
    Category(name="OTHER", description="anything else that is clear but fits none of the above"),
)


class Settings(BaseSettings):
    """Every knob of the worker, the producers and `triage run`; see the README's table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    # TLS (rediss://) for the state client and the broker alike; declared before the URLs, whose
    # validator folds them in (docs/operations.md "Redis over TLS").
    redis_tls_verify: bool = True
    redis_ca_file: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None
    model: str = "claude-haiku-4-5"
    max_tokens: int = Field(default=1024, ge=16, le=64_000)
    categories: Annotated[list[Category], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CATEGORIES)
    )
    system_prompt_file: Path | None = None
    # YAML or TOML: categories with descriptions, examples and policy, and extra fields to
    # extract (common/taxonomy.py); replaces TRIAGE_CATEGORIES when set.
    taxonomy_file: Path | None = None
    # Confidence bands: high from `confidence_high`, low under `confidence_low`; a classification
    # under `review_below` (or its category's own threshold) goes to the review lane.
    confidence_high: float = Field(default=0.85, ge=0, le=1)
    confidence_low: float = Field(default=0.6, ge=0, le=1)
    review_below: float = Field(default=0.6, ge=0, le=1)
    # Opt-in: the newest corrected examples per category join the system prompt (read when a
    # worker process starts; bounded in count and size).
    learn_from_corrections: bool = False
    learned_examples_per_category: int = Field(default=3, ge=1, le=10)
    # Extra decision fields (from the taxonomy file; not an environment variable of its own).
    fields: list[FieldSpec] = Field(default_factory=list, exclude=True)
    max_clarifications: int = Field(default=1, ge=0, le=10)
    # Limits against loops and abuse (docs/configuration.md). Questions: past a limit the
    # decision is a classification without a question; threads: past a cap, no more calls.
    max_questions_per_recipient_per_day: int = Field(default=3, ge=0)
    max_emails_per_sender_per_hour: int = Field(default=30, ge=1)
    loop_answer_seconds: float = Field(default=60.0, ge=0)
    max_thread_turns: int = Field(default=40, ge=2)
    max_thread_input_tokens: int = Field(default=500_000, ge=100)
    thread_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    max_turn_chars: int = Field(default=20_000, ge=200)
    max_question_chars: int = Field(default=500, ge=40)
    max_email_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_email_text_chars: int = Field(default=50_000, ge=200)
    max_header_bytes: int = Field(
        default=128 * 1024,
        ge=4096,
        description="Bytes of an email's (or a MIME part's) header block read at most; a larger "
        "one is rejected (headers_too_large) before anything parses it.",
    )
    max_encoded_words: int = Field(
        default=200,
        ge=10,
        description="RFC 2047 encoded words decoded per header; the rest of the header is "
        "dropped and marked […].",
    )
    max_mime_parts: int = Field(
        default=500,
        ge=10,
        description="MIME parts read per email; the rest are counted, not read, and the turn "
        "says so.",
    )
    max_mime_depth: int = Field(
        default=20,
        ge=3,
        le=200,
        description="Multipart nesting levels read; deeper parts are not read and the turn "
        "says so.",
    )
    max_addresses_per_header: int = Field(
        default=100, ge=1, description="Addresses read per To/Cc/Reply-To header."
    )
    max_subject_chars: int = Field(
        default=300,
        ge=20,
        description="Subject characters kept at ingestion (longer ones end with […]).",
    )
    prompt_caching: bool = True
    # An explicit cache breakpoint at the end of the system prompt (shared by every thread), on
    # top of the automatic one on the conversation; only with TRIAGE_PROMPT_CACHING.
    cache_system_prompt: bool = True
    api_timeout_seconds: float = Field(default=60.0, gt=0)
    api_max_retries: int = Field(default=2, ge=0, le=10)
    task_max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_seconds: float = Field(default=2.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=300.0, gt=0)
    task_time_limit_seconds: int = Field(default=300, ge=10)
    visibility_timeout_seconds: int = Field(default=3600, ge=60)
    support_address: str = "support@example.com"
    # Contact-form senders whose mail puts the customer in Reply-To (comma-separated addresses).
    form_relay_senders: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A reply joins a thread through In-Reply-To/References only when its sender takes part in
    # the thread; with this on, anyone of a participant's registrable domain does too (never a
    # listed shared provider such as gmail.com). Off by default: the built-in lists of shared
    # providers and public suffixes are short, and a missing one makes strangers colleagues.
    # docs/replies.md, "Who may join a thread".
    thread_join_same_domain: bool = False
    # Full email addresses in log lines (debugging only; by default logs carry the reply id).
    log_addresses: bool = False
    reply_transport: Literal["outbox", "smtp"] = "outbox"
    reply_template_file: Path | None = None
    smtp_host: str = "localhost"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "implicit"] = "none"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    sweep_interval_seconds: float = Field(default=10.0, gt=0)
    reply_stale_seconds: float = Field(default=120.0, gt=0)
    drain_stale_seconds: float = Field(default=90.0, gt=0)
    queued_stale_seconds: float = Field(default=600.0, gt=0)
    # Memory: idle classified threads packed after this long (0 = never); streams trimmed by age.
    compact_after_seconds: float = Field(default=3600.0, ge=0)
    events_retention_days: float = Field(default=30.0, gt=0)
    outbox_retention_days: float = Field(default=30.0, gt=0)
    dead_letter_retention_days: float = Field(default=90.0, gt=0)
    # A queued flag this old while the drain queue is empty means a purged or lost task.
    queued_grace_seconds: float = Field(default=30.0, gt=0)
    # TTL of each worker's heartbeat (refreshed every third of it): a dead worker's threads
    # resume this long (plus one sweep interval) after it stopped.
    worker_heartbeat_seconds: float = Field(default=10.0, ge=1)
    rate_limit_rpm: int = Field(default=0, ge=0)
    rate_limit_itpm: int = Field(default=0, ge=0)
    rate_limit_burst_seconds: float = Field(default=1.0, gt=0, le=10)
    rate_limit_max_wait_seconds: float = Field(default=30.0, ge=0)
    poison_max_attempts: int = Field(default=5, ge=1, le=100)
    worker_pool: Literal["threads", "prefork", "gevent", "solo"] = "threads"
    worker_concurrency: int = Field(default=128, ge=1, le=2000)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    events_maxlen: int = Field(default=1_000_000, ge=1000)
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    history_token_budget: int = Field(default=50_000, ge=0)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_address: str = "0.0.0.0"
    # Celery task events (task-sent/received/started/succeeded/failed) for Flower and
    # `celery events`: worker_send_task_events and task_send_sent_event.
    task_events: bool = True

    # The HTTP intake (`triage serve`, docs/intake.md): where it listens, who may post to
    # /v1/emails (bearer tokens, comma-separated), when it answers 503 instead of accepting.
    intake_host: str = "127.0.0.1"
    intake_port: int = Field(default=8080, ge=0, le=65535)
    intake_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    intake_max_queue: int = Field(default=10_000, ge=0)
    intake_retry_after_seconds: int = Field(default=30, ge=1)
    # Provider webhooks: each endpoint is closed (404) until its credential is set.
    mailgun_signing_key: SecretStr | None = None
    sendgrid_public_key: str | None = None
    sendgrid_username: str | None = None
    sendgrid_password: SecretStr | None = None
    postmark_username: str | None = None
    postmark_password: SecretStr | None = None
    # Signed webhooks (Mailgun, SendGrid) older or newer than this are refused (replays).
    webhook_max_age_seconds: int = Field(default=300, ge=10)
    # The IMAP watcher (`triage imap`): one account, one or more folders.
    imap_host: str | None = None
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_username: str | None = None
    imap_password: SecretStr | None = None
    imap_tls: Literal["implicit", "starttls", "none"] = "implicit"
    imap_tls_verify: bool = True
    imap_ca_file: Path | None = None
    imap_folders: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["INBOX"])
    imap_after: Literal["flag", "move", "none"] = "flag"
    imap_flag: str = "\\Seen"
    imap_move_to: str = "Triaged"
    imap_batch_size: int = Field(default=50, ge=1, le=1000)
    imap_idle: bool = True
    imap_idle_seconds: float = Field(default=300.0, ge=1, le=1740)
    imap_poll_seconds: float = Field(default=30.0, gt=0)
    imap_timeout_seconds: float = Field(default=60.0, gt=0)
    imap_reconnect_max_seconds: float = Field(default=300.0, gt=0)

    # Outbound event webhooks (docs/webhooks.md; not the providers' inbound ones above): one
    # endpoint for every event type with URL and secret alone, more from a file; delivered by
    # every worker unless TRIAGE_WEBHOOK_IN_WORKER=false (then `triage webhooks serve`).
    webhook_url: str | None = None
    webhook_events: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    webhook_secret: SecretStr | None = None
    webhooks_file: Path | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    webhook_in_worker: bool = True

    # Reprocessing runs (`triage reprocess`, docs/reprocessing.md): their records expire this
    # long after their last write; runs of this many calls or more default to the Message
    # Batches API (half price); live runs keep this many calls in flight.
    reprocess_retention_days: float = Field(default=30.0, gt=0)
    reprocess_batch_from: int = Field(default=100, ge=1)
    reprocess_concurrency: int = Field(default=16, ge=1, le=512)
    # Shadow mode: a second configuration (a run configuration file: taxonomy, prompt, model)
    # decides a sample of live emails after the live decision, without acting (run `shadow`).
    shadow_config: Path | None = None
    shadow_sample: float = Field(default=0.1, ge=0, le=1)
    shadow_concurrency: int = Field(default=4, ge=1, le=64)

    # The web console (`triage console`, docs/console.md). Users and bearer tokens are
    # `name:secret:role` entries (roles viewer, reviewer); without any, it is read-only, shows no
    # email body and serves only on a loopback address. The secret signs sessions and CSRF tokens
    # (random per process when unset: give every process the same one).
    console_host: str = "127.0.0.1"
    console_port: int = Field(default=8090, ge=0, le=65535)
    console_users: Annotated[list[Principal], NoDecode] = Field(default_factory=list)
    console_tokens: Annotated[list[Principal], NoDecode] = Field(default_factory=list)
    console_secret: SecretStr | None = None
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    console_secure_cookies: bool = False
    console_reports_dir: Path | None = None

    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")

    @field_validator("anthropic_api_key", "anthropic_base_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """`ANTHROPIC_API_KEY=` (as .env files ship it) means "not set", not an empty key."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("redis_url", "broker_url", mode="after")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        """A URL Redis clients understand, caught here rather than as a traceback later."""
        schemes = ("redis://", "rediss://", "unix://", "sentinel://")
        if value is not None and not value.startswith(schemes):
            raise ValueError(
                f"{value!r} is not a Redis URL: write it as redis://host:port/db "
                "(rediss:// for TLS, unix:///path/to/socket)"
            )
        return value

    @field_validator("redis_url", "broker_url", mode="after")
    @classmethod
    def _tls_options(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A `rediss://` URL verifies the server's certificate (CA from the URL, else
        `TRIAGE_REDIS_CA_FILE`, else the system store) unless `TRIAGE_REDIS_TLS_VERIFY=false`;
        its options are rewritten in the one spelling every client reads (`tls_url`)."""
        if value is None or "redis_tls_verify" not in info.data:
            return value
        ca_file = info.data.get("redis_ca_file")
        verify = bool(info.data["redis_tls_verify"])
        return tls_url(value, verify=verify, ca_file=str(ca_file) if ca_file else None)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        """`TRIAGE_LOG_LEVEL=info` means INFO."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("categories", mode="before")
    @classmethod
    def _parse_categories(cls, value: Any) -> Any:
        """Accept a JSON list (of names or {name, description}) or comma-separated names."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            parsed = json.loads(text)
        else:
            parsed = [name for name in (part.strip() for part in text.split(",")) if name]
        return [{"name": item} if isinstance(item, str) else item for item in parsed]

    @field_validator("form_relay_senders", mode="before")
    @classmethod
    def _parse_addresses(cls, value: Any) -> Any:
        """A comma-separated list (or a JSON list) of addresses, compared case-insensitively."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if not isinstance(value, list):
            return value
        addresses = [str(item).strip().lower() for item in value if str(item).strip()]
        for address in addresses:
            if not ADDRESS_PATTERN.match(address):
                raise ValueError(f"{address!r} is not an email address (local@domain.tld)")
        return addresses

    @field_validator("console_users", mode="before")
    @classmethod
    def _console_users(cls, value: Any) -> Any:
        """`name:password:role,...`; the message names an entry, never its password."""
        return parse_principals(value, "password", MIN_PASSWORD)

    @field_validator("console_tokens", mode="before")
    @classmethod
    def _console_tokens(cls, value: Any) -> Any:
        """`name:token:role,...` (bearer tokens for scripts)."""
        return parse_principals(value, "token", MIN_TOKEN)

    @field_validator("console_secret", "console_reports_dir", mode="before")
    @classmethod
    def _blank_console_is_unset(cls, value: Any) -> Any:
        """`TRIAGE_CONSOLE_SECRET=` (as .env files ship it) means "not set"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("console_secret")
    @classmethod
    def _console_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("needs at least 16 characters (it signs sessions and CSRF tokens)")
        return value

    @field_validator("intake_tokens", "imap_folders", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """`a,b` (or a JSON list): blanks dropped, so an empty variable is an empty list."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list):
            items = [item.strip() if isinstance(item, str) else item for item in value]
            return [item for item in items if item]
        return value

    @field_validator("webhook_url", "webhook_secret", "webhooks_file", mode="before")
    @classmethod
    def _blank_webhook_is_unset(cls, value: Any) -> Any:
        """`TRIAGE_WEBHOOK_URL=` (as .env files ship it) means no default subscription."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return check_url(value) if value is not None else None

    @field_validator("webhook_events", mode="before")
    @classmethod
    def _webhook_events(cls, value: Any) -> Any:
        """Comma-separated event types (or a JSON list); `*`: every type."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        return list(parse_events(value)) if isinstance(value, list) else value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """`TRIAGE_WEBHOOK_URL` needs a secret: deliveries are always signed."""
        if value is None and info.data.get("webhook_url") is not None:
            raise ValueError("required with TRIAGE_WEBHOOK_URL (deliveries are always signed)")
        if value is not None:
            check_secret(value.get_secret_value())
        return value

    @field_validator("webhooks_file")
    @classmethod
    def _webhooks_file_loads(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """A bad file is a bad setting: the message names the file, the entry, the problem."""
        if value is None:
            return value
        try:
            subscriptions = load_webhooks_file(value)
        except WebhooksFileError as exc:
            raise ValueError(str(exc)) from None
        if info.data.get("webhook_url") and any(s.name == DEFAULT_WEBHOOK for s in subscriptions):
            raise ValueError(
                f"{value}: the name {DEFAULT_WEBHOOK!r} is TRIAGE_WEBHOOK_URL's; use another"
            )
        return value

    @field_validator("prices", mode="after")
    @classmethod
    def _prices_extend_defaults(cls, value: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        """`TRIAGE_PRICES` adds or overrides models; the built-in rates stay for the rest."""
        return {**DEFAULT_PRICES, **value}

    @field_validator("categories")
    @classmethod
    def _distinct_categories(cls, value: list[Category]) -> list[Category]:
        names = [category.name for category in value]
        if not names:
            raise ValueError("at least one category is required")
        if len(set(names)) != len(names):
            raise ValueError(f"category names must be distinct, got {names}")
        return value

    @field_validator("system_prompt_file", "reply_template_file", "redis_ca_file", "imap_ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _visibility_covers_retries(self) -> Settings:
        needed = self.task_time_limit_seconds + self.retry_backoff_max_seconds
        if self.visibility_timeout_seconds <= needed:
            raise ValueError(
                "TRIAGE_VISIBILITY_TIMEOUT_SECONDS "
                f"({self.visibility_timeout_seconds}) must exceed "
                f"TRIAGE_TASK_TIME_LIMIT_SECONDS + TRIAGE_RETRY_BACKOFF_MAX_SECONDS ({needed:g}), "
                "or the broker redelivers tasks that are still running or waiting to retry"
            )
        return self

    @property
    def effective_smtp_port(self) -> int:
        """465 for implicit TLS, 587 for STARTTLS, 25 otherwise, unless set."""
        if self.smtp_port is not None:
            return self.smtp_port
        return {"implicit": 465, "starttls": 587}.get(self.smtp_tls, 25)

    @property
    def effective_broker_url(self) -> str:
        """The broker is the state Redis unless `TRIAGE_BROKER_URL` says otherwise."""
        return self.broker_url or self.redis_url

    @field_validator("shadow_config", mode="before")
    @classmethod
    def _blank_shadow_is_unset(cls, value: Any) -> Any:
        """`TRIAGE_SHADOW_CONFIG=` (as .env files ship it) means no shadow run."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("shadow_config")
    @classmethod
    def _shadow_config_loads(cls, value: Path | None) -> Path | None:
        """A bad file is a bad setting: the message names the file and the problem."""
        if value is not None:
            try:
                load_run_config(value)
            except RunConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("taxonomy_file")
    @classmethod
    def _taxonomy_loads(cls, value: Path | None) -> Path | None:
        """A bad file is a bad setting: the message names the file, the line, the problem."""
        if value is not None:
            try:
                load_taxonomy(value)
            except TaxonomyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _load_taxonomy(self) -> Settings:
        """With `TRIAGE_TAXONOMY_FILE`, its categories and fields replace the defaults."""
        if self.taxonomy_file is not None:
            taxonomy = load_taxonomy(self.taxonomy_file)
            self.categories = taxonomy.categories
            self.fields = taxonomy.fields
        if self.confidence_low > self.confidence_high:
            raise ValueError("TRIAGE_CONFIDENCE_LOW must not exceed TRIAGE_CONFIDENCE_HIGH")
        return self

    @property
    def webhook_subscriptions(self) -> list[Subscription]:
        """Where events are POSTed: `default` from TRIAGE_WEBHOOK_URL, then the file's."""
        subscriptions = []
        if self.webhook_url is not None and self.webhook_secret is not None:
            subscriptions.append(
                Subscription(
                    name=DEFAULT_WEBHOOK,
                    url=self.webhook_url,
                    secret=self.webhook_secret,
                    events=tuple(self.webhook_events),
                )
            )
        if self.webhooks_file is not None:
            subscriptions += load_webhooks_file(self.webhooks_file)
        return subscriptions

    def category(self, name: str) -> Category | None:
        return next((c for c in self.categories if c.name == name), None)

    @property
    def category_names(self) -> list[str]:
        return [category.name for category in self.categories]


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    alias = (
        Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    )
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or fail with one clear message naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            where = env_name(field) if field else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
    except (SettingsError, json.JSONDecodeError) as exc:
        raise ConfigError(f"invalid setting: {exc}") from None
