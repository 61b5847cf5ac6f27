"""Promoting a reprocessing run's decision to its live thread: a `reclassified` event.

`triage reprocess apply` calls `Reclassifier.apply` for each thread whose run decision differs
from its live one. One script (`reclassify.lua`) checks that the thread is still at the version
the run decided on (a thread that got mail since is left alone: the run did not see that mail),
that it is classified (or in review) and still has the category the caller saw, then writes the
run's category, fields, confidence and prompt version to the thread, and the `reclassified` event
(the run's name, the previous and the new decision) to `triage:events`, in one step. Applying
the same decision again finds nothing to change: the caller compares first, and the script
refuses a category that moved meanwhile.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

import redis

from common import keys
from common.connections import as_text
from common.contract import STATUS_CLASSIFIED, STATUS_NEEDS_REVIEW
from worker.events import Labelled, Reclassified, RunDecision
from worker.state import scripts
from worker.state.store import ThreadStore

PROMOTABLE = (STATUS_CLASSIFIED, STATUS_NEEDS_REVIEW)

ApplyStatus = Literal["ok", "stale", "status", "changed", "gone"]


@dataclass(frozen=True)
class Applied:
    """How one promotion went; `event` is set when it was written."""

    status: ApplyStatus
    detail: str = ""
    event: Reclassified | None = None


def reclassified_event(
    run: str, decision: RunDecision, previous: Labelled, now: float
) -> Reclassified:
    """The event for promoting `decision` over `previous` (pure)."""
    if decision.category is None or decision.confidence is None:
        raise ValueError("only a classification can be promoted")
    return Reclassified(
        thread_id=decision.thread_id,
        run=run,
        category=decision.category,
        previous=previous,
        new=Labelled(category=decision.category, fields=decision.fields),
        confidence=decision.confidence,
        confidence_band=decision.confidence_band or "low",
        needs_review=bool(decision.needs_review),
        reason=decision.reason or "",
        model=decision.model,
        prompt_version=decision.prompt_version,
        reclassified_at=round(now, 3),
    )


class Reclassifier:
    def __init__(self, client: redis.Redis, store: ThreadStore, events_maxlen: int) -> None:
        self._redis = client
        self._store = store
        self._events_maxlen = events_maxlen
        self._script = client.register_script(scripts.load("reclassify"))

    def apply(self, run: str, decision: RunDecision, expected_version: int) -> Applied:
        """Write the run's classification to the live thread (see the module docstring)."""
        thread_id = decision.thread_id
        snapshot = self._store.peek(thread_id)
        if not snapshot.meta:
            return Applied("gone", "no live thread")
        self._store.restore(thread_id)  # a packed thread is unpacked first
        meta = snapshot.meta
        previous_fields = json.loads(meta.get("fields") or "{}")
        previous = Labelled(category=meta.get("category"), fields=previous_fields)
        now = time.time()
        event = reclassified_event(run, decision, previous, now)
        review = event.needs_review
        argument = {
            "thread_id": thread_id,
            "expected_version": expected_version,
            "expected_category": meta.get("category") or "",
            "allowed": list(PROMOTABLE),
            "meta": {
                "status": STATUS_NEEDS_REVIEW if review else STATUS_CLASSIFIED,
                "category": event.category,
                "fields": json.dumps(decision.fields),
                "confidence": str(event.confidence),
                "confidence_band": event.confidence_band,
                "prompt_version": decision.prompt_version,
                "reclassified_by": run,
                "reclassified_at": f"{now:.3f}",
            },
            "event": {
                "type": event.type,
                "category": event.category,
                "payload": event.model_dump_json(),
            },
            "review": review,
            "now": f"{now:.3f}",
            "events_maxlen": self._events_maxlen,
        }
        script_keys = [keys.thread_meta(thread_id), keys.EVENTS, keys.REVIEW, keys.IDLE]
        status, detail = self._script(keys=script_keys, args=[json.dumps(argument)])
        outcome = as_text(status)
        if outcome == "ok":
            return Applied("ok", event=event)
        return Applied(outcome, as_text(detail))  # type: ignore[arg-type]
