"""The report of an evaluation: one JSON document (every case with its decision, and the
figures), a table for the terminal, and report.md with the plots for a report directory."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluation import plots
from evaluation.compare import REPORT_FORMAT
from evaluation.metrics import FAILED


def document(
    run: dict[str, Any], metrics: dict[str, Any], records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """What report.json holds (and `--json` prints)."""
    return {
        "format": REPORT_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run,
        "metrics": metrics,
        "cases": list(records),
    }


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def headline(report: dict[str, Any]) -> list[str]:
    run, m = report["run"], report["metrics"]
    accuracy = m["accuracy"]
    low, high = accuracy["ci95"] or (None, None)
    failures = m["failures"]
    kinds = ", ".join(f"{k} {v}" for k, v in failures.items() if k != "total") or "none"
    lines = [
        f"triage eval · {m['cases']} cases · {run['model']} · prompt {run['prompt_version']} · "
        f"{run['via']} · {run['backend']}",
    ]
    if run["interrupted"]:
        lines.append(
            f"INTERRUPTED: {run['cases_finished']} of {run['cases_total']} cases finished; "
            "the figures are for those"
        )
    if run["backend"] == "emulator":
        lines.append(
            "emulator: no ANTHROPIC_API_KEY, so these figures measure the harness, not a model"
        )
    lines += [
        f"accuracy    {pct(accuracy['value'])}  ({accuracy['correct']}/{m['cases']})  "
        f"95% CI {pct(low)} - {pct(high)}   macro F1 {num(m['macro_f1'])}",
        f"failures    {failures['total']}  ({kinds})",
    ]
    return lines


def category_table(m: dict[str, Any]) -> list[str]:
    rows = [f"{'category':<16}{'precision':>10}{'recall':>9}{'F1':>7}{'support':>9}"]
    for label, row in m["per_category"].items():
        rows.append(
            f"{label:<16}{pct(row['precision']):>10}{pct(row['recall']):>9}"
            f"{num(row['f1']):>7}{row['support']:>9}"
        )
    return rows


def confusion_table(m: dict[str, Any]) -> list[str]:
    matrix = m["confusion"]
    width = max(9, *(len(c) + 1 for c in matrix["columns"]))
    corner = "expected \\ predicted"
    head = f"{corner:<22}" + "".join(f"{c:>{width}}" for c in matrix["columns"])
    rows = [head]
    for label, counts in zip(matrix["rows"], matrix["matrix"], strict=True):
        rows.append(f"{label:<22}" + "".join(f"{c:>{width}}" for c in counts))
    return rows


def detail_lines(m: dict[str, Any]) -> list[str]:
    q = m["clarification"]
    lines = [
        f"questions   first move a question in {pct(q['rate'])} of {q['decided']} cases; "
        f"needless {q['needless']}/{q['clear']} clear ({pct(q['needless_rate'])}), "
        f"missed {q['missed']}/{q['vague']} vague ({pct(q['missed_rate'])}); "
        f"unanswered {q['unanswered']}; replaced by the send guard {q['questions_replaced']}",
    ]
    cal = m["calibration"]
    bands = " · ".join(
        f"{band} {row['count']} ({pct(row['share'], 0)}) right {pct(row['accuracy'])}"
        for band, row in cal["bands"].items()
    )
    lines.append(f"calibration {bands} · ECE {num(cal['ece'], 3)}")
    review = m["review"]
    if review is not None:
        lines.append(
            f"review      {review['sent']} sent to review ({pct(review['share'])}); "
            f"accuracy of the rest {pct(review['accuracy_rest'])} ({review['rest']} cases)"
        )
    attrs = m["attributes"]
    parts = [
        f"{name} {pct(attrs[name]['accuracy'])} of {attrs[name]['labelled']}"
        for name in ("priority", "language")
        if attrs[name]["labelled"]
    ]
    parts += [
        f"field {name} {pct(row['accuracy'])} of {row['labelled']}"
        for name, row in attrs["fields"].items()
    ]
    if parts:
        lines.append("labelled    " + " · ".join(parts))
    c = m["cost"]
    lines.append(
        f"cost        {money(c['total_usd'])} total · {money(c['per_1000_emails_usd'])} per 1,000 "
        f"emails · {c['calls']} calls for {c['emails']} emails"
        + (" (batch price)" if c["batch"] else "")
    )
    lat = m["latency_ms"]
    if lat is not None:
        lines.append(f"latency     per call p50 {lat['p50']:.0f} ms · p95 {lat['p95']:.0f} ms")
    else:
        lines.append("latency     - (no per-request latency in a batch)")
    return lines


def confusion_pairs(m: dict[str, Any], limit: int = 5) -> list[str]:
    matrix = m["confusion"]
    pairs = [
        (count, row, column)
        for row, counts in zip(matrix["rows"], matrix["matrix"], strict=True)
        for column, count in zip(matrix["columns"], counts, strict=True)
        if row != column and count
    ]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [f"{row} -> {column}: {count}" for count, row, column in pairs[:limit]]


def terminal(report: dict[str, Any]) -> str:
    m = report["metrics"]
    lines = [*headline(report), "", *category_table(m), "", *confusion_table(m), ""]
    lines += detail_lines(m)
    pairs = confusion_pairs(m)
    if pairs:
        lines.append("most confused " + " · ".join(pairs))
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def markdown(report: dict[str, Any], images: Sequence[str]) -> str:
    run, m = report["run"], report["metrics"]
    lines = ["# Triage evaluation", ""]
    lines += [f"- {line}" for line in headline(report)[1:]]
    lines += [
        "",
        f"Run {report['created_at']}: {', '.join(run['datasets']) or '(no dataset)'}; "
        f"model `{run['model']}`, prompt version `{run['prompt_version']}`, via {run['via']}, "
        f"backend {run['backend']}; bands high from {run['confidence_high']}, low under "
        f"{run['confidence_low']}; review below {run['review_below']}.",
        "",
        "## Per category",
        "",
    ]
    lines += _md_table(
        ["category", "precision", "recall", "F1", "support"],
        [
            [label, pct(r["precision"]), pct(r["recall"]), num(r["f1"]), str(r["support"])]
            for label, r in m["per_category"].items()
        ],
    )
    matrix = m["confusion"]
    lines += ["", "## Confusion matrix (rows: expected, columns: predicted)", ""]
    lines += _md_table(
        ["expected", *matrix["columns"]],
        [
            [row, *map(str, counts)]
            for row, counts in zip(matrix["rows"], matrix["matrix"], strict=True)
        ],
    )
    lines += ["", "## Questions, calibration, review, cost, latency", ""]
    lines += [f"- {line.split(None, 1)[0]}: {line.split(None, 1)[1]}" for line in detail_lines(m)]
    cal = m["calibration"]
    lines += ["", "### Reliability (classifications by confidence)", ""]
    lines += _md_table(
        ["confidence", "cases", "accuracy", "mean confidence"],
        [
            [
                f"{b['low']:.1f}-{b['high']:.1f}",
                str(b["count"]),
                pct(b["accuracy"]),
                num(b["mean_confidence"]),
            ]
            for b in cal["bins"]
            if b["count"]
        ],
    )
    if images:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(image).stem}]({image})" for image in images]
    wrong = [case for case in report["cases"] if not case["correct"]]
    lines += ["", f"## Cases not right ({len(wrong)})", ""]
    lines += _md_table(
        ["id", "expected", "predicted", "confidence", "first move", "note"],
        [
            [
                f"`{case['id']}`",
                case["expected"]["category"],
                case["predicted"] or f"{FAILED} {case['failure']}: {case['error'] or ''}",
                num(case["confidence"]),
                case["first_move"] or "-",
                (case["note"] or "").replace("|", "\\|"),
            ]
            for case in wrong
        ],
    )
    return "\n".join(lines) + "\n"


def write_dir(report: dict[str, Any], directory: Path) -> list[str]:
    """report.json, the PNG plots and report.md; returns warnings (e.g. no plotting library)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    warnings: list[str] = []
    images: list[str] = []
    try:
        images = plots.draw_all(report, directory)
    except plots.PlotsUnavailable as exc:
        warnings.append(str(exc))
    (directory / "report.md").write_text(markdown(report, images), encoding="utf-8")
    return warnings
