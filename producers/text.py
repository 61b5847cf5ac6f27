"""Body text for a user turn: HTML to text, quoted history and signatures removed, bounded.

Pure functions. HTML is converted by `html2text` (a maintained HTML-to-Markdown converter: links
and lists survive, scripts and styles do not). Quotes, signatures and list footers are removed by
`producers.quotes`, a line scanner written for this project instead of a reply-parsing library:
the maintained one on PyPI (`mail-parser-reply`) cut real customer text after a line starting
with "Thanks," or "Best," and its attribution regex is quadratic in the line length (a 200 kB
line took minutes), which matters for untrusted input.
"""

from __future__ import annotations

import re

import html2text

from producers import quotes

TRUNCATION_MARKER = "\n[… email truncated at ingestion: {omitted} characters omitted]"

#: Invisible characters dropped, horizontal spaces made plain spaces (one C-level pass).
_TRANSLATE: dict[int, str | None] = {
    **{c: None for c in [*range(0x200B, 0x200E), 0x2060, 0xFEFF, *range(0x00, 0x09)]},
    **{c: None for c in [0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]},
    **{c: " " for c in [0x09, 0xA0, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000]},
}
_SPACES = re.compile(r" {2,}")
_BLANK_RUNS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, as light Markdown (links kept, images dropped)."""
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    return converter.handle(html)


def strip_quoted(text: str, *, forwarded: bool = False) -> str:
    """The customer's new text, whitespace normalised (see `producers.quotes.strip_quoted`)."""
    return normalise_whitespace(quotes.strip_quoted(text, forwarded=forwarded))


def normalise_whitespace(text: str) -> str:
    """One space between words, no invisible characters, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATE)
    if "  " in text:
        text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def bound_text(text: str, limit: int, unread: int = 0) -> str:
    """Cut `text` to at most `limit` characters, saying explicitly that it was cut (with the
    `unread` characters cut before it was read)."""
    if len(text) <= limit and not unread:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(omitted=max(0, len(text) - limit) + unread)
