"""Keep the worker from being a relay: what we email a customer is bounded plain text (pure).

A prompt-injected email can make the model "ask" anything. The question we send must be one short
paragraph of plain text and may carry no link, domain or email address that the customer's own
mail did not already contain; otherwise a safe generic question goes out instead, and the caller
records why.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

SAFE_QUESTION = (
    "Could you tell us a little more about your request, so that we can pass it to the right team?"
)

EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)
DOMAIN = re.compile(
    r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,24})\b(?:/\S*)?", re.IGNORECASE
)
MARKUP = re.compile(r"<[a-z/!][^>]*>|\[[^\]]*\]\([^)]*\)", re.IGNORECASE)


@dataclass(frozen=True)
class CheckedQuestion:
    text: str
    replaced: bool
    reason: str | None = None


def plain_one_paragraph(text: str) -> str:
    """Drop control and format characters, collapse all whitespace to single spaces."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())


def _addresses(text: str) -> set[str]:
    found = {m.group(0).lower().rstrip(".,;:!?)") for m in EMAIL.finditer(text)}
    found |= {m.group(0).lower().rstrip(".,;:!?)") for m in URL.finditer(text)}
    without_emails = EMAIL.sub(" ", text)
    found |= {m.group(0).lower().rstrip(".,;:!?)") for m in DOMAIN.finditer(without_emails)}
    return found


def check_question(question: str, customer_text: str, max_chars: int) -> CheckedQuestion:
    """The question to send: the model's own when safe, else `SAFE_QUESTION` and the reason."""
    text = plain_one_paragraph(question)
    if not text:
        return CheckedQuestion(SAFE_QUESTION, True, "empty")
    if len(text) > max_chars:
        return CheckedQuestion(SAFE_QUESTION, True, "too_long")
    if MARKUP.search(text):
        return CheckedQuestion(SAFE_QUESTION, True, "markup")
    known = customer_text.lower()
    foreign = sorted(a for a in _addresses(text) if a not in known)
    if foreign:
        return CheckedQuestion(SAFE_QUESTION, True, "foreign_link_or_address")
    return CheckedQuestion(text, False)
