"""Signing webhook requests, and checking a signature as a receiver does (pure, standard library
only, so a receiver may copy `verify`).

`X-Triage-Signature: t=<unix seconds>,v1=<hex>`, where the hex is HMAC-SHA256 keyed with the
subscription's secret over the bytes `<t>.<raw body>` (Stripe's scheme). While a secret is being
replaced, the header carries one `v1=` per secret (the new one first); a receiver accepts the
request when any of them matches. The timestamp is the time of sending (each retry is signed
anew); a receiver rejects one too far from its clock, so a captured request cannot be replayed
later. The body does not change across retries.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "X-Triage-Signature"
SCHEME = "v1"
#: Seconds a receiver should accept between the signed time and its clock (Stripe's default).
DEFAULT_TOLERANCE = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[bytes], timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<hex>[,v1=<hex>…]`, one signature per secret."""
    return ",".join(
        [f"t={timestamp}", *(f"{SCHEME}={sign(secret, timestamp, body)}" for secret in secrets)]
    )


def verify(
    header: str,
    body: bytes,
    secret: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether `header` signs `body` (the raw bytes received) with `secret`, within `tolerance`
    seconds of `now`."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
