"""SendGrid Inbound Parse: with "POST the raw, full MIME message" on, the form's `email` field is
the message as received (used as it is); otherwise the parsed form (`from`, `subject`, `text`,
`html`, `headers` as a header block, attachments) becomes a record in our schema.

Credentials, whichever are set (both when both are): the signature of a parse webhook security
policy (ECDSA P-256 over SHA-256 of the timestamp header followed by the raw body, base64 DER in
`X-Twilio-Email-Event-Webhook-Signature`, the timestamp in
`X-Twilio-Email-Event-Webhook-Timestamp`, verified with the policy's public key), and basic auth
in the webhook URL. SendGrid retries only 5xx answers: a dead-lettered email is answered 422.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from intake.forms import Form
from intake.providers import Unauthorized, form_record, header_map, raw_item, record_item
from intake.providers import unreadable as unreadable_item
from producers.sources import Item

SOURCE = "sendgrid"
REJECTED_STATUS = 422
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
#: Header lines of the parsed form's `headers` block read at most.
MAX_HEADER_LINES = 500
_HEADER_LINE = re.compile(r"^([!-9;-~]{1,100}):[ \t]?(.*)$")


def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The policy's public key: PEM, or the bare base64 DER SendGrid's API returns."""
    pem = text.strip()
    if "BEGIN PUBLIC KEY" not in pem:
        pem = f"-----BEGIN PUBLIC KEY-----\n{pem}\n-----END PUBLIC KEY-----\n"
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the SendGrid verification key is not an elliptic-curve public key")
    return key


def verify_signature(
    headers: Mapping[str, str],
    body: bytes,
    key: ec.EllipticCurvePublicKey,
    now: float,
    max_age: float,
) -> None:
    signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise Unauthorized("missing signature or timestamp header")
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        raise Unauthorized("timestamp is not a number") from None
    if age > max_age:
        raise Unauthorized(f"stale timestamp ({age:.0f}s from now, over {max_age:g}s)")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Unauthorized("signature does not verify") from None


def _header_block(text: str) -> dict[str, str]:
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines()[:MAX_HEADER_LINES]:
        if line[:1] in (" ", "\t") and pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            continue
        match = _HEADER_LINE.match(line)
        if match:
            pairs.append((match.group(1), match.group(2).strip()))
    return header_map(pairs)


def to_item(form: Form, body: bytes) -> Item:
    raw = form.fields.get("email")
    if raw:
        return raw_item(SOURCE, raw)
    if "text" not in form.fields and "html" not in form.fields and "from" not in form.fields:
        return unreadable_item(SOURCE, "sendgrid: neither email nor a parsed message", body)
    headers = _header_block(form.text("headers"))
    record = form_record(form, headers, text="text", html="html", to="to")
    return record_item(SOURCE, record)
