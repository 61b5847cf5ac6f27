"""What a drainer reads: a consistent snapshot of one thread (meta, messages array, inbox)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from worker.state.usage import Usage

#: One entry of the Claude `messages` array, exactly as stored and resent.
Turn = dict[str, Any]


@dataclass(frozen=True)
class InboxItem:
    """One raw inbox entry and whether its email id was already applied."""

    raw: str
    applied: bool


@dataclass(frozen=True)
class Snapshot:
    """A consistent read of one thread: what the drainer decides on."""

    thread_id: str
    version: int
    meta: dict[str, str]
    messages: list[Turn]
    inbox: list[InboxItem]

    @property
    def status(self) -> str:
        return self.meta.get("status", "new")

    @property
    def clarifications(self) -> int:
        return int(self.meta.get("clarifications", 0))

    @property
    def usage(self) -> Usage:
        return Usage.from_mapping(self.meta)

    @property
    def calls(self) -> int:
        return int(self.meta.get("calls", 0))

    @property
    def references(self) -> list[str]:
        return list(json.loads(self.meta.get("references", "[]")))


@dataclass(frozen=True)
class Begin:
    """A drain's start: its snapshot, and how many drains in a row found work (poison count)."""

    attempts: int
    snapshot: Snapshot
