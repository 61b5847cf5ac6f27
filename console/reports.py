"""The runs page: reprocessing runs kept in Redis, and report directories on disk.

Runs are read with `worker.state.runs.RunStore` (name, status, counters, configuration). Reports
are the directories `triage eval --report DIR` (report.md, report.json, confusion.png,
reliability.png) and `triage reprocess diff --report DIR` (diff.md, diff.json,
change-matrix.png) write, found under `TRIAGE_CONSOLE_REPORTS_DIR` up to `MAX_DEPTH` levels
down. Their Markdown is rendered with raw HTML off (a report quotes customer text), images are
served only from inside the report's own directory, and only PNG files are served at all.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import redis
from markdown_it import MarkdownIt
from markupsafe import Markup

from common.settings import Settings
from worker.state.runs import RunStore

#: Report files by kind, the first found names the kind.
REPORT_FILES = (("report.md", "evaluation"), ("diff.md", "reprocessing"))
MAX_DEPTH = 3
MAX_REPORTS = 200
MAX_MARKDOWN_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Report:
    path: str  # relative to the reports directory, with forward slashes
    kind: str
    markdown: str  # file name
    title: str
    modified: float
    images: list[str]


def _title(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as text:
        for line in text:
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return path.parent.name


def _walk(directory: Path, depth: int) -> Iterator[Path]:
    yield directory
    if depth >= MAX_DEPTH:
        return
    try:
        children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return
    for child in children:
        yield from _walk(child, depth + 1)


def find_reports(root: Path) -> list[Report]:
    """Report directories under `root`, newest first."""
    found: list[Report] = []
    if not root.is_dir():
        return found
    for directory in _walk(root, 0):
        for name, kind in REPORT_FILES:
            markdown = directory / name
            if markdown.is_file():
                found.append(
                    Report(
                        path=directory.relative_to(root).as_posix() or ".",
                        kind=kind,
                        markdown=name,
                        title=_title(markdown),
                        modified=markdown.stat().st_mtime,
                        images=sorted(p.name for p in directory.glob("*.png") if p.is_file()),
                    )
                )
                break
        if len(found) >= MAX_REPORTS:
            break
    return sorted(found, key=lambda report: report.modified, reverse=True)


def inside(root: Path, relative: str) -> Path | None:
    """`root/relative` if it stays inside `root` once resolved (no `..`, no symlink out)."""
    base = root.resolve()
    try:
        candidate = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return candidate if candidate == base or candidate.is_relative_to(base) else None


def load_report(root: Path, relative: str) -> Report | None:
    directory = inside(root, relative)
    if directory is None or not directory.is_dir():
        return None
    for report in find_reports(directory):
        if report.path == ".":
            return Report(
                relative.strip("/") or ".",
                report.kind,
                report.markdown,
                report.title,
                report.modified,
                report.images,
            )
    return None


def render_markdown(text: str, image_url: Callable[[str], str | None]) -> Markup:
    """Markdown to HTML: tables on, raw HTML off (escaped), images only through `image_url`
    (a file of the report's own directory), other images dropped to their alt text."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(_renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
        token = tokens[index]
        source = str(token.attrGet("src") or "")
        url = image_url(source) if "/" not in source and source.endswith(".png") else None
        alt = escape(str(token.content or ""))
        if url is None:
            return alt
        return f'<img src="{escape(url)}" alt="{alt}" loading="lazy">'

    md.add_render_rule("image", image)
    return Markup(md.render(text[:MAX_MARKDOWN_BYTES]))


# --- reprocessing runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    name: str
    meta: dict[str, str]

    def _json(self, field: str) -> dict[str, Any]:
        try:
            value = json.loads(self.meta.get(field) or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "reprocess")

    @property
    def status(self) -> str:
        return self.meta.get("status", "-")

    @property
    def config(self) -> dict[str, Any]:
        return self._json("config")

    @property
    def source(self) -> dict[str, Any]:
        return self._json("source")

    @property
    def plan(self) -> dict[str, Any]:
        return self._json("plan")

    @property
    def cost_usd(self) -> float:
        try:
            return int(self.meta.get("cost_micro_usd") or 0) / 1_000_000
        except ValueError:
            return 0.0

    @property
    def counters(self) -> dict[str, int]:
        """Every whole-number field of the run (calls, tokens, decisions by outcome, …)."""
        found = {}
        for name, value in sorted(self.meta.items()):
            if name in ("created_at", "updated_at", "cost_micro_usd") or not value.isdigit():
                continue
            found[name] = int(value)
        return found

    def when(self, field: str) -> str:
        try:
            stamp = float(self.meta.get(field) or 0)
        except ValueError:
            return "-"
        if not stamp:
            return "-"
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def list_runs(client: redis.Redis, settings: Settings) -> list[Run]:
    """Every run kept, newest first."""
    store = RunStore(client, settings.reprocess_retention_days)
    runs = [Run(name, store.meta(name)) for name, _ in store.names()]
    return [run for run in reversed(runs) if run.meta]


def load_run(client: redis.Redis, settings: Settings, name: str) -> Run | None:
    meta = RunStore(client, settings.reprocess_retention_days).meta(name)
    return Run(name, meta) if meta else None
