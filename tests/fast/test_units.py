"""Pure functions: parametrised tables, no Redis, no HTTP."""

from __future__ import annotations

import json
import random
import re
import smtplib

import pytest
import structlog
from helpers import SEED_FIRST, make_email

from common.contract import EmailPayload
from common.errors import (
    ConfigError,
    CorruptThread,
    InvalidDecision,
    InvalidPayload,
    Permanent,
    RetryLater,
)
from common.logging import task_context
from common.settings import Settings, load_settings
from producers.dsn import OUR_REPLY_ID
from producers.parse import EmailParseError, parse_email, strip_quoted
from worker.decide.conversation import bound_text, check_alternation, user_turn
from worker.decide.decision import parse_decision
from worker.decide.drain import no_question_reason
from worker.decide.prompt import build_request, decision_schema
from worker.recovery.backoff import compute_backoff
from worker.reply.headers import (
    new_reply_tag,
    references_chain,
    reply_message_id,
    reply_subject,
)
from worker.reply.transports import translate_smtp
from worker.tasks import thread_id_from

LABELS = ["BILLING", "SHIPPING", "TECHNICAL", "OTHER"]


def email(message_id: str, text: str, subject: str = "") -> EmailPayload:
    return EmailPayload(
        message_id=message_id, thread_id="t1", from_addr="a@example.org", subject=subject, text=text
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Help", "Re: Help"),
        ("Re: Help", "Re: Help"),
        ("RE: re: Aw: Help", "Re: Help"),
        ("Fwd: Re: Invoice", "Re: Invoice"),
        ("", "Re: your support request"),
    ],
)
def test_reply_subject_never_piles_up(subject, expected):
    """A reply's subject gets one "Re: ", whatever prefixes the original had."""
    assert reply_subject(subject) == expected


def test_reply_message_id_names_thread_and_turn_with_an_unguessable_tag():
    """A reply's Message-ID is ours (support domain, thread, turn) plus 64 random bits: two
    questions of the same thread and turn never share an id a stranger could compute."""
    tags = {new_reply_tag() for _ in range(50)}
    assert len(tags) == 50 and all(re.fullmatch(r"[0-9a-f]{16}", tag) for tag in tags)
    first = reply_message_id("t1", 3, "Support <help@acme.test>", "00aa")
    assert first == "<triage.t1.3.00aa@acme.test>"
    assert OUR_REPLY_ID.fullmatch(reply_message_id("t1", 3, "help@acme.test", new_reply_tag()))


def test_references_chain_dedupes_and_bounds():
    """References are deduplicated in order and bounded to 20, keeping root and newest."""
    chain = references_chain(["<a>", "<b>"], ["<b>", "<c>"])
    assert chain == ["<a>", "<b>", "<c>"]
    long = references_chain([f"<{i}>" for i in range(50)], ["<new>"])
    assert len(long) == 20 and long[0] == "<0>" and long[-1] == "<new>"


def test_user_turn_merges_emails_in_order_and_bounds_size():
    """A user turn has one text block per email, in order, each cut to max_chars."""
    turn = user_turn([email("<1>", "first", "Subj"), email("<2>", "x" * 500)], max_chars=300)
    assert turn["role"] == "user"
    first, second = (block["text"] for block in turn["content"])
    assert first == "Subject: Subj\n\nfirst"
    assert second.startswith("x" * 300) and "truncated: 200 characters omitted" in second


def test_bound_text_keeps_short_text():
    """Text under the bound is returned unchanged."""
    assert bound_text("short", 10) == "short"


@pytest.mark.parametrize(
    "roles",
    [["assistant"], ["user", "user"], ["user", "assistant", "assistant"]],
)
def test_alternation_check_rejects_broken_arrays(roles):
    """A turn array that does not alternate from a user turn is a corrupt thread."""
    with pytest.raises(CorruptThread, match="turn"):
        check_alternation([{"role": role, "content": "x"} for role in roles])


def test_schema_restricts_labels_and_actions():
    """The decision schema lists the categories, and offers clarify only while allowed."""
    schema = decision_schema(LABELS, may_clarify=True)
    assert schema["properties"]["category"]["enum"] == LABELS
    assert schema["properties"]["action"]["enum"] == ["clarify", "classify"]
    assert decision_schema(LABELS, may_clarify=False)["properties"]["action"]["enum"] == [
        "classify"
    ]


def test_request_puts_system_top_level_and_caches_by_default():
    """The request has a top-level system prompt with its own cache breakpoint, no sampling, and
    caching unless off."""
    settings = Settings(_env_file=None)
    messages = [{"role": "user", "content": [{"type": "text", "text": SEED_FIRST}]}]
    request = build_request(settings, "Sys {categories}", messages, True, 256)
    [system] = request["system"]
    assert system["type"] == "text" and system["text"].startswith("Sys - BILLING")
    assert system["cache_control"] == {"type": "ephemeral"}  # the shared prefix of all threads
    assert request["messages"] is messages
    assert request["cache_control"] == {"type": "ephemeral"}  # the growing conversation
    assert not {"temperature", "top_p", "top_k"} & request.keys()
    no_cache = Settings(_env_file=None, prompt_caching=False)
    uncached = build_request(no_cache, "S", messages, False, 256)
    assert "cache_control" not in uncached and "cache_control" not in uncached["system"][0]


def decision(**fields):
    base = {"action": "classify", "question": "", "category": "BILLING", "confidence": 0.8}
    return json.dumps(base | {"reason": "r"} | fields)


def test_parse_decision_accepts_and_normalises():
    """A valid decision is parsed, its confidence clamped and its question trimmed."""
    parsed = parse_decision(decision(confidence=7), LABELS, True)
    assert parsed.category == "BILLING" and parsed.confidence == 1.0
    clarify = parse_decision(decision(action="clarify", question=" What broke?\n"), LABELS, True)
    assert clarify.is_clarify and clarify.question == "What broke?"


@pytest.mark.parametrize(
    ("text", "may_clarify", "message"),
    [
        ("{not json", True, "not a valid decision"),
        (decision(category="SALES"), True, "not one of"),
        (decision(action="clarify", question="Why?"), False, "no clarification is left"),
        (decision(action="clarify", question="  "), True, "no question"),
    ],
)
def test_parse_decision_rejects(text, may_clarify, message):
    """Bad JSON, an unknown label, or a forbidden or empty question is an invalid decision."""
    with pytest.raises(InvalidDecision, match=message):
        parse_decision(text, LABELS, may_clarify)


@pytest.mark.parametrize("attempt", [1, 2, 3, 8, 30])
def test_backoff_is_bounded_and_grows(attempt):
    """Every delay lies in 0 .. min(cap, base * 2**(attempt-1))."""
    rng = random.Random(7)
    ceiling = min(60, 2 ** (attempt - 1))
    delays = [compute_backoff(attempt, base=1, cap=60, rng=rng) for _ in range(200)]
    assert all(0 <= delay <= ceiling for delay in delays)


def test_backoff_is_full_jitter():
    """Full jitter spreads delays over the whole range, below half the ceiling too."""
    rng = random.Random(3)
    delays = [compute_backoff(7, base=1, cap=60, rng=rng) for _ in range(400)]
    assert min(delays) < 60 * 0.1 and max(delays) > 60 * 0.9
    assert sum(1 for delay in delays if delay < 30) > 150


def test_backoff_honours_retry_after_beyond_the_cap():
    """A server's retry-after is a floor the cap does not cut; only `limit` bounds it."""
    assert compute_backoff(1, base=1, cap=60, retry_after=30) == 30
    assert compute_backoff(1, base=1, cap=60, retry_after=300) == 300
    assert compute_backoff(1, base=1, cap=60, retry_after=300, limit=120) == 120


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {}), (("a", "b"), {}), (("bad id!",), {}), ((), {"other": "x"})],
)
def test_drain_task_arguments_are_checked(args, kwargs):
    """Drain task arguments other than one valid thread id are an invalid payload."""
    with pytest.raises(InvalidPayload):
        thread_id_from(args, kwargs)


def test_drain_task_argument_ok():
    """A thread id is accepted positionally or as the thread_id keyword."""
    assert thread_id_from(("t0123",), {}) == "t0123"
    assert thread_id_from((), {"thread_id": "t9"}) == "t9"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRIAGE_MAX_TOKENS": "lots"}, "TRIAGE_MAX_TOKENS"),
        ({"TRIAGE_MAX_CLARIFICATIONS": "-1"}, "TRIAGE_MAX_CLARIFICATIONS"),
        ({"TRIAGE_CATEGORIES": "billing,billing"}, "TRIAGE_CATEGORIES"),
        ({"TRIAGE_CATEGORIES": "[{"}, "TRIAGE_CATEGORIES"),
        ({"TRIAGE_SYSTEM_PROMPT_FILE": "/no/such/file"}, "TRIAGE_SYSTEM_PROMPT_FILE"),
        ({"TRIAGE_VISIBILITY_TIMEOUT_SECONDS": "100"}, "TRIAGE_VISIBILITY_TIMEOUT_SECONDS"),
        ({"TRIAGE_LOG_FORMAT": "xml"}, "TRIAGE_LOG_FORMAT"),
    ],
)
def test_bad_setting_names_the_variable(monkeypatch, env, message):
    """A bad setting fails with a config error that names its variable."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(_env_file=None)


def test_categories_from_names_or_json(monkeypatch):
    """Categories come from a comma-separated list of names or a JSON list."""
    monkeypatch.setenv("TRIAGE_CATEGORIES", "refunds, Other")
    assert load_settings(_env_file=None).category_names == ["REFUNDS", "OTHER"]
    monkeypatch.setenv("TRIAGE_CATEGORIES", '[{"name": "sales", "description": "buying"}]')
    assert load_settings(_env_file=None).categories[0].description == "buying"


def test_api_key_is_secret(monkeypatch):
    """The API key never appears in the settings' repr or str."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-very-secret")
    settings = load_settings(_env_file=None)
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)


def test_parse_email_prefers_plain_and_strips_quotes():
    """Parsing strips the quoted reply, decodes the subject and reads threading headers."""
    raw = make_email(
        "<p1@example.org>",
        "Thanks!\n\nOn Mon, 1 Jan 2026, Support wrote:\n> old question\n",
        subject="=?utf-8?q?Caf=C3=A9?= order",
        in_reply_to="<ours@example.com>",
        references=["<root@example.org>", "<ours@example.com>"],
    )
    parsed = parse_email(raw)
    assert parsed.text == "Thanks!"
    assert parsed.subject == "Café order"
    assert parsed.in_reply_to == "<ours@example.com>"
    assert parsed.references == ["<root@example.org>", "<ours@example.com>"]


def test_parse_email_html_only_and_missing_message_id():
    """HTML-only mail becomes its text; a missing Message-ID gets a stable synthetic one."""
    raw = make_email(None, "<p>Hello <b>there</b></p><script>x()</script>", html=True)
    parsed = parse_email(raw)
    assert parsed.text == "Hello there"
    assert parsed.message_id.startswith("<synthetic.")
    assert parse_email(raw).message_id == parsed.message_id


def test_parse_email_survives_a_wrong_charset():
    """A body in an unknown charset is still decoded."""
    raw = (
        b"From: a@example.org\r\nSubject: x\r\nMessage-ID: <c1@x>\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\ncaf\xe9 invoice\r\n"
    )
    assert "invoice" in parse_email(raw).text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"", "empty"), (b"Subject: hi\r\n\r\nbody\r\n", "no_sender")],
)
def test_parse_email_rejects(raw, reason):
    """An empty email, or one without a sender, is rejected with its reason."""
    with pytest.raises(EmailParseError) as info:
        parse_email(raw)
    assert info.value.reason == reason


def test_strip_quoted_keeps_text_before_signature():
    """Quoted lines and the signature are removed, the rest kept."""
    assert strip_quoted("Hello\n> quoted\nmore\n-- \nSig") == "Hello\nmore"


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (smtplib.SMTPResponseException(451, b"try later"), RetryLater, "smtp_deferred"),
        (smtplib.SMTPResponseException(554, b"no"), Permanent, "smtp_rejected"),
        (smtplib.SMTPAuthenticationError(535, b"bad creds"), Permanent, "smtp_auth"),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"unknown")}), Permanent, "smtp_rejected"),
        (smtplib.SMTPRecipientsRefused({"a@x": (452, b"full")}), RetryLater, "smtp_deferred"),
        (smtplib.SMTPServerDisconnected("gone"), RetryLater, "smtp_connection"),
        (ConnectionRefusedError(111, "refused"), RetryLater, "smtp_connection"),
    ],
)
def test_smtp_errors_are_translated(error, kind, reason):
    """SMTP errors become retry-later (4xx, connection) or permanent (5xx, auth)."""
    translated = translate_smtp(error)
    assert isinstance(translated, kind) and translated.reason == reason


def test_no_question_to_robots_or_past_the_limit():
    """No question is asked of bulk or no-reply senders, or past the clarification limit."""
    settings = Settings(_env_file=None, max_clarifications=1)
    robot = EmailPayload(
        message_id="<r>", thread_id="t", from_addr="x@y", text="t", flags=["bulk", "no_reply"]
    )
    assert no_question_reason([robot], 0, settings) == "robot:bulk,no_reply"
    assert no_question_reason([email("<h>", "hi")], 1, settings) == "clarification_limit"
    assert no_question_reason([email("<h>", "hi")], 0, settings) is None


def test_task_context_never_leaks_between_tasks():
    """A task's log context starts empty and is cleared when the task ends."""
    structlog.contextvars.bind_contextvars(stale="from an earlier task")
    with task_context(task_id="t-1"):
        structlog.contextvars.bind_contextvars(thread_id="th-1")
        assert structlog.contextvars.get_contextvars() == {"task_id": "t-1", "thread_id": "th-1"}
    assert structlog.contextvars.get_contextvars() == {}
