"""Which links, email addresses, IP addresses and domains the normalised text holds (pure).

Any of them would let a question send the reader somewhere other than us, so each is a reason
to refuse it: a URL scheme ("https:", "mailto:", loose ones such as "hxxp//"), "www." or "://";
an email address ("root@localhost" too); an IPv4 or IPv6 address, with or without a port or
brackets; a domain (dotted labels ending in a top-level label of letters that is not a file
extension such as "invoice.pdf"; punycode "xn--"), a host with a port ("localhost:8080"), and
"evil. com" with a space after the dot when the top-level domain is a common one. Matching is
on whole tokens, so "e.g.", "order no. 5", "Mr. Smith" and "version 2.3" pass. False positive
kept on purpose: names that read as domains ("Node.js").
"""

from __future__ import annotations

import ipaddress
import re

from worker.reply.guard_text import COMMON_TLDS

#: Of the common TLDs, everyday words in other languages ("Merci. De quelle commande ?",
#: "Obrigado. Com qual cartao?"): after a full stop they count only when not written as a
#: sentence start.
_WORDLIKE_TLDS = frozenset(["com", "de", "eu", "au", "io"])
_SCHEMES = re.compile(
    r"(?<![a-z0-9+.-])(?:https?|s?ftps?|file|data|javascript|vbscript|mailto|tel|sms|callto|skype"
    r"|whatsapp|tg|intent|market|itms(?:-services)?|blob|wss?|ldap|smb|news|irc):(?=\S)"
)
#: "https;//", "http//", "hxxps:\\" and the like.
_LOOSE_SCHEME = re.compile(r"(?<![a-z0-9])(?:h[tx]{2}ps?|s?ftps?|wss?)[^\w/\\]{0,3}[/\\]{2}")
_TOKEN = re.compile(r"\S+")
_EDGE = "\"'`.,;:!?()[]{}<>*_~-"
_LIGHT_EDGE = "\"'`,;!?()<>{}*_~"
_PART_SPLIT = re.compile(r"[/\\?#=&,;|\"'`<>()\[\]{}*!~^%+$]")
_HOST_PORT = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]:(\d{2,5})")
_LETTERS = re.compile(r"[^\W\d_]+")
_ALNUM = re.compile(r"[^\W_]+")
#: File extensions that are not top-level domains ("invoice.pdf" is not an address).
_NOT_TLDS = frozenset(
    [
        "pdf",
        "jpg",
        "jpeg",
        "png",
        "gif",
        "bmp",
        "tif",
        "tiff",
        "heic",
        "webp",
        "doc",
        "docx",
        "xls",
        "xlsx",
        "ppt",
        "pptx",
        "odt",
        "csv",
        "txt",
        "rtf",
        "htm",
        "html",
        "xml",
        "json",
        "log",
        "mp3",
        "mp4",
        "wav",
        "avi",
        "mkv",
        "eml",
        "msg",
        "exe",
        "dll",
        "apk",
        "dmg",
        "iso",
    ]
)


def _is_ip(text: str) -> bool:
    candidate = text.strip("[]")
    if candidate.count(":") == 1 and "." in candidate:  # IPv4 with a port
        candidate = candidate.split(":", 1)[0]
    if not candidate or not (":" in candidate or candidate.count(".") == 3):
        return False
    if "%" in candidate:  # IPv6 zone id
        candidate = candidate.split("%", 1)[0]
    if candidate.count(".") == 3 and ":" not in candidate:
        octets = candidate.split(".")
        return all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets)
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _is_label(label: str) -> bool:
    return bool(label) and label.replace("-", "").replace("_", "").isalnum()


def _is_domain(text: str) -> bool:
    labels = text.strip(".-").split(".")
    if len(labels) < 2 or not all(_is_label(label) for label in labels):
        return False
    tld = labels[-1]
    if tld.startswith("xn--"):
        return True
    head = _LETTERS.match(tld)
    if head is None:
        return False
    name, rest = head.group(), tld[head.end() :]
    if rest and not rest.startswith("-"):  # "evil.com1": only a TLD we know reads as one
        return name in COMMON_TLDS
    return len(name) >= 2 and name not in _NOT_TLDS  # "evil.com-now" is "evil.com"


def _token_reason(token: str) -> str | None:
    core = token.strip(_EDGE)
    if not core:
        return None
    if core.startswith("www.") or "://" in core:
        return "link"
    if "@" in core:
        local, _, host = core.rpartition("@")
        literal = _is_ip(host.strip(_LIGHT_EDGE).rstrip("."))  # root@[127.0.0.1]
        host = _PART_SPLIT.split(host, 1)[0].strip(_EDGE)
        if local.strip(_EDGE) and (literal or (host and host[0].isalpha())):
            return "email_address"  # with or without a dot: "root@localhost" is an address too
    if _is_ip(token.strip(_LIGHT_EDGE).rstrip(".")):
        return "ip_address"
    for part in _PART_SPLIT.split(core):
        part = part.strip(_EDGE)
        if not part:
            continue
        if any(_is_ip(piece.strip(_EDGE)) for piece in part.split("-")):  # "10.0.0.1-now"
            return "ip_address"
        port = _HOST_PORT.fullmatch(part)
        if port and int(port.group(1)) <= 65535:  # "localhost:8080"
            return "domain"
        for piece in part.split(":") if part.count(":") <= 1 else (part,):
            piece = piece.strip(_EDGE)
            if "xn--" in piece:
                return "domain"
            if _is_domain(piece):
                return "domain"
    return None


def _is_spaced_domain(previous: str, token: str) -> bool:
    """`token` is the TLD of "evil. com", "bit. ly/abc" (`previous` is case-folded)."""
    if not previous.endswith(".") or not all(
        _is_label(label) for label in previous.strip(_EDGE).split(".")
    ):
        return False
    head = _ALNUM.match(token.lstrip(_EDGE))
    if head is None or head.group().casefold() not in COMMON_TLDS:
        return False
    word = head.group()
    sentence_start = word[0].isupper() and word[1:].islower()
    return not (sentence_start and word.casefold() in _WORDLIKE_TLDS)


def address_reasons(cased: str) -> set[str]:
    """The reason codes ("link", "email_address", "ip_address", "domain") `cased` gives.

    `cased` is the normalised text before case folding (`guard_text.normalise_cased`): whether
    "De" after a full stop starts a sentence depends on its capital.
    """
    found: set[str] = set()
    probe = cased.casefold()
    if _SCHEMES.search(probe) or "://" in probe or _LOOSE_SCHEME.search(probe):
        found.add("link")
    previous = ""
    for match in _TOKEN.finditer(cased):
        token = match.group().casefold()
        reason = _token_reason(token)
        if reason is None and _is_spaced_domain(previous, match.group()):
            reason = "domain"  # "evil. com"
        if reason:
            found.add(reason)
        previous = token
    return found
