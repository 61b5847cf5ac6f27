"""Whether the normalised text of a question holds a phone number (pure).

A number to call is a way to reach someone other than us, so a question may carry none. A run of
digits (with spaces, dashes, dots, brackets or slashes between them) counts when it has 7 to 15
digits and is written as a number to call: with a leading "+", in several groups, or with 10 or
more digits; a longer run is tried window by window ("555-123-4567/555-987-6543"). Dates and
times (and ranges of them), thousands ("1.250.000", "12 345 678"), build numbers ("19045.4291")
are exempt, and so is a code glued to letters ("A1234567"). False positives kept on purpose:
numbers of 10 or more digits, digits in 4+4 groups ("6123-4567", a phone number in Singapore)
unless they are a range of years or follow "order", "invoice" and the like. Every pattern is
linear in the length of the text.
"""

from __future__ import annotations

import re

_PHONE = re.compile(r"\+?\d(?:[\d \-.()/]|(?<=\d)[!-/:-@\[-`{-~](?=\d))*")
_DIGITS = re.compile(r"\d+")
_CHUNK_SPLIT = re.compile(r"[^\d\-.()/+]+")
_YEAR = r"(?:19|20)\d\d"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = rf"(?:{_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.]{_DAY}|{_DAY}[-/.]{_DAY}[-/.](?:\d\d|{_YEAR}))"
_TIME = r"(?:[01]?\d|2[0-3])[:.][0-5]\d(?:[:.][0-5]\d)?"
_WHEN = rf"(?:{_DATE}|{_TIME}|{_YEAR} {_TIME})"
#: Digit runs that are not phone numbers: dates and times (and ranges of them), thousands.
_NOT_A_PHONE = re.compile(
    rf"{_WHEN}(?:(?: ?[-/] ?| ){_WHEN})*"
    r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:'\d{3})+(?:[.,]\d+)?"
    r"|\d{1,3}(?:\.\d{3})+,\d\d?|[1-9]\d?(?:\.\d{3})+|[1-9]\d?(?: \d{3})+"
)
#: A build or version number ("19045.4291"): two groups joined by one dot, the first long.
_VERSION = re.compile(r"\d{5,}\.\d{1,4}")
_GROUP = re.compile(r"\d+")
#: A range of years ("2019-2024"); other 4+4 digits are a phone number ("6123-4567" in
#: Singapore) unless they follow the name of what they number ("order no. 7731-2209").
_YEAR_RANGE = re.compile(rf"({_YEAR}) ?[-/] ?({_YEAR})")
_FOUR_FOUR = re.compile(r"\d{4}(?: ?[-/] ?| )\d{4}")
_NAMED_NUMBER = re.compile(
    r"\b(?:order|invoice|shipment|parcel|package|ticket|case|booking|reference|ref|bestellung"
    r"|rechnung|sendung|auftrag|bestellnummer|rechnungsnummer|sendungsnummer|auftragsnummer"
    r"|commande|facture|colis|pedido|factura|encomenda|ordine|fattura|spedizione|bestelling"
    r"|factuur|zamowienie)s?(?: (?:number|no|nr|n|id|ref))?\W{0,3}$"
)


def _not_a_phone(run: str) -> bool:
    if _NOT_A_PHONE.fullmatch(run) or (_VERSION.fullmatch(run) and len(run) <= 10):
        return True
    years = _YEAR_RANGE.fullmatch(run)
    return years is not None and int(years.group(1)) <= int(years.group(2))


def _is_phone_run(run: str, glued_left: bool, glued_right: bool) -> bool:
    digits = sum(ch.isdigit() for ch in run)
    if digits > 15:  # too long for one number, but "555-123-4567 2024_2025" holds one
        chunks = _CHUNK_SPLIT.split(run)
        return any(
            _has_phone_window(chunk, glued_left and i == 0, glued_right and i == len(chunks) - 1)
            for i, chunk in enumerate(chunks)
        )
    if digits < 7 or _not_a_phone(run.lstrip("+")):
        return False
    groups = _DIGITS.findall(run)
    if glued_left or glued_right:
        # "A1234567" is a code; "x555-123-4567" still reads as a number to call, unless what
        # is left without the glued group is a date ("Q3 2024-2025").
        if len(groups) < 3:
            return False
        rest = run.lstrip("+")
        if glued_left:
            rest = rest[len(groups[0]) :]
        if glued_right:
            rest = rest[: len(rest) - len(groups[-1])]
        return not _not_a_phone(rest.strip(" -.()/,:;~_*"))
    return run.startswith("+") or len(groups) > 1 or digits >= 10


def _has_phone_window(chunk: str, glued_left: bool, glued_right: bool) -> bool:
    """`chunk` (no spaces) is a phone number, or holds one in consecutive digit groups.

    Numbers joined or padded past 15 digits ("555-123-4567/555-987-6543",
    "+44-20-7946-0958-0000"): each window of groups holding 7 to 15 digits is tried. A window
    is at most 15 groups, so this stays linear.
    """
    digits = sum(ch.isdigit() for ch in chunk)
    if digits <= 15:
        return _is_phone_run(chunk, glued_left, glued_right)
    if _not_a_phone(chunk):
        return False
    groups = list(_GROUP.finditer(chunk))
    for first, start in enumerate(groups):
        count = 0
        for last in range(first, len(groups)):
            count += len(groups[last].group())
            if count > 15:
                break
            if count < 7:
                continue
            begin = start.start()
            if begin and chunk[begin - 1] == "+":
                begin -= 1
            window = chunk[begin : groups[last].end()]
            left = glued_left if first == 0 else False
            right = glued_right if last == len(groups) - 1 else False
            if _is_phone_run(window, left, right):
                return True
    return False


def has_phone_number(probe: str) -> bool:
    """`probe` (the case-folded normalised text) holds something that reads as a phone number."""
    for match in _PHONE.finditer(probe):
        run = match.group().rstrip(" -.(/")
        start, end = match.start(), match.start() + len(run)
        if _FOUR_FOUR.fullmatch(run) and _NAMED_NUMBER.search(probe, max(0, start - 40), start):
            continue
        glued_left = bool(start) and probe[start - 1].isalnum()
        glued_right = end < len(probe) and probe[end].isalnum()
        if _is_phone_run(run, glued_left, glued_right):
            return True
    return False
