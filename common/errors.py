"""One error hierarchy, split by what the caller must do about it.

- `RetryLater`: transient (network, 429/5xx after the SDK's own retries, Redis outage); the task is
  retried with backoff and dead-lettered once the attempt budget is spent.
- `Permanent`: retrying cannot help (bad payload, a 400 from the API, a truncated reply twice); the
  work goes to the dead-letter stream at once, with the reason.
Duplicates and already-finished work are not errors: the commit script reports them as outcomes.
SDK exceptions are translated into these only in `worker.decide.claude`, smtplib's only in
`worker.reply.transports`.
"""

from __future__ import annotations


class TriageError(Exception):
    """Root of every error this project raises on purpose."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(TriageError):
    """A setting is missing or invalid; raised at start-up, naming the variable."""

    reason = "bad_setting"


class MissingApiKey(ConfigError):
    """No Anthropic key: the worker refuses to start rather than fail every email."""

    def __init__(self) -> None:
        super().__init__(
            "invalid setting ANTHROPIC_API_KEY: not set (use `triage run` to start the offline "
            "emulator, or set a key)"
        )


class RetryLater(TriageError):
    """Transient failure: try the same work again later."""

    reason = "transient"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class Permanent(TriageError):
    """Retrying cannot help: dead-letter the work with this reason."""

    reason = "permanent"


class Truncated(Permanent):
    """The model stopped before finishing (`max_tokens`, context window); never persisted."""

    reason = "truncated"


class InvalidPayload(Permanent):
    """A task or inbox payload that does not match the contract."""

    reason = "invalid_payload"


class InvalidDecision(Permanent):
    """The model's output is not a usable decision (should not happen with structured outputs)."""

    reason = "invalid_decision"


class CorruptThread(Permanent):
    """The stored `messages` array breaks its invariant (user first, alternating): not retryable."""

    reason = "corrupt_thread"
