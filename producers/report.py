"""A run's tally and its report file (JSON lines: one per rejected email, then a summary)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from common.contract import STATUS_REPLY_BOUNCED
from producers.enqueue import Rejected
from producers.submit import MODE_JOIN_REFUSED, STATUS_DUPLICATE, Submitted


@dataclass
class RunSummary:
    """Every email read ends in exactly one count: the counts add up to `read`."""

    enqueued: int = 0
    duplicates: int = 0
    #: Bounces of our replies that marked their thread (not triaged).
    bounced: int = 0
    #: Of the enqueued: replies refused by the thread they cited (a stranger's; own thread).
    join_refused: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: Read but not done because Redis or the broker failed (the run stopped).
    not_done: int = 0
    started: float = field(default_factory=time.monotonic)
    #: A `--dry-run` tally: what would happen.
    dry_run: bool = False

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def total(self) -> int:
        return self.enqueued + self.duplicates + self.bounced + self.rejected_total

    @property
    def read(self) -> int:
        return self.total + self.not_done

    def add(self, result: Submitted | Rejected) -> None:
        if isinstance(result, Rejected):
            self.rejected[result.reason] += 1
        elif result.status == STATUS_DUPLICATE:
            self.duplicates += 1
        elif result.status == STATUS_REPLY_BOUNCED:
            self.bounced += 1
        else:
            self.enqueued += 1
            self.join_refused += bool(result.refused_thread_id)

    def add_preview(self, mode: str) -> None:
        """A dry run's resolution ("new", "reply", "collision", "duplicate", "join_refused",
        "reply_bounced")."""
        if mode == STATUS_DUPLICATE:
            self.duplicates += 1
        elif mode == STATUS_REPLY_BOUNCED:
            self.bounced += 1
        else:
            self.enqueued += 1
            self.join_refused += mode == MODE_JOIN_REFUSED

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.total / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """`3 enqueued, 1 duplicate, 2 rejected (no_sender: 1, too_large: 1)`

        Bounces of our replies and emails not done (a failed run) are added when there are any.
        """
        refused = f" ({self.join_refused} kept out of a thread)" if self.join_refused else ""
        text = (
            f"{self.enqueued} enqueued{refused}, {self.duplicates} duplicate, "
            f"{self.rejected_total} rejected"
        )
        if self.rejected:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.rejected.items()))
            text += f" ({reasons})"
        if self.bounced:
            text += f", {self.bounced} reply bounce{'s' if self.bounced != 1 else ''}"
        if self.not_done:
            text += f", {self.not_done} read but not done (the run stopped)"
        if self.dry_run:
            text = f"dry run, nothing written: would be {text}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "read": self.read,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "reply_bounced": self.bounced,
            "join_refused": self.join_refused,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "not_done": self.not_done,
            "seconds": round(time.monotonic() - self.started, 3),
        }


class ReportWriter:
    """Writes the report file; with `always=False` the file is only created at the first reject."""

    def __init__(self, path: Path | None, *, always: bool) -> None:
        self.path = path
        self._always = always
        self._file: IO[str] | None = None
        if path is not None and always:
            self._open()

    def _open(self) -> IO[str]:
        if self._file is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        return self._file

    @property
    def written(self) -> bool:
        return self._file is not None

    def rejected(self, rejected: Rejected) -> None:
        if self.path is None:
            return
        record = {
            "type": "rejected",
            "source": rejected.source,
            "position": rejected.position,
            "reason": rejected.reason,
            "error": rejected.error,
        }
        self._open().write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self, summary: RunSummary) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(summary.as_dict()) + "\n")
        self._file.close()
