"""Where a question may go, chosen from From and Reply-To (pure)."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.recipient import (
    FROM,
    FROM_INVALID,
    OWN_ADDRESS,
    REPLY_TO_FORM_RELAY,
    REPLY_TO_INVALID,
    REPLY_TO_OTHER_DOMAIN,
    REPLY_TO_SAME_DOMAIN,
    REPLY_TO_SHARED_PROVIDER,
    Recipient,
    choose_recipient,
    registrable_domain,
    valid_address,
)
from common.settings import load_settings

FORMS = ["forms@acme-site.test"]


@pytest.mark.parametrize(
    ("from_addr", "reply_to", "address", "reason"),
    [
        ("dana@example.org", None, "dana@example.org", FROM),
        ("Dana <dana@Example.ORG>", "", "dana@example.org", FROM),
        ("dana@example.org", "home@example.org", "home@example.org", REPLY_TO_SAME_DOMAIN),
        ("dana@mail.ex.co.uk", "bill@ex.co.uk", "bill@ex.co.uk", REPLY_TO_SAME_DOMAIN),
        ("dana@ex.co.uk", "victim@other.co.uk", "dana@ex.co.uk", REPLY_TO_OTHER_DOMAIN),
        ("bad@evil.example", "victim@example.org", "bad@evil.example", REPLY_TO_OTHER_DOMAIN),
        ("bad@gmail.com", "victim@gmail.com", "bad@gmail.com", REPLY_TO_SHARED_PROVIDER),
        ("dana@example.org", "not an address", "dana@example.org", REPLY_TO_INVALID),
        ("dana@example.org", "a@example.org, b@example.org", "dana@example.org", REPLY_TO_INVALID),
        ("dana@example.org", "dana@example.org", "dana@example.org", FROM),
        ("forms@acme-site.test", "Cust <cust@else.test>", "cust@else.test", REPLY_TO_FORM_RELAY),
        ("FORMS@ACME-SITE.TEST", "cust@else.test", "cust@else.test", REPLY_TO_FORM_RELAY),
        ("forms@acme-site.test", "ceo", "forms@acme-site.test", REPLY_TO_INVALID),
        ("ceo", None, None, FROM_INVALID),
        ("ceo", "victim@example.org", None, FROM_INVALID),
        ("", None, None, FROM_INVALID),
        ("support@acme.test", None, None, OWN_ADDRESS),
        ("dana@acme.test", "Support <SUPPORT@acme.test>", None, OWN_ADDRESS),
    ],
)
def test_recipient_rule(from_addr, reply_to, address, reason):
    """Reply-To only within From's registrable domain or from a form relay; else From; else none."""
    own = ["Acme Support <support@acme.test>"]
    assert choose_recipient(from_addr, reply_to, FORMS, own) == Recipient(address, reason)


@pytest.mark.parametrize(
    "value",
    [
        "ceo",
        "ceo@",
        "@example.org",
        "ceo@localhost",
        "root@[127.0.0.1]",
        "root@127.0.0.1",
        '"evil@x.test"@example.org',
        "dana@example.org\r\nBcc: victim@example.org",
        "dana@example.org\u2028",
        "dana@exa mple.org",
        "d\u00e4na@example.org",
        "dana@" + "a" * 64 + ".org",
        "x" * 65 + "@example.org",
        "dana@-example.org",
        "dana@example..org",
        "(" * 990 + "dana@example.org",  # the standard library's parser would recurse
    ],
)
def test_invalid_addresses_receive_nothing(value):
    """Domainless, IP-literal, quoted, multi-line and malformed addresses are not addresses."""
    assert valid_address(value) is None


def test_idn_domains_come_back_as_punycode():
    """An internationalised domain is valid and normalised to its ASCII form."""
    assert valid_address("Dana <dana@B\u00fccher.example>") == "dana@xn--bcher-kva.example"
    assert valid_address("dana@xn--bcher-kva.example") == "dana@xn--bcher-kva.example"


@pytest.mark.parametrize("domain", ["ac\u200dme.example", "ac\u00admme.example"])
def test_a_domain_that_idna_would_map_to_another_is_not_an_address(domain):
    """A dropped zero-width joiner or soft hyphen: it would pass for another domain."""
    assert valid_address(f"dana@{domain}") is None


def test_idna_2008_keeps_sharp_s_its_own_domain():
    """`straße.de` is its own domain under IDNA 2008 (IDNA 2003 made it `strasse.de`)."""
    assert valid_address("dana@Stra\u00dfe.de") == "dana@xn--strae-oqa.de"
    assert valid_address("dana@strasse.de") == "dana@strasse.de"


@pytest.mark.parametrize(
    ("domain", "registrable"),
    [
        ("example.org", "example.org"),
        ("mail.eu.example.org", "example.org"),
        ("example.co.uk", "example.co.uk"),
        ("a.b.example.com.au", "example.com.au"),
        ("co.uk", "co.uk"),
        ("mail.shop.co.ae", "shop.co.ae"),
        ("victim.github.io", "victim.github.io"),
        ("github.io", "github.io"),
        ("a.b.c.kawasaki.jp", "b.c.kawasaki.jp"),
        ("Mail.Acme.TEST.", "acme.test"),
    ],
)
def test_registrable_domain_follows_the_public_suffix_list(domain, registrable):
    """ICANN and private suffixes of the bundled list, wildcards included; unknown TLDs keep two
    labels."""
    assert registrable_domain(domain) == registrable


@pytest.mark.parametrize(
    "domain",
    [
        "libero.it",
        "yahoo.co.in",
        "outlook.co.uk",
        "seznam.cz",
        "duck.com",
        "privaterelay.appleid.com",
    ],
)
def test_regional_and_relay_mail_providers_are_shared(domain):
    """Two mailboxes at a regional provider or a forwarding service are two people."""
    chosen = choose_recipient(f"mallory@{domain}", f"victim@{domain}")
    assert chosen == Recipient(f"mallory@{domain}", REPLY_TO_SHARED_PROVIDER)


def test_reply_to_under_a_private_suffix_is_another_party():
    """`a.github.io` and `b.github.io` are registered by different people: From is used."""
    chosen = choose_recipient("bad@attacker.github.io", "victim@victim.github.io")
    assert chosen == Recipient("bad@attacker.github.io", REPLY_TO_OTHER_DOMAIN)


def test_form_relay_senders_setting_is_a_comma_separated_list():
    """`TRIAGE_FORM_RELAY_SENDERS` is parsed, lower-cased, and rejects what is not an address."""
    settings = load_settings(form_relay_senders=" Forms@Acme.test , web@acme.test ")
    assert settings.form_relay_senders == ["forms@acme.test", "web@acme.test"]
    assert load_settings().form_relay_senders == [] and load_settings().log_addresses is False
    with pytest.raises(ConfigError, match="TRIAGE_FORM_RELAY_SENDERS"):
        load_settings(form_relay_senders="ceo")
