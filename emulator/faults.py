"""Latency and fault decisions that do not depend on request arrival order.

Every draw comes from a RNG seeded by (seed, sha256 of the body, occurrence index of that body).
A retried identical request is a new occurrence and gets a fresh draw; two different requests
never influence each other's outcome, however they interleave. Only `FaultRule.times` (a global
budget per rule) is order-dependent, by nature.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from emulator.config import EmulatorConfig, FaultRule

#: Fault kinds answered with an API error: kind -> (error type, message).
FAULT_ERRORS: dict[str, tuple[str, str]] = {
    "rate_limit": (
        "rate_limit_error",
        "This request would exceed your organization's rate limit (injected fault).",
    ),
    "overloaded": ("overloaded_error", "Overloaded"),
    "api_error": ("api_error", "Internal server error"),
}
#: Kinds that mean nothing for one of the two request paths, so never fire (or count) there.
MESSAGES_ONLY_KINDS = frozenset({"reset"})
BATCH_ONLY_KINDS = frozenset({"expired"})


def body_digest(raw: bytes) -> str:
    """Stable identity of a request body."""
    return hashlib.sha256(raw).hexdigest()


def _rng(seed: int, digest: str, occurrence: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{digest}:{occurrence}:{purpose}")


@dataclass(frozen=True)
class Plan:
    """What happens to one request: its delay and the fault (if any) that fires."""

    occurrence: int
    delay_s: float
    fault: str | None
    text: str | None = None


class FaultPlanner:
    """Counts body occurrences and rule firings; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._occurrences: dict[str, int] = {}
        self._fired: dict[tuple[int, FaultRule], int] = {}

    def reset(self) -> None:
        with self._lock:
            self._occurrences.clear()
            self._fired.clear()

    def next_occurrence(self, digest: str) -> int:
        """0 for the first time this exact body is seen, then 1, 2, ..."""
        with self._lock:
            occurrence = self._occurrences.get(digest, 0)
            self._occurrences[digest] = occurrence + 1
            return occurrence

    def plan(
        self,
        config: EmulatorConfig,
        digest: str,
        user_text: str,
        *,
        skip_kinds: Collection[str] = BATCH_ONLY_KINDS,
    ) -> Plan:
        """Decide delay and fault for the next occurrence of this body.

        Rules whose kind is in `skip_kinds` are ignored (batch-only kinds on /v1/messages).
        """
        occurrence = self.next_occurrence(digest)
        delay_ms = config.latency_ms
        if config.jitter_ms > 0:
            delay_ms += _rng(config.seed, digest, occurrence, "jitter").uniform(0, config.jitter_ms)
        rule = self._pick(config.seed, config.faults, digest, occurrence, user_text, skip_kinds)
        if rule is None:
            return Plan(occurrence, delay_ms / 1000.0, None)
        return Plan(occurrence, delay_ms / 1000.0, rule.kind, rule.text)

    def _pick(
        self,
        seed: int,
        rules: Sequence[FaultRule],
        digest: str,
        occurrence: int,
        user_text: str,
        skip_kinds: Collection[str],
    ) -> FaultRule | None:
        lowered = user_text.lower()
        for index, rule in enumerate(rules):
            if rule.kind in skip_kinds:
                continue
            if rule.match is not None and rule.match.lower() not in lowered:
                continue
            if _rng(seed, digest, occurrence, f"fault:{index}").random() >= rule.rate:
                continue
            key = (index, rule)
            with self._lock:
                fired = self._fired.get(key, 0)
                if rule.times is not None and fired >= rule.times:
                    continue
                self._fired[key] = fired + 1
            return rule
        return None
