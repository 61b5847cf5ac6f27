"""What text the send guard's checks look at: a normalised copy of the question (pure).

The copy is never sent; it exists so that no disguise hides a link, an address or a request
from the checks. Unicode NFKC, combining marks and zero-width / format characters dropped, every
kind of space a plain space, Cyrillic and Greek look-alikes folded to Latin, every dash and minus
a "-", and every other non-ASCII punctuation mark or symbol a space (curly quotes, guillemets,
CJK brackets, emoji: none of them may hide where a token ends). Dots in disguise come back as
".": the written ways ("[.]", "(dot)", " dot ", "evil . example", "evil-dot-com"; "(at)" for
"@"), look-alike dots (the ones scripts also use between words, such as the ideographic full
stop or the middle dot, only between Latin letters or digits), and any other symbol, non-ASCII
digit or combining dot glued between a word and a common top-level domain (a check mark, an
Arabic zero or a dot below between "evil" and "com"); letters and symbols that look like one dot
("\ua78f", "\u4e36", "\u25e6") between Latin letters whatever the TLD. Escaped and encoded dots,
at signs and slashes ("evil\\.com", "%2E", "&#46;") are decoded; invisible fillers (Hangul,
Braille blank) are spaces, so they end a token. " .x" after a word such as "the" or "a" stays
apart ("the .zip file", ".NET"). Text spelled out letter by letter ("e v i l . c o m",
"e-v-i-l", "evil.c o m") can also be read joined up (`join_spelled`). Every step is linear in
the length of the text (no regex that can backtrack over an unbounded run).
"""

from __future__ import annotations

import re
import unicodedata

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
    # single-dot symbols and full stops of other scripts: a dot before any TLD, not only common
    "\u2802\u25e6\u2023\u2043\u0f0b\u1803\u1362"
    # letters and modifier letters that look like a dot (sinological dot, CJK dot stroke,
    # Devanagari high dot, half triangular colon, modifier dots)
    "\ua78f\u4e36\u0971\u02d1\ua717\ua718\ua719"
)
#: Internationalised TLDs read after a look-alike dot too ("evil\u3002\u4e2d\u56fd").
_IDN_TLDS = (
    "\u4e2d\u56fd|\u4e2d\u570b|\u516c\u53f8|\u7f51\u7edc|\u7db2\u7d61|\u9999\u6e2f"
    "|\u53f0\u6e7e|\u53f0\u7063"
)
_MINUS = frozenset("\u2212\u02d7\u2796")
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
COMMON_TLDS = frozenset(
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
_TLD_AHEAD = "(?:" + "|".join(sorted(COMMON_TLDS, key=len, reverse=True)) + r")(?![^\W_])"

_LATIN_DOT = re.compile(
    r"(?:(?<=[a-z0-9])|(?<=[a-z0-9] ))\ue002(?= ?[a-z0-9])|(?<=[a-z0-9])[\u0660\u06f0](?=[a-z0-9])"
    r"|(?<=[a-z0-9])\ue002(?=(?:" + _IDN_TLDS + r")(?!\w))",
    re.IGNORECASE,
)
#: Escaped and encoded dots, at signs and slashes ("evil\\.com", "evil%2Ecom", "evil&#46;com").
_ESCAPED = re.compile(
    r"(?<!\\)\\+(?=[^\w\s\\])|%(2e|40|2f)|&(?:#0*(46|64|47)|#x0*(2e|40|2f)|(period|commat|sol));?",
    re.IGNORECASE,
)
_UNESCAPED = {"2e": ".", "40": "@", "2f": "/", "46": ".", "64": "@", "47": "/"}
_UNESCAPED.update(period=".", commat="@", sol="/")
_TLD_DOT = re.compile(
    r"(?<=[^\W_])(?:[\ue000\ue001]|(?![0-9])\d)(?=" + _TLD_AHEAD + ")", re.IGNORECASE
)
_SPELLED_DOT = re.compile(
    r"(?<=[^\W_])(?:[-_]?dot[-_]?| period )(?=" + _TLD_AHEAD + ")", re.IGNORECASE
)
_BRACKET_DOT = re.compile(r"[\[({<] ?(?:\.|dot|d0t|punkt|point) ?[\])}>]", re.IGNORECASE)
_BRACKET_AT = re.compile(r"[\[({<] ?(?:at|@) ?[\])}>]", re.IGNORECASE)
_WORD_DOT = re.compile(r"(?<=\S) dot (?=\S)", re.IGNORECASE)
_SPACED_DOT = re.compile(r" \.( |(?=\S))")
#: Words after which " .x" starts a file extension or a name ("the .zip file", "it .NET 8"),
#: not the rest of a domain ("evil .com").
_BEFORE_EXTENSION = frozenset([
    "a", "an", "the", "it", "is", "its", "this", "that", "your", "my", "our", "their", "of", "in",
    "on", "with", "for", "to", "and", "or", "as", "by", "from", "using", "use", "via", "any",
    "each", "which", "what", "no", "not", "like", "per", "than", "into", "are", "was",
])  # fmt: skip
#: A common TLD written with spaces or hyphens in it ("evil.c o m", "evil.c om", "c-o-m").
_SPLIT_TLD = re.compile(r"(?<=[^\W_])\.([^\W\d_]{1,3}(?:[ -][^\W\d_]{1,3}){1,3})(?![^\W_])")
_HYPHENED_LETTERS = re.compile(r"(?<![^\W_-])[^\W_](?=-)(?:-[^\W_](?![^\W_]))+")
_SPACED_AT = re.compile(r" ?@ ?")
_SPELLED_PIECE = re.compile(r"\S(?:[.@]\S)*|\S[.@]")


def _unescape(match: re.Match[str]) -> str:
    """ "." for "%2E" or "&#46;" (and "@", "/" alike); nothing for a backslash escape."""
    code = next((group for group in match.groups() if group), None)
    return _UNESCAPED[code.casefold()] if code else ""


def _detection_char(ch: str, previous: str) -> str:
    """What one character of the NFKD text becomes in the normalised copy."""
    if ch in _COMBINING_DOTS:
        return "" if ch == "\u0307" and previous in _DOTTED_LETTERS else _MARK
    if ch in _WORD_DOTS:
        return _WORD_DOT_MARK
    if ch in _INVISIBLE:  # a filler looks like a space: "evil.shop\u3164123" is not one token
        return " "
    category = unicodedata.category(ch)
    if category in ("Mn", "Me", "Cf"):
        return ""
    if ch.isspace() or category[0] in "ZC":
        return " "
    if ch.isascii() or category[0] not in "PS":
        return ch
    if ch in _LONG_DASHES:
        return " - "
    if category == "Pd" or ch in _MINUS:
        return "-"
    if category in ("Pi", "Pf", "Ps", "Pe"):  # quotes and brackets: never a dot ("jusqu'au")
        return " "
    return _SYMBOL


def normalise_cased(text: str) -> str:
    """`normalise` before case folding (the spaced-dot rule looks at capitals)."""
    folded = text.translate(_FOLD)  # before NFKC too: it turns some look-alikes into two chars
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", folded))
    decomposed = _ESCAPED.sub(_unescape, decomposed)
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
    joined = _SPACED_DOT.sub(_spaced_dot, joined)
    return _SPACED_AT.sub("@", joined)


def _spaced_dot(match: re.Match[str]) -> str:
    """ "evil . com" and "evil .com" are "evil.com"; "the .zip file" keeps its space."""
    if match.group(1):
        return "."
    text, start = match.string, match.start()
    previous = text[text.rfind(" ", 0, start) + 1 : start]
    return match.group() if previous.casefold() in _BEFORE_EXTENSION else "."


def _join_tld(match: re.Match[str]) -> str:
    joined = match.group(1).replace(" ", "").replace("-", "")
    return "." + joined if joined.casefold() in COMMON_TLDS else match.group()


def normalise(text: str) -> str:
    """The copy of `text` that detection runs on (never sent): see the module docstring."""
    return normalise_cased(text).casefold()


def join_spelled(text: str) -> str:
    """Runs of three or more one-letter tokens joined up: "e v i l . c o m" is "evil.com"; also
    "e-v-i-l" is "evil" and a common TLD split by spaces is joined ("evil.c o m")."""
    text = _HYPHENED_LETTERS.sub(lambda match: match.group().replace("-", ""), text)
    text = _SPLIT_TLD.sub(_join_tld, text)
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
