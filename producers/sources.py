"""Where emails come from: .eml files, directories, mbox, Maildir, JSONL and stdin, streamed.

Everything is read incrementally with bounded memory: an mbox is split on its "From " lines
while it is read (the standard `mailbox.mbox` builds an index of the whole file first), lines are
read in bounded pieces, and an email over the size limit is skipped after its first
`HEAD_KEPT` bytes (kept for the report). Nothing is dropped silently: whatever cannot be read
becomes an `Item` the enqueuer rejects with a reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Format = Literal["auto", "eml", "mbox", "maildir", "jsonl"]
Kind = Literal["email", "jsonl", "oversize", "unreadable"]

FORMATS: tuple[str, ...] = ("auto", "eml", "mbox", "maildir", "jsonl")
STDIN = "-"
EML_SUFFIXES = (".eml",)
MBOX_SUFFIXES = (".mbox", ".mbx")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
HEAD_KEPT = 64 * 1024
READ_PIECE = 64 * 1024
_ESCAPED_FROM = re.compile(rb"^>(>*From )")


class Readable(Protocol):
    """What the readers need of a stream: a binary file, stdin's buffer, or `_Prefixed`."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Item:
    """One email (or JSONL line) to enqueue, or one that could not be read."""

    source: str  # the path, or "-" for stdin
    position: str  # "" for a whole file; "message 3" (mbox), "line 7" (JSONL), "new/KEY" (Maildir)
    kind: Kind
    data: bytes  # the email, the JSONL line, or the head of an oversize email
    size: int  # bytes of input this item covers (progress, too_large reports)
    error: str = ""


@dataclass(frozen=True)
class Input:
    """A resolved input: one file or Maildir (or stdin) and how to read it."""

    path: Path | None  # None = stdin
    format: Format
    size: int | None  # bytes, for progress; None when unknown (stdin)

    @property
    def name(self) -> str:
        return STDIN if self.path is None else str(self.path)


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def sniff(head: bytes) -> Format:
    """mbox if it starts with a "From " line, JSONL if with "{", else a single email."""
    stripped = head.lstrip()
    if head.startswith(b"From "):
        return "mbox"
    if stripped.startswith(b"{"):
        return "jsonl"
    return "eml"


def _file_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in MBOX_SUFFIXES:
        return "mbox"
    if suffix in EML_SUFFIXES:
        return "eml"
    try:
        with path.open("rb") as handle:
            return sniff(handle.read(64))
    except OSError:
        return "eml"  # reported as unreadable when it is read


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in _maildir_files(path))
        return path.stat().st_size
    except OSError:
        return 0


def _directory_inputs(root: Path) -> Iterator[Input]:
    """A directory: Maildirs inside it, and its .eml, .mbox and .jsonl files, sorted."""
    if is_maildir(root):
        yield Input(root, "maildir", _size(root))
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        for name in list(dirnames):
            if is_maildir(here / name):
                dirnames.remove(name)
                yield Input(here / name, "maildir", _size(here / name))
        for name in sorted(filenames):
            path = here / name
            suffix = path.suffix.lower()
            if suffix in EML_SUFFIXES + MBOX_SUFFIXES + JSONL_SUFFIXES:
                yield Input(path, _file_format(path), _size(path))


def resolve_inputs(paths: Iterable[str | Path], fmt: Format = "auto") -> list[Input]:
    """Expand the command-line paths; `fmt` other than "auto" forces the format of files."""
    inputs: list[Input] = []
    for given in paths:
        if str(given) == STDIN:
            inputs.append(Input(None, fmt, None))
            continue
        path = Path(given)
        if path.is_dir() and fmt in ("auto", "maildir"):
            if fmt == "maildir":
                inputs.append(Input(path, "maildir", _size(path)))
            else:
                inputs.extend(_directory_inputs(path))
        elif path.is_dir():
            inputs.extend(
                Input(i.path, fmt if i.format != "maildir" else "maildir", i.size)
                for i in _directory_inputs(path)
            )
        else:
            inputs.append(Input(path, _file_format(path) if fmt == "auto" else fmt, _size(path)))
    return inputs


def iter_items(
    inputs: Iterable[Input], max_bytes: int, stdin: Readable | None = None
) -> Iterator[Item]:
    for item_input in inputs:
        if item_input.path is None:
            if stdin is None:
                raise ValueError("stdin was given as an input but no stream was passed")
            yield from read_stream(stdin, STDIN, item_input.format, max_bytes)
            continue
        if item_input.format == "maildir":
            yield from read_maildir(item_input.path, max_bytes)
            continue
        try:
            handle = item_input.path.open("rb")
        except OSError as exc:
            yield Item(item_input.name, "", "unreadable", b"", 0, str(exc))
            continue
        with handle:
            yield from read_stream(handle, item_input.name, item_input.format, max_bytes)


def read_stream(stream: Readable, source: str, fmt: Format, max_bytes: int) -> Iterator[Item]:
    if fmt == "auto":
        head = stream.read(64)
        fmt = sniff(head)
        stream = _Prefixed(head, stream)
    if fmt == "mbox":
        yield from read_mbox(stream, source, max_bytes)
    elif fmt == "jsonl":
        yield from read_jsonl(stream, source, max_bytes)
    else:
        yield read_one(stream, source, "", max_bytes)


def read_one(stream: Readable, source: str, position: str, max_bytes: int) -> Item:
    """A whole stream as one email; past `max_bytes` only the head is kept (and counted)."""
    try:
        data = stream.read(max_bytes + 1)
        if len(data) <= max_bytes:
            return Item(source, position, "email", data, len(data))
        size = len(data)
        while chunk := stream.read(READ_PIECE * 16):
            size += len(chunk)
        return Item(source, position, "oversize", data[:HEAD_KEPT], size)
    except OSError as exc:
        return Item(source, position, "unreadable", b"", 0, str(exc))


def _maildir_files(root: Path) -> list[Path]:
    """Delivered messages (new/ then cur/, sorted); tmp/ holds deliveries still in progress."""
    files: list[Path] = []
    for sub in ("new", "cur"):
        folder = root / sub
        if folder.is_dir():
            files.extend(
                sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            )
    return files


def read_maildir(root: Path, max_bytes: int) -> Iterator[Item]:
    for path in _maildir_files(root):
        position = f"{path.parent.name}/{path.name}"
        try:
            with path.open("rb") as handle:
                yield read_one(handle, str(root), position, max_bytes)
        except OSError as exc:
            yield Item(str(root), position, "unreadable", b"", 0, str(exc))


def _lines(stream: Readable) -> Iterator[tuple[bytes, bool]]:
    """(piece, starts_a_line): lines in pieces of at most READ_PIECE bytes (bounded memory)."""
    at_start = True
    while piece := stream.readline(READ_PIECE):
        yield piece, at_start
        at_start = piece.endswith(b"\n")


class _Message:
    """The email being collected: bounded to `max_bytes`, then only its size is counted."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.kept = 0
        self.size = 0
        self.oversize = False

    def add(self, piece: bytes, counted: int | None = None) -> None:
        self.size += len(piece) if counted is None else counted
        if self.oversize:
            return
        self.parts.append(piece)
        self.kept += len(piece)
        if self.kept > self.max_bytes:
            head = b"".join(self.parts)[:HEAD_KEPT]
            self.parts, self.kept, self.oversize = [head], len(head), True

    def item(self, source: str, position: str) -> Item:
        data = b"".join(self.parts)
        if self.oversize:
            return Item(source, position, "oversize", data, self.size)
        if data.endswith(b"\r\n\r\n"):  # the blank line that separates messages
            data = data[:-2]
        elif data.endswith(b"\n\n"):
            data = data[:-1]
        return Item(source, position, "email", data, self.size)


def read_mbox(stream: Readable, source: str, max_bytes: int) -> Iterator[Item]:
    """Split an mbox on "From " lines that start the file or follow a blank line.

    ">From " lines are unescaped by one ">" (mboxrd). Text before the first "From " line (a file
    that is not really an mbox) is passed on as one email, so it is reported rather than lost.
    """
    current = _Message(max_bytes)
    index = 0
    previous_blank = True
    for piece, line_start in _lines(stream):
        if line_start and previous_blank and piece.startswith(b"From "):
            yield from _mbox_item(current, source, index)
            index += 1
            current = _Message(max_bytes)
            current.size = len(piece)
            previous_blank = False
            continue
        if line_start:
            previous_blank = piece in (b"\n", b"\r\n")
            if piece.startswith(b">"):
                current.add(_ESCAPED_FROM.sub(rb"\1", piece, count=1), counted=len(piece))
                continue
        current.add(piece)
    yield from _mbox_item(current, source, index)


def _mbox_item(message: _Message, source: str, index: int) -> Iterator[Item]:
    if index:
        yield message.item(source, f"message {index}")
    elif message.parts and b"".join(message.parts).strip():
        yield message.item(source, "preamble")


def read_jsonl(stream: Readable, source: str, max_bytes: int) -> Iterator[Item]:
    """One item per non-blank line; a line over `max_bytes` is reported as oversize."""
    current: _Message | None = None
    number = 0
    for piece, line_start in _lines(stream):
        if line_start or current is None:
            number += 1
            current = _Message(max_bytes)
        current.add(piece)
        if piece.endswith(b"\n"):
            yield from _jsonl_item(current, source, number)
            current = None
    if current is not None:
        yield from _jsonl_item(current, source, number)


def _jsonl_item(line: _Message, source: str, number: int) -> Iterator[Item]:
    if line.oversize:
        yield Item(source, f"line {number}", "oversize", b"".join(line.parts), line.size)
        return
    data = b"".join(line.parts)
    if data.strip():
        yield Item(source, f"line {number}", "jsonl", data.strip(), line.size)


class _Prefixed:
    """A stream with bytes already read put back in front (stdin cannot seek)."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._rest.read(size - len(data))
            return data
        return self._rest.read(size)

    def readline(self, size: int = -1) -> bytes:
        if self._head:
            newline = self._head.find(b"\n")
            if newline >= 0 and (size < 0 or newline < size):
                data, self._head = self._head[: newline + 1], self._head[newline + 1 :]
                return data
            if 0 <= size <= len(self._head):
                data, self._head = self._head[:size], self._head[size:]
                return data
            data, self._head = self._head, b""
            limit = -1 if size < 0 else size - len(data)
            return data + self._rest.readline(limit)
        return self._rest.readline(size)
