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


LDQ, RDQ, LSQ, RSQ = "\u201c", "\u201d", "\u2018", "\u2019"
EM, EN = "\u2014", "\u2013"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        (f"Please log in at {LDQ}secure-paypal.com{RDQ} to continue", "domain"),
        (f"Is it {LSQ}secure-paypal.com{RSQ}?", "domain"),
        ("Is it \u00absecure-paypal.com\u00bb?", "domain"),
        (f"Use secure-paypal.com{EM}it is quick", "domain"),
        (f"Use secure-paypal.com{EN} it is quick", "domain"),
        (f"Is it the secure-paypal.com{RSQ}s portal?", "domain"),
        ("Is it \u300csecure-paypal.com\u300d?", "domain"),
        ("Use secure-paypal.com\u3001thanks", "domain"),
        ("\u00bfsecure-paypal.com?", "domain"),
        ("Use secure-paypal.com\u00a1", "domain"),
        ("Use secure-paypal.com\u2713", "domain"),
        ("\u2705secure-paypal.com", "domain"),
        ("Use secure-paypal.com\U0001f642", "domain"),
        ("Use secure-paypal.com\u00a7", "domain"),
        ("Use secure-paypal.com\u00b0", "domain"),
        ("Use secure-paypal.com\u00ae", "domain"),
        ("Use secure-paypal.com-now", "domain"),
        ("Use secure-paypal.com1", "domain"),
        (f"Please open {LDQ}10.0.0.1{RDQ}", "ip_address"),
        (f"Open 10.0.0.1{EM}now", "ip_address"),
        (f"Open 2001:db8::1{EM}now", "ip_address"),
    ],
)
def test_unicode_punctuation_cannot_hide_an_address(question, reason):
    """Curly quotes, guillemets, dashes, CJK marks and emoji around an address are token edges."""
    assert scan(question) == reason


def test_reply_subject_sees_through_curly_quotes():
    """A subject quoting a domain in curly quotes gets the generic subject."""
    subject = f"Action needed: log in at {LDQ}secure-paypal.com{RDQ} to keep your mailbox"
    assert reply_subject(subject) == "Re: your support request"


@pytest.mark.parametrize(
    "separator",
    ["\u2013", "\u2014", "\u2011", "\u2012", "\u2212", "\u2043", "~", "_", "*", ":", ",", "\u2022"],
)
def test_phone_numbers_with_any_separator_are_caught(separator):
    """Digit groups split by any dash, minus or other mark still read as a number to call."""
    assert scan(f"Call 555{separator}123{separator}4567") == "phone_number"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("Call 6123-4567", "phone_number"),
        ("Call 2123/4567", "phone_number"),
        ("Call 2024-2019", "phone_number"),
        (f"Was it in 2019{EN}2024?", None),
        ("Was it the 2023/2024 season?", None),
        ("Is it about order 7731-2209?", None),
        ("Is it about invoice no. 2025-3381?", None),
        ("Ist es die Bestellung Nr. 1029-7734?", None),
    ],
)
def test_four_and_four_digits_are_a_phone_unless_years_or_a_named_number(question, reason):
    """Singapore's "6123-4567" is a phone number; a range of years or an order number is not."""
    assert scan(question) == reason


@pytest.mark.parametrize(
    "dot",
    [
        "\ua4f8",
        "\u2e33",
        "\u2e31",
        "\u2e30",
        "\u30fb",
        "\uff65",
        "\u16eb",
        "\u0701",
        "\u0702",
        "\u05c3",
        "\u0589",
        "\u1427",
        "\u2981",
        "\u25cf",
        "\ua60e",
        "\u0660",
        "\u06f0",
        "\u0323",
        "\u2713",
        "\u00b0",
    ],
)
def test_dot_lookalikes_are_read_as_dots(dot):
    """A look-alike dot, or any symbol or combining dot before a common TLD, is a dot."""
    assert scan(f"Could you check evil{dot}com for us?") == "domain"


def test_precomposed_dot_below_is_a_dot_before_a_tld():
    """An "l" with a dot below between "evi" and "com" reads as "evil.com", not "evilcom"."""
    assert scan("Could you check evi\u1e37com for us?") == "domain"


@pytest.mark.parametrize(
    "question",
    [
        "Please sign in at secure-paypal. com/login",
        "Is it bit. ly/abc?",
        f"Use secure-paypal. com{EM}today",
        f"Is it the secure-paypal. com{RSQ}s portal?",
        "Is it secure-paypal. COM?",
    ],
)
def test_spaced_dot_before_a_path_or_punctuation_is_a_domain(question):
    """A spaced dot ("evil. com") stays a domain when a path, dash or quote follows the TLD."""
    assert scan(question) == "domain"


@pytest.mark.parametrize(
    "subject",
    ["x" * 124 + " Please sign in at evil.com.pdf", "x" * 138 + " 555 123 4567890123456789"],
    ids=["domain", "phone"],
)
def test_reply_subject_is_checked_after_the_cut(subject):
    """The subject is cut to 150 characters before the guard sees it: the cut cannot make a
    domain or phone number out of text that passed whole."""
    assert scan(subject) is None  # whole, it passes
    assert reply_subject(subject) == "Re: your support request"


@pytest.mark.parametrize(
    "request_text",
    [
        "contrase\u00f1a",
        "contrasena",
        "verification-code",
        "sort-code",
        "social-security number",
        "maiden-name",
        "two-factor code",
        "2 FA",
        "O.T.P.",
        "C.V.V.",
        "P.I.N.",
        "S.S.N.",
        "p i n",
        "pincode",
        "sign-on details",
        "the code we just texted you",
        "the 6-digit code you received",
        "the 3-digit number on the back of your card",
        "card verification value",
        "seed words",
        "12-word phrase",
        "pwd",
        "pword",
        "p/w",
        "username and pass",
        "Kennwort",
        "wachtwoord",
        "senha",
        "\u043f\u0430\u0440\u043e\u043b\u044c",
        "\u5bc6\u7801",
    ],
)
def test_credential_requests_in_other_spellings_and_languages(request_text):
    """Hyphenated, dotted, spaced, paraphrased and foreign credential requests are refused."""
    assert scan(f"Could you reply with your {request_text}?") == "credential_request"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("Does localhost:8080 load?", "domain"),
        ("Does evil:8080 load?", "domain"),
        ("Is it e v i l . c o m?", "domain"),
        ("Open h t t p s : / / e v i l . c o m", "link"),
        ("Open https;//evil please", "link"),
        ("Is it evil-dot-com?", "domain"),
        ("Is it evilDOTcom?", "domain"),
        ("Is it evil period com?", "domain"),
        ("Call x555-123-4567", "phone_number"),
        ("Call 555-123-4567a", "phone_number"),
        ("Call 555-123-4567_1234567", "phone_number"),
        (f"Call us{EM}tel:+15551234567", "link"),
    ],
)
def test_other_disguises_are_caught(question, reason):
    """Host and port, spelled-out letters, a broken scheme, "dot" in words, glued phone numbers."""
    assert scan(question) == reason


ORDINARY_QUESTIONS = [
    f"Could you tell me a bit more about what is going wrong {EM} is it about a payment, a "
    "delivery, or a technical problem with our product?",
    f"Which order is it about {EM} the one from 3 March?",
    "Is it the app or the website?",
    "Was it charged twice on 2024-03-01?",
    f"Did it start after the update{EN}or before it?",
    f"Is it the {LDQ}Premium{RDQ} plan or the {LSQ}Basic{RSQ} one?",
    f"Was it between 09:00{EN}17:00 on Friday, 31 October 2025 3:12 PM?",
    "Is it the Q3 2024\u20132025 report, or the $1,500,000 one?",
    f"Merci. De quelle commande s{RSQ}agit-il ?",
    f"Est-ce li\u00e9 \u00e0 l{RSQ}info re\u00e7ue jusqu{RSQ}au 3 mars, abonnement "
    "\u00abPremium\u00bb ?",
    "\u00bfSe trata del pedido del 3 de marzo o de otro?",
    f"\u00bfEs un problema con el pago{EM}o con la entrega?",
    "Obrigado. Com qual cart\u00e3o pagou os 10 \u20ac com desconto?",
    f"Geht es um die Bestellung vom 3. M\u00e4rz {EN} oder um \u201eeine andere\u201c?",
    "Czy ka\u017cde zam\u00f3wienie jest dotkni\u0119te?",
    "Si tratta dell\u2019ordine del 3 marzo o di un altro?",
    "B\u1ea1n mu\u1ed1n ho\u00e0n ti\u1ec1n hay \u0111\u1ed5i h\u00e0ng?",
    "\u0420\u0435\u0447\u044c \u043e \u0437\u0430\u043a\u0430\u0437\u0435 \u043e\u0442 3 "
    f"\u043c\u0430\u0440\u0442\u0430 {EM} \u0438\u043b\u0438 \u043e "
    "\u0434\u0440\u0443\u0433\u043e\u043c?",
    "\u300c\u30a2\u30d7\u30ea\u300d\u3068\u300c\u30a6\u30a7\u30d6\u30b5\u30a4\u30c8\u300d\u306e"
    "\u3069\u3061\u3089\u3067\u3059\u304b\uff1f",
    "\u3054\u6ce8\u6587\u306f\u3044\u3064\u3067\u3059\u304b\u3002\u30a2\u30d7\u30ea\u30fb"
    "\u30a6\u30a7\u30d6\u30b5\u30a4\u30c8\u306e\u3069\u3061\u3089\u3067\u3059\u304b\uff1f",
    "\u8bf7\u95ee\u60a8\u5e0c\u671b\u9000\u6b3e\u8fd8\u662f\u6362\u8d27\uff1f\u662f3\u67083"
    "\u65e5\u7684\u8ba2\u5355\u5417\uff1f",
    "\u0647\u0644 \u0627\u0644\u0645\u0634\u0643\u0644\u0629 \u0641\u064a \u0627\u0644\u062a"
    "\u0637\u0628\u064a\u0642 \u0623\u0645 \u0641\u064a \u0627\u0644\u0645\u0648\u0642\u0639\u061f",
    "Which discount code did you use, and what error code do you see?",
]


@pytest.mark.parametrize("question", ORDINARY_QUESTIONS)
def test_ordinary_questions_in_many_languages_pass_unchanged(question):
    """Dashes, curly quotes, guillemets, CJK brackets and full stops, sentence starts that look
    like TLDs ("Merci. De", "Obrigado. Com"), dates, times and amounts are sent as written."""
    assert outcome(check_question(question, None, 500)) == (question, False, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<a" * 100_000, None),
        ("[." * 100_000, None),
        ("[a](" * 50_000, None),
        ("<a" * 100_000 + ">", "markup"),
        ("[a" * 100_000 + "](x)", "markup"),
        ("a\u2713com " * 33_334, "domain"),
        ("x555-" * 40_000, None),
        ("12:30 " * 33_334, None),
        ("code we " * 25_000, None),
        ("l\u0323" * 100_000, None),
        ("e " * 100_000, None),
    ],
    ids=[
        "tags",
        "brackets",
        "links",
        "tag-at-end",
        "link-at-end",
        "symbol-dots",
        "glued-digits",
        "times",
        "code-words",
        "combining-dots",
        "spelled",
    ],
)
def test_markup_and_new_checks_are_linear_on_200000_characters(text, reason):
    """Markup and the newer checks handle 200,000 adversarial characters in one pass."""
    started = time.perf_counter()
    assert scan(text) == reason
    assert time.perf_counter() - started < 2.0  # generous; the old markup regex took ~12 s


@pytest.mark.parametrize(
    "question",
    [
        "bob@163.com",
        "bob@126.com",
        "write to bob@1und1.de",
        "bob@1evil.shop",
        "@evil.com is where to write",
    ],
)
def test_email_hosts_starting_with_a_digit_are_addresses(question):
    """A host that starts with a digit, or a bare "@host", is still an email address."""
    assert scan(question) == "email_address"


@pytest.mark.parametrize(
    "question",
    [
        "Call 555-123-4567/555-987-6543",
        "Call 020-7946-0958/020-7946-0959",
        "Call 555-123-4567-2024-2025",
        "WhatsApp +44-20-7946-0958-0000",
        "Call +15551234567(0000000)",
        "Call 5551234567/8888888888",
    ],
)
def test_phone_numbers_joined_or_padded_past_15_digits_are_caught(question):
    """Two numbers glued together, or one padded with more digit groups, still hold a number."""
    assert scan(question) == "phone_number"


@pytest.mark.parametrize(
    "text",
    [
        "paypal\ua78fcom",
        "evil\ua78fcom/login",
        "evil\u4e36com",
        "evil\u2f02com",
        "evil\u0971com",
        "evil\u02d1shop",
        "evil\ua717com",
        "evil\ua718com",
        "evil\ua719com",
        "evil\u2802shop",
        "evil\u25e6shop",
        "evil\u2023shop",
        "evil\u2043shop",
        "evil\u0f0bshop",
        "evil\u1803shop",
        "evil\u1362shop",
        "evil\u3002\u4e2d\u56fd",
        "evil\u3002\u516c\u53f8",
    ],
)
def test_letter_and_symbol_dot_lookalikes_are_dots(text):
    """Letters, modifier letters and symbols that look like one dot read as a dot before any TLD."""
    assert scan(f"Please visit {text} now") == "domain"


@pytest.mark.parametrize("filler", ["\u3164", "\u2800", "\u115f", "\uffa0"])
def test_invisible_fillers_end_a_token(filler):
    """A Hangul or Braille filler after a TLD is a space, so "evil.shop" stays a domain."""
    assert scan(f"Visit evil.shop{filler}123 now") == "domain"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("Please visit evil\\.com to continue", "domain"),
        ("Is it evil\\.shop?", "domain"),
        ("Open 10\\.0\\.0\\.1", "ip_address"),
        ("Is it evil%2Ecom?", "domain"),
        ("Is it evil&#46;com?", "domain"),
        ("Is it evil&#x2e;com?", "domain"),
        ("Is it evil&period;com?", "domain"),
        ("Write to bob%40evil.com", "email_address"),
    ],
)
def test_escaped_and_encoded_dots_are_dots(question, reason):
    """A backslash escape, percent encoding or an HTML entity does not hide a dot or an at sign."""
    assert scan(question) == reason


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("Is it (evil).com?", "domain"),
        ("Is it [evil].com?", "domain"),
        ('Is it "evil".com?', "domain"),
        ("Is it 'evil'.com?", "domain"),
        ("Is it evil'.com?", "domain"),
        ("Write to bob@(evil).com", "email_address"),
        ('Write to bob@"evil".com', "email_address"),
    ],
)
def test_quotes_and_brackets_around_a_label_are_ignored(question, reason):
    """Quotes or brackets inside a token cannot split a domain or an address in two."""
    assert scan(question) == reason


@pytest.mark.parametrize(
    "question",
    [
        "search-ms:query=x",
        "ms-settings:",
        "ms-word:ofe|u|x",
        "sip:bob@x",
        "facetime:",
        "zoommtg:",
        "bitcoin:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        "magnet:?xt=urn:btih:abc",
        "ssh:",
        "webcal:",
        "viber:",
        "signal:",
        "x-custom:open",
        "Open \\\\evil\\share",
    ],
)
def test_app_schemes_and_network_paths_are_links(question):
    """Schemes that open an app, a call or a payment, and UNC paths, are links."""
    assert scan(question) == "link"


@pytest.mark.parametrize(
    "question",
    [
        "Is it evil dot c o m?",
        "Is it evil.c om?",
        "Is it evil.c o m?",
        "Is it e-v-i-l.c-o-m?",
        "Visit evil. Com",
        "Log in at paypal-support. Com/login now",
        "Is it evil .com?",
    ],
)
def test_partly_spelled_tlds_and_capitalised_spaced_tlds_are_domains(question):
    """A TLD split by spaces or hyphens, or "evil. Com" that starts no sentence, is a domain."""
    assert scan(question) == "domain"


@pytest.mark.parametrize(
    "question",
    [
        "Could you confirm the e-mail address on your account is the one you are writing from?",
        "Could you confirm the email you used to place the order?",
        "Can you confirm your email address is still correct?",
        "Could you verify the email address we should reply to?",
        "Could you confirm your details so we can find the order?",
        "Could you confirm the payment was taken twice?",
        "Could you confirm the card you used was a Visa or a Mastercard?",
        "Could you confirm your account is a business account?",
        "Could you confirm the account was opened in 2021?",
        "Could you confirm the login page shows an error?",
        "Did the QR code we sent open the return form?",
        "Did the return label code you received work at the drop-off point?",
        "Did the activation code you received work?",
        "Did the booking code we sent you work at check-in?",
        "Did the locker code we sent you work?",
        "Is it the ticket code you received by e-mail?",
        "Did you use the access code for the parcel locker?",
        "Did you pay with a gift card?",
        "Would you like the refund as a gift card?",
        "Is this about your Social Security benefits letter?",
        "\u00bfPodr\u00eda indicarnos el modelo, p.ej. el X200?",
        "Kan du ange ordernumret, t.ex. A-1234?",
        "Pouvez-vous pr\u00e9ciser le mod\u00e8le, p.ex. le X200 ?",
        "Kan du oppgi ordrenummeret, f.eks. A-1234?",
        "Ist der Kunde z.Zt. erreichbar?",
        "Ist der Brief z.Hd. Herrn M\u00fcller?",
        "Is it .NET 8?",
        "Is it the .zip file?",
        "Is it a .mov or an .mp4 video?",
        "Which Windows build are you on, e.g. 19045.4291?",
        "Was it Rp 1.250.000?",
        "Was it 1.234.567,00 \u20ac?",
        "Was it 12 345 678 VND?",
        "Was your order #1234 5678?",
        "Did you use FaceTime: audio or video?",
        "Note: is it the app? Hinweis: oder die Website?",
        "Is it the Wi-Fi: home or work? Or the COVID-19: booster page?",
    ],
)
def test_ordinary_confirmations_codes_abbreviations_and_amounts_pass(question):
    """Confirming an email or a payment, non-secret codes, abbreviations, file extensions,
    build numbers and amounts are sent as written."""
    assert outcome(check_question(question, None, 500)) == (question, False, None)


@pytest.mark.parametrize(
    "question",
    [
        "Please verify your account at the secure page",
        "Verify your account within 24 hours",
        "Your account is locked: confirm your identity",
        "Please confirm your identity so we can help",
        "Please verify your login details",
        "Please enter your credentials",
        "Verify your email address.",
        "Please confirm your account details",
        "What is the access code we sent you?",
        "Please buy three gift cards",
        "Send us the gift card codes",
        "What is your social security number?",
    ],
)
def test_phishing_phrasing_is_still_a_credential_request(question):
    """Narrowing the confirm, code and gift card rules still refuses phishing phrasing."""
    assert scan(question) == "credential_request"


@pytest.mark.parametrize(
    "text",
    [
        "a-" * 100_000,
        "1-" * 100_000,
        "\\" * 200_000,
        "%2e" * 66_667,
        "the .b " * 28_572,
        "x.c o " * 33_334,
        "ms-a:" * 40_000,
        "(a)." * 50_000,
        "2024/01/15-" * 18_182,
        "a" * 199_997 + " .b",
    ],
    ids=[
        "hyphens",
        "phone-windows",
        "backslashes",
        "percent",
        "extensions",
        "split-tld",
        "schemes",
        "quotes",
        "dates",
        "long-token",
    ],
)
def test_new_checks_are_linear_on_200000_characters(text):
    """The checks added for encodings, schemes, split TLDs and long numbers stay linear."""
    started = time.perf_counter()
    scan(text)
    assert time.perf_counter() - started < 2.0
