"""Credentials compared in constant time: bearer tokens for our endpoints, basic auth for the
providers that put credentials in the webhook URL (Postmark, SendGrid)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from pydantic import SecretStr


def _bytes(value: str) -> bytes:
    return value.encode("utf-8")


def bearer_ok(header: str | None, tokens: Sequence[SecretStr]) -> bool:
    """`Authorization: Bearer T` where T is one of `tokens`; every token is compared (no early
    exit that would tell which one nearly matched). No tokens configured: nothing is let in."""
    if not header or not tokens:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    candidate = _bytes(given.strip())
    found = False
    for token in tokens:
        found |= hmac.compare_digest(candidate, _bytes(token.get_secret_value()))
    return found


def basic_ok(header: str | None, username: str, password: SecretStr) -> bool:
    """`Authorization: Basic base64(user:password)` with these credentials."""
    if not header:
        return False
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, secret = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, _bytes(username))
    secret_ok = hmac.compare_digest(secret, _bytes(password.get_secret_value()))
    return bool(sep) and user_ok and secret_ok
