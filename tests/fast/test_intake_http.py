"""The HTTP intake served by uvicorn on a free port, spoken to over real HTTP, with real Redis.

Signatures are made by the `openssl` command (an implementation independent of ours): HMAC-SHA256
for Mailgun, ECDSA P-256 for SendGrid's signed Inbound Parse.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
import uvicorn
from helpers import dead_letters, ingest_env, make_email, settings_from_env, wait_for

from common.contract import QUEUE_TRIAGE
from intake.server import config, serve_socket

TOKEN = "tok-intake-test"
MAILGUN_KEY = "key-mailgun-signing-test"
POSTMARK = ("postmark-user", "postmark-pass")
MAX_EMAIL = 64 * 1024
MAX_QUEUE = 50

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl(*args: str, data: bytes = b"") -> bytes:
    return subprocess.run(
        ["openssl", *args], input=data, capture_output=True, check=True, timeout=30
    ).stdout


@dataclass
class Intake:
    port: int
    broker: redis.Redis
    sendgrid_key: Path

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body, headers or {})
            response = conn.getresponse()
            raw = response.read()
            return (
                response.status,
                json.loads(raw) if raw else {},
                {k.lower(): v for k, v in response.getheaders()},
            )
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def email(self, raw: bytes, token: str = TOKEN, **headers: str) -> Any:
        sent = {"Content-Type": "message/rfc822", "Authorization": f"Bearer {token}", **headers}
        return self.post("/v1/emails", raw, sent)


@pytest.fixture(scope="module")
def intake(state_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    keys_dir = tmp_path_factory.mktemp("sendgrid")
    private = keys_dir / "key.pem"
    private.write_bytes(openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout"))
    public = openssl("ec", "-in", str(private), "-pubout")
    env = ingest_env(
        state_url,
        TRIAGE_INTAKE_TOKENS=f"other-token,{TOKEN}",
        TRIAGE_MAILGUN_SIGNING_KEY=MAILGUN_KEY,
        TRIAGE_SENDGRID_PUBLIC_KEY=public.decode(),
        TRIAGE_POSTMARK_USERNAME=POSTMARK[0],
        TRIAGE_POSTMARK_PASSWORD=POSTMARK[1],
        TRIAGE_MAX_EMAIL_BYTES=str(MAX_EMAIL),
        TRIAGE_INTAKE_MAX_QUEUE=str(MAX_QUEUE),
        TRIAGE_INTAKE_RETRY_AFTER_SECONDS="7",
    )
    settings = settings_from_env(env)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config(settings, "127.0.0.1", sock.getsockname()[1]))
    thread = threading.Thread(target=serve_socket, args=(server, sock), daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, "the intake to serve")
    broker = redis.Redis.from_url(settings.effective_broker_url)
    try:
        yield Intake(sock.getsockname()[1], broker, private)
    finally:
        server.should_exit = True
        thread.join(30)
        broker.close()
        sock.close()


@pytest.fixture
def api(intake: Intake, r: redis.Redis) -> Intake:
    """The intake with empty state and an empty broker queue."""
    intake.broker.flushdb()
    return intake


def inbox_ids(r: redis.Redis) -> list[str]:
    """Message-IDs of every email waiting in a thread inbox (no worker drains in these tests)."""
    found = []
    for key in r.scan_iter(match="triage:thread:*:inbox"):
        found += [json.loads(entry)["message_id"] for entry in r.lrange(key, 0, -1)]
    return found


def test_raw_mime_is_enqueued_then_answered_as_a_duplicate(api: Intake, r: redis.Redis) -> None:
    """Raw MIME is 202 enqueued with its thread; the same email again is 200 duplicate."""
    raw = make_email("<raw-1@example.org>", "My parcel never arrived.")
    status, body, headers = api.email(raw)
    assert status == 202, body
    assert body["status"] == "enqueued" and body["message_id"] == "<raw-1@example.org>"
    assert headers["x-request-id"]
    status, again, _ = api.email(raw)
    assert (status, again["status"], again["thread_id"]) == (200, "duplicate", body["thread_id"])
    assert inbox_ids(r) == ["<raw-1@example.org>"]


def test_json_schema_email_is_enqueued_and_threaded(api: Intake, r: redis.Redis) -> None:
    """A JSON-schema email is enqueued; its sender's reply joins its thread, a stranger's not."""
    first = {
        "message_id": "<j1@example.org>",
        "from": "Dana <dana@example.org>",
        "subject": "Refund",
        "text": "I was charged twice.",
    }
    reply = {
        "message_id": "<j2@example.org>",
        "from": "dana@example.org",
        "subject": "Re: Refund",
        "text": "Any news?",
        "in_reply_to": "<j1@example.org>",
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    status, one, _ = api.post("/v1/emails", json.dumps(first).encode(), headers)
    assert status == 202, one
    status, two, _ = api.post("/v1/emails", json.dumps(reply).encode(), headers)
    assert status == 202 and two["thread_id"] == one["thread_id"]
    assert sorted(inbox_ids(r)) == ["<j1@example.org>", "<j2@example.org>"]
    assert "refused_thread_id" not in two
    stranger = {**reply, "message_id": "<j3@attacker.example>", "from": "eve@attacker.example"}
    status, three, _ = api.post("/v1/emails", json.dumps(stranger).encode(), headers)
    assert status == 202 and three["thread_id"] != one["thread_id"]
    assert three["refused_thread_id"] == one["thread_id"]


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("message/rfc822", b"just some bytes, no headers at all", "not_an_email"),
        ("message/rfc822", b"Subject: no sender\r\n\r\nhello\r\n", "no_sender"),
        ("application/json", b'{"subject": "no from", "text": "x"}', "invalid_jsonl"),
        ("application/json", b"{not json", "invalid_jsonl"),
    ],
)
def test_malformed_email_is_422_and_kept_in_the_dead_letters(
    api: Intake, r: redis.Redis, content_type: str, body: bytes, reason: str
) -> None:
    """An unusable body is 422 with the reason and dead-lettered under its request id."""
    headers = {
        "Content-Type": content_type,
        "Authorization": f"Bearer {TOKEN}",
        "X-Request-ID": "req-malformed-1",
    }
    status, answer, _ = api.post("/v1/emails", body, headers)
    assert (status, answer["reason"]) == (422, reason), answer
    [letter] = dead_letters(r)
    assert letter.reason == reason
    assert letter.body["payload"]["source"] == "http:req-malformed-1"
    assert letter.body["payload"]["raw"] == body.decode()
    assert inbox_ids(r) == []


def test_oversize_body_is_413_and_nothing_is_read(api: Intake, r: redis.Redis) -> None:
    """A body over TRIAGE_MAX_EMAIL_BYTES is 413; nothing is enqueued or dead-lettered."""
    raw = make_email("<big@example.org>", "x" * (MAX_EMAIL + 10))
    status, answer, _ = api.email(raw)
    assert (status, answer["reason"]) == (413, "too_large")
    assert inbox_ids(r) == [] and dead_letters(r) == []


def test_missing_or_wrong_token_is_401_and_logged_without_the_body(
    api: Intake, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token or a wrong one is 401; the refusal is logged with a reason and without the body."""
    logs: list[dict[str, Any]] = []

    class Recorder:
        """The app's logger, recording what it is given (events as data)."""

        def _record(self, event: str, **fields: Any) -> None:
            logs.append({"event": event, **fields})

        info = warning = error = _record

    monkeypatch.setattr("intake.app.log", Recorder())
    raw = make_email("<auth@example.org>", "SECRET-BODY-TEXT")
    assert api.post("/v1/emails", raw, {"Content-Type": "message/rfc822"})[0] == 401
    status, _, headers = api.email(raw, token="tok-wrong")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    wait_for(lambda: len([e for e in logs if e["event"] == "intake.request"]) == 2, 5, "logs")
    refused = [e for e in logs if e["event"] == "intake.refused"]
    assert [e["reason"] for e in refused] == ["auth", "auth"]
    assert "SECRET-BODY-TEXT" not in repr(logs) and "tok-wrong" not in repr(logs)
    assert inbox_ids(r) == []


def test_other_content_type_is_415(api: Intake) -> None:
    """Only message/rfc822 and application/json are emails: text/plain is 415."""
    headers = {"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"}
    assert api.post("/v1/emails", b"hello", headers)[0] == 415


def test_deep_triage_queue_is_503_with_retry_after(api: Intake, r: redis.Redis) -> None:
    """Past TRIAGE_INTAKE_MAX_QUEUE waiting tasks new mail is 503 + Retry-After and not taken;
    once the queue drains it is accepted again (the depth is re-read at most once a second)."""
    api.broker.rpush(QUEUE_TRIAGE, *[b"{}"] * (MAX_QUEUE + 1))
    probe = make_email("<bp-probe@example.org>", "Where is my order?")
    wait_for(lambda: api.email(probe)[0] == 503, 5, "the intake to push back")
    raw = make_email("<bp@example.org>", "Where is my parcel?")
    status, answer, headers = api.email(raw)
    assert (status, answer["reason"], headers["retry-after"]) == (503, "backpressure", "7")
    assert "<bp@example.org>" not in inbox_ids(r)
    api.broker.delete(QUEUE_TRIAGE)
    wait_for(lambda: api.email(raw)[0] == 202, 5, "the intake to accept again")
    assert inbox_ids(r).count("<bp@example.org>") == 1


def test_health_readiness_and_metrics(api: Intake) -> None:
    """/healthz and /readyz answer 200 with Redis up; /metrics counts requests by route."""
    assert api.get("/healthz") == (200, b'{"status":"ok"}')
    status, body = api.get("/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready", "redis": "ok", "broker": "ok"}
    api.email(make_email("<m@example.org>", "Hello"))
    status, text = api.get("/metrics")
    assert status == 200
    assert b'triage_intake_requests_total{route="/v1/emails",status="202"}' in text
    assert b'triage_intake_emails_total{outcome="enqueued",source="http"}' in text


# --- Mailgun --------------------------------------------------------------------------------


def mailgun_fields(timestamp: int | None = None, key: str = MAILGUN_KEY) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    token = "t" * 50
    digest = openssl("dgst", "-sha256", "-hmac", key, data=(ts + token).encode())
    return {"timestamp": ts, "token": token, "signature": digest.split(b"= ")[-1].strip().decode()}


def test_mailgun_mime_forward_with_valid_signature_is_enqueued(api: Intake, r: redis.Redis) -> None:
    """A route's forward to .../mime (body-mime, urlencoded) signed with the key is enqueued."""
    raw = make_email("<mg-1@example.org>", "The app crashes on login.")
    body = urlencode({"body-mime": raw.decode(), **mailgun_fields()}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, answer, _ = api.post("/v1/inbound/mailgun/mime", body, headers)
    assert (status, answer["message_id"]) == (202, "<mg-1@example.org>"), answer
    assert inbox_ids(r) == ["<mg-1@example.org>"]


@pytest.mark.parametrize(
    "fields",
    [
        lambda: mailgun_fields(key="key-someone-else"),
        lambda: mailgun_fields(timestamp=int(time.time()) - 3600),
        lambda: {"timestamp": str(int(time.time())), "token": "t" * 50},
    ],
    ids=["wrong-key", "stale-timestamp", "no-signature"],
)
def test_mailgun_bad_signature_is_401(api: Intake, r: redis.Redis, fields: Any) -> None:
    """A wrong signature, a stale timestamp or none at all is 401; nothing is taken."""
    raw = make_email("<mg-bad@example.org>", "Hello")
    body = urlencode({"body-mime": raw.decode(), **fields()}).encode()
    status, answer, _ = api.post(
        "/v1/inbound/mailgun/mime", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (status, answer["reason"]) == (401, "signature")
    assert inbox_ids(r) == [] and dead_letters(r) == []


def multipart(
    fields: dict[str, str], files: list[tuple[str, str, str, bytes]]
) -> tuple[bytes, str]:
    """A multipart/form-data body as providers send it: fields, then files."""
    boundary = "----triage-test-boundary"
    out = []
    for name, value in fields.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        )
        out.append(value.encode() + b"\r\n")
    for name, filename, ctype, data in files:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
        )
        out.append(data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def test_mailgun_parsed_form_with_attachment_becomes_an_email(api: Intake, r: redis.Redis) -> None:
    """Mailgun's parsed form (no mime suffix) is read through the JSON schema, attachments as
    metadata, the Message-ID from message-headers."""
    headers_json = json.dumps(
        [["Message-Id", "<mg-parsed@example.org>"], ["From", "dana@example.org"]]
    )
    body, ctype = multipart(
        {
            "from": "Dana <dana@example.org>",
            "subject": "Invoice",
            "body-plain": "See attached.",
            "message-headers": headers_json,
            **mailgun_fields(),
        },
        [("attachment-1", "invoice.pdf", "application/pdf", b"%PDF-1.4 data")],
    )
    status, answer, _ = api.post("/v1/inbound/mailgun", body, {"Content-Type": ctype})
    assert (status, answer["message_id"]) == (202, "<mg-parsed@example.org>"), answer
    [key] = list(r.scan_iter(match="triage:thread:*:inbox"))
    entry = json.loads(r.lindex(key, 0))
    assert entry["attachments"] == [
        {"name": "invoice.pdf", "content_type": "application/pdf", "size": 13}
    ]


# --- SendGrid -------------------------------------------------------------------------------


def sendgrid_headers(key: Path, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = openssl("dgst", "-sha256", "-sign", str(key), data=ts.encode() + body)
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


def test_sendgrid_raw_mime_with_valid_signature_is_enqueued(api: Intake, r: redis.Redis) -> None:
    """Inbound Parse posting the raw MIME (`email` field), signed with ECDSA, is enqueued."""
    raw = make_email("<sg-1@example.org>", "Wrong size delivered.")
    body, ctype = multipart({"email": raw.decode(), "to": "support@example.com"}, [])
    headers = {"Content-Type": ctype, **sendgrid_headers(api.sendgrid_key, body)}
    status, answer, _ = api.post("/v1/inbound/sendgrid", body, headers)
    assert (status, answer["message_id"]) == (202, "<sg-1@example.org>"), answer
    assert inbox_ids(r) == ["<sg-1@example.org>"]


def test_sendgrid_tampered_body_is_401(api: Intake, r: redis.Redis) -> None:
    """A body changed after signing, or a stale signature, is 401."""
    raw = make_email("<sg-2@example.org>", "Hello")
    body, ctype = multipart({"email": raw.decode()}, [])
    signed = sendgrid_headers(api.sendgrid_key, body)
    tampered = body.replace(b"Hello", b"Hallo")
    assert api.post("/v1/inbound/sendgrid", tampered, {"Content-Type": ctype, **signed})[0] == 401
    stale = sendgrid_headers(api.sendgrid_key, body, int(time.time()) - 3600)
    assert api.post("/v1/inbound/sendgrid", body, {"Content-Type": ctype, **stale})[0] == 401
    assert inbox_ids(r) == []


# --- Postmark -------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def postmark_document(**extra: Any) -> dict[str, Any]:
    """Postmark's inbound JSON, the fields its documentation shows."""
    return {
        "From": "dana@example.org",
        "FromFull": {"Email": "dana@example.org", "Name": "Dana Customer"},
        "To": "support@example.com",
        "ToFull": [{"Email": "support@example.com", "Name": ""}],
        "Subject": "Broken screen",
        "MessageID": "22c74902-a0c1-4511-804f2-341342852c90",
        "Date": "Thu, 5 Apr 2026 16:59:01 +0200",
        "TextBody": "My screen arrived broken.",
        "HtmlBody": "<p>My screen arrived broken.</p>",
        "Headers": [{"Name": "Message-ID", "Value": "<pm-1@example.org>"}],
        "Attachments": [
            {
                "Name": "photo.jpg",
                "Content": "AAAA",
                "ContentType": "image/jpeg",
                "ContentLength": 3,
            }
        ],
        **extra,
    }


def test_postmark_json_with_basic_auth_is_enqueued(api: Intake, r: redis.Redis) -> None:
    """Postmark's JSON is enqueued under the Message-ID header (not Postmark's MessageID)."""
    headers = {"Content-Type": "application/json", "Authorization": basic(*POSTMARK)}
    body = json.dumps(postmark_document()).encode()
    status, answer, _ = api.post("/v1/inbound/postmark", body, headers)
    assert (status, answer["message_id"]) == (202, "<pm-1@example.org>"), answer
    raw = make_email("<pm-raw@example.org>", "Raw variant")
    with_raw = json.dumps(postmark_document(RawEmail=raw.decode())).encode()
    status, answer, _ = api.post("/v1/inbound/postmark", with_raw, headers)
    assert (status, answer["message_id"]) == (202, "<pm-raw@example.org>"), answer


def test_postmark_wrong_credentials_401_and_rejected_mail_403(api: Intake, r: redis.Redis) -> None:
    """Wrong basic auth is 401; a payload with no sender is dead-lettered and answered 403, the
    status that stops Postmark's retries."""
    body = json.dumps(postmark_document()).encode()
    wrong = {"Content-Type": "application/json", "Authorization": basic("postmark-user", "nope")}
    assert api.post("/v1/inbound/postmark", body, wrong)[0] == 401
    bad = json.dumps(postmark_document(From="", FromFull={})).encode()
    headers = {"Content-Type": "application/json", "Authorization": basic(*POSTMARK)}
    status, answer, _ = api.post("/v1/inbound/postmark", bad, headers)
    assert (status, answer["reason"]) == (403, "invalid_jsonl"), answer
    assert [letter.reason for letter in dead_letters(r)] == ["invalid_jsonl"]
    assert inbox_ids(r) == []
