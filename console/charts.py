"""Small charts as inline SVG, drawn on the server (no JavaScript, no build step): pure functions
from numbers to markup. Every bar carries a `<title>` (the browser's tooltip) with its value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 960
HEIGHT = 170
LEFT = 40
BOTTOM = 22
TOP = 8


@dataclass(frozen=True)
class Series:
    """One stacked part of every bar: its name (the legend) and a CSS class for its colour."""

    name: str
    css: str


def _nice_max(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _number(value: float, money: bool) -> str:
    if money:
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def stacked_bars(
    labels: Sequence[str],
    values: Sequence[Sequence[float]],
    series: Sequence[Series],
    *,
    title: str,
    money: bool = False,
    every: int = 1,
) -> Markup:
    """Bars (one per label) stacked by series: `values[i][j]` is series j of bar i. Every
    `every`th label is written under its bar."""
    count = max(1, len(labels))
    totals = [sum(row) for row in values] or [0.0]
    top = _nice_max(max(totals))
    left = max(LEFT, 10 + 6 * len(_number(top, money)))  # room for the widest axis label
    plot_w = WIDTH - left - 4
    plot_h = HEIGHT - BOTTOM - TOP
    slot = plot_w / count
    bar = max(1.0, slot * 0.72)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{escape(_number(top * fraction, money))}</text>"
        )
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - bar) / 2
        y = TOP + plot_h
        row = values[index] if index < len(values) else []
        for part, amount in zip(series, row, strict=False):
            if amount <= 0:
                continue
            height = plot_h * amount / top
            y -= height
            tip = f"{label}: {part.name} {_number(amount, money)}"
            parts.append(
                f'<rect class="{escape(part.css)}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}"><title>{escape(tip)}</title></rect>'
            )
        if (count - 1 - index) % every == 0:  # the newest bar is always labelled
            parts.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(series: Sequence[Series]) -> Markup:
    items = "".join(
        f'<li><svg viewBox="0 0 10 10" class="swatch"><rect class="{escape(s.css)}" '
        f'width="10" height="10"/></svg>{escape(s.name)}</li>'
        for s in series
    )
    return Markup(f'<ul class="legend">{items}</ul>')
