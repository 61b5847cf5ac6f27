"""The log-event table of docs/operations.md and the code stay in step: every event the code
emits is documented, and every documented event is emitted somewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "worker", "producers", "triage", "emulator", "intake", "console")
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def _names(node: ast.expr) -> list[str]:
    """Event names a first argument can be: a constant, or both sides of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _names(node.body) + _names(node.orelse)
    return []


def emitted_events() -> dict[str, list[str]]:
    """Event name -> where it is emitted, from every `<logger>.<level>("a.b", ...)` call."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LOG_METHODS
                    and node.args
                ):
                    continue
                for name in _names(node.args[0]):
                    if EVENT_NAME.match(name):
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        found.setdefault(name, []).append(where)
    return found


def documented_events() -> set[str]:
    """Event names in the first column of the table under `## Logs` in docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Logs", 1)[1].split("\n#", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names.update(re.findall(r"`([^`]+)`", first_cell))
    return names


def test_every_emitted_event_is_documented_and_every_documented_event_is_emitted() -> None:
    """Every event the code logs is in the docs' Logs table, and every documented one is logged."""
    emitted = emitted_events()
    documented = documented_events()
    undocumented = {name: emitted[name] for name in sorted(set(emitted) - documented)}
    assert not undocumented, (
        f"events missing from the Logs table of docs/operations.md: {undocumented}"
    )
    stale = sorted(documented - set(emitted))
    assert not stale, f"docs/operations.md documents events the code never emits: {stale}"


def test_the_scan_sees_known_events() -> None:
    """Guard against a scanner that silently finds nothing (both sides empty would pass)."""
    emitted = emitted_events()
    for name in (
        "claude.call",
        "drain.decision",
        "task.retry",
        "reply.sent",
        "reply.already_sent",
    ):
        assert name in emitted
    assert {"claude.call", "enqueue.submitted"} <= documented_events()
