"""Request bodies read with a byte limit, and HTML forms decoded to bytes, not text.

A provider posts the raw message in a form field (Mailgun `body-mime`, SendGrid `email`): its
bytes must reach the parser unchanged, whatever charset they are in, so fields are kept as bytes
(Starlette's own form parser decodes them to text). Uploaded files are counted, not kept: only
their name, type and size are used (attachment metadata).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class TooLarge(Exception):
    """The body is over the limit (answered 413, never read to the end)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request body over the {limit}-byte limit ({size} bytes or more)")
        self.size = size
        self.limit = limit


class BadForm(ValueError):
    """Not a readable form (answered 422)."""


async def read_body(chunks: AsyncIterator[bytes], limit: int, declared: int | None) -> bytes:
    """The whole body, or `TooLarge` as soon as it (or its Content-Length) passes `limit`."""
    if declared is not None and declared > limit:
        raise TooLarge(declared, limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLarge(size, limit)
        parts.append(chunk)
    return b"".join(parts)


@dataclass(frozen=True)
class Upload:
    """An uploaded file, its content dropped."""

    name: str
    filename: str
    content_type: str
    size: int


@dataclass
class Form:
    fields: dict[str, bytes] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)

    def text(self, name: str, default: str = "") -> str:
        value = self.fields.get(name)
        return value.decode("utf-8", "replace") if value is not None else default


def parse_form(content_type: str, body: bytes) -> Form:
    """`multipart/form-data` or `application/x-www-form-urlencoded` -> fields as bytes (the
    first value of a repeated field) and uploads as metadata."""
    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        form = Form()
        # Latin-1 maps every byte to one character and back: percent-escapes stay exact bytes.
        text = body.decode("latin-1")
        for name, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
            key = name.encode("latin-1").decode("utf-8", "replace")
            form.fields.setdefault(key, value.encode("latin-1"))
        return form
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise BadForm(f"expected a form (multipart/form-data), got {content_type or 'nothing'!r}")
    return _multipart(options[b"boundary"], body)


def _multipart(boundary: bytes, body: bytes) -> Form:
    form = Form()
    state: dict[str, bytes] = {}
    headers: list[tuple[bytes, bytes]] = []
    data: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        state["name"] = state.get("name", b"") + chunk[start:end]

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        state["value"] = state.get("value", b"") + chunk[start:end]

    def on_header_end() -> None:
        headers.append((state.pop("name", b"").lower(), state.pop("value", b"")))

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.append(chunk[start:end])

    def on_part_end() -> None:
        found = dict(headers)
        _, options = parse_options_header(found.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            form.files.append(
                Upload(
                    name,
                    options[b"filename"].decode("utf-8", "replace"),
                    found.get(b"content-type", b"application/octet-stream").decode("latin-1"),
                    sum(len(d) for d in data),
                )
            )
        elif name:
            form.fields.setdefault(name, b"".join(data))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadForm(f"unreadable multipart form: {exc}") from None
    return form
