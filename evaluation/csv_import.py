"""Helpdesk exports and public ticket datasets (CSV) as evaluation cases.

`--map subject=COL,body=COL,label=COL[,priority=COL,language=COL,id=COL,from=COL]` names the
columns (body and label are required); `--label-map OLD=NEW,...` renames labels to the taxonomy's
categories (exact, then case-insensitive; `*=OTHER` maps every label not named). A label that is
still not a category stops the import with the list of such labels and their counts. Each row is
one single-email case (the body as text, or as HTML when it is markup); `clarify` is not labelled
(a ticket export does not say whether a question was the right first move). Priorities are read
as urgent/critical, high, medium/normal, low; languages as BCP 47 tags (others: not labelled).
"""

from __future__ import annotations

import csv
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from evaluation.dataset import DatasetError
from worker.decide.decision import language_tag

MAP_KEYS = ("subject", "body", "label", "priority", "language", "id", "from")
REQUIRED = ("body", "label")
DEFAULT_SENDER = "customer@example.org"
PRIORITIES = {
    "urgent": "urgent",
    "critical": "urgent",
    "highest": "urgent",
    "high": "high",
    "medium": "normal",
    "normal": "normal",
    "moderate": "normal",
    "low": "low",
    "lowest": "low",
}
MARKUP = re.compile(r"<(?:html|body|p|div|br|table|span)\b", re.IGNORECASE)
SNIFF_BYTES = 64 * 1024


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what}: {part.strip()!r} is not NAME=VALUE")
        pairs.append((key.strip(), value.strip()))
    return pairs


def parse_map(text: str) -> dict[str, str]:
    """`subject=Subject,body=Body,label=queue` -> {field: column}."""
    mapping = dict(_pairs(text, "--map"))
    unknown = sorted(set(mapping) - set(MAP_KEYS))
    if unknown:
        raise ValueError(
            f"--map: unknown field(s) {', '.join(unknown)} (use {', '.join(MAP_KEYS)})"
        )
    missing = [key for key in REQUIRED if key not in mapping]
    if missing:
        raise ValueError(
            f"--map: {' and '.join(missing)} must be given (e.g. body=Body,label=Queue)"
        )
    return mapping


def parse_label_map(text: str | None) -> dict[str, str]:
    """`Billing and Payments=BILLING,*=OTHER` -> {old: new}."""
    return dict(_pairs(text, "--label-map")) if text else {}


def map_label(raw: str, label_map: dict[str, str], categories: list[str]) -> str | None:
    """The category for a label, or None when it maps to none."""
    folded = {key.casefold(): value for key, value in label_map.items()}
    mapped = label_map.get(raw) or folded.get(raw.casefold()) or raw
    if mapped in categories:
        return mapped
    by_upper = {name.upper(): name for name in categories}
    if mapped.upper() in by_upper:
        return by_upper[mapped.upper()]
    fallback = label_map.get("*")
    return fallback if fallback in categories else None


def _dialect(sample: str) -> type[csv.Dialect] | str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return "excel"


def import_csv(
    path: Path, mapping: dict[str, str], label_map: dict[str, str], categories: list[str]
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """(`file:line`, case) pairs for every usable row, and how many rows had no text."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            dialect = _dialect(handle.read(SNIFF_BYTES))
            handle.seek(0)
            reader = csv.DictReader(handle, dialect=dialect)
            columns = reader.fieldnames or []
            absent = [column for column in mapping.values() if column not in columns]
            if absent:
                raise DatasetError(
                    [f"{path}: no column {', '.join(map(repr, absent))} (columns: {columns})"]
                )
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError([f"{path}: cannot read CSV: {exc}"]) from None
    cases: list[tuple[str, dict[str, Any]]] = []
    unknown: Counter[str] = Counter()
    empty = 0
    for line, row in rows:

        def cell(name: str, row: dict[str, Any] = row) -> str:
            column = mapping.get(name)
            return str(row.get(column) or "").strip() if column else ""

        subject, body = cell("subject"), cell("body")
        if not body and not subject:
            empty += 1
            continue
        raw_label = cell("label")
        category = map_label(raw_label, label_map, categories)
        if category is None:
            unknown[raw_label] += 1
            continue
        email: dict[str, Any] = {"from": cell("from") or DEFAULT_SENDER, "subject": subject}
        email["html" if MARKUP.search(body) else "text"] = body or "(no text)"
        expected: dict[str, Any] = {"category": category, "clarify": None}
        priority = PRIORITIES.get(cell("priority").lower())
        if priority:
            expected["priority"] = priority
        language = language_tag(cell("language")) if cell("language") else "und"
        if language != "und":
            expected["language"] = language
        case_id = cell("id") or f"{path.stem}-{line}"
        note = f"imported from {path.name}, label {raw_label!r}"
        cases.append(
            (
                f"{path}:{line}",
                {"id": case_id, "emails": [email], "expected": expected, "note": note},
            )
        )
    if unknown:
        listed = ", ".join(f"{label!r} ({count})" for label, count in unknown.most_common(20))
        raise DatasetError(
            [
                f"{path}: labels that are no category of the taxonomy "
                f"({', '.join(categories)}): {listed}; map them with --label-map OLD=NEW,... "
                "(`*=OTHER` maps all others)"
            ]
        )
    return cases, empty
