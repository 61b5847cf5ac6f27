"""Shadow mode: a second configuration decides a sample of live emails, after the live decision,
and records what it would have decided as the run `shadow`, without acting.

With `TRIAGE_SHADOW_CONFIG` (a run configuration file: taxonomy, prompt, model, decision
settings; `common.runconfig`) every worker process runs a `ShadowService` beside its sweeper: a
reader of `triage:events` in the consumer group `triage:shadow`, so each live decision is
shadowed once fleet-wide, and a small pool (`TRIAGE_SHADOW_CONCURRENCY` calls in flight).

Why a reader of the events stream: the stream entry is written by the live commit itself, so the
shadow starts only after the live decision is committed and can never delay, change or fail it;
the drain step is not touched at all. For each `classified` or `clarification` event in the
sample (`TRIAGE_SHADOW_SAMPLE`, decided by a hash of the thread and its emails, so a redelivered
event is sampled the same way), it reads the thread without writing (`ThreadStore.peek`), takes
the array exactly as the live call had it (up to that decision's user turn), and decides it with
the shadow configuration through the worker's own request, result reading and send guard
(`worker.decide.rerun`). The question it would ask is recorded, never sent; nothing is written to
the thread, the events stream, the reply queue or the outbox. Its calls are counted in the run's
record and the ledger (category `SHADOW`), and go through the fleet rate limiter, taking capacity
only when it is free at once (a shadow call never queues ahead of a live one; it waits twice as
long and tries again). A failure (API error after the worker's retries, a bug) is recorded as a
`failed` shadow decision or logged (`shadow.error`), and the event is acknowledged either way.
An entry a dead worker was deciding is taken over after `CLAIM_IDLE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog

from common import keys
from common.connections import as_text
from common.contract import STATUS_AWAITING, STATUS_CLASSIFIED, STATUS_NEEDS_REVIEW
from common.errors import ConfigError, Permanent, RetryLater, TriageError
from common.runconfig import RunConfigError, load_run_config
from common.settings import Settings
from worker.decide.claude import ClaudeClient, make_client
from worker.decide.conversation import check_alternation
from worker.decide.ratelimit import RateLimiter, estimate_input_tokens
from worker.decide.rerun import Deciding, RunSpec, Subject, derive_spec
from worker.events import LiveDecision, RunDecision
from worker.recovery.backoff import compute_backoff
from worker.state.runs import LEDGER_SHADOW, RUN_RUNNING, SHADOW, RunStore
from worker.state.snapshot import Snapshot
from worker.state.store import ThreadStore

log = structlog.get_logger("worker.shadow")

SHADOWED_TYPES = ("classified", "clarification")
#: How long the reader blocks on the stream before looking again anyway.
BLOCK_MS = 1000
#: An entry read by a consumer that has not acknowledged it for this long is taken over.
CLAIM_IDLE_SECONDS = 600.0
#: How often the shadow run's records older than the retention are forgotten.
TRIM_EVERY_SECONDS = 3600.0
#: Longest a shadow call waits for free rate-limit capacity before it is given up.
MAX_RATE_WAIT_SECONDS = 600.0


class _Stopped(Exception):
    """The worker is stopping: leave the event for another worker or a restart."""


def sampled(thread_id: str, email_ids: list[str], rate: float) -> bool:
    """Whether this decision is in the sample (pure, the same answer every time it is asked)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    seed = "\0".join([thread_id, *email_ids]).encode()
    value = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") / 2**64
    return value < rate


def shadow_subject(event: dict[str, Any], snapshot: Snapshot, settings: Settings) -> Subject | None:
    """What the live decision of `event` decided on, for the shadow configuration (None: the
    thread is gone or no longer holds that turn)."""
    turns = int(event.get("turns") or 0)
    messages = snapshot.messages[: turns - 1] if turns >= 2 else []
    if len(messages) != turns - 1 or not messages or messages[-1].get("role") != "user":
        return None
    check_alternation(messages)
    reason = event.get("no_question_reason")
    if reason is None and int(event.get("clarifications") or 0) >= settings.max_clarifications:
        reason = "clarification_limit"
    classified = event["type"] == "classified"
    status = STATUS_NEEDS_REVIEW if event.get("needs_review") else STATUS_CLASSIFIED
    # The version after that decision is known only while the thread has not moved on; 0 (no
    # thread has it) otherwise, so `apply` never promotes a shadow decision over newer mail.
    current = len(snapshot.messages) == turns
    live = LiveDecision(
        version=snapshot.version if current else 0,
        status=status if classified else STATUS_AWAITING,
        action="classify" if classified else "clarify",
        category=event.get("category") if classified else None,
        fields=event.get("fields") or {},
        prompt_version=event.get("prompt_version"),
    )
    return Subject(snapshot.thread_id, list(event.get("email_ids") or []), messages, reason, live)


class ShadowService:
    """The shadow run of one worker process; `start()` on worker_ready, `stop()` at shutdown."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        settings: Settings,
        spec: RunSpec,
        claude: ClaudeClient,
        consumer: str,
    ) -> None:
        self._client = client
        self._settings = settings
        self._spec = spec
        self._claude = claude
        self._consumer = consumer or "shadow"
        self._sample = settings.shadow_sample
        self._concurrency = settings.shadow_concurrency
        self._stopped = threading.Event()
        self._active = 0  # decisions being made now
        self._active_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._reader: threading.Thread | None = None
        self._runs: RunStore | None = None
        self._store: ThreadStore | None = None
        self._limiter: RateLimiter | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def _parts(self) -> tuple[redis.Redis, RunStore, ThreadStore, RateLimiter]:
        client = self._client()
        if self._runs is None or self._store is None or self._limiter is None:
            settings = self._settings
            self._runs = RunStore(client, settings.reprocess_retention_days)
            self._store = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
            self._limiter = RateLimiter(
                client,
                settings.rate_limit_rpm,
                settings.rate_limit_itpm,
                settings.rate_limit_burst_seconds,
                0.0,  # never wait in the limiter: a shadow call only takes free capacity
            )
        return client, self._runs, self._store, self._limiter

    def start(self) -> None:
        """Join the consumer group (new events only), record the shadow configuration, start."""
        if self._reader is not None:
            return
        client, runs, _, _ = self._parts()
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
            client.xgroup_create(keys.EVENTS, keys.SHADOW_GROUP, id="$", mkstream=True)
        fields = {
            "kind": "shadow",
            "spec": json.dumps(self._spec.stored()),
            "config": json.dumps(self._spec.describe()),
            "prompt_version": self._spec.prompt_version,
            "source": json.dumps({"kind": "shadow", "sample": self._sample}),
            "status": RUN_RUNNING,
        }
        if not runs.create(SHADOW, fields):
            runs.update(SHADOW, **fields)
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="shadow")
        self._reader = threading.Thread(target=self._read, name="shadow-reader", daemon=True)
        self._reader.start()
        log.info(
            "shadow.serving",
            prompt_version=self._spec.prompt_version,
            model=self._spec.settings.model,
            sample=self._sample,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading; calls in flight get `timeout` to finish and be recorded. An event not
        decided by then stays unacknowledged: another worker (or this one, restarted) takes it
        over."""
        self._stopped.set()
        deadline = time.monotonic() + timeout
        if self._reader is not None:
            self._reader.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        while self._active and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._active:
            self._claude.close()

    # --- reading -----------------------------------------------------------------------------

    def _read(self) -> None:
        last_claim = last_trim = 0.0
        while not self._stopped.is_set():
            try:
                client, runs, _, _ = self._parts()
                now = time.monotonic()
                if now - last_claim > CLAIM_IDLE_SECONDS / 4:
                    last_claim = now
                    self._claim(client)
                if now - last_trim > TRIM_EVERY_SECONDS:
                    last_trim = now
                    oldest = time.time() - self._settings.reprocess_retention_days * 86_400
                    runs.trim_older_than(SHADOW, oldest)
                entries: Any = client.xreadgroup(
                    keys.SHADOW_GROUP,
                    self._consumer,
                    {keys.EVENTS: ">"},
                    count=self._concurrency,
                    block=BLOCK_MS,
                )
                for _, items in entries or []:
                    for entry_id, fields in items:
                        self._dispatch(as_text(entry_id), fields)
            except (redis.RedisError, OSError) as exc:
                log.warning("shadow.error", where="reader", error=str(exc))
                self._stopped.wait(1.0)
            except Exception as exc:  # a bug must not stop the shadow for good
                log.exception("shadow.error", where="reader", error=str(exc))
                self._stopped.wait(1.0)

    def _claim(self, client: redis.Redis) -> None:
        """Take over entries a dead consumer read and never acknowledged."""
        idle_ms = int(CLAIM_IDLE_SECONDS * 1000)
        result: Any = client.xautoclaim(
            keys.EVENTS, keys.SHADOW_GROUP, self._consumer, idle_ms, "0-0", count=100
        )
        for entry_id, fields in result[1]:
            if fields:
                self._dispatch(as_text(entry_id), fields)
            else:  # trimmed from the stream meanwhile
                client.xack(keys.EVENTS, keys.SHADOW_GROUP, entry_id)

    def _dispatch(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        client = self._client()
        kind = as_text(fields.get(b"type", b""))
        if kind not in SHADOWED_TYPES:
            client.xack(keys.EVENTS, keys.SHADOW_GROUP, entry_id)
            return
        event = json.loads(fields[b"payload"])
        if not sampled(event["thread_id"], list(event.get("email_ids") or []), self._sample):
            client.xack(keys.EVENTS, keys.SHADOW_GROUP, entry_id)
            return
        while not self._slots.acquire(timeout=0.5):  # at most `concurrency` in flight
            if self._stopped.is_set():
                return  # left unacknowledged: taken over after a restart
        assert self._pool is not None
        try:
            self._pool.submit(self._handle, entry_id, event)
        except RuntimeError:  # the pool is shut down
            self._slots.release()

    # --- deciding ----------------------------------------------------------------------------

    def _handle(self, entry_id: str, event: dict[str, Any]) -> None:
        with self._active_lock:
            self._active += 1
        try:
            with structlog.contextvars.bound_contextvars(
                run=SHADOW, thread_id=event["thread_id"], email_ids=event.get("email_ids")
            ):
                decision = self.decide(event)
                if decision is not None:
                    log.info(
                        "shadow.decision",
                        outcome=decision.outcome,
                        category=decision.category,
                        live_category=decision.live.category if decision.live else None,
                        changed=decision.changed,
                    )
            self._client().xack(keys.EVENTS, keys.SHADOW_GROUP, entry_id)
        except _Stopped:
            pass  # left pending: decided after a restart or by another worker
        except (redis.RedisError, OSError) as exc:  # left pending: retried after the idle time
            log.warning("shadow.error", where="decide", error=str(exc))
        except Exception as exc:
            log.exception("shadow.error", where="decide", error=str(exc))
            with contextlib.suppress(redis.RedisError, OSError):
                self._client().xack(keys.EVENTS, keys.SHADOW_GROUP, entry_id)
        finally:
            with self._active_lock:
                self._active -= 1
            self._slots.release()

    def decide(self, event: dict[str, Any]) -> RunDecision | None:
        """Shadow one live decision event and record it; None when there is nothing to decide
        (the thread expired, or the stream still holds an event its thread no longer has)."""
        _, runs, store, limiter = self._parts()
        snapshot = store.peek(event["thread_id"])
        subject = shadow_subject(event, snapshot, self._spec.settings)
        if subject is None:
            return None
        deciding = Deciding(SHADOW, self._spec, subject)
        decision = self._drive(deciding, limiter)
        charges = [(c.model, c.usage, c.counters) for c in deciding.charges]
        runs.record(SHADOW, decision, charges, LEDGER_SHADOW, latest=True)
        return decision

    def _drive(self, deciding: Deciding, limiter: RateLimiter) -> RunDecision:
        """Every call the decision needs, with the worker's retries for transient errors."""
        settings = self._settings
        attempt = 0
        while True:
            request = deciding.request()
            try:
                self._acquire(limiter, estimate_input_tokens(request))
                result = self._claude.call(request, deciding.spent)
            except RetryLater as exc:
                attempt += 1
                if self._stopped.is_set():
                    raise _Stopped from exc
                if attempt >= settings.task_max_attempts:
                    return deciding.fail(f"{exc.reason}: {exc}")
                delay = compute_backoff(
                    attempt,
                    base=settings.retry_backoff_seconds,
                    cap=settings.retry_backoff_max_seconds,
                    retry_after=exc.retry_after,
                )
                self._stopped.wait(delay)
                continue
            except (Permanent, TriageError) as exc:
                return deciding.fail(f"{exc.reason}: {exc}")
            decision = deciding.take(result)
            if decision is not None:
                return decision

    def _acquire(self, limiter: RateLimiter, tokens: int) -> None:
        """Take rate-limit capacity only when it is free now; wait twice the limiter's estimate
        between tries, so live drainers (which wait just that long) go first."""
        deadline = time.monotonic() + MAX_RATE_WAIT_SECONDS
        while True:
            try:
                limiter.acquire(tokens)
                return
            except RetryLater as exc:
                wait = 2 * (exc.retry_after or 0.1)
                if self._stopped.is_set():
                    raise _Stopped from exc
                if time.monotonic() + wait > deadline:
                    raise RetryLater("rate limit: no free capacity", reason="rate_limited") from exc
                self._stopped.wait(wait)


def build_shadow(
    settings: Settings, client: Callable[[], redis.Redis], consumer: str
) -> ShadowService | None:
    """The shadow run for this worker, or None without `TRIAGE_SHADOW_CONFIG` (or at sample 0).

    Raises `ConfigError` when the configuration does not load: the worker does not start.
    """
    if settings.shadow_config is None or settings.shadow_sample <= 0:
        return None
    try:
        overrides = load_run_config(settings.shadow_config)
    except RunConfigError as exc:
        raise ConfigError(f"invalid setting TRIAGE_SHADOW_CONFIG: {exc}") from None
    try:
        spec = derive_spec(settings, overrides)
    except ConfigError as exc:
        raise ConfigError(f"TRIAGE_SHADOW_CONFIG {settings.shadow_config}: {exc}") from None
    return ShadowService(client, settings, spec, ClaudeClient(make_client(spec.settings)), consumer)
