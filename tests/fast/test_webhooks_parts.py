"""The pure parts of webhook delivery: signatures, the retry schedule, answers, subscriptions,
the published schema and the receivers' verifier in the docs."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import REPO
from referencing import Registry, Resource

from common.errors import ConfigError
from common.settings import load_settings
from common.webhooks import EVENT_TYPES, WebhooksFileError, load_webhooks_file
from worker import events
from worker.deliver import envelope
from worker.deliver.policy import (
    budget_span,
    classify,
    lease_seconds,
    parse_retry_after,
    retry_delay,
)
from worker.deliver.signing import sign, signature_header, verify

SECRET = b"whsec_0123456789abcdef"


def independent_signature(secret: bytes, header: str, body: bytes) -> bool:
    """Stripe's scheme written out again, sharing no code with the worker."""
    fields = dict(part.split("=", 1) for part in header.split(",")[:1])
    stamp = fields["t"]
    digests = [part.split("=", 1)[1] for part in header.split(",")[1:]]
    mac = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return mac in digests


def docs_verifier() -> Any:
    """`verify_signature` from the Python block of docs/webhooks.md, as a receiver copies it."""
    text = (REPO / "docs" / "webhooks.md").read_text()
    block = re.search(r"<!-- verifier:.*?-->\n```python\n(.*?)```", text, re.S)
    assert block, "docs/webhooks.md lost its verifier block"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)
    return namespace["verify_signature"]


def test_signature_header_is_hmac_sha256_over_timestamp_dot_body():
    """The header is `t=<t>,v1=<hex>` and an independent HMAC of "<t>.<body>" matches it."""
    body = b'{"id":"1-0","type":"classified"}'
    header = signature_header([SECRET], 1_795_000_000, body)
    assert re.fullmatch(r"t=1795000000,v1=[0-9a-f]{64}", header)
    assert independent_signature(SECRET, header, body)
    assert not independent_signature(b"another-secret-of-16", header, body)


def test_rolling_secrets_sign_once_each_and_either_verifies():
    """With a previous secret, the header carries two v1 signatures; both secrets verify."""
    body = b"{}"
    old = b"whsec_old_0123456789"
    header = signature_header([SECRET, old], 1_795_000_000, body)
    assert header.count("v1=") == 2
    for secret in (SECRET, old):
        assert verify(header, body, secret, now=1_795_000_010)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("nothing", True),
        ("body", False),
        ("secret", False),
        ("too old", False),
        ("from the future", False),
        ("no timestamp", False),
        ("no signature", False),
    ],
)
def test_the_docs_verifier_and_ours_agree(
    change: str, expected: bool, monkeypatch: pytest.MonkeyPatch
):
    """The receivers' snippet in docs/webhooks.md and `signing.verify` accept and reject alike."""
    now = 1_795_000_000
    body, secret = b'{"id":"1-0"}', SECRET
    header = signature_header([SECRET], now, body)
    if change == "body":
        body = b'{"id":"1-1"}'
    elif change == "secret":
        secret = b"whsec_not_the_secret"
    elif change == "too old":
        header = signature_header([SECRET], now - 301, body)
    elif change == "from the future":
        header = signature_header([SECRET], now + 301, body)
    elif change == "no timestamp":
        header = header.split(",", 1)[1]
    elif change == "no signature":
        header = header.split(",", 1)[0]
    monkeypatch.setattr(time, "time", lambda: float(now))  # the snippet reads the clock
    assert docs_verifier()(header, body, secret.decode()) is expected
    assert verify(header, body, secret, now=now) is expected


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (301, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (408, "retry"),
        (409, "permanent"),
        (410, "permanent"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
    ],
)
def test_answers_are_delivered_retried_or_permanent(status: int, verdict: str):
    """2xx delivers; 408, 429 and 5xx retry; any other answer is permanent."""
    assert classify(status) == verdict


def test_retry_delay_doubles_with_equal_jitter_up_to_the_cap():
    """Attempt n waits between half and all of min(cap, base * 2^(n-1))."""
    rng = random.Random(7)
    for attempt in range(1, 20):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = retry_delay(attempt, base=2.0, cap=60.0, rng=rng)
            assert ceiling / 2 <= delay <= ceiling


def test_retry_after_is_a_floor_bounded_by_the_cap():
    """A server's Retry-After is waited at least, but never beyond the cap."""
    assert retry_delay(1, base=1.0, cap=60.0, retry_after=30.0) >= 30.0
    assert retry_delay(1, base=1.0, cap=60.0, retry_after=86_400.0) == 60.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Thu, 01 Jan 2026 00:01:40 GMT", 100.0),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None):
    """`Retry-After` as delta-seconds or an HTTP date, relative to now."""
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert parse_retry_after(value, now) == seconds


def test_the_default_budget_spans_hours_and_a_lease_outlives_an_attempt():
    """15 attempts from 5 s capped at an hour span 2.7-5.4 h; a lease covers 3 timeouts."""
    shortest, longest = budget_span(15, base=5.0, cap=3600.0)
    assert round(shortest / 3600, 1) == 2.7
    assert round(longest / 3600, 1) == 5.4
    assert lease_seconds(10.0) == 35.0


def test_event_types_are_named_once_in_step():
    """common.webhooks (read by settings) and worker.events list the same event types."""
    assert EVENT_TYPES == events.EVENT_TYPES


def test_published_webhook_schema_matches_the_code():
    """docs/webhooks.schema.json is what `python -m worker.deliver.envelope` prints."""
    published = json.loads((REPO / "docs" / "webhooks.schema.json").read_text())
    assert published == envelope.json_schema()


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_request_body_validates_against_the_schemas(kind: str):
    """The body of each event type validates against the webhook schema, whose `data` refers
    to the event schema, and is byte for byte stable."""
    event = envelope.sample_event(kind, "t-1")
    body = envelope.body("1795000000123-0", kind, "t-1", event)
    assert body == envelope.body("1795000000123-0", kind, "t-1", dict(event))
    document = json.loads(body)
    assert document["created_at"] == 1795000000.123
    event_schema = events.json_schema()
    registry = Registry().with_resource(event_schema["$id"], Resource.from_contents(event_schema))
    jsonschema.Draft202012Validator(envelope.json_schema(), registry=registry).validate(document)
    assert envelope.json_schema()["properties"]["data"]["$ref"] == "events.schema.json"


def test_settings_make_a_default_subscription_from_url_and_secret():
    """TRIAGE_WEBHOOK_URL and TRIAGE_WEBHOOK_SECRET alone: one `default` for every type."""
    settings = load_settings(webhook_url="https://h.example.com/x", webhook_secret="s" * 16)
    (only,) = settings.webhook_subscriptions
    assert (only.name, only.url, only.events) == ("default", "https://h.example.com/x", EVENT_TYPES)
    assert "s" * 16 not in repr(settings) + repr(only)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_url": "https://h.example.com/x"}, "TRIAGE_WEBHOOK_SECRET: required"),
        ({"webhook_url": "h.example.com", "webhook_secret": "s" * 16}, "TRIAGE_WEBHOOK_URL"),
        ({"webhook_url": "https://h/x", "webhook_secret": "short"}, "at least 16 characters"),
        ({"webhook_events": "classified,needs_review"}, "unknown event type(s) needs_review"),
    ],
)
def test_bad_webhook_settings_name_the_variable(overrides: dict[str, str], message: str):
    """A missing secret, a URL without scheme, a short secret, an unknown type: one line."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(**overrides)


def test_a_subscriptions_file_adds_endpoints(tmp_path: Path):
    """A YAML file adds named subscriptions with their own types, headers and timeout."""
    path = tmp_path / "webhooks.yaml"
    path.write_text(
        "webhooks:\n"
        "  - name: helpdesk\n"
        "    url: https://helpdesk.example.com/hook\n"
        "    secret: whsec_0123456789abcdef\n"
        "    events: [classified, escalated]\n"
        "    headers: {Authorization: Bearer x}\n"
        "    timeout_seconds: 3\n"
    )
    settings = load_settings(
        webhooks_file=str(path), webhook_url="https://a.example.com", webhook_secret="s" * 16
    )
    names = [s.name for s in settings.webhook_subscriptions]
    assert names == ["default", "helpdesk"]
    helpdesk = settings.webhook_subscriptions[1]
    assert helpdesk.events == ("classified", "escalated")
    assert helpdesk.timeout_seconds == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("name: Bad Name", "name 'Bad Name' must match"),
        ("events: [sorted]", "unknown event type(s) sorted"),
        ("headers: {X-Triage-Signature: x}", "is set by the delivery worker"),
        ("headers: {Idempotency-Key: x}", "is set by the delivery worker"),
        ("timeout_seconds: 0", "webhooks.0.timeout_seconds"),
        ("colour: blue", "webhooks.0.colour"),
    ],
)
def test_a_bad_subscriptions_file_names_file_entry_and_problem(
    tmp_path: Path, entry: str, message: str
):
    """Each mistake in the file is one message naming the file, where, and what."""
    path = tmp_path / "webhooks.yaml"
    base = {"name": "ok", "url": "https://h.example.com/x", "secret": "whsec_0123456789abcdef"}
    key = entry.split(":", 1)[0]
    rest = "".join(f"    {k}: {v}\n" for k, v in base.items() if k != key)
    path.write_text(f"webhooks:\n  - {entry}\n{rest}")
    with pytest.raises(WebhooksFileError) as raised:
        load_webhooks_file(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_signature_of_known_vector():
    """A fixed vector, so a change of the scheme cannot pass unnoticed."""
    expected = hmac.new(b"k" * 16, b"1.x", hashlib.sha256).hexdigest()
    assert sign(b"k" * 16, 1, b"x") == expected
