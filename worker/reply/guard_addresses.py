"""Which links, email addresses, IP addresses and domains the normalised text holds (pure).

Any of them would let a question send the reader somewhere other than us, so each is a reason to
refuse it: a URL scheme ("https:", "mailto:", loose ones such as "hxxp//"; schemes that open an
app such as "ms-settings:", "sip:", "bitcoin:"; any scheme-like word with a digit, "+" or "-"
glued to what follows), "www.", "://" or a network path ("\\\\host\\share"); an email address
("root@localhost", "bob@163.com", "@evil.com" too); an IPv4 or IPv6 address, with or without a
port or brackets; a domain (dotted labels ending in a top-level label of letters that is not a
file extension such as "invoice.pdf"; punycode "xn--"), a host with a port ("localhost:8080"),
and "evil. com" with a space after the dot when the top-level domain is a common one. Matching
is on whole tokens (also with quotes and brackets inside them dropped: "(evil).com"), so "e.g.",
"p.ej.", "z.Zt.", "order no. 5", "Mr. Smith" and "version 2.3" pass. False positive kept on
purpose: names that read as domains ("Node.js").
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
#: Schemes that open an app, a call or a payment ("ms-settings:", "sip:", "bitcoin:"); also
#: matched with nothing after the colon.
_APP_SCHEMES = re.compile(
    r"(?<![a-z0-9+.-])(?:ms-[a-z-]+|search-ms|sips?|facetime(?:-audio)?|zoommtg|zoomus|bitcoin"
    r"|ethereum|litecoin|magnet|ssh|sftp|telnet|webcal|viber|signal|fb-messenger|msteams|slack"
    r"|discord|steam|spotify|git|svn|rtsp|mms|feed|gopher|xmpp|jabber|maps|geo|callto|wtai"
    r"|tg|line|kakaotalk|wechat|weixin|threema|sgnl):(?=\S|$)"
)
#: Any other scheme-like word with a digit, "+" or "-" in it, glued to what follows
#: ("x-foo:bar"); "Note: ...", "e.g.:", "COVID-19: ..." and "Re:" pass.
_ODD_SCHEME = re.compile(r"(?<![a-z0-9+.:-])[a-z][a-z0-9+.-]{1,30}:(?=[^\s\d:])")
#: A Windows network path ("\\\\evil\\share").
_UNC = re.compile(r"(?<!\\)\\\\[a-z0-9]")
#: Abbreviations that read as a domain ("p.ej.", "t.ex.", "z.Zt.").
_ABBREVIATIONS = frozenset(
    ["p.ej", "p.ex", "t.ex", "f.ex", "f.eks", "z.zt", "z.hd", "bl.a", "m.fl"]
)
#: Quotes and brackets that may not hide a label ("(evil).com", 'bob@"evil".com').
_QUOTES = str.maketrans("", "", "\"'`()[]{}<>")
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
    """The reason `token` is refused; also with quotes and brackets inside it dropped."""
    reason = _plain_token_reason(token)
    unquoted = token.translate(_QUOTES)
    if reason is None and unquoted != token:
        reason = _plain_token_reason(unquoted)
    return reason


def _plain_token_reason(token: str) -> str | None:
    core = token.strip(_EDGE)
    if not core or core in _ABBREVIATIONS:
        return None
    if core.startswith("www.") or "://" in core:
        return "link"
    if "@" in core:
        local, _, host = core.rpartition("@")
        literal = _is_ip(host.strip(_LIGHT_EDGE).rstrip("."))  # root@[127.0.0.1]
        host = _PART_SPLIT.split(host, 1)[0].strip(_EDGE)
        if local.strip(_EDGE) and (literal or (host and host[0].isalpha())):
            return "email_address"  # with or without a dot: "root@localhost" is an address too
        if host and host[0].isalnum() and _is_domain(host):
            return "email_address"  # "bob@163.com", and "@evil.com" with no local part
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


def _is_spaced_domain(previous: str, token: str, at_end: bool) -> bool:
    """`token` is the TLD of "evil. com", "bit. ly/abc" (`previous` is case-folded).

    "Obrigado. Com qual" starts a sentence; "Visit evil. Com", "paypal-support. Com/login" do
    not (the last word, a path after it, or a hyphen or dot in the name before it)."""
    if not previous.endswith(".") or not all(
        _is_label(label) for label in previous.strip(_EDGE).split(".")
    ):
        return False
    head = _ALNUM.match(token.lstrip(_EDGE))
    if head is None or head.group().casefold() not in COMMON_TLDS:
        return False
    word = head.group()
    sentence_start = word[0].isupper() and word[1:].islower()
    after = token.lstrip(_EDGE)[len(word) :][:1]
    if at_end or (after and after in "?!./") or any(c in previous[:-1] for c in "-."):
        sentence_start = False
    return not (sentence_start and word.casefold() in _WORDLIKE_TLDS)


def _is_odd_scheme(match: str) -> bool:
    return any(ch.isdigit() or ch in "+-" for ch in match[:-1])


def address_reasons(cased: str) -> set[str]:
    """The reason codes ("link", "email_address", "ip_address", "domain") `cased` gives.

    `cased` is the normalised text before case folding (`guard_text.normalise_cased`): whether
    "De" after a full stop starts a sentence depends on its capital.
    """
    found: set[str] = set()
    probe = cased.casefold()
    if (
        _SCHEMES.search(probe)
        or "://" in probe
        or _LOOSE_SCHEME.search(probe)
        or _APP_SCHEMES.search(probe)
        or _UNC.search(probe)
        or any(_is_odd_scheme(match.group()) for match in _ODD_SCHEME.finditer(probe))
    ):
        found.add("link")
    previous = ""
    for match in _TOKEN.finditer(cased):
        token = match.group().casefold()
        reason = _token_reason(token)
        at_end = match.end() == len(cased)
        if reason is None and _is_spaced_domain(previous, match.group(), at_end):
            reason = "domain"  # "evil. com"
        if reason:
            found.add(reason)
        previous = token
    return found
