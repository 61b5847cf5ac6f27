"""Two evaluation reports of the same cases: the difference in accuracy, whether it is more than
chance (exact McNemar test on the cases only one run got right), and the cases that flipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.metrics import mcnemar_p

REPORT_FORMAT = "triage-eval/1"
SIGNIFICANCE = 0.05


class ReportError(ValueError):
    """A file is not a report.json of `triage eval`."""


def load_report(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read a report: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != REPORT_FORMAT:
        raise ReportError(f"{path}: not a report.json of `triage eval` ({REPORT_FORMAT})")
    return document


def _flip(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a["id"],
        "expected": a["expected"]["category"],
        "a": a["predicted"],
        "b": b["predicted"],
        "a_first_move": a["first_move"],
        "b_first_move": b["first_move"],
        "note": a.get("note") or b.get("note") or "",
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Compare report `a` (before) with report `b` (after) on the cases both finished."""
    cases_a = {case["id"]: case for case in a["cases"]}
    cases_b = {case["id"]: case for case in b["cases"]}
    common = [case_id for case_id in cases_a if case_id in cases_b]
    fixed, broken, changed = [], [], []
    both = 0
    for case_id in common:
        left, right = cases_a[case_id], cases_b[case_id]
        if left["correct"] and right["correct"]:
            both += 1
        elif right["correct"]:
            fixed.append(_flip(left, right))
        elif left["correct"]:
            broken.append(_flip(left, right))
        elif left["predicted"] != right["predicted"]:
            changed.append(_flip(left, right))
    n = len(common)
    accuracy_a = (both + len(broken)) / n if n else None
    accuracy_b = (both + len(fixed)) / n if n else None
    p_value = mcnemar_p(len(broken), len(fixed))
    if accuracy_a is None or accuracy_b is None:
        verdict = "no case in common"
    elif p_value >= SIGNIFICANCE:
        verdict = f"no significant difference (p = {p_value:.3g})"
    else:
        better = "B" if accuracy_b > accuracy_a else "A"
        verdict = f"{better} is better (p = {p_value:.3g})"
    return {
        "a": _describe(a),
        "b": _describe(b),
        "cases": n,
        "only_in_a": sorted(set(cases_a) - set(cases_b)),
        "only_in_b": sorted(set(cases_b) - set(cases_a)),
        "accuracy_a": accuracy_a,
        "accuracy_b": accuracy_b,
        "difference": (
            None if accuracy_a is None or accuracy_b is None else accuracy_b - accuracy_a
        ),
        "mcnemar": {"a_only_right": len(broken), "b_only_right": len(fixed), "p_value": p_value},
        "verdict": verdict,
        "fixed": fixed,
        "broken": broken,
        "changed_but_wrong": changed,
    }


def _describe(report: dict[str, Any]) -> dict[str, Any]:
    run = report.get("run", {})
    return {
        "model": run.get("model"),
        "prompt_version": run.get("prompt_version"),
        "backend": run.get("backend"),
        "via": run.get("via"),
        "created_at": report.get("created_at"),
    }


def render(result: dict[str, Any], limit: int = 50) -> str:
    """The comparison for a terminal."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    a, b = result["a"], result["b"]
    lines = [
        f"A: {a['model']} prompt {a['prompt_version']} ({a['backend']}, {a['via']})",
        f"B: {b['model']} prompt {b['prompt_version']} ({b['backend']}, {b['via']})",
        f"cases compared: {result['cases']}",
    ]
    if result["only_in_a"] or result["only_in_b"]:
        lines.append(
            f"not compared: {len(result['only_in_a'])} only in A, "
            f"{len(result['only_in_b'])} only in B"
        )
    difference = result["difference"]
    lines += [
        f"accuracy: A {pct(result['accuracy_a'])}  B {pct(result['accuracy_b'])}  "
        f"difference {'-' if difference is None else f'{difference:+.1%}'}",
        f"McNemar: A right only {result['mcnemar']['a_only_right']}, "
        f"B right only {result['mcnemar']['b_only_right']}: {result['verdict']}",
    ]
    for title, key in (
        ("fixed (wrong in A, right in B)", "fixed"),
        ("broken (right in A, wrong in B)", "broken"),
        ("changed, wrong in both", "changed_but_wrong"),
    ):
        flips = result[key]
        lines.append(f"\n{title}: {len(flips)}")
        for flip in flips[:limit]:
            lines.append(
                f"  {flip['id']}: expected {flip['expected']}, A {flip['a'] or 'failed'}, "
                f"B {flip['b'] or 'failed'}" + (f"  ({flip['note']})" if flip["note"] else "")
            )
        if len(flips) > limit:
            lines.append(f"  ... and {len(flips) - limit} more (--json for all)")
    return "\n".join(lines)
