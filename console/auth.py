"""Who is asking: HTTP basic auth (users), bearer tokens, or the login form's session cookie.

Users and tokens come from the settings (`common.access.Principal`: name, secret, role). A
session cookie is `name.expiry.signature`, the signature an HMAC over the name, the expiry and a
fingerprint of the user's password, so removing a user or changing the password ends their
sessions. CSRF tokens are `issued.signature` over the identity they were issued to (the user, or
the anonymous nonce of the login form) and expire with the session length. Every secret is
compared in constant time. With no user and no token configured the console is open, read-only,
to whoever reaches it (loopback only; see `console.app`): an anonymous viewer who never sees an
email body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr

from common.access import ROLE_VIEWER, Principal
from common.settings import Settings

SESSION_COOKIE = "triage_console"
NONCE_COOKIE = "triage_console_nonce"
#: Compared against when a name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = hashlib.sha256(b"no such user").digest()


@dataclass(frozen=True)
class Identity:
    """Who made a request, and what that allows."""

    name: str
    role: str
    via: str  # basic, bearer, session, anonymous

    @property
    def signed_in(self) -> bool:
        """Signed-in users see email bodies; the anonymous viewer (open console) does not."""
        return self.via != "anonymous"

    @property
    def may_act(self) -> bool:
        return self.signed_in and self.role != ROLE_VIEWER

    @property
    def csrf_key(self) -> str:
        return f"user:{self.name}"


ANONYMOUS = Identity(name="anonymous", role=ROLE_VIEWER, via="anonymous")


def _digest(secret: SecretStr) -> bytes:
    return hashlib.sha256(secret.get_secret_value().encode("utf-8")).digest()


class Gate:
    """Checks credentials against the configured users and tokens; signs and reads sessions."""

    def __init__(self, settings: Settings) -> None:
        self._users = {user.name: user for user in settings.console_users}
        self._tokens = list(settings.console_tokens)
        configured = settings.console_secret
        self._key = (
            configured.get_secret_value().encode("utf-8")
            if configured is not None
            else secrets.token_bytes(32)
        )
        self.session_seconds = int(settings.console_session_hours * 3600)

    @property
    def open(self) -> bool:
        """No user and no token configured: read-only for everyone who reaches it."""
        return not self._users and not self._tokens

    @property
    def has_users(self) -> bool:
        return bool(self._users)

    # --- credentials -----------------------------------------------------------------------

    def basic(self, header: str) -> Identity | None:
        """`Basic base64(name:password)` of a configured user."""
        try:
            decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        name, sep, password = decoded.partition(":")
        return self.password(name, password) if sep else None

    def password(self, name: str, password: str) -> Identity | None:
        """The user if `password` is theirs (the login form and basic auth)."""
        user = self._users.get(name)
        expected = _digest(user.secret) if user is not None else _DUMMY
        given = hashlib.sha256(password.encode("utf-8")).digest()
        if hmac.compare_digest(given, expected) and user is not None:
            return Identity(user.name, user.role, "basic")
        return None

    def bearer(self, token: str) -> Identity | None:
        """A configured token; every one is compared (no early exit)."""
        given = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found: Principal | None = None
        for principal in self._tokens:
            if hmac.compare_digest(given, _digest(principal.secret)):
                found = principal
        return Identity(found.name, found.role, "bearer") if found is not None else None

    def authorization(self, header: str) -> Identity | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            return self.basic(value)
        if scheme.lower() == "bearer":
            return self.bearer(value)
        return None

    # --- signatures ------------------------------------------------------------------------

    def sign(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def session(self, name: str, now: float | None = None) -> str:
        """A session cookie value for a user who signed in with the form."""
        user = self._users[name]
        expires = str(int((now or time.time()) + self.session_seconds))
        encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii")
        fingerprint = _digest(user.secret).hex()[:16]
        return f"{encoded}.{expires}.{self.sign('session', name, expires, fingerprint)}"

    def from_session(self, cookie: str, now: float | None = None) -> Identity | None:
        try:
            encoded, expires, signature = cookie.split(".")
            name = base64.urlsafe_b64decode(encoded.encode("ascii")).decode("utf-8")
            expired = int(expires) < (now or time.time())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        user = self._users.get(name)
        if user is None or expired:
            return None
        fingerprint = _digest(user.secret).hex()[:16]
        if not hmac.compare_digest(signature, self.sign("session", name, expires, fingerprint)):
            return None
        return Identity(user.name, user.role, "session")

    def csrf_token(self, key: str, now: float | None = None) -> str:
        issued = str(int(now or time.time()))
        return f"{issued}.{self.sign('csrf', key, issued)}"

    def csrf_ok(self, key: str, token: str | None, now: float | None = None) -> bool:
        if not token or not key:
            return False
        issued, _, signature = token.partition(".")
        try:
            age = (now or time.time()) - int(issued)
        except ValueError:
            return False
        if age < -60 or age > self.session_seconds:
            return False
        return hmac.compare_digest(signature, self.sign("csrf", key, issued))
