"""Body text for a user turn: HTML to text, quoted history and signatures removed, bounded.

Pure functions. HTML is converted by `html2text` (a maintained HTML-to-Markdown converter: links
and lists survive, scripts and styles do not). Quotes and signatures are removed by a line-based
scanner written for this project instead of a reply-parsing library: the maintained one on PyPI
(`mail-parser-reply`) cut real customer text after a line starting with "Thanks," or "Best," and
its attribution regex is quadratic in the line length (a 200 kB line took minutes), which matters
for untrusted input. Every test here is linear: patterns only look at the first
`MAX_MARKER_LINE` characters of a line, and no pattern backtracks over more than one line.
"""

from __future__ import annotations

import re

import html2text

#: Lines longer than this are never attribution lines, separators or signatures.
MAX_MARKER_LINE = 400
#: How many lines an attribution ("On …, X <x@y> wrote:") may be wrapped over.
ATTRIBUTION_LINES = 3

TRUNCATION_MARKER = "\n[… email truncated at ingestion: {omitted} characters omitted]"

_ATTRIBUTION = re.compile(
    r"""^(?:
        On\s.*\bwrote\s?:                      # en: On Mon, 1 Jan 2026, Support wrote:
      | Am\s.*\bschrieb\b.*:                   # de: Am 1. Jan. 2026 schrieb Support:
      | Le\s.*\ba\s(?:é|e)crit\s?:             # fr: Le lun. 1 janv. 2026, Support a écrit :
      | El\s.*\bescribi(?:ó|o)\s?:             # es
      | Il\s.*\bha\sscritto\s?:                # it
      | Op\s.*\bschreef\b.*:                   # nl
      | Em\s.*\bescreveu\s?:                   # pt
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht)\s*-{2,}$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{20,}$")
_HEADER_FROM = re.compile(r"^\*{0,2}(?:From|Von|De|Da|Van|Från|Od)\s?:\*{0,2}\s", re.IGNORECASE)
_HEADER_OTHER = re.compile(
    r"^\*{0,2}(?:Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoyé|À|Objet"
    r"|Enviado|Fecha|Para|Asunto|Inviato|Oggetto|Verzonden|Aan|Onderwerp)\s?:\*{0,2}\s",
    re.IGNORECASE,
)
_FORWARDED = re.compile(
    r"^(?:-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré"
    r"|Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht)\s*-{2,}"
    r"|Begin forwarded message\s?:|Anfang der weitergeleiteten Nachricht\s?:)$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^--\s?$")
_MOBILE_FOOTER = re.compile(
    r"^(?:Sent from my \S.{0,60}|Get Outlook for \S.{0,40}|Von meinem \S.{0,60} gesendet"
    r"|Envoyé de mon \S.{0,60}|Enviado desde mi \S.{0,60})$",
    re.IGNORECASE,
)
_HORIZONTAL_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, as light Markdown (links kept, images dropped)."""
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    return converter.handle(html)


def _marker(line: str) -> str:
    """The line stripped for marker tests, or "" when it is too long to be a marker."""
    return "" if len(line) > MAX_MARKER_LINE else line.strip()


def _quote_starts_at(lines: list[str], index: int) -> bool:
    """Does quoted history (an attribution or a client's header block) start at `index`?"""
    line = _marker(lines[index])
    if not line:
        return False
    if _ORIGINAL_MESSAGE.match(line):
        return True
    window = [_marker(item) for item in lines[index + 1 : index + 4]]
    if _UNDERSCORES.match(line):
        return any(_HEADER_FROM.match(item) for item in window)
    if _HEADER_FROM.match(line):
        return any(_HEADER_OTHER.match(item) for item in window)
    joined = line
    for extra in window[: ATTRIBUTION_LINES - 1]:
        if _ATTRIBUTION.match(joined):
            return True
        if not extra:
            break
        joined = f"{joined} {extra}"
    return bool(_ATTRIBUTION.match(joined))


def strip_quoted(text: str) -> str:
    """The customer's new text: quoted history, signature and mobile footers removed.

    Cuts at the first attribution ("On … wrote:", German, French, Spanish, Italian, Dutch,
    Portuguese forms, wrapped over up to three lines), "-----Original Message-----", an
    Outlook header block (From: followed by Sent:/To:/Subject:…), the signature delimiter "-- "
    or a "Sent from my …" footer; drops `>` quoted lines (inline answers between them stay).
    A forwarded message ("---------- Forwarded message ---------", "Begin forwarded message:")
    is new to the thread, so everything from its marker on is kept as is.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        marker = _marker(line)
        if marker and _FORWARDED.match(marker):
            kept.extend(lines[index:])
            break
        if marker and (_SIGNATURE.match(marker) or _MOBILE_FOOTER.match(marker)):
            break
        if _quote_starts_at(lines, index):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return normalise_whitespace("\n".join(kept))


def normalise_whitespace(text: str) -> str:
    """One space between words, no invisible characters, at most one blank line in a row."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def bound_text(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, saying explicitly that it was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(omitted=len(text) - limit)
