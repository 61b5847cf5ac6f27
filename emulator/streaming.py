"""Server-sent events for `"stream": true`, in the documented order.

message_start, content_block_start, ping, content_block_delta..., content_block_stop,
message_delta (stop_reason, usage), message_stop. The events are derived from the finished
non-streaming Message, so both modes always agree.
"""

from __future__ import annotations

import json
from typing import Any

CHUNK_CHARS = 32


def sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs that stream `message`."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        text = block.get("text", "")
        for offset in range(0, len(text), CHUNK_CHARS):
            delta = {"type": "text_delta", "text": text[offset : offset + CHUNK_CHARS]}
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": message["stop_sequence"],
                    "stop_details": message["stop_details"],
                },
                "usage": {
                    "output_tokens": usage["output_tokens"],
                    "input_tokens": usage["input_tokens"],
                    "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                    "cache_read_input_tokens": usage["cache_read_input_tokens"],
                },
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def encode_sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    """One byte string with every event, so the response goes out in as few writes as possible."""
    return "".join(
        f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n" for name, data in events
    ).encode("utf-8")
