"""A diff for a terminal, as JSON (streamed: every changed row), and as a report directory:
diff.md, diff.json and change-matrix.png (matplotlib, the `eval` extra)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from evaluation.report import money, pct
from reprocess.diff import Row, Summary

FORMAT = "triage-reprocess-diff/1"
MATRIX_PNG = "change-matrix.png"
#: Rows diff.md lists (diff.json has them all).
MD_ROWS = 200


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def header_lines(run: dict[str, Any], summary: Summary) -> list[str]:
    config = run.get("config") or {}
    s = summary.as_dict()
    low_high = s["agreement_ci95"]
    agreement = (
        "-"
        if s["agreement"] is None
        else f"{pct(s['agreement'])} (95% CI {pct(low_high[0])} - {pct(low_high[1])})"
    )
    lines = [
        f"run {summary.run} ({config.get('model', '?')}, prompt "
        f"{config.get('prompt_version', '?')}, {run.get('status', '?')}, cost "
        f"{money(run.get('cost_usd'))}) against {summary.against}",
        f"compared {s['compared']} threads ({s['emails']} emails): {s['changed']} changed, "
        f"{s['unchanged']} unchanged; agreement {agreement}",
    ]
    if s["new"]:
        lines.append(f"{s['new']} threads no live thread has seen (from (none))")
    if s["only_in_run"] or s["only_in_other"]:
        lines.append(
            f"only in {summary.run}: {s['only_in_run']}; only in {summary.against}: "
            f"{s['only_in_other']}"
        )
    return lines


def pair_lines(summary: Summary) -> list[str]:
    pairs = summary.as_dict()["pairs"]
    if not pairs:
        return ["no category changed"]
    width = max(12, *(len(p["from"]) for p in pairs))
    lines = ["category changes (from -> to: threads)"]
    lines += [f"  {p['from']:<{width}} -> {p['to']:<{width}} {p['count']:>7}" for p in pairs]
    return lines


def field_lines(summary: Summary) -> list[str]:
    fields = summary.as_dict()["fields_changed"]
    if not fields:
        return []
    return ["fields changed: " + ", ".join(f"{name} {n}" for name, n in fields.items())]


def row_line(row: Row) -> str:
    confidence = "-" if row.confidence is None else f"{row.confidence:.2f}"
    fields = ", ".join(row.fields) or "-"
    return f"  {row.thread_id:<24} {row.before:>14} -> {row.after:<14} {confidence:>5}  {fields}"


def terminal(
    run: dict[str, Any], summary: Summary, rows: Iterable[Row], limit: int, out: IO[str]
) -> None:
    """The diff for a person: rows first (up to `limit`), then the summary they add up to."""
    shown = 0
    more = 0
    for row in rows:
        if shown < limit:
            if shown == 0:
                out.write("changed threads (thread, from -> to, confidence, fields)\n")
            out.write(row_line(row) + "\n")
            shown += 1
        else:
            more += 1
    if more:
        out.write(f"  ... and {more} more (--json or --report DIR for all)\n")
    for line in header_lines(run, summary) + pair_lines(summary) + field_lines(summary):
        out.write(line + "\n")


def write_json(run: dict[str, Any], summary: Summary, rows: Iterable[Row], out: IO[str]) -> None:
    """One JSON document, its rows written as they come (flat memory)."""
    out.write('{"format": ' + json.dumps(FORMAT) + ', "run": ' + json.dumps(run) + ', "rows": [')
    for index, row in enumerate(rows):
        out.write(("," if index else "") + "\n  " + json.dumps(row.as_dict(), ensure_ascii=False))
    out.write('\n], "summary": ' + json.dumps(summary.as_dict(), ensure_ascii=False) + "}\n")


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return lines


def markdown(
    run: dict[str, Any], summary: Summary, rows: list[Row], total_rows: int, image: str | None
) -> str:
    s = summary.as_dict()
    lines = [f"# Reprocessing run `{summary.run}` against {summary.against}", ""]
    lines += [f"{line}  " for line in header_lines(run, summary)]
    lines += ["", "## Category changes", ""]
    lines += _md_table(
        ["from", "to", "threads"], [[p["from"], p["to"], str(p["count"])] for p in s["pairs"]]
    )
    if s["fields_changed"]:
        lines += ["", "## Fields changed", ""]
        lines += _md_table(
            ["field", "threads"], [[k, str(v)] for k, v in s["fields_changed"].items()]
        )
    if image:
        lines += ["", "## Change matrix", "", f"![change matrix]({image})"]
    lines += [
        "",
        f"## Changed threads ({total_rows}; the first {len(rows)} here, all in diff.json)",
        "",
    ]
    lines += _md_table(
        ["thread", "from", "to", "confidence", "fields changed"],
        [
            [
                f"`{r.thread_id}`",
                r.before,
                r.after,
                "-" if r.confidence is None else f"{r.confidence:.2f}",
                ", ".join(r.fields) or "-",
            ]
            for r in rows
        ],
    )
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(
            "no change matrix: matplotlib is not installed (pip install 'triage-worker[eval]')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def matrix(summary: Summary) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows (before) and columns (after) of the change matrix; unchanged threads are on the
    diagonal (what a label has beyond the pairs that left it)."""
    before = sorted(summary.before)
    after = sorted(summary.after)
    counts = summary.pairs.copy()
    for label in before:
        moved = sum(n for (a, _), n in summary.pairs.items() if a == label)
        if summary.before[label] > moved:
            counts[(label, label)] += summary.before[label] - moved
    return before, after, [[counts[(b, a)] for a in after] for b in before]


def draw_matrix(summary: Summary, path: Path) -> None:
    plt = _pyplot()
    rows, columns, counts = matrix(summary)
    shares = [[c / (sum(row) or 1) for c in row] for row in counts]
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 3, 0.7 * len(rows) + 2.2))
    image = ax.imshow(shares, cmap="Oranges", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_xlabel(f"run {summary.run}")
    ax.set_ylabel(summary.against)
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            colour = "white" if shares[i][j] > 0.6 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, label=f"share of the {summary.against} label")
    ax.set_title(f"{summary.changed} of {summary.compared} threads changed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_dir(
    run: dict[str, Any], summary: Summary, rows: Iterator[Row], directory: Path
) -> list[str]:
    """diff.json (every row), diff.md and change-matrix.png; returns warnings."""
    directory.mkdir(parents=True, exist_ok=True)
    kept: list[Row] = []
    total = 0

    def counted() -> Iterator[Row]:
        nonlocal total
        for row in rows:
            total += 1
            if len(kept) < MD_ROWS:
                kept.append(row)
            yield row

    with (directory / "diff.json").open("w", encoding="utf-8") as out:
        write_json(run, summary, counted(), out)
    warnings: list[str] = []
    image: str | None = MATRIX_PNG
    try:
        draw_matrix(summary, directory / MATRIX_PNG)
    except PlotsUnavailable as exc:
        warnings.append(str(exc))
        image = None
    (directory / "diff.md").write_text(markdown(run, summary, kept, total, image), encoding="utf-8")
    return warnings
