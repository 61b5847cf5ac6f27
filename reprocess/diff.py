"""What a run changed: its decisions against live, or against another run (flat memory).

Each decision of the run is compared with a baseline:
- `live`: the thread's decision now (read without writing), or, when the thread is gone, the live
  decision the run recorded when it decided. The shadow run is compared with the live decision it
  shadowed (recorded with it): live has usually moved on since.
- another run: that run's decision on the same thread (threads only one of them decided are
  counted apart).
A decision is a label: the category of a classification, `(question)` for a question (live: the
thread waits for the customer), `(escalated)`, `(failed)`, `(none)` for mail no live thread has
seen, and `(status)` for a live thread in another state. Changed means another label, or for two
classifications, other stated fields. Rows are produced one by one (only changed ones); the
counters are the summary. Agreement (the share unchanged among threads compared with a
decision on both sides) gets the exact bootstrap interval of `evaluation.metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evaluation.metrics import bootstrap_interval
from worker.decide.rerun import (
    NO_DECISION,
    changed,
    live_decision,
    live_label,
    run_label,
    stated,
)
from worker.events import LiveDecision, RunDecision
from worker.state.runs import SHADOW, RunStore
from worker.state.store import ThreadStore

LIVE = "live"
CHUNK = 500


@dataclass(frozen=True)
class Row:
    """One thread whose decision changed."""

    thread_id: str
    before: str
    after: str
    fields: list[str]
    confidence: float | None
    emails: int
    before_fields: dict[str, Any]
    after_fields: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "from": self.before,
            "to": self.after,
            "fields_changed": self.fields,
            "confidence": self.confidence,
            "emails": self.emails,
            "from_fields": self.before_fields,
            "to_fields": self.after_fields,
        }


@dataclass
class Summary:
    run: str
    against: str
    compared: int = 0
    changed: int = 0
    unchanged: int = 0
    new: int = 0
    only_in_run: int = 0
    only_in_other: int = 0
    emails: int = 0
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    fields: Counter[str] = field(default_factory=Counter)
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)

    @property
    def agreement(self) -> float | None:
        both = self.changed + self.unchanged
        return self.unchanged / both if both else None

    def as_dict(self) -> dict[str, Any]:
        both = self.changed + self.unchanged
        low, high = bootstrap_interval(self.unchanged, both) if both else (None, None)
        return {
            "run": self.run,
            "against": self.against,
            "compared": self.compared,
            "emails": self.emails,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "new": self.new,
            "only_in_run": self.only_in_run,
            "only_in_other": self.only_in_other,
            "agreement": self.agreement,
            "agreement_ci95": None if low is None else [low, high],
            "pairs": [
                {"from": a, "to": b, "count": n}
                for (a, b), n in sorted(self.pairs.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "fields_changed": dict(self.fields.most_common()),
            "before": dict(self.before.most_common()),
            "after": dict(self.after.most_common()),
        }


def _fields_changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    a, b = stated(before), stated(after)
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


def _changed_row(
    summary: Summary,
    decision: RunDecision,
    baseline_fields: dict[str, Any],
    before: str,
    after: str,
    fields: list[str],
) -> Row:
    """Counts a changed thread in `summary`; its row (against live or another run alike)."""
    summary.changed += 1
    summary.pairs[(before, after)] += 1
    summary.fields.update(fields)
    return Row(
        decision.thread_id,
        before,
        after,
        fields if before == after else [],
        decision.confidence,
        len(decision.email_ids),
        stated(baseline_fields),
        stated(decision.fields),
    )


class Differ:
    def __init__(self, runs: RunStore, threads: ThreadStore) -> None:
        self._runs = runs
        self._threads = threads

    def _baseline(self, decision: RunDecision) -> LiveDecision | None:
        if decision.run == SHADOW:
            return decision.live
        return live_decision(self._threads.peek(decision.thread_id)) or decision.live

    def rows(self, name: str, against: str, summary: Summary) -> Iterator[Row]:
        """The changed threads, one by one; `summary` counts everything as it goes."""
        if against == LIVE:
            yield from self._against_live(name, summary)
        else:
            yield from self._against_run(name, against, summary)

    def _against_live(self, name: str, summary: Summary) -> Iterator[Row]:
        for decision in self._runs.scan_decisions(name):
            live = self._baseline(decision)
            before, after = live_label(live), run_label(decision)
            summary.compared += 1
            summary.emails += len(decision.email_ids)
            summary.before[before] += 1
            summary.after[after] += 1
            if live is None:
                summary.new += 1
                summary.pairs[(before, after)] += 1
                continue
            fields = _fields_changed(live.fields, decision.fields)
            if not changed(decision, live):
                summary.unchanged += 1
                continue
            yield _changed_row(summary, decision, live.fields, before, after, fields)

    def _against_run(self, name: str, other: str, summary: Summary) -> Iterator[Row]:
        matched = 0
        chunk: list[RunDecision] = []

        def flush() -> Iterator[Row]:
            nonlocal matched
            others = self._runs.decisions(other, [d.thread_id for d in chunk])
            for decision, theirs in zip(chunk, others, strict=True):
                summary.compared += 1
                summary.emails += len(decision.email_ids)
                after = run_label(decision)
                summary.after[after] += 1
                if theirs is None:
                    summary.only_in_run += 1
                    summary.before[NO_DECISION] += 1
                    summary.pairs[(NO_DECISION, after)] += 1
                    continue
                matched += 1
                before = run_label(theirs)
                summary.before[before] += 1
                fields = _fields_changed(theirs.fields, decision.fields)
                both_classified = decision.outcome == theirs.outcome == "classified"
                if before == after and not (both_classified and fields):
                    summary.unchanged += 1
                    continue
                yield _changed_row(summary, decision, theirs.fields, before, after, fields)
            chunk.clear()

        for decision in self._runs.scan_decisions(name):
            chunk.append(decision)
            if len(chunk) >= CHUNK:
                yield from flush()
        yield from flush()
        summary.only_in_other = max(0, self._runs.decision_count(other) - matched)
