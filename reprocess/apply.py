"""Promote a run's decisions to the live threads whose decision changed (`reclassified` events).

For each classification of the run whose live thread now says something else (another
category, or other stated fields; `reprocess.diff` decides "changed" the same way), and that
passes `--only FROM->TO`, `Reclassifier.apply` writes the run's decision to the thread and one
`reclassified` event, fenced by the thread version the run decided on. Left alone, and counted
by reason: questions and failures of the run (nothing to promote), threads with no live
counterpart, threads not classified now (waiting for the customer, escalated), threads that got
mail since the run (`stale`: the run did not see it) or were changed meanwhile. Applying again
changes nothing more: the threads now say what the run says. `--dry-run` reports the same
without writing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import TriageError
from worker.decide.rerun import changed, live_decision, live_label, run_label
from worker.state.reclassify import PROMOTABLE, Reclassifier
from worker.state.runs import RunStore
from worker.state.store import ThreadStore

Pair = tuple[str, str]


def parse_pair(text: str) -> Pair:
    """`SHIPPING->RETURNS` (spaces allowed; `*` matches any label)."""
    before, sep, after = text.partition("->")
    if not sep or not before.strip() or not after.strip():
        raise TriageError(f"{text!r}: write FROM->TO, e.g. SHIPPING->RETURNS or *->RETURNS")
    return before.strip(), after.strip()


def matches(pair: Pair, only: list[Pair]) -> bool:
    return not only or any(a in ("*", pair[0]) and b in ("*", pair[1]) for a, b in only)


@dataclass
class ApplyReport:
    applied: int = 0
    unchanged: int = 0
    pairs: Counter[Pair] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def promote(
    name: str,
    runs: RunStore,
    threads: ThreadStore,
    reclassifier: Reclassifier,
    only: list[Pair],
    dry_run: bool,
    on_row: Callable[[str, Pair, str], None] | None = None,
) -> ApplyReport:
    """Apply the run (see the module docstring); `on_row(thread, pair, outcome)` per change."""
    report = ApplyReport()
    for decision in runs.scan_decisions(name):
        if decision.outcome != "classified":
            report.skipped[f"run_{decision.outcome}"] += 1
            continue
        live = live_decision(threads.peek(decision.thread_id))
        if live is None:
            report.skipped["no_live_thread"] += 1
            continue
        pair = (live_label(live), run_label(decision))
        if not changed(decision, live):
            report.unchanged += 1
            continue
        if not matches(pair, only):
            report.skipped["not_in_only"] += 1
            continue
        if live.status not in PROMOTABLE:
            report.skipped[f"live_{live.status}"] += 1
            continue
        basis = decision.live.version if decision.live is not None else live.version
        if live.version != basis:
            report.skipped["stale"] += 1  # mail since the run decided: it did not see it
            continue
        if dry_run:
            report.applied += 1
            report.pairs[pair] += 1
            if on_row is not None:
                on_row(decision.thread_id, pair, "would apply")
            continue
        applied = reclassifier.apply(name, decision, basis)
        if applied.status != "ok":
            report.skipped[applied.status] += 1
            continue
        runs.mark_applied(
            name,
            decision.thread_id,
            {
                "from": pair[0],
                "to": pair[1],
                "at": applied.event.reclassified_at if applied.event else None,
            },
        )
        report.applied += 1
        report.pairs[pair] += 1
        if on_row is not None:
            on_row(decision.thread_id, pair, "applied")
    return report
