"""Keep the worker from being a relay: what we email a customer is bounded plain text (pure).

A prompt-injected email can make the model "ask" anything, and the address a question goes to can
belong to someone other than the author of the email. So a question may carry no link, domain,
IP address, email address, phone number or request for credentials, *whoever wrote it first*
(the customer's own text grants nothing: the customer may be the attacker). Anything suspicious
is replaced by `SAFE_QUESTION` and the caller records the reason code.

Detection runs on a normalised copy (never sent): Unicode NFKC, combining marks and zero-width
/ format characters dropped, every kind of space a plain space, Cyrillic and Greek look-alikes
folded to Latin, and the ways people write a dot or an at sign in the open ("[.]", "(dot)",
" dot ", "evil . example", "(at)") turned back into "." and "@". Matching is on whole tokens,
so "e.g.", "order no. 5", "Mr. Smith" and "version 2.3" pass. Every step is linear in the
length of the text (no regex that can backtrack over an unbounded run).

Reason codes (first that applies): `empty`, `too_long`, `markup`, `link`, `email_address`,
`ip_address`, `domain`, `phone_number`, `credential_request`, `lookalike_characters`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

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

MARKUP = re.compile(r"<[a-z/!][^>]*>|\[[^\]]*\]\([^)]*\)", re.IGNORECASE)

# Look-alikes folded to Latin before matching (escaped: the source stays ASCII).
_CONFUSABLES = {
    # Cyrillic
    "\u0430": "a", "\u0410": "A", "\u0432": "b", "\u0412": "B", "\u0435": "e", "\u0415": "E",
    "\u0451": "e", "\u043a": "k", "\u041a": "K", "\u043c": "m", "\u041c": "M", "\u043d": "h",
    "\u041d": "H", "\u043e": "o", "\u041e": "O", "\u043f": "n", "\u0440": "p", "\u0420": "P",
    "\u0441": "c", "\u0421": "C", "\u0442": "t", "\u0422": "T", "\u0443": "y", "\u0423": "Y",
    "\u0445": "x", "\u0425": "X", "\u0455": "s", "\u0405": "S", "\u0456": "i", "\u0406": "I",
    "\u0457": "i", "\u0458": "j", "\u0408": "J", "\u0501": "d", "\u051b": "q", "\u051a": "Q",
    "\u051d": "w", "\u051c": "W", "\u04bb": "h", "\u04ba": "H", "\u04cf": "l", "\u04c0": "l",
    "\u044c": "b", "\u0433": "r",
    # Greek
    "\u03b1": "a", "\u0391": "A", "\u03b2": "b", "\u0392": "B", "\u03b3": "y", "\u03b5": "e",
    "\u0395": "E", "\u0396": "Z", "\u03b7": "n", "\u0397": "H", "\u03b9": "i", "\u0399": "I",
    "\u03ba": "k", "\u039a": "K", "\u039c": "M", "\u03bd": "v", "\u039d": "N", "\u03bf": "o",
    "\u039f": "O", "\u03c1": "p", "\u03a1": "P", "\u03c4": "t", "\u03a4": "T", "\u03c5": "u",
    "\u03a5": "Y", "\u03c7": "x", "\u03a7": "X", "\u03c9": "w",
    # Armenian and Latin look-alikes
    "\u0585": "o", "\u057d": "u", "\u0570": "h", "\u0131": "i", "\u0237": "j", "\u01c0": "l",
    "\u0251": "a", "\u0269": "i", "\u0261": "g", "\u1d04": "c", "\u1d0f": "o", "\u1d1c": "u",
    "\u1d20": "v", "\u1d21": "w", "\u1d22": "z", "\ua731": "s",
    # Dots and at signs that read as such
    "\u3002": ".", "\uff0e": ".", "\uff61": ".", "\u2024": ".", "\u00b7": ".", "\u2022": ".",
    "\u2027": ".", "\u2219": ".", "\u22c5": ".", "\u06d4": ".", "\uff20": "@", "\ufe6b": "@",
}  # fmt: skip
_FOLD = str.maketrans(_CONFUSABLES)
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")

_BRACKET_DOT = re.compile(r"[\[({<] ?(?:\.|dot|d0t|punkt|point) ?[\])}>]")
_BRACKET_AT = re.compile(r"[\[({<] ?(?:at|@) ?[\])}>]")
_WORD_DOT = re.compile(r"(?<=\S) dot (?=\S)")
_SPACED_DOT = re.compile(r" \.(?: |(?=\S))")
_SPACED_AT = re.compile(r" ?@ ?")
_SCHEMES = re.compile(
    r"(?<![a-z0-9+.-])(?:https?|s?ftps?|file|data|javascript|vbscript|mailto|tel|sms|callto|skype"
    r"|whatsapp|tg|intent|market|itms(?:-services)?|blob|wss?|ldap|smb|news|irc):(?=\S)"
)
_TOKEN = re.compile(r"\S+")
_EDGE = "\"'`.,;:!?()[]{}<>*_~-"
_LIGHT_EDGE = "\"'`,;!?()<>{}*_~"
_PART_SPLIT = re.compile(r"[/\\?#=&,;|\"'`<>()\[\]{}*!~^%+$]")
_PHONE = re.compile(r"\+?\d[\d \-.()/]*")
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4} ?[-/] ?\d{4}"
)
_WORD = re.compile(r"[^\W\d_]+")
_CREDENTIAL = re.compile(
    r"\b(?:pass ?words?|passw(?:or)?d|passwort|mot de passe|contrase\u00f1a|pass ?codes?"
    r"|pass ?phrases?|pins?|cvv2?|cvc2?|csc|security codes?|card (?:numbers?|details|no)"
    r"|(?:expiry|expiration) date|one[- ]?time (?:codes?|passwords?|passcodes?|pins?)|otp"
    r"|2fa|mfa|(?:verification|authentication|auth|login|sms|access) codes?|credentials?"
    r"|(?:log|sign) ?-?in (?:details|credentials|info|information|data)"
    r"|user ?name and password|(?:verify|validate|confirm|unlock|reactivate) (?:your|the) "
    r"(?:account|identity|e-?mail|login|details|payment|card|credentials|password)"
    r"|account (?:is |has been |was |will be )?(?:locked|suspended|disabled|compromised|on hold"
    r"|restricted|closed)|security questions?|maiden name|social security|ssn|seed phrase"
    r"|recovery (?:phrases?|codes?|keys?)|(?:private|secret|api) keys?|routing number|sort code"
    r"|iban|bank (?:details|account number|login)|gift cards?)\b"
)
_SQUASHED_CREDENTIALS = (
    "password",
    "passwort",
    "passcode",
    "verifyyouraccount",
    "onetimecode",
    "onetimepassword",
    "cardnumber",
    "securitycode",
    "seedphrase",
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s"})
#: Top-level domains that are also common English words are left out on purpose.
_COMMON_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "info",
        "biz",
        "io",
        "xyz",
        "ru",
        "cn",
        "uk",
        "de",
        "fr",
        "eu",
        "nl",
        "pl",
        "br",
        "au",
        "jp",
        "tk",
        "cc",
        "tv",
        "gov",
        "edu",
        "ly",
    ]
)
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


def normalise(text: str) -> str:
    """The copy of `text` that detection runs on (never sent): see the module docstring."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    chars = []
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category in ("Mn", "Me", "Cf") or ch in _INVISIBLE:
            continue
        chars.append(" " if ch.isspace() or category[0] in "ZC" else ch)
    folded = " ".join("".join(chars).translate(_FOLD).casefold().split())
    folded = _BRACKET_DOT.sub(" . ", folded)
    folded = _BRACKET_AT.sub(" @ ", folded)
    folded = _WORD_DOT.sub(" . ", folded)
    folded = " ".join(folded.split())
    folded = _SPACED_DOT.sub(".", folded)
    return _SPACED_AT.sub("@", folded)


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
    return tld.isalpha() and len(tld) >= 2 and tld not in _NOT_TLDS


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
        if _is_ip(part):
            return "ip_address"
        for piece in part.split(":") if part.count(":") <= 1 else (part,):
            piece = piece.strip(_EDGE)
            if "xn--" in piece:
                return "domain"
            if _is_domain(piece):
                return "domain"
    return None


def _address_reasons(probe: str) -> set[str]:
    found: set[str] = set()
    if _SCHEMES.search(probe) or "://" in probe:
        found.add("link")
    previous = ""
    for match in _TOKEN.finditer(probe):
        token = match.group()
        reason = _token_reason(token)
        spaced = previous.endswith(".") and _is_label(previous.strip(_EDGE))
        if reason is None and spaced and token.strip(_EDGE) in _COMMON_TLDS:
            reason = "domain"  # "evil. com"
        if reason:
            found.add(reason)
        previous = token
    return found


def _has_phone_number(probe: str) -> bool:
    for match in _PHONE.finditer(probe):
        run = match.group().rstrip(" -.(/")
        start, end = match.start(), match.start() + len(run)
        if (start and probe[start - 1].isalnum()) or (end < len(probe) and probe[end].isalnum()):
            continue
        digits = sum(ch.isdigit() for ch in run)
        if not 7 <= digits <= 15 or _DATE.fullmatch(run.lstrip("+")):
            continue
        groups = len(re.findall(r"\d+", run))
        if run.startswith("+") or groups > 1 or digits >= 10:
            return True
    return False


def _asks_for_credentials(probe: str) -> bool:
    if _CREDENTIAL.search(probe):
        return True
    squashed = "".join(ch for ch in probe.translate(_LEET) if ch.isalpha())
    return any(word in squashed for word in _SQUASHED_CREDENTIALS)


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
    if MARKUP.search(text):
        return "markup"
    probe = normalise(text)
    found = _address_reasons(probe)
    if _has_phone_number(probe):
        found.add("phone_number")
    if _asks_for_credentials(probe):
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
