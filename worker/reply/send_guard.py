"""Keep the worker from being a relay: what we email a customer is bounded plain text (pure).

A prompt-injected email can make the model "ask" anything, and the address a question goes to can
belong to someone other than the author of the email. So a question may carry no link, domain,
IP address, email address, phone number or request for credentials, *whoever wrote it first*
(the customer's own text grants nothing: the customer may be the attacker). Anything suspicious
is replaced by `SAFE_QUESTION` and the caller records the reason code.

Detection runs on a normalised copy (never sent): Unicode NFKC, combining marks and zero-width
/ format characters dropped, every kind of space a plain space, Cyrillic and Greek look-alikes
folded to Latin, every dash and minus a "-", and every other non-ASCII punctuation mark or
symbol a space (curly quotes, guillemets, CJK brackets, emoji: none of them may hide where a
token ends). Dots in disguise come back as ".": the written ways ("[.]", "(dot)", " dot ",
"evil . example", "evil-dot-com"; "(at)" for "@"), look-alike dots (the ones scripts also use
between words, such as the ideographic full stop or the middle dot, only between Latin letters
or digits), and any other symbol, non-ASCII digit or combining dot glued between a word and a
common top-level domain (a check mark, an Arabic zero or a dot below between "evil" and "com").
Text spelled out letter by letter ("e v i l . c o m") is also read joined up; credential words
are matched with hyphens and dots as spaces ("O.T.P.", "sort-code"). Matching is on whole
tokens, so "e.g.", "order no. 5", "Mr. Smith" and "version 2.3" pass. Every step is linear in the
length of the text (no regex that can backtrack over an unbounded run).

False positives kept on purpose: any mention of a password, PIN or the like, names that read as
domains ("Node.js"), numbers of 10 or more digits, digits in 4+4 groups ("6123-4567", a phone
number in Singapore) unless they are a range of years or follow "order", "invoice" and the like.

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

# An HTML tag ("<a ...>") or a Markdown link ("[text](target)"), found without a regex that
# rescans the rest of the text from every "<" or "[" (that was quadratic).
_TAG_START = re.compile(r"<[a-z/!]", re.IGNORECASE)
_SQUARE = re.compile(r"[\[\]]")

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
    # Dots, at signs, colons and slashes that read as such and have no other everyday use
    "\uff0e": ".", "\u2024": ".", "\ufe52": ".", "\ua4f8": ".", "\u2e33": ".", "\u2e31": ".",
    "\u2e30": ".", "\u16eb": ".", "\u1427": ".", "\u2981": ".", "\ua60e": ".", "\u02d9": ".",
    "\u2e3c": ".", "\uff20": "@", "\ufe6b": "@", "\ua789": ":", "\u2236": ":", "\u02d0": ":",
    "\u2044": "/", "\u2215": "/", "\u29f8": "/", "\u2571": "/",
}  # fmt: skip
_FOLD = str.maketrans(_CONFUSABLES)
#: Look-alike dots that scripts also use as a full stop or between words (Chinese and Japanese
#: sentence ends, the middle dot in names, bullets): a dot only between Latin letters or digits.
_WORD_DOTS = frozenset(
    "\u3002\uff61\u00b7\u2022\u2027\u2219\u22c5\u06d4\u30fb\uff65\u25cf\u0701\u0702\u05c3\u0589"
)
_MINUS = frozenset("\u2212\u2043\u02d7\u2796")
#: Dashes that stand between words ("the app\u2014or"): " - ", so they end a token and a scheme
#: after them is still seen; hyphen-like dashes and minus signs are a plain "-".
_LONG_DASHES = frozenset("\u2013\u2014\u2015\u2e3a\u2e3b")
#: Combining dots that can stand in for a dot ("evil" + dot below + "com"), except on the letters
#: whose dotted form is an everyday letter (Polish "z", Lithuanian "e", Turkish "I", Maltese).
_COMBINING_DOTS = frozenset("\u0323\u0307\u0358")
_DOTTED_LETTERS = frozenset("zZeEiIcCgG")
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Placeholders (private use: input characters of that kind are spaces by then).
_SYMBOL = "\ue000"  # punctuation or symbol: a dot before a common TLD, else a space
_MARK = "\ue001"  # combining dot: a dot before a common TLD, else nothing
_WORD_DOT_MARK = "\ue002"  # look-alike from `_WORD_DOTS`

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
#: Of those, everyday words in other languages ("Merci. De quelle commande ?", "Obrigado. Com
#: qual cartao?"): after a full stop they count only when not written as a sentence start.
_WORDLIKE_TLDS = frozenset(["com", "de", "eu", "au", "io"])
_TLD_AHEAD = "(?:" + "|".join(sorted(_COMMON_TLDS, key=len, reverse=True)) + r")(?![^\W_])"

_LATIN_DOT = re.compile(
    r"(?:(?<=[a-z0-9])|(?<=[a-z0-9] ))\ue002(?= ?[a-z0-9])|(?<=[a-z0-9])[\u0660\u06f0](?=[a-z0-9])",
    re.IGNORECASE | re.ASCII,
)
_TLD_DOT = re.compile(
    r"(?<=[^\W_])(?:[\ue000\ue001]|(?![0-9])\d)(?=" + _TLD_AHEAD + ")", re.IGNORECASE
)
_SPELLED_DOT = re.compile(
    r"(?<=[^\W_])(?:[-_]?dot[-_]?| period )(?=" + _TLD_AHEAD + ")", re.IGNORECASE
)
_BRACKET_DOT = re.compile(r"[\[({<] ?(?:\.|dot|d0t|punkt|point) ?[\])}>]", re.IGNORECASE)
_BRACKET_AT = re.compile(r"[\[({<] ?(?:at|@) ?[\])}>]", re.IGNORECASE)
_WORD_DOT = re.compile(r"(?<=\S) dot (?=\S)", re.IGNORECASE)
_SPACED_DOT = re.compile(r" \.(?: |(?=\S))")
_SPACED_AT = re.compile(r" ?@ ?")
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
_SPELLED_PIECE = re.compile(r"\S(?:[.@]\S)*|\S[.@]")
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
)
#: A range of years ("2019-2024"); other 4+4 digits are a phone number ("6123-4567" in
#: Singapore) unless they follow the name of what they number ("order no. 7731-2209").
_YEAR_RANGE = re.compile(rf"({_YEAR}) ?[-/] ?({_YEAR})")
_FOUR_FOUR = re.compile(r"\d{4} ?[-/] ?\d{4}")
_NAMED_NUMBER = re.compile(
    r"\b(?:order|invoice|shipment|parcel|package|ticket|case|booking|reference|ref|bestellung"
    r"|rechnung|sendung|auftrag|bestellnummer|rechnungsnummer|sendungsnummer|auftragsnummer"
    r"|commande|facture|colis|pedido|factura|encomenda|ordine|fattura|spedizione|bestelling"
    r"|factuur|zamowienie)s?(?: (?:number|no|nr|n|id|ref))?\W{0,3}$"
)
_WORD = re.compile(r"[^\W\d_]+")
_NOT_A_WORD = re.compile(r"[\W_]+")
#: Matched on `_credential_words`: lower case, hyphens, dots and other marks read as spaces,
#: letters spelled one by one joined up ("O.T.P.", "p i n").
_CREDENTIAL = re.compile(
    r"\b(?:pass ?(?:words?|codes?|phrases?)|passw(?:or)?d|pwd|p ?word|pw|passwort|mot de passe"
    r"|pins?|pin ?codes?|pin numbers?|cvv2?|cvc2?|csc|security codes?"
    r"|card (?:numbers?|details|no|(?:verification|security) (?:values?|codes?|numbers?))"
    r"|(?:expiry|expiration) date|one ?time (?:codes?|pass ?words?|pass ?codes?|pins?)|otp"
    r"|2 ?fa|mfa|(?:two|2) ?(?:factor|step) (?:codes?|pins?|tokens?)"
    r"|(?:verification|authentication|auth|login|log in|sms|access|confirmation) codes?"
    r"|credentials?|(?:log|sign) ?(?:in|on) (?:details|credentials|info|information|data)"
    r"|user ?names? (?:and |or )?pass(?:words?)?|(?:verify|validate|confirm|unlock|reactivate)"
    r" (?:your|the) (?:account|identity|e ?mail|login|details|payment|card|credentials|password)"
    r"|account (?:is |has been |was |will be )?(?:locked|suspended|disabled|compromised|on hold"
    r"|restricted|closed)|security questions?|maiden name|social security|ssn"
    r"|seed (?:phrases?|words?)|\d+ words? (?:phrases?|seeds?)|mnemonic"
    r"|(?:recovery|backup) (?:phrases?|words?|codes?|keys?)|secret (?:phrases?|words?)"
    r"|(?:private|secret|api) keys?|routing number|sort code|iban"
    r"|bank (?:details|account number|login)|gift cards?|\d+ ?digits? (?:codes?|pins?)"
    r"|(?<!tracking )(?<!discount )(?<!promo )(?<!coupon )(?<!voucher )(?<!referral )"
    r"(?<!error )(?<!status )(?<!postal )(?<!zip )(?<!post )(?<!product )(?<!order )"
    r"codes? (?:\w+ ){0,5}?(?:texted|sent|received|emailed|messaged|got)"
    r"|(?:digits?|numbers?|codes?) (?:\w+ ){0,4}?(?:on|at|from) the (?:back|reverse) of"
    r" (?:\w+ ){0,3}?cards?)\b"
)
#: The same in other languages, written as people write them (normalised when compiled, as the
#: text they are matched with is); a list, so never complete.
_CREDENTIAL_WORDS = (
    "Kennwort",
    "Zugangsdaten",
    "Anmeldedaten",
    "Best\u00e4tigungscode",
    "wachtwoord",
    "senha",
    "contrase\u00f1a",
    "c\u00f3digo de verificaci\u00f3n",
    "c\u00f3digo de verifica\u00e7\u00e3o",
    "code de v\u00e9rification",
    "has\u0142o",
    "haslo",
    "l\u00f6senord",
    "passord",
    "adgangskode",
    "salasana",
    "heslo",
    "jelsz\u00f3",
    "\u015fifre",
    "\u043f\u0430\u0440\u043e\u043b\u044c",
)
#: Scripts written without spaces: matched anywhere.
_CREDENTIAL_CJK = (
    "\u5bc6\u7801",  # Chinese: password
    "\u5bc6\u78bc",
    "\u9a8c\u8bc1\u7801",  # Chinese: verification code
    "\u9a57\u8b49\u78bc",
    "\u30d1\u30b9\u30ef\u30fc\u30c9",  # Japanese: password
    "\u6697\u8a3c\u756a\u53f7",  # Japanese: PIN
    "\u8a8d\u8a3c\u30b3\u30fc\u30c9",  # Japanese: verification code
    "\ube44\ubc00\ubc88\ud638",  # Korean: password
    "\uc778\uc99d\ubc88\ud638",  # Korean: verification number
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


def _detection_char(ch: str, previous: str) -> str:
    """What one character of the NFKD text becomes in the normalised copy."""
    if ch in _COMBINING_DOTS:
        return "" if ch == "\u0307" and previous in _DOTTED_LETTERS else _MARK
    category = unicodedata.category(ch)
    if category in ("Mn", "Me", "Cf") or ch in _INVISIBLE:
        return ""
    if ch.isspace() or category[0] in "ZC":
        return " "
    if ch.isascii() or category[0] not in "PS":
        return ch
    if ch in _WORD_DOTS:
        return _WORD_DOT_MARK
    if ch in _LONG_DASHES:
        return " - "
    if category == "Pd" or ch in _MINUS:
        return "-"
    if category in ("Pi", "Pf", "Ps", "Pe"):  # quotes and brackets: never a dot ("jusqu'au")
        return " "
    return _SYMBOL


def _normalise_cased(text: str) -> str:
    """`normalise` before case folding (the spaced-dot rule looks at capitals)."""
    folded = text.translate(_FOLD)  # before NFKC too: it turns some look-alikes into two chars
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", folded))
    chars: list[str] = []
    previous = ""
    for ch in decomposed.translate(_FOLD):
        chars.append(_detection_char(ch, previous))
        previous = ch
    joined = " ".join("".join(chars).split())
    joined = _LATIN_DOT.sub(".", joined).replace(_WORD_DOT_MARK, _SYMBOL)
    joined = _TLD_DOT.sub(".", joined).replace(_MARK, "")
    joined = " ".join(joined.replace(_SYMBOL, " ").split())
    joined = _BRACKET_DOT.sub(" . ", joined)
    joined = _BRACKET_AT.sub(" @ ", joined)
    joined = _WORD_DOT.sub(" . ", joined)
    joined = _SPELLED_DOT.sub(".", joined)
    joined = " ".join(joined.split())
    joined = _SPACED_DOT.sub(".", joined)
    return _SPACED_AT.sub("@", joined)


def normalise(text: str) -> str:
    """The copy of `text` that detection runs on (never sent): see the module docstring."""
    return _normalise_cased(text).casefold()


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
        return name in _COMMON_TLDS
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
    if head is None or head.group().casefold() not in _COMMON_TLDS:
        return False
    word = head.group()
    sentence_start = word[0].isupper() and word[1:].islower()
    return not (sentence_start and word.casefold() in _WORDLIKE_TLDS)


def _address_reasons(cased: str) -> set[str]:
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


def _join_spelled(text: str) -> str:
    """Runs of three or more one-letter tokens joined up: "e v i l . c o m" is "evil.com"."""
    out: list[str] = []
    run: list[str] = []
    for token in [*text.split(" "), ""]:
        if token and _SPELLED_PIECE.fullmatch(token):
            run.append(token)
            continue
        if run:
            out.append("".join(run) if len(run) >= 3 else " ".join(run))
            run = []
        if token:
            out.append(token)
    return " ".join(out)


def _not_a_phone(run: str) -> bool:
    if _NOT_A_PHONE.fullmatch(run):
        return True
    years = _YEAR_RANGE.fullmatch(run)
    return years is not None and int(years.group(1)) <= int(years.group(2))


def _is_phone_run(run: str, glued_left: bool, glued_right: bool) -> bool:
    digits = sum(ch.isdigit() for ch in run)
    if digits > 15:  # too long for one number, but "555-123-4567 2024_2025" holds one
        chunks = _CHUNK_SPLIT.split(run)
        return any(
            _is_phone_run(chunk, glued_left and i == 0, glued_right and i == len(chunks) - 1)
            for i, chunk in enumerate(chunks)
            if sum(ch.isdigit() for ch in chunk) <= 15
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


def _has_phone_number(probe: str) -> bool:
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


def _credential_words(probe: str) -> str:
    """`probe` as words: marks become spaces, letters spelled out one by one are joined."""
    out: list[str] = []
    letters: list[str] = []
    for word in [*_NOT_A_WORD.sub(" ", probe).split(), ""]:
        if len(word) == 1 and word.isalpha():
            letters.append(word)
            continue
        if letters:
            out.append("".join(letters))
            letters = []
        if word:
            out.append(word)
    return " ".join(out)


_CREDENTIAL_OTHER = re.compile(
    r"\b(?:"
    + "|".join(re.escape(_credential_words(normalise(word))) for word in _CREDENTIAL_WORDS)
    + r")\b"
)
_CREDENTIAL_ANYWHERE = tuple(_credential_words(normalise(word)) for word in _CREDENTIAL_CJK)


def _asks_for_credentials(probe: str) -> bool:
    words = _credential_words(probe)
    if _CREDENTIAL.search(words) or _CREDENTIAL_OTHER.search(words):
        return True
    if any(word in words for word in _CREDENTIAL_ANYWHERE):
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
    if _has_markup(text):
        return "markup"
    cased = _normalise_cased(text)
    probe = cased.casefold()
    found = _address_reasons(cased)
    spelled = _join_spelled(cased)
    if spelled != cased:
        found |= _address_reasons(spelled)
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
