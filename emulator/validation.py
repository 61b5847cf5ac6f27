"""Request validation with the real API's rules and (as far as known) its messages.

A test double that accepts what the real API rejects hides bugs until production, so every rule
the design notes rely on is enforced here: no "system" role, no sampling parameters in this API
version, no assistant prefill on newer models, the first turn from the user, non-empty content.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from anthropic.types import Model

from emulator.config import EmulatorConfig
from emulator.errors import ApiError, invalid
from emulator.tokens import MAX_BREAKPOINTS

KNOWN_MODELS: frozenset[str] = frozenset(
    value for arg in typing.get_args(Model) for value in typing.get_args(arg)
)
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
PREFILL_MESSAGE = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)
SYSTEM_ROLE_MESSAGE = (
    'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level '
    '`system` parameter, not "system" as an input message role.'
)
EMPTY_CONTENT_MESSAGE = (
    "messages.{i}: all messages must have non-empty content except for the optional final "
    "assistant message"
)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode the body; the API answers 400 for anything that is not a JSON object."""
    if not raw.strip():
        raise invalid("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_model(body: dict[str, Any], config: EmulatorConfig) -> None:
    if "model" not in body:
        raise invalid("model: Field required")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise invalid("model: Input should be a valid string")
    if model in KNOWN_MODELS:
        return
    if config.accept_any_model and model.startswith("claude-"):
        return
    raise ApiError("not_found_error", f"model: {model}")


def _check_text_block(block: object, where: str) -> None:
    if not isinstance(block, dict):
        raise invalid(f"{where}: Input should be a valid dictionary")
    block_type = block.get("type")
    if not isinstance(block_type, str):
        raise invalid(f"{where}.type: Field required")
    if block_type == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid(f"{where}.text: Input should be a valid string")
        if not text:
            raise invalid(f"{where}: text content blocks must be non-empty")
    cache_control = block.get("cache_control")
    if cache_control is not None and (
        not isinstance(cache_control, dict) or cache_control.get("type") != "ephemeral"
    ):
        raise invalid(f"{where}.cache_control: Input tag should be 'ephemeral'")


def _check_content(content: object, i: int, *, final_assistant: bool) -> None:
    where = f"messages.{i}.content"
    if isinstance(content, str):
        if not content and not final_assistant:
            raise invalid(EMPTY_CONTENT_MESSAGE.format(i=i))
        return
    if not isinstance(content, list):
        raise invalid(f"{where}: Input should be a valid list or string")
    if not content and not final_assistant:
        raise invalid(EMPTY_CONTENT_MESSAGE.format(i=i))
    for j, block in enumerate(content):
        _check_text_block(block, f"{where}.{j}")


def _check_messages(body: dict[str, Any], config: EmulatorConfig) -> None:
    if "messages" not in body:
        raise invalid("messages: Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system":
            raise invalid(SYSTEM_ROLE_MESSAGE.format(i=i))
        if role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"messages.{i}.content: Field required")
        _check_content(message["content"], i, final_assistant=(i == last and role == "assistant"))
    if messages[0]["role"] != "user":
        raise invalid('messages: first message must use the "user" role')
    if messages[last]["role"] == "assistant":
        model = str(body["model"])
        if not any(model.startswith(prefix) for prefix in config.prefill_models):
            raise invalid(PREFILL_MESSAGE)


def _check_system(body: dict[str, Any]) -> None:
    if "system" not in body or body["system"] is None:
        return
    system = body["system"]
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("system: Input should be a valid list or string")
    for j, block in enumerate(system):
        _check_text_block(block, f"system.{j}")
        if block.get("type") != "text":
            raise invalid(f"system.{j}.type: Input should be 'text'")


def _check_format(fmt: object, where: str) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise invalid(f"{where}: Input should be a valid dictionary")
    if fmt.get("type") != "json_schema":
        raise invalid(f"{where}.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise invalid(f"{where}.schema: Field required (a JSON schema object)")


def _check_output(body: dict[str, Any]) -> None:
    output_config = body.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise invalid("output_config: Input should be a valid dictionary")
        _check_format(output_config.get("format"), "output_config.format")
    _check_format(body.get("output_format"), "output_format")
    both = isinstance(output_config, dict) and output_config.get("format")
    if both and body.get("output_format"):
        raise invalid("output_format and output_config.format cannot both be set")


def _check_other(body: dict[str, Any], *, require_max_tokens: bool) -> None:
    for name in SAMPLING_PARAMS:
        if name in body:
            raise invalid(
                f"{name}: sampling parameters (temperature, top_p, top_k) are not supported "
                "in this API version; remove them from the request"
            )
    if "max_tokens" in body or require_max_tokens:
        if "max_tokens" not in body:
            raise invalid("max_tokens: Field required")
        max_tokens = body["max_tokens"]
        if not _is_int(max_tokens):
            raise invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise invalid("max_tokens: Input should be greater than or equal to 1")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid("stream: Input should be a valid boolean")
    cache_control = body.get("cache_control")
    if cache_control is not None and (
        not isinstance(cache_control, dict) or cache_control.get("type") != "ephemeral"
    ):
        raise invalid("cache_control: Input tag should be 'ephemeral'")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise invalid("stop_sequences: Input should be a valid list of strings")


def _marked(blocks: object) -> list[bool]:
    if not isinstance(blocks, list):
        return [False]  # a string: one block without a marker
    return [isinstance(b, dict) and b.get("cache_control") is not None for b in blocks]


def _check_cache_breakpoints(body: dict[str, Any]) -> None:
    """At most MAX_BREAKPOINTS blocks with `cache_control`; automatic caching takes a slot
    unless the last block already carries its own marker."""
    marks = [*_marked(body.get("tools") or []), *_marked(body.get("system") or [])]
    last: list[bool] = []
    for message in body["messages"]:
        last = _marked(message["content"])
        marks.extend(last)
    found = sum(marks)
    if body.get("cache_control") is not None and not (last and last[-1]):
        found += 1
    if found > MAX_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )


def validate_request(
    body: dict[str, Any], config: EmulatorConfig, *, require_max_tokens: bool = True
) -> None:
    """Raise `ApiError` for the first problem found, in roughly the real API's order."""
    _check_model(body, config)
    _check_other(body, require_max_tokens=require_max_tokens)
    _check_system(body)
    _check_messages(body, config)
    _check_output(body)
    _check_cache_breakpoints(body)


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The requested JSON schema (`output_config.format` or legacy `output_format`), if any."""
    output_config = body.get("output_config")
    candidates: list[object] = []
    if isinstance(output_config, dict):
        candidates.append(output_config.get("format"))
    candidates.append(body.get("output_format"))
    for fmt in candidates:
        if isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
            schema: dict[str, Any] = fmt["schema"]
            return schema
    return None
