"""Whether the normalised text of a question asks for credentials (pure).

A prompt-injected question can be phishing from our own support address, so any mention of a
password, PIN, one-time code, card security code, recovery phrase, bank login and the like is
refused, in English and (as a list, so never complete) in other languages and scripts. This is
a false positive kept on purpose: the guard cannot tell "never tell anyone your PIN" from a
request for it. Credential words are matched with hyphens, dots and other marks as spaces
("O.T.P.", "sort-code"), with letters spelled out one by one joined up ("p i n"), and squashed
with digits read as letters ("pa55w0rd"). Ordinary questions stay out: "confirm the email you
used" or "confirm the payment was taken" (a clause follows), a QR, label, booking or locker
code "we sent", paying "with a gift card", "Social Security benefits".
"""

from __future__ import annotations

import re

from worker.reply.guard_text import normalise

_NOT_A_WORD = re.compile(r"[\W_]+")
#: Matched on `_credential_words`: lower case, hyphens, dots and other marks read as spaces,
#: letters spelled one by one joined up ("O.T.P.", "p i n").
_CREDENTIAL = re.compile(
    r"\b(?:pass ?(?:words?|codes?|phrases?)|passw(?:or)?d|pwd|p ?word|pw|passwort|mot de passe"
    r"|pins?|pin ?codes?|pin numbers?|cvv2?|cvc2?|csc|security codes?"
    r"|card (?:numbers?|details|no|(?:verification|security) (?:values?|codes?|numbers?))"
    r"|(?:expiry|expiration) date|one ?time (?:codes?|pass ?words?|pass ?codes?|pins?)|otp"
    r"|2 ?fa|mfa|(?:two|2) ?(?:factor|step) (?:codes?|pins?|tokens?)"
    r"|(?:verification|authentication|auth|login|log in|sms|confirmation) codes?"
    r"|credentials?|(?:log|sign) ?(?:in|on) (?:details|credentials|info|information|data)"
    r"|user ?names? (?:and |or )?pass(?:words?)?|(?:verify|validate|confirm|unlock|reactivate)"
    r" (?:your|the) (?:identity|credentials|password|(?:account|e ?mail(?: address)?|login"
    r"|details|payment|card)(?! (?:\w+ ){0,4}?(?:is|was|were|are|has|had|have|shows?|showed"
    r"|you|we|they)\b))"
    r"|account (?:is |has been |was |will be )?(?:locked|suspended|disabled|compromised|on hold"
    r"|restricted|closed)|security questions?|maiden name|social security (?:numbers?|no|card)|ssn"
    r"|seed (?:phrases?|words?)|\d+ words? (?:phrases?|seeds?)|mnemonic"
    r"|(?:recovery|backup) (?:phrases?|words?|codes?|keys?)|secret (?:phrases?|words?)"
    r"|(?:private|secret|api) keys?|routing number|sort code|iban"
    r"|bank (?:details|account number|login)|\d+ ?digits? (?:codes?|pins?)"
    r"|gift cards? (?:codes?|numbers?|pins?|details)|(?:buy|purchase|get) (?:\w+ ){0,3}?gift cards?"
    r"|(?<!tracking )(?<!discount )(?<!promo )(?<!coupon )(?<!voucher )(?<!referral )"
    r"(?<!error )(?<!status )(?<!postal )(?<!zip )(?<!post )(?<!product )(?<!order )"
    r"(?<!qr )(?<!label )(?<!activation )(?<!booking )(?<!locker )(?<!ticket )(?<!return )"
    r"(?<!bar )(?<!pickup )(?<!collection )(?<!reservation )(?<!delivery )(?<!shipping )"
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


def asks_for_credentials(probe: str) -> bool:
    """`probe` (the case-folded normalised text) mentions a password, PIN, code or the like."""
    words = _credential_words(probe)
    if _CREDENTIAL.search(words) or _CREDENTIAL_OTHER.search(words):
        return True
    if any(word in words for word in _CREDENTIAL_ANYWHERE):
        return True
    squashed = "".join(ch for ch in probe.translate(_LEET) if ch.isalpha())
    return any(word in squashed for word in _SQUASHED_CREDENTIALS)
