"""A thread as a readable conversation: `triage thread show` on a terminal, and `triage run`.

Who said what, in order: each customer turn as text, each decision with its fields (the question
as text, or the category, confidence and reason), and under each decision the tokens and cost of
its calls (from the decision event; cost at standard rates from the price table). The thread's
total comes from its usage ledger, failed calls included. Pure rendering over a `ThreadView`
read by `load_view` (`worker.state.browse`, shared with the web console).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from common.prices import ModelPrice
from worker.state.browse import (
    ThreadView,
    decision_fields,
    event_cost,
    load_view,
    thread_events,
    turn_texts,
)
from worker.state.snapshot import Turn
from worker.state.usage import Usage

__all__ = [
    "ThreadView",
    "body_lines",
    "call_line",
    "decision_fields",
    "header_lines",
    "load_view",
    "render",
    "thread_events",
    "turn_texts",
]

INDENT = "   "


def when(stamp: str | None) -> str:
    try:
        value = float(stamp) if stamp else None
    except ValueError:
        value = None
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def money(usd: float) -> str:
    return f"${usd:.6f}"


def tokens_line(usage: Usage) -> str:
    return (
        f"in {usage.input_tokens} · out {usage.output_tokens} · "
        f"cache write {usage.cache_creation_input_tokens} · "
        f"cache read {usage.cache_read_input_tokens}"
    )


def call_line(event: dict[str, Any], prices: dict[str, ModelPrice]) -> str:
    """The tokens and cost of the calls behind one decision."""
    usage, cost = event_cost(event, prices)
    model = str(event.get("model") or "?")
    request = event.get("request_id") or "no call"
    return f"{model} · {request} · tokens {tokens_line(usage)} · {money(cost)}"


def _heading(number: int, who: str, what: str, colour: str) -> str:
    label = click.style(f"#{number} {who}", fg=colour, bold=True)
    return f"{label} {what}".rstrip()


def _customer(number: int, turn: Turn) -> list[str]:
    lines = [_heading(number, "customer", "", "cyan")]
    for index, text in enumerate(turn_texts(turn)):
        if index:
            lines.append(f"{INDENT}--- next email ---")
        lines += [f"{INDENT}{line}".rstrip() for line in text.splitlines()]
    return lines


def _assistant(
    number: int, turn: Turn, event: dict[str, Any] | None, view: ThreadView
) -> list[str]:
    decision = decision_fields(turn)
    if decision is None:
        lines = [_heading(number, "assistant", "(not a decision)", "magenta")]
        lines += [f"{INDENT}{line}" for line in "".join(turn_texts(turn)).splitlines()]
    elif decision.get("action") == "clarify":
        lines = [_heading(number, "assistant", "asks the customer:", "magenta")]
        lines.append(INDENT + click.style(str(decision.get("question", "")), bold=True))
    else:
        category = click.style(str(decision.get("category")), fg="green", bold=True)
        lines = [_heading(number, "assistant", f"classifies: {category}", "magenta")]
    if decision is not None:
        confidence = decision.get("confidence")
        shown = f"{confidence:.2f}" if isinstance(confidence, int | float) else str(confidence)
        lines.append(f"{INDENT}confidence {shown} · reason: {decision.get('reason', '')}")
    if event is not None and event.get("question_replaced"):
        why = event.get("question_replaced_reason") or "unsafe"
        lines.append(f"{INDENT}(the send guard replaced this question in the email: {why})")
    if event is not None and event.get("reply_message_id"):
        lines.append(f"{INDENT}sent as {event['reply_message_id']}")
    if event is not None:
        lines.append(INDENT + click.style("call  " + call_line(event, view.prices), dim=True))
    return lines


def _escalation(event: dict[str, Any], view: ThreadView) -> list[str]:
    why = event.get("explanation") or event.get("refusal_category") or "refused"
    lines = [click.style("escalated", fg="red", bold=True) + f"  {why} (a person should look)"]
    if event.get("request_id"):
        lines.append(INDENT + click.style("call  " + call_line(event, view.prices), dim=True))
    return lines


def header_lines(view: ThreadView) -> list[str]:
    snapshot = view.snapshot
    meta = snapshot.meta
    subject = meta.get("subject", "")
    title = click.style(f"thread {snapshot.thread_id}", bold=True)
    lines = [f"{title}  {json.dumps(subject, ensure_ascii=False)}".rstrip()]
    details = [
        f"status {snapshot.status}",
        f"category {meta.get('category') or '-'}",
        f"clarifications {snapshot.clarifications}",
        f"updated {when(meta.get('updated_at'))}",
    ]
    if meta.get("customer"):
        details.insert(0, f"customer {meta['customer']}")
    lines.append(" · ".join(details))
    return lines


def body_lines(view: ThreadView) -> list[str]:
    """The conversation, then what is pending and the thread's total from the ledger."""
    by_turns = {int(e.get("turns", -1)): e for e in view.events if e.get("type") != "escalated"}
    escalations = [e for e in view.events if e.get("type") == "escalated"]
    lines: list[str] = []
    for index, turn in enumerate(view.snapshot.messages):
        lines.append("")
        if turn.get("role") == "user":
            lines += _customer(index + 1, turn)
        else:
            lines += _assistant(index + 1, turn, by_turns.get(index + 1), view)
    for event in escalations:
        lines += ["", *_escalation(event, view)]
    pending = len(view.snapshot.inbox)
    if pending:
        lines += ["", f"{pending} email(s) waiting for the worker (not in the array yet)"]
    lines.append("")
    ledger = view.ledger
    if ledger:
        total = Usage.from_mapping(ledger)
        cost = ledger.get("cost_micro_usd", 0) / 1_000_000
        lines.append(
            f"total  {ledger.get('calls', 0)} call(s) · tokens {tokens_line(total)} · {money(cost)}"
        )
    else:
        lines.append("total  no call recorded")
    return lines


def render(view: ThreadView) -> str:
    """The whole transcript (styled; `click.echo` drops the colours off a terminal)."""
    return "\n".join(header_lines(view) + body_lines(view))
