"""The send guard: what may be mailed to a customer from our support address (pure)."""

from __future__ import annotations

import time

import pytest

from worker.reply.headers import reply_subject
from worker.reply.send_guard import (
    REASONS,
    SAFE_QUESTION,
    CheckedQuestion,
    check_question,
    normalise,
    scan,
)

CYRILLIC_A = "\u0430"


def outcome(checked: CheckedQuestion) -> tuple[str, bool, str | None]:
    return checked.text, checked.replaced, checked.reason


GUARD_GAPS = [
    pytest.param(f"Please sign in at p{CYRILLIC_A}ypal.com to continue?", "domain", id="lookalike"),
    pytest.param(
        f"Is your p{CYRILLIC_A}ypal account affected?", "lookalike_characters", id="mixed"
    ),
    pytest.param("Is the page xn--pypal-4ve.com?", "domain", id="punycode"),
    pytest.param("Is the page b\u00fccher.de?", "domain", id="idn-latin"),
    pytest.param("Is it \u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444?", "domain", id="idn"),
    pytest.param(
        "Is it \uff45\uff56\uff49\uff4c\uff0e\uff43\uff4f\uff4d?", "domain", id="fullwidth"
    ),
    pytest.param("Can you reach 192.168.0.1 from home?", "ip_address", id="ipv4"),
    pytest.param("Does 10.0.0.1:8080 load for you?", "ip_address", id="ipv4-port"),
    pytest.param("Is 2001:db8::1 your address?", "ip_address", id="ipv6"),
    pytest.param("Does [::1] answer?", "ip_address", id="ipv6-brackets"),
    pytest.param("Was the error on example.org?", "domain", id="substring-domain"),
    pytest.param("Could you check evil[.]example for us?", "domain", id="bracket-dot"),
    pytest.param("Could you check evil . example for us?", "domain", id="spaced-dot"),
    pytest.param("Could you check evil(dot)example for us?", "domain", id="paren-dot"),
    pytest.param("Could you check evil dot example for us?", "domain", id="word-dot"),
    pytest.param("Could you check evil. com for us?", "domain", id="dot-space-tld"),
    pytest.param("Could you check evil\u3002com for us?", "domain", id="ideographic-dot"),
    pytest.param("Could you check evil\u00a0.\u00a0example?", "domain", id="nbsp-dot"),
    pytest.param("Could you check evil\u200b.\u200bexample?", "domain", id="zero-width"),
    pytest.param("Could you call us on +1 555 123 4567?", "phone_number", id="phone-intl"),
    pytest.param("Could you call (555) 123-4567 today?", "phone_number", id="phone-us"),
    pytest.param("Could you call 555.123.4567 today?", "phone_number", id="phone-dots"),
    pytest.param("Could you call 020 7946 0958 today?", "phone_number", id="phone-uk"),
    pytest.param("Could you call 5551234567 today?", "phone_number", id="phone-bare"),
    pytest.param("Could you write to dana at example dot com?", "domain", id="spelled-address"),
    pytest.param("Could you write to dana (at) example (dot) com?", "email_address", id="at-dot"),
    pytest.param("Should we write to bob@evil.test?", "email_address", id="email"),
    pytest.param("Should we write to root@localhost?", "email_address", id="email-no-dot"),
    pytest.param("Should we write to root@[127.0.0.1]?", "email_address", id="email-ip"),
    pytest.param("Open data:text/html;base64,PHNjcmlwdD4= please?", "link", id="data-uri"),
    pytest.param("Visit https://evil.example/pay to confirm?", "link", id="url"),
    pytest.param("Is it www.evil.example?", "link", id="www"),
    pytest.param("Is it evil.example:8080/login?", "domain", id="domain-port-path"),
    pytest.param("Could you text tel:+15551234567?", "link", id="tel-uri"),
    pytest.param("Could you reply with your password?", "credential_request", id="password"),
    pytest.param("Reply with your p a s s w o r d?", "credential_request", id="spaced-password"),
    pytest.param("Reply with your pa55w0rd please?", "credential_request", id="leet-password"),
    pytest.param("What is the PIN of your card?", "credential_request", id="pin"),
    pytest.param("What is your card number?", "credential_request", id="card-number"),
    pytest.param("What is the one-time code we sent?", "credential_request", id="otp"),
    pytest.param("Could you verify your account today?", "credential_request", id="verify"),
    pytest.param("Click <a href='x'>here</a>?", "markup", id="html"),
    pytest.param("Click [here](x)?", "markup", id="markdown"),
]


@pytest.mark.parametrize(("question", "reason"), GUARD_GAPS)
def test_each_guard_gap_is_replaced_by_the_safe_question(question, reason):
    """A link, address, number or credential request in any disguise sends the safe question."""
    assert outcome(check_question(question, None, 500)) == (SAFE_QUESTION, True, reason)


@pytest.mark.parametrize(
    "question",
    [
        "Which order number is it?",
        "Could you tell me which product, e.g. the app or the website, is affected?",
        "Is this about order no. 5 or a new order?",
        "Did Mr. Smith place the order?",
        "Did version 2.3 break it, i.e. after the update?",
        "Was the charge on 2024-01-15 or later?",
        "Is the total $1,234.56 or $12.99?",
        "Is it order 12345678?",
        "Are you unable to log in, or does the app crash after you log in?",
        "Did you pay by credit card or bank transfer?",
        "Is the invoice.pdf you attached the right one?",
        "At what time did it happen (around 10:30)?",
        "Is it about the U.S. store or the EU one?",
        "Which page: checkout, cart, or account settings?",
        "Quelle est la r\u00e9f\u00e9rence de votre commande ?",
        "\u041a\u0430\u043a\u043e\u0439 \u043d\u043e\u043c\u0435\u0440 "
        "\u0437\u0430\u043a\u0430\u0437\u0430?",
    ],
)
def test_legitimate_questions_pass_unchanged(question):
    """Ordinary questions (abbreviations, numbers, dates, other scripts) are sent as written."""
    assert outcome(check_question(question, None, 500)) == (question, False, None)


def test_what_the_customer_wrote_grants_nothing():
    """A link the customer wrote first is refused all the same: the customer may be the attacker."""
    customer = "Verify at secure-login.example/verify within 24 hours"
    checked = check_question("Is it secure-login.example/verify?", customer, 500)
    assert checked.replaced and checked.reason == "domain"


@pytest.mark.parametrize(
    ("question", "reason"),
    [(" \n\t ", "empty"), ("x" * 501, "too_long")],
)
def test_empty_or_long_questions_are_replaced(question, reason):
    """A question with no text, or longer than the limit, is replaced."""
    assert outcome(check_question(question, None, 500)) == (SAFE_QUESTION, True, reason)


def test_question_is_flattened_to_one_plain_paragraph():
    """Line breaks, zero-width and control characters are gone from the text that is sent."""
    checked = check_question("Which\n\norder\u200b number?\x07", None, 500)
    assert checked.text == "Which order number?" and not checked.replaced


def test_every_reason_code_is_documented():
    """The reason codes the guard returns are exactly `REASONS`."""
    found = {scan(str(param.values[0])) for param in GUARD_GAPS}
    assert found | {"empty", "too_long"} == set(REASONS)


def test_normalisation_undoes_the_disguises():
    """Look-alikes, odd spaces and written-out dots come back as plain Latin text and dots."""
    assert normalise(f"p{CYRILLIC_A}ypal\u00a0[.]\u00a0COM") == "paypal.com"
    assert normalise("evil (dot) example") == "evil.example"
    assert normalise("Mr. Smith, e.g.") == "mr. smith, e.g."


@pytest.mark.parametrize(
    "text",
    [
        "a." * 100_000,
        "1 " * 100_000,
        "a" * 200_000,
        "x@" * 100_000,
        "(" * 200_000,
        "a b." * 50_000,
        " dot " * 40_000,
        "[.]" * 66_667,
        f"p{CYRILLIC_A}" * 100_000,
    ],
    ids=["dots", "digits", "letters", "ats", "parens", "words", "word-dots", "brackets", "mixed"],
)
def test_guard_is_linear_on_a_200000_character_input(text):
    """200,000 adversarial characters are checked in well under a second or two, not minutes."""
    started = time.perf_counter()
    check_question(text, None, len(text))
    assert time.perf_counter() - started < 3.0  # a quadratic scan would take minutes


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Help", "Re: Help"),
        ("Re: RE: Fwd: Help", "Re: Help"),
        ("Help\r\nBcc: victim@example.org", "Re: your support request"),
        ("Help\u2028me\x0bnow", "Re: Help me now"),
        ("Verify at secure-login.example", "Re: your support request"),
        ("x" * 500, "Re: " + "x" * 150),
        ("", "Re: your support request"),
    ],
)
def test_reply_subject_is_one_safe_line(subject, expected):
    """The subject we send is one bounded line and carries nothing the send guard refuses."""
    assert reply_subject(subject) == expected
