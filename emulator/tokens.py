"""Deterministic token estimates and prompt-cache accounting.

Estimate: ceil(UTF-8 bytes / 4) per text, plus fixed overheads (per request, per message, for the
system prompt). The output schema, tools and non-text blocks count as their compact JSON. Exact
numbers do not matter; what matters is that they are stable and grow with the conversation.

Caching model: the prompt is a sequence of blocks (system blocks, then every message's content
blocks; schema and tools are not cacheable here). Breakpoints are every block carrying
`cache_control` plus, with top-level `cache_control` (automatic caching), the last block; the
real API allows at most MAX_BREAKPOINTS of them (validation answers 400 beyond). The cache is
keyed by a hash chain over (model, block, block, ...), so an entry is an exact prefix. On a
request, each breakpoint looks for a stored prefix ending at it or up to LOOKBACK_BLOCKS blocks
before it; `cache_read` is the longest prefix found (its TTL refreshed). Then each breakpoint
whose prefix is longer than that and at least the minimum size is stored (creation), with its
own TTL (`ttl` of its marker; the automatic one takes the top-level marker's), and
`cache_creation` is the last stored prefix minus what was read. With an explicit breakpoint at
the end of a shared system prompt plus the automatic one, a new thread reads the system prompt
that another thread stored and writes its own conversation; later turns of the same thread read
their whole previous prefix.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
REQUEST_OVERHEAD = 8
MESSAGE_OVERHEAD = 4
SYSTEM_OVERHEAD = 4
ONE_HOUR_S = 3600.0


def estimate_text(text: str) -> int:
    """Token estimate for one piece of text: ceil(utf-8 bytes / 4)."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _block_tokens(block: dict[str, Any]) -> int:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return estimate_text(block["text"])
    return estimate_text(_compact({k: v for k, v in block.items() if k != "cache_control"}))


def _as_blocks(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


@dataclass(frozen=True)
class PromptBlock:
    """One cacheable unit of the prompt with its token count and cache marker."""

    key: str
    tokens: int
    cache_control: dict[str, Any] | None


@dataclass(frozen=True)
class PromptCount:
    """Token count of a request's input, split into cacheable blocks and the rest."""

    blocks: tuple[PromptBlock, ...]
    uncached: int

    @property
    def total(self) -> int:
        return self.uncached + sum(block.tokens for block in self.blocks)


def count_prompt(body: dict[str, Any]) -> PromptCount:
    """Split a (validated) request into blocks and count every part of it."""
    blocks: list[PromptBlock] = []

    def add(block: dict[str, Any], overhead: int) -> None:
        cc = block.get("cache_control")
        key = _compact({k: v for k, v in block.items() if k != "cache_control"})
        blocks.append(
            PromptBlock(key, _block_tokens(block) + overhead, cc if isinstance(cc, dict) else None)
        )

    for j, block in enumerate(_as_blocks(body.get("system"))):
        add(block, SYSTEM_OVERHEAD if j == 0 else 0)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role_marker = {"type": "role", "role": message.get("role")}
        content = _as_blocks(message.get("content"))
        if not content:
            add(role_marker, MESSAGE_OVERHEAD)
        for j, block in enumerate(content):
            keyed = block if j else {**block, "_role": message.get("role")}
            add(keyed, MESSAGE_OVERHEAD if j == 0 else 0)
    uncached = REQUEST_OVERHEAD
    for name in ("tools", "tool_choice", "thinking"):
        if body.get(name):
            uncached += estimate_text(_compact(body[name]))
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(fmt, dict):
        uncached += estimate_text(_compact(fmt.get("schema")))
    return PromptCount(tuple(blocks), uncached)


@dataclass(frozen=True)
class CacheUsage:
    """Cache accounting of one request; `input_tokens` is the uncached remainder."""

    input_tokens: int
    cache_read: int
    cache_creation_5m: int
    cache_creation_1h: int

    @property
    def cache_creation(self) -> int:
        return self.cache_creation_5m + self.cache_creation_1h


def breakpoints(prompt: PromptCount, top_level: dict[str, Any] | None) -> list[int]:
    """Block indexes that are cache breakpoints: explicit markers, then the automatic one."""
    marks = [i for i, block in enumerate(prompt.blocks) if block.cache_control is not None]
    last = len(prompt.blocks) - 1
    if top_level is not None and last >= 0 and last not in marks:
        marks.append(last)
    return marks


class PromptCache:
    """In-memory prefix cache with per-entry TTL; thread-safe, clock injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[int, float, float]] = {}  # hash -> tokens, ttl, expiry
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def account(
        self,
        model: str,
        prompt: PromptCount,
        top_level: dict[str, Any] | None,
        *,
        min_tokens: int,
        default_ttl_s: float,
        store: bool = True,
    ) -> CacheUsage:
        """Compute read/creation for this request and (if `store`) remember its breakpoints."""
        blocks = prompt.blocks
        marks = breakpoints(prompt, top_level)
        if not marks:
            return CacheUsage(prompt.total, 0, 0, 0)
        lookups = sorted(
            {i for mark in marks for i in range(max(0, mark - LOOKBACK_BLOCKS), mark + 1)},
            reverse=True,
        )
        breakpoint_index = max(marks)
        prefix_hashes: list[str] = []
        prefix_tokens: list[int] = []
        digest = hashlib.sha256(model.encode())
        running = 0
        for block in blocks[: breakpoint_index + 1]:
            digest.update(b"\x00" + block.key.encode())
            running += block.tokens
            prefix_hashes.append(digest.hexdigest())
            prefix_tokens.append(running)
        now = self._clock()
        with self._lock:
            read = 0
            for i in lookups:
                entry = self._entries.get(prefix_hashes[i])
                if entry is not None and entry[2] > now:
                    read = entry[0]
                    if store:
                        self._entries[prefix_hashes[i]] = (entry[0], entry[1], now + entry[1])
                    break
            created_5m = created_1h = 0
            for i in marks:
                tokens = prefix_tokens[i]
                if tokens < min_tokens or tokens <= read:
                    continue
                marker = blocks[i].cache_control if blocks[i].cache_control else top_level
                ttl = ONE_HOUR_S if (marker or {}).get("ttl") == "1h" else default_ttl_s
                previous = created_5m + created_1h + read
                if ttl == ONE_HOUR_S:
                    created_1h += tokens - previous
                else:
                    created_5m += tokens - previous
                if store:
                    self._entries[prefix_hashes[i]] = (tokens, ttl, now + ttl)
        remainder = prompt.total - read - created_5m - created_1h
        return CacheUsage(remainder, read, created_5m, created_1h)
