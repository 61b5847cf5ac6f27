"""Who may use the web console: users (HTTP basic auth or the login form) and bearer tokens, each
with a role, from `TRIAGE_CONSOLE_USERS` / `TRIAGE_CONSOLE_TOKENS` (docs/console.md).

Both settings are comma-separated `name:secret:role` entries; the secret is everything between
the first and the last colon (it may hold colons, not commas). Error messages name the entry by
its position and name, never its secret.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

ROLE_VIEWER = "viewer"
ROLE_REVIEWER = "reviewer"
ROLES = (ROLE_VIEWER, ROLE_REVIEWER)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
MIN_TOKEN = 16

Role = Literal["viewer", "reviewer"]


class Principal(BaseModel):
    """A console user or token: who (the name written into every action), the secret, the role."""

    model_config = ConfigDict(frozen=True)

    name: str
    secret: SecretStr
    role: Role

    @property
    def may_act(self) -> bool:
        """Reviewers accept, correct, replay and purge; viewers only read."""
        return self.role == ROLE_REVIEWER


def parse_principals(value: Any, what: str, min_secret: int) -> Any:
    """`name:secret:role,...` (or a JSON-ish list of such strings / mappings) -> mappings for
    `Principal`; blanks are dropped, so an empty variable means none."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return value
    found: list[Any] = []
    names: set[str] = set()
    for position, item in enumerate(value, start=1):
        if isinstance(item, Principal):
            entry: Any = item
            name = item.name
        elif isinstance(item, dict):
            entry, name = item, str(item.get("name", ""))
        else:
            text = str(item).strip()
            if not text:
                continue
            name, sep, rest = text.partition(":")
            secret, sep2, role = rest.rpartition(":")
            if not sep or not sep2:
                raise ValueError(f"entry {position} is not name:{what}:role")
            role = role.strip().lower()
            if role not in ROLES:
                raise ValueError(
                    f"entry {position} ({name}): role {role!r} is not one of {', '.join(ROLES)}"
                )
            if len(secret) < min_secret:
                raise ValueError(
                    f"entry {position} ({name}): the {what} needs at least {min_secret} characters"
                )
            entry = {"name": name.strip(), "secret": secret, "role": role}
            name = name.strip()
        if not NAME.match(name):
            raise ValueError(
                f"entry {position}: the name must be letters, digits, '.', '_', '@' or '-' "
                "(at most 64)"
            )
        if name in names:
            raise ValueError(f"entry {position}: the name {name!r} is used twice")
        names.add(name)
        found.append(entry)
    return found
