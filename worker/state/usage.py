"""Token usage arithmetic (pure): per call, and cumulative per thread."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Token counts of one call or a sum of calls; total input = input + cache write + read."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Usage:
        """Read counters from a Redis hash or an API usage object (missing or None -> 0)."""
        return cls(*(int(data.get(f.name) or 0) for f in fields(cls)))
