"""The intake's pure parts: the ingest task's argument, credentials, forms, and the composed app."""

from __future__ import annotations

import base64

import pytest
from helpers import ingest_settings, make_email
from pydantic import SecretStr

from common.contract import QUEUE_INGEST, TASK_INGEST
from intake.auth import basic_ok, bearer_ok
from intake.forms import BadForm, parse_form
from intake.task import item_from


def test_task_argument_base64_object_or_kept_as_unreadable() -> None:
    """Base64 MIME is an email, an object a JSON record; anything else an unreadable item with
    the reason `invalid_task`; an argument too long for the size limit is oversize, undecoded."""
    raw = make_email("<t@example.org>", "Hello")
    email = item_from((base64.b64encode(raw).decode(),), {}, 10_000)
    assert (email.kind, email.data) == ("email", raw)
    record = item_from(({"from": "a@example.org", "subject": "s", "text": "t"},), {}, 10_000)
    assert record.kind == "jsonl" and b'"from": "a@example.org"' in record.data
    for args, kwargs in [((), {}), (("a", "b"), {}), ((42,), {}), (("%%%",), {})]:
        bad = item_from(args, kwargs, 10_000)
        assert bad.kind == "unreadable" and bad.error.startswith("invalid_task: ")
    big = item_from(("A" * 20_000,), {}, 10_000)
    assert big.kind == "oversize" and len(big.data) <= 4096


def test_bearer_and_basic_credentials() -> None:
    """Any configured token opens /v1/emails, nothing else does; basic auth needs both parts."""
    tokens = [SecretStr("one"), SecretStr("two")]
    assert bearer_ok("Bearer two", tokens) and bearer_ok("bearer one", tokens)
    assert not any(bearer_ok(h, tokens) for h in (None, "", "Bearer", "Bearer three", "Basic two"))
    assert not bearer_ok("Bearer one", [])
    header = "Basic " + base64.b64encode(b"user:pass").decode()
    assert basic_ok(header, "user", SecretStr("pass"))
    assert not basic_ok(header, "user", SecretStr("other"))
    assert not basic_ok("Basic !!!", "user", SecretStr("pass"))


def test_forms_keep_field_bytes_and_count_files() -> None:
    """Form fields stay bytes (a raw email in any charset reaches the parser unchanged); files
    are kept as name, type and size only; something else is a BadForm."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nSubject: caf\xe9\r\n'
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n12345\r\n--b--\r\n"
    )
    form = parse_form("multipart/form-data; boundary=b", body)
    assert form.fields["email"] == b"Subject: caf\xe9"
    assert [(f.filename, f.content_type, f.size) for f in form.files] == [
        ("a.pdf", "application/pdf", 5)
    ]
    assert parse_form("application/x-www-form-urlencoded", b"a=1&b=%FF").fields["b"] == b"\xff"
    with pytest.raises(BadForm):
        parse_form("text/plain", b"x")


def test_worker_app_registers_the_ingest_task_on_its_queue(state_url: str) -> None:
    """`intake.worker_app` is the worker's app plus `triage.ingest_email` and the ingest queue."""
    from intake.worker_app import create_app

    app = create_app(ingest_settings(state_url))
    assert TASK_INGEST in app.tasks
    assert QUEUE_INGEST in {queue.name for queue in app.conf.task_queues}
    assert app.amqp.router.route({}, TASK_INGEST)["queue"].name == QUEUE_INGEST
