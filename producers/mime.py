"""The MIME structure of an email, walked with explicit bounds and no recursion into attachments.

The stdlib's parser recurses once per nesting level (10,000 nested multiparts or attached
emails overflow the stack) and parses every part's headers with the super-linear modern parser.
This walker reads only what a turn needs: the text parts (text/plain, else text/html), the names,
types and sizes of the other parts, and the parts of a delivery report. Part boundaries are found
with one regular-expression scan per multipart; past `max_parts` parts or `max_depth` levels the
rest is not read and the result says so. An attached email (message/rfc822) is a leaf: its
headers are read only for its name, or when it is the whole content (a forward without comment).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from producers.headers import HeaderLimitError, Headers, content_type, decode_words, split_headers

#: Bytes of a text part decoded at most (the turn is bounded far below this anyway).
MAX_TEXT_BYTES = 4 * 1024 * 1024
_WHITESPACE = re.compile(rb"[\s]+")
_BOUNDARY_GUESS = re.compile(rb"^--([^\s]{1,70})[ \t]*\r?$", re.MULTILINE)
#: A line starting with "--", its text without trailing white space in group 1.
_DASH_LINE = re.compile(rb"^(--[^\r\n]*?)[ \t]*\r?$", re.MULTILINE)
#: Lines starting with "--" compared in Python before a per-boundary pattern is compiled.
DASH_LINES = 1_000


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 128 * 1024
    max_encoded_words: int = 200
    max_parts: int = 500
    max_depth: int = 20


@dataclass
class Leaf:
    """One part that is not a container."""

    headers: Headers
    content_type: str
    params: dict[str, str]
    raw: bytes
    start: int
    end: int
    depth: int
    #: Inside a multipart/alternative other than the one chosen.
    alternative: bool = False

    @property
    def body(self) -> bytes:
        return self.raw[self.start : self.end]

    def filename(self, max_words: int) -> str:
        disposition = self.headers.get("content-disposition") or ""
        name = ""
        if disposition:
            from producers.headers import parse_parameters

            name = parse_parameters(disposition)[1].get("filename", "")
        name = name or self.params.get("name", "")
        return decode_words(name, max_words)[0] if name else ""

    @property
    def is_attachment(self) -> bool:
        disposition = (self.headers.get("content-disposition") or "").lower()
        return disposition.startswith("attachment") or bool(
            "filename" in disposition or self.params.get("name")
        )

    def decoded(self, limit: int | None = None) -> bytes:
        """The transfer-decoded body (base64, quoted-printable), `limit` bytes of input at most."""
        body = self.raw[
            self.start : self.end if limit is None else min(self.end, self.start + limit)
        ]
        encoding = (self.headers.get("content-transfer-encoding") or "").strip().lower()
        if encoding == "base64":
            return _base64(body)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(body)
        return body

    def size(self) -> int:
        """Decoded size without decoding (base64: 3 bytes per 4 characters)."""
        encoding = (self.headers.get("content-transfer-encoding") or "").strip().lower()
        length = self.end - self.start
        if encoding == "base64":
            data = self.raw[self.start : self.end]
            characters = length - sum(data.count(c) for c in (b"\n", b"\r", b" ", b"\t"))
            padding = data.rstrip().endswith(b"==") + data.rstrip().endswith(b"=")
            return max(0, characters * 3 // 4 - padding)
        return length


@dataclass
class Structure:
    """What the walk found, in document order."""

    leaves: list[Leaf] = field(default_factory=list)
    parts: int = 0
    #: Parts not read because of `max_parts` / `max_depth`.
    skipped_parts: int = 0
    too_deep: bool = False
    #: A multipart whose boundary is missing or never appears (its body was read as text).
    broken_multipart: bool = False


def _base64(data: bytes) -> bytes:
    data = _WHITESPACE.sub(b"", data)
    data = data[: len(data) - len(data) % 4] if b"=" not in data else data
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        try:
            return binascii.a2b_base64(data.rstrip(b"=") + b"=" * (-len(data.rstrip(b"=")) % 4))
        except binascii.Error:
            return b""


def walk(raw: bytes, top: Headers, limits: Limits, end: int | None = None) -> Structure:
    """Every leaf part of the email whose headers are `top` (body from `top.body_offset` to
    `end`, default the end of `raw`)."""
    structure = Structure()
    ctype, params = content_type(top)
    # (headers, type, params, start, end, depth, in a non-chosen alternative)
    stack: list[tuple[Headers, str, dict[str, str], int, int, int, bool]] = [
        (top, ctype, params, top.body_offset, len(raw) if end is None else end, 0, False)
    ]
    while stack:
        headers, ctype, params, start, end, depth, alternative = stack.pop()
        structure.parts += 1
        if not ctype.startswith("multipart/"):
            leaf = Leaf(headers, ctype, params, raw, start, end, depth, alternative)
            structure.leaves.append(leaf)
            continue
        if depth >= limits.max_depth:
            structure.too_deep = True
            structure.skipped_parts += 1
            continue
        room = max(0, limits.max_parts - structure.parts - len(stack))
        boundary = params.get("boundary", "")
        split = _split(raw, start, end, boundary, room)
        if split is None:
            boundary = _guess_boundary(raw, start, end)
            split = _split(raw, start, end, boundary, room) if boundary else None
            structure.broken_multipart = True
            if not split or not split[0]:
                text = Leaf(headers, "text/plain", {}, raw, start, end, depth, alternative)
                structure.leaves.append(text)
                continue
        children, rest = split
        structure.skipped_parts += rest
        parsed: list[tuple[Headers, str, dict[str, str], int, int, int, bool]] = []
        for child_start, child_end in children:
            try:
                child = split_headers(raw, limits.max_header_bytes, child_start, child_end)
            except HeaderLimitError:
                structure.skipped_parts += 1
                continue
            child_type, child_params = content_type(child)
            if ctype == "multipart/digest" and child.get("content-type") is None:
                child_type = "message/rfc822"
            parsed.append(
                (child, child_type, child_params, child.body_offset, child_end, depth + 1, False)
            )
        if ctype == "multipart/alternative":
            parsed = _mark_alternatives(parsed, alternative)
        elif alternative:
            parsed = [(*item[:6], True) for item in parsed]
        stack.extend(reversed(parsed))
    return structure


def _mark_alternatives(
    parts: list[tuple[Headers, str, dict[str, str], int, int, int, bool]], inherited: bool
) -> list[tuple[Headers, str, dict[str, str], int, int, int, bool]]:
    """In a multipart/alternative, the text/plain part (else the first) is the chosen one."""
    chosen = next((i for i, p in enumerate(parts) if p[1] == "text/plain"), None)
    if chosen is None:
        chosen = next((i for i, p in enumerate(parts) if p[1] == "text/html"), None)
    if chosen is None:
        chosen = next((i for i, p in enumerate(parts) if p[1].startswith("multipart/")), 0)
    return [(*p[:6], inherited or i != chosen) for i, p in enumerate(parts)]


def _split(
    raw: bytes, start: int, end: int, boundary: str, room: int
) -> tuple[list[tuple[int, int]], int] | None:
    """(start, end) of the first `room` body parts between `--boundary` lines, and how many
    more there are; None if no delimiter line is found."""
    if not boundary or len(boundary) > 200:
        return None
    token = boundary.encode("utf-8", "replace")
    needle = b"--" + token
    parts: list[tuple[int, int]] = []
    part_start: int | None = None
    found = False
    for match in _delimiters(raw, start, end, token):
        found = True
        if part_start is not None:
            part_end = match.start()
            # the line break before the delimiter belongs to the delimiter
            if raw[part_end - 2 : part_end] == b"\r\n":
                part_end -= 2
            elif raw[part_end - 1 : part_end] == b"\n":
                part_end -= 1
            parts.append((part_start, max(part_start, part_end)))
        if match.group(1).endswith(b"--") and match.group(1) != needle:  # close delimiter
            return parts, 0
        if len(parts) >= room:  # the rest is not read, only counted (one C-level scan)
            return parts, raw.count(b"\n" + needle, match.end(), end)
        newline = raw.find(b"\n", match.end(), end)
        part_start = end if newline < 0 else newline + 1
    if not found:
        return None
    if part_start is not None:  # no close delimiter: the last part runs to the end
        parts.append((part_start, end))
    return parts, 0


def _delimiters(raw: bytes, start: int, end: int, token: bytes) -> Iterator[re.Match[bytes]]:
    """The `--token` / `--token--` lines of `raw[start:end]`, in order.

    Few lines start with "--" in real mail: those are compared in Python, which needs no
    pattern compiled per boundary. Past `DASH_LINES` such lines (hostile input), one pattern
    for this boundary scans the rest in C.
    """
    needle = b"--" + token
    if raw.count(b"\n--", start, end) <= DASH_LINES:
        for match in _DASH_LINE.finditer(raw, start, end):
            line = match.group(1)
            if line == needle or line == needle + b"--":
                yield match
        return
    pattern = re.compile(rb"^(--" + re.escape(token) + rb"(?:--)?)[ \t]*\r?$", re.MULTILINE)
    yield from pattern.finditer(raw, start, end)


def _guess_boundary(raw: bytes, start: int, end: int) -> str:
    """The boundary a broken multipart really uses: its first `--token` line."""
    match = _BOUNDARY_GUESS.search(raw, start, min(end, start + 64 * 1024))
    if match is None:
        return ""
    token = match.group(1)
    if token.endswith(b"--"):
        token = token[:-2]
    return token.decode("utf-8", "replace")
