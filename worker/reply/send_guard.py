"""Keep the worker from being a relay: what we email a customer is bounded plain text (pure).

A prompt-injected email can make the model "ask" anything, and the address a question goes to can
belong to someone other than the author of the email. So a question may carry no link, domain,
IP address, email address, phone number or request for credentials, *whoever wrote it first*
(the customer's own text grants nothing: the customer may be the attacker). Anything suspicious
is replaced by `SAFE_QUESTION` and the caller records the reason code.

This module is the guard's public face and runs the checks in order; each concept has its own
module:

- `guard_text`: the normalised copy that detection runs on (never sent): NFKC, look-alikes
  folded to Latin, invisible characters dropped, dashes unified, dots and at signs in disguise
  ("[.]", "(dot)", "evil . example", an ideographic full stop between Latin letters) read as
  such, and text spelled out letter by letter also read joined up;
- `guard_addresses`: links, email addresses, IP addresses and domains, matched on whole tokens
  (so "e.g.", "order no. 5", "Mr. Smith" and "version 2.3" pass);
- `guard_phone`: phone numbers (dates, times, thousands and ranges of years exempt);
- `guard_credentials`: requests for passwords, PINs, codes and the like, in several languages;
- here: markup (an HTML tag or a Markdown link) and words mixing Latin with Cyrillic or Greek.

Every step is linear in the length of the text (no regex that can backtrack over an unbounded
run).

False positives kept on purpose: any mention of a password, PIN or the like, names that read as
domains ("Node.js"), numbers of 10 or more digits, digits in 4+4 groups ("6123-4567", a phone
number in Singapore) unless they are a range of years or follow "order", "invoice" and the like,
scheme-like words with a digit or dash glued to text ("x-ray:left").

Reason codes (first that applies): `empty`, `too_long`, `markup`, `link`, `email_address`,
`ip_address`, `domain`, `phone_number`, `credential_request`, `lookalike_characters`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from worker.reply.guard_addresses import address_reasons
from worker.reply.guard_credentials import asks_for_credentials
from worker.reply.guard_phone import has_phone_number
from worker.reply.guard_text import join_spelled, normalise, normalise_cased

__all__ = [
    "REASONS",
    "SAFE_QUESTION",
    "CheckedQuestion",
    "check_question",
    "normalise",
    "plain_one_paragraph",
    "scan",
]

SAFE_QUESTION = (
    "Could you tell us a little more about your request, so that we can pass it to the right team?"
)

#: Reason codes, in the order they are checked.
REASONS = (
    "empty",
    "too_long",
    "markup",
    "link",
    "email_address",
    "ip_address",
    "domain",
    "phone_number",
    "credential_request",
    "lookalike_characters",
)

# An HTML tag ("<a ...>") or a Markdown link ("[text](target)"), found without a regex that
# rescans the rest of the text from every "<" or "[" (that was quadratic).
_TAG_START = re.compile(r"<[a-z/!]", re.IGNORECASE)
_SQUARE = re.compile(r"[\[\]]")
_WORD = re.compile(r"[^\W\d_]+")


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


def _has_markup(text: str) -> bool:
    """An HTML tag, or a Markdown link `[text](target)`: one pass, no rescanning."""
    tag = _TAG_START.search(text)
    if tag and text.find(">", tag.end()) != -1:
        return True
    last_paren = text.rfind(")")
    opened = False
    for match in _SQUARE.finditer(text):
        at = match.start()
        if match.group() == "[":
            opened = True
        elif opened and text.startswith("(", at + 1) and last_paren > at + 1:
            return True
        else:
            opened = False
    return False


def _script(ch: str) -> str:
    code = ord(ch)
    if ch.isascii() or 0x00C0 <= code <= 0x024F or 0x1E00 <= code <= 0x1EFF:
        return "latin"
    if 0x0400 <= code <= 0x052F or 0x1C80 <= code <= 0x1C8F or 0xA640 <= code <= 0xA69F:
        return "cyrillic"
    if 0x0370 <= code <= 0x03FF or 0x1F00 <= code <= 0x1FFF:
        return "greek"
    return "other"


def _mixes_scripts(text: str) -> bool:
    """A word mixing Latin with Cyrillic or Greek letters (a look-alike spelling)."""
    for match in _WORD.finditer(unicodedata.normalize("NFKC", text)):
        scripts = {_script(ch) for ch in match.group()}
        if "latin" in scripts and scripts & {"cyrillic", "greek"}:
            return True
    return False


def scan(text: str) -> str | None:
    """The first reason code (see `REASONS`) that makes `text` unsafe to send, or None."""
    if _has_markup(text):
        return "markup"
    cased = normalise_cased(text)
    probe = cased.casefold()
    found = address_reasons(cased)
    spelled = join_spelled(cased)
    if spelled != cased:
        found |= address_reasons(spelled)
    if has_phone_number(probe):
        found.add("phone_number")
    if asks_for_credentials(probe):
        found.add("credential_request")
    if _mixes_scripts(text):
        found.add("lookalike_characters")
    return next((reason for reason in REASONS if reason in found), None)


def check_question(
    question: str, customer_text: str | None = None, max_chars: int = 500
) -> CheckedQuestion:
    """The question to send: the model's own when safe, else `SAFE_QUESTION` and the reason.

    `customer_text` is ignored (what the customer wrote grants nothing); it is accepted so that
    existing callers keep working.
    """
    del customer_text
    text = plain_one_paragraph(question)
    if not text:
        return CheckedQuestion(SAFE_QUESTION, True, "empty")
    if len(text) > max_chars:
        return CheckedQuestion(SAFE_QUESTION, True, "too_long")
    reason = scan(text)
    if reason:
        return CheckedQuestion(SAFE_QUESTION, True, reason)
    return CheckedQuestion(text, False)
