"""PNG plots of a report, drawn with matplotlib (Agg backend: no display needed).

matplotlib is the `eval` extra (`pip install 'triage-worker[eval]'`); without it the report
directory gets report.md and report.json and a warning says what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFUSION_PNG = "confusion.png"
RELIABILITY_PNG = "reliability.png"


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(
            "no plots: matplotlib is not installed (pip install 'triage-worker[eval]')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_all(report: dict[str, Any], directory: Path) -> list[str]:
    """Both plots into `directory`; returns their file names."""
    plt = _pyplot()
    confusion(plt, report, directory / CONFUSION_PNG)
    reliability(plt, report, directory / RELIABILITY_PNG)
    return [CONFUSION_PNG, RELIABILITY_PNG]


def confusion(plt: Any, report: dict[str, Any], path: Path) -> None:
    """Heatmap of the confusion matrix: colour is the share of the row (the expected category),
    the number is the count."""
    matrix = report["metrics"]["confusion"]
    rows, columns, counts = matrix["rows"], matrix["columns"], matrix["matrix"]
    shares = [[c / (sum(row) or 1) for c in row] for row in counts]
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 2.5, 0.8 * len(rows) + 2))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            colour = "white" if shares[i][j] > 0.6 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, label="share of the expected category")
    accuracy = report["metrics"]["accuracy"]["value"]
    title = "Confusion matrix" + ("" if accuracy is None else f" (accuracy {accuracy:.1%})")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability(plt: Any, report: dict[str, Any], path: Path) -> None:
    """Reliability diagram: accuracy per tenth of stated confidence against the diagonal of a
    perfectly calibrated model; below it, how many classifications fell in each tenth."""
    calibration = report["metrics"]["calibration"]
    bins = calibration["bins"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = 1 / len(bins)
    filled = [b for b in bins if b["count"]]
    top.bar(
        [(b["low"] + b["high"]) / 2 for b in filled],
        [b["accuracy"] for b in filled],
        width=width * 0.9,
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    top.plot(
        [(b["low"] + b["high"]) / 2 for b in filled],
        [b["mean_confidence"] for b in filled],
        "o",
        color="tab:orange",
        label="mean confidence",
    )
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    ece = calibration["ece"]
    top.set_title("Reliability diagram" + ("" if ece is None else f" (ECE {ece:.3f})"))
    top.legend(loc="upper left")
    bottom.bar(centres, [b["count"] for b in bins], width=width * 0.9, color="grey")
    bottom.set_xlabel("stated confidence")
    bottom.set_ylabel("cases")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
