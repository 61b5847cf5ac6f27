"""What one step of a drain ended in: typed, so no caller parses strings like "classified:X"."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OutcomeKind(StrEnum):
    CLASSIFIED = "classified"
    CLARIFIED = "clarified"
    ESCALATED = "escalated"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Outcome:
    """One committed decision (or dead-lettering) for a thread's pending emails."""

    kind: OutcomeKind
    category: str | None = None  # classified only
    reason: str | None = None  # dead_lettered only: why

    def __str__(self) -> str:
        """Compact form for logs: `classified:BILLING`, `dead_lettered:poison`, `clarified`."""
        detail = self.category or self.reason
        return f"{self.kind}:{detail}" if detail else str(self.kind)


@dataclass(frozen=True)
class StepResult:
    """One step of a drain: its outcome (None when nothing was decided) and whether the thread is
    now idle (its inbox empty and its scheduled flag cleared by the commit)."""

    outcome: Outcome | None
    idle: bool


@dataclass(frozen=True)
class BatchApplied:
    """A Message Batch result applied to its thread: the outcome (None: not usable, the queue
    redoes it) and whether more work waits in the thread (the queue takes it)."""

    outcome: Outcome | None
    more_waiting: bool
