"""Where a clarifying question may go, from the email's From and Reply-To (pure).

A question is mail from our support address to an address the email names; both headers are
attacker-controlled. The rule (docs/replies.md):

1. Only a syntactically valid address with a domain (`local@domain.tld`, one address, no
   display-name tricks, no IP literal, no quoted local part) can receive a question.
2. Reply-To is used only when it is in the same registrable domain as From (`a.example.co.uk`
   and `example.co.uk` are; two mailboxes of a shared provider such as gmail.com are not), or
   when From is one of the configured form-relay senders (`TRIAGE_FORM_RELAY_SENDERS`: contact
   forms send from their own address and put the customer in Reply-To).
3. Otherwise From. If no address qualifies, there is no recipient and no question is sent.

The registrable domain is worked out offline from the Public Suffix List bundled with the
`publicsuffixlist` package (ICANN and private sections: `example.co.uk`, and `a.github.io` is
not `b.github.io`'s); upgrading that package refreshes the list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from email.utils import getaddresses
from functools import lru_cache

import idna
from publicsuffixlist import PublicSuffixList

MAX_ADDRESS = 254
MAX_LOCAL = 64
#: Comments in one address value read at most (`dana@example.org (Dana)` has one).
MAX_COMMENTS = 8

# Recipient reasons.
FROM = "from"
REPLY_TO_SAME_DOMAIN = "reply_to_same_domain"
REPLY_TO_FORM_RELAY = "reply_to_form_relay"
REPLY_TO_OTHER_DOMAIN = "reply_to_other_domain"  # From used instead
REPLY_TO_SHARED_PROVIDER = "reply_to_shared_provider"  # From used instead
REPLY_TO_INVALID = "reply_to_invalid"  # From used instead
FROM_INVALID = "from_invalid"  # no recipient
OWN_ADDRESS = "own_address"  # no recipient: it would mail ourselves

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Mail providers whose users are unrelated people: the same domain proves nothing there.
SHARED_PROVIDERS = _words(
    """
    gmail.com googlemail.com outlook.com hotmail.com hotmail.co.uk live.com msn.com
    yahoo.com yahoo.co.uk yahoo.fr yahoo.de ymail.com rocketmail.com aol.com
    icloud.com me.com mac.com proton.me protonmail.com pm.me tutanota.com tuta.io
    gmx.de gmx.net gmx.com web.de t-online.de mail.com mail.ru yandex.ru yandex.com
    qq.com 163.com 126.com naver.com zoho.com fastmail.com hey.com free.fr orange.fr laposte.net
    btinternet.com comcast.net verizon.net att.net sbcglobal.net
    hotmail.fr hotmail.de hotmail.it hotmail.es outlook.fr outlook.de live.fr live.de live.co.uk
    yahoo.es yahoo.it yahoo.co.jp yahoo.com.br onmicrosoft.com
    yahoo.co.in yahoo.in yahoo.ca yahoo.com.au yahoo.com.mx yahoo.co.id yahoo.com.ar yahoo.com.sg
    yahoo.com.ph yahoo.com.vn yahoo.gr yahoo.ie yahoo.se yahoo.dk yahoo.no yahoo.pl yahoo.ro
    yahoo.com.tw yahoo.com.hk yahoo.co.nz yahoo.co.th yahoo.be yahoo.at yahoo.ch yahoo.nl
    outlook.co.uk outlook.jp outlook.com.br outlook.es outlook.it outlook.in outlook.com.au
    outlook.be outlook.at outlook.ie outlook.sa outlook.com.ar outlook.cl outlook.dk outlook.sk
    hotmail.co.jp hotmail.com.br hotmail.ca hotmail.com.ar hotmail.nl hotmail.be hotmail.ch
    hotmail.se hotmail.no hotmail.dk hotmail.gr hotmail.com.au hotmail.co.nz hotmail.com.mx
    live.nl live.it live.com.au live.ca live.be live.se live.no live.dk live.com.mx live.ie
    live.at live.ch live.jp live.cn live.com.ar live.in msn.cn windowslive.com passport.com
    aol.co.uk aol.de aol.fr aim.com gmx.at gmx.ch gmx.fr gmx.us gmx.co.uk gmx.es gmx.it
    libero.it virgilio.it tiscali.it alice.it tin.it wp.pl o2.pl interia.pl onet.pl op.pl
    seznam.cz email.cz centrum.cz bk.ru list.ru inbox.ru rambler.ru ya.ru yandex.ua yandex.by
    yandex.kz ukr.net i.ua meta.ua abv.bg mail.ee sfr.fr wanadoo.fr neuf.fr bbox.fr
    numericable.fr freenet.de arcor.de kpnmail.nl ziggo.nl planet.nl home.nl hetnet.nl
    telenet.be skynet.be bluewin.ch orange.es telefonica.net
    rediffmail.com sina.com sina.cn sohu.com 139.com 189.cn aliyun.com foxmail.com yeah.net
    daum.net hanmail.net nate.com kakao.com protonmail.ch tuta.com tutanota.de tutamail.com
    keemail.me mailbox.org posteo.de posteo.net hushmail.com lycos.com zohomail.com zoho.eu
    email.com usa.com post.com consultant.com cox.net charter.net earthlink.net optonline.net
    frontier.com windstream.net rr.com juno.com netzero.net bigpond.com bigpond.net.au
    optusnet.com.au sky.com virginmedia.com ntlworld.com talktalk.net blueyonder.co.uk
    shaw.ca rogers.com sympatico.ca videotron.ca telus.net uol.com.br bol.com.br terra.com.br
    ig.com.br duck.com mozmail.com simplelogin.com simplelogin.co anonaddy.com addy.io
    appleid.com
    """
)


@dataclass(frozen=True)
class Recipient:
    """Where a question goes (`address`, or None: send none) and why (`reason`)."""

    address: str | None
    reason: str


@lru_cache(maxsize=4096)  # ~25 us a call, and an email's addresses are checked several times
def valid_address(value: str | None) -> str | None:
    """`local@domain` if `value` is exactly one syntactically valid address with a domain, else
    None. The domain comes back lower-case (IDN domains as punycode)."""
    if not value or len(value) > 4 * MAX_ADDRESS or any(ord(ch) < 32 for ch in value):
        return None
    if "\u2028" in value or "\u2029" in value or "\x7f" in value or "\x85" in value:
        return None
    if value.count("(") > MAX_COMMENTS:  # the standard library reads comments recursively
        return None
    parsed = getaddresses([value])
    if len(parsed) != 1:
        return None
    address = parsed[0][1]
    if address not in value:  # the parser dropped spaces or comments: not a plain address
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > MAX_LOCAL or not _LOCAL.fullmatch(local):
        return None
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    tld = labels[-1]
    if not (tld.isalpha() or tld.startswith("xn--")):
        return None  # IP addresses and numeric "domains"
    result = f"{local}@{ascii_domain}"
    return result if len(result) <= MAX_ADDRESS else None


#: Providers that ignore dots in the local part (`d.ana@gmail.com` is `dana@gmail.com`).
_DOTLESS_PROVIDERS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox(address: str) -> str:
    """The mailbox an address delivers to, as far as can be told from outside, for counting
    what one person receives: lower-case, without a `+tag` (sub-addressing, which most
    providers deliver to the same mailbox) and, at Gmail, without dots. Over-merging two
    mailboxes only makes a limit stricter; under-merging would let `victim+1@`, `victim+2@`...
    each get their own daily budget."""
    local, _, domain = address.strip().lower().rpartition("@")
    if not local:
        return address.strip().lower()
    local = local.split("+", 1)[0] or local
    if domain in _DOTLESS_PROVIDERS:
        local, domain = local.replace(".", "") or local, _DOTLESS_PROVIDERS[domain]
    return f"{local}@{domain}"


def _ascii_domain(domain: str) -> str | None:
    """The domain in lower-case ASCII (an IDN as punycode, by IDNA 2008 with UTS #46 mapping),
    or None when it is not a domain or would come back as another one."""
    written = unicodedata.normalize("NFC", domain.rstrip(".").lower())
    if written.isascii():
        return written
    try:
        ascii_domain = idna.encode(written, uts46=True).decode("ascii")
        # Mapping may drop or replace characters (a soft hyphen, a zero-width joiner; IDNA 2003
        # made "ß" "ss"): a domain that does not come back as written is judged as another.
        if idna.decode(ascii_domain) != written:
            return None
    except (idna.IDNAError, UnicodeError):
        return None
    return ascii_domain


@lru_cache(maxsize=1)
def _public_suffixes() -> PublicSuffixList:
    """The list bundled with the package (about 60 ms to load, once; never the network)."""
    return PublicSuffixList()


@lru_cache(maxsize=4096)
def registrable_domain(domain: str) -> str:
    """The part of `domain` one party registers: `mail.example.co.uk` -> `example.co.uk`; a
    public suffix itself (`co.uk`, `github.io`) is its own."""
    name = domain.lower().rstrip(".")
    return _public_suffixes().privatesuffix(name) or name


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def choose_recipient(
    from_addr: str | None,
    reply_to: str | None,
    form_relay_senders: Collection[str] = (),
    own_addresses: Collection[str] = (),
) -> Recipient:
    """The one address a question may be sent to, and the reason for the choice (see module)."""
    sender = valid_address(from_addr)
    if sender is None:
        return Recipient(None, FROM_INVALID)
    own = {a.lower() for a in (valid_address(x) for x in own_addresses) if a}
    relays = {a.lower() for a in (valid_address(x) for x in form_relay_senders) if a}
    chosen, reason = sender, FROM
    if reply_to and reply_to.strip():
        target = valid_address(reply_to)
        if target is None:
            reason = REPLY_TO_INVALID
        elif target.lower() == sender.lower():
            chosen = sender
        elif sender.lower() in relays:
            chosen, reason = target, REPLY_TO_FORM_RELAY
        elif registrable_domain(_domain(target)) != registrable_domain(_domain(sender)):
            reason = REPLY_TO_OTHER_DOMAIN
        elif registrable_domain(_domain(sender)) in SHARED_PROVIDERS:
            reason = REPLY_TO_SHARED_PROVIDER
        else:
            chosen, reason = target, REPLY_TO_SAME_DOMAIN
    if chosen.lower() in own:
        return Recipient(None, OWN_ADDRESS)
    return Recipient(chosen, reason)
