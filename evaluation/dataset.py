"""Evaluation datasets: JSONL cases, read into the emails the worker would decide on.

One JSON object per line (docs/evaluation.md):

    {"id": "billing-007",
     "emails": ["<raw RFC 5322 message>", {"from": "...", "subject": "...", "text": "..."}],
     "expected": {"category": "BILLING", "clarify": false,
                  "priority": "high", "language": "de", "fields": {"order_number": "AB-1234"}},
     "note": "charged twice: money taken, so BILLING, and nothing to ask"}

`emails` are the customer's emails in order: a raw message as a string (parsed by
`producers.parse.parse_email`) or an object in the JSONL email schema of `triage enqueue`
(`producers.jsonl`). Every email goes through the producers' own parsing (quotes, signatures,
HTML, robot flags, bounds), so a case is decided on exactly what the worker would see.
`expected.clarify` says whether a question is the right *first* move (omitted or null: not
labelled, left out of the question figures). The review lane's export (`triage review export`)
is a dataset as it is: its emails hold the stored turn text, which starts with the `Subject:` line
`worker.decide.conversation.email_block` wrote; that line is dropped here so it is not sent twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.contract import EmailPayload
from common.settings import Settings
from producers.enqueue import limits_from
from producers.jsonl import parse_record
from producers.parse import EmailParseError, ParseLimits, parse_email
from producers.submit import payload_json
from worker.decide.decision import language_tag

Priority = Literal["urgent", "high", "normal", "low"]


class Expected(BaseModel):
    """The label of a case: what a correct decision is."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1)
    #: Whether a question is the right first move; None: not labelled.
    clarify: bool | None = None
    priority: Priority | None = None
    language: str | None = None
    fields: dict[str, Any] | None = None


class CaseSpec(BaseModel):
    """One dataset line, as written."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    emails: list[str | dict[str, Any]] = Field(min_length=1)
    expected: Expected
    note: str | None = None


@dataclass(frozen=True)
class Case:
    """A case ready to run: its emails as the worker's payloads, oldest first."""

    id: str
    source: str
    emails: tuple[EmailPayload, ...]
    expected: Expected
    note: str = ""
    subject: str = ""


@dataclass
class DatasetError(Exception):
    """Problems found while reading datasets: `file:line: what`, for every bad line."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        return "\n".join(shown + ([f"... and {more} more"] if more else []))


def dataset_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories give their `*.jsonl` files (recursively, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.jsonl") if p.is_file()))
        else:
            files.append(path)
    return files


def read_lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(`file:line`, the parsed object or a problem message) for every non-blank line."""
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, f"not JSON: {exc}"
                continue
            yield where, data if isinstance(data, dict) else "a line must be a JSON object"


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _without_turn_subject(record: dict[str, Any]) -> dict[str, Any]:
    """The review export's text starts with the stored turn's `Subject:` line: drop it."""
    text, subject = record.get("text"), record.get("subject")
    if isinstance(text, str) and isinstance(subject, str) and subject.strip():
        prefix = f"Subject: {' '.join(subject.split())}\n\n"
        if text.startswith(prefix) and text[len(prefix) :].strip():
            return {**record, "text": text[len(prefix) :]}
    return record


def to_payload(email: str | dict[str, Any], thread_id: str, limits: ParseLimits) -> EmailPayload:
    """One dataset email through the producers' parsing, as the worker's inbox entry.

    Raises `EmailParseError` (with the producers' reason code) for an email they would reject.
    """
    if isinstance(email, str):
        parsed = parse_email(email.encode("utf-8"), limits)
    else:
        parsed = parse_record(json.dumps(_without_turn_subject(email)), limits)
    return EmailPayload.model_validate_json(payload_json(parsed, thread_id))


def load_case(data: dict[str, Any], source: str, settings: Settings) -> Case:
    """A dataset line -> a case; `ValueError` with a readable message if it is not one."""
    try:
        spec = CaseSpec.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    expected = spec.expected
    if expected.category not in settings.category_names:
        raise ValueError(
            f"expected.category {expected.category!r} is not a category of the taxonomy "
            f"({', '.join(settings.category_names)}); see --taxonomy or --label-map"
        )
    if expected.language is not None:
        tag = language_tag(expected.language)
        if tag == "und":
            raise ValueError(f"expected.language {expected.language!r} is not a BCP 47 tag")
        expected = expected.model_copy(update={"language": tag})
    limits = limits_from(settings)
    emails: list[EmailPayload] = []
    for position, email in enumerate(spec.emails):
        try:
            emails.append(to_payload(email, f"eval-{position}", limits))
        except EmailParseError as exc:
            raise ValueError(f"emails.{position}: {exc.reason}: {exc}") from None
        except ValidationError as exc:
            raise ValueError(f"emails.{position}: {_describe(exc)}") from None
    return Case(
        id=spec.id,
        source=source,
        emails=tuple(emails),
        expected=expected,
        note=(spec.note or "").strip(),
        subject=emails[0].subject,
    )


def load_cases(items: Iterable[tuple[str, dict[str, Any] | str]], settings: Settings) -> list[Case]:
    """Every case of `items` (`(source, line)` pairs), or `DatasetError` listing every problem:
    nothing is sent to the API while the dataset is broken."""
    cases: list[Case] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for source, data in items:
        if isinstance(data, str):
            problems.append(f"{source}: {data}")
            continue
        try:
            case = load_case(data, source, settings)
        except ValueError as exc:
            problems.append(f"{source}: {exc}")
            continue
        if case.id in seen:
            problems.append(f"{source}: id {case.id!r} already used at {seen[case.id]}")
            continue
        seen[case.id] = source
        cases.append(case)
    if problems:
        raise DatasetError(problems)
    return cases


def load_datasets(paths: Iterable[Path], settings: Settings) -> list[Case]:
    """The cases of every dataset file (directories: their `*.jsonl`), in order."""
    files = dataset_files(paths)
    missing = [f"{path}: no such file" for path in files if not path.is_file()]
    if missing:
        raise DatasetError(missing)

    def lines() -> Iterator[tuple[str, dict[str, Any] | str]]:
        for path in files:
            yield from read_lines(path)

    return load_cases(lines(), settings)
