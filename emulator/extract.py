"""Pull declared values out of the customer's text, or say there are none (None).

A declared field is a nullable schema property (`[type, "null"]`, an enum holding null, or an
anyOf/oneOf with a null branch) that carries no decision meaning. Its value comes from the text:

- an enum: the allowed value the text names first (word boundaries, case-insensitive; `_` and
  `-` in a value also match a space);
- a format: the JSON Schema `pattern` keyword, or a regex given in the description as
  `(format: REGEX)`; the first substring (not inside a longer word) that the regex matches in
  full is the value, case as written or else upper-cased (`ab-12345` -> `AB-12345`), converted
  to the declared type (integer, number, string);
- nothing found, or nothing to look for: None. The "model" never guesses.
"""

from __future__ import annotations

import re
from typing import Any

FORMAT_IN_DESCRIPTION = re.compile(r"\(format:\s*(?P<regex>.+)\)\s*$", re.DOTALL)
MAX_TEXT_CHARS = 50_000
_LEADING_ANCHORS = re.compile(r"^(?:\^|\\A)+")
_TRAILING_ANCHORS = re.compile(r"(?:(?<!\\)\$|\\Z|\\z)+$")


def declared_format(schema: dict[str, Any]) -> str | None:
    """The regex a value must match: `pattern`, or `(format: REGEX)` ending the description."""
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        return pattern
    description = schema.get("description")
    if isinstance(description, str):
        match = FORMAT_IN_DESCRIPTION.search(description)
        if match:
            return match.group("regex").strip()
    return None


def _compile(regex: str, flags: int = 0) -> re.Pattern[str] | None:
    try:
        return re.compile(regex, flags)
    except re.error:
        return None


def find_format(text: str, regex: str) -> str | None:
    """The first substring of `text` that `regex` matches in full, not inside a longer word."""
    full = _compile(regex)
    core = _TRAILING_ANCHORS.sub("", _LEADING_ANCHORS.sub("", regex))
    search = _compile(rf"(?<!\w)(?:{core})(?!\w)", re.IGNORECASE)
    if full is None or search is None:
        return None
    for match in search.finditer(text[:MAX_TEXT_CHARS]):
        for candidate in (match.group(0), match.group(0).upper()):
            if full.fullmatch(candidate):
                return candidate
    return None


def find_enum(text: str, values: list[Any]) -> Any:
    """The allowed (non-null) value that `text` names first, else None."""
    best: tuple[int, Any] | None = None
    for value in values:
        if value is None or isinstance(value, bool) or not str(value).strip():
            continue
        words = re.split(r"[\s_-]+", str(value).strip())
        phrase = r"[\s_-]+".join(re.escape(word) for word in words)
        match = re.search(rf"(?<!\w){phrase}(?!\w)", text[:MAX_TEXT_CHARS], re.IGNORECASE)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), value)
    return None if best is None else best[1]


def _convert(value: str, kinds: list[str]) -> Any:
    for kind in kinds:
        if kind == "string":
            return value
        if kind == "integer" and re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        if kind == "number" and re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)", value):
            return float(value)
    return None


def extract(schema: dict[str, Any], kinds: list[str], text: str) -> Any:
    """The value of a declared field found in `text`, or None (see the module docstring)."""
    values = schema.get("enum")
    if isinstance(values, list):
        return find_enum(text, values)
    regex = declared_format(schema)
    if regex is None:
        return None
    found = find_format(text, regex)
    if found is None:
        return None
    return _convert(found, [kind for kind in kinds if kind != "null"] or ["string"])
