"""Generate a JSON value valid for a JSON schema, steered by the brain's decision.

Generic on purpose: the filler knows JSON Schema, not our worker's schema. Meaning comes from
names and enum values: an enum holding "clarify"/"classify"-like values is the action, an enum
named *category*/*label*/*topic*/… is the category (detected label, else an "OTHER"-like value,
else the first value); strings named *question*, *reason*/*explanation*/*rationale*, *summary*,
numbers named *confidence*, booleans named *clarif*/*vague*/*need* get the decision's values, and
so do *priority*/*urgency*/*severity*, *sentiment*/*tone*/*mood* and *language*/*locale* (enum
values matched by name or synonym). Any other nullable property is a declared field, filled by
`emulator.extract` from the customer's text (enum value or `(format: REGEX)` found, else null).
A string with a declared format takes a value found in the text. Everything else gets the
smallest valid value.
Supports $ref/$defs/definitions, allOf (merged), anyOf/oneOf (first non-null branch), enum,
const, type lists including null, and object/array/string/number/integer/boolean keywords.
One module, though long: it is one recursive walk over a schema, and splitting it would scatter
the walk's cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator import extract
from emulator.brain import Decision

CLARIFY_WORDS = frozenset(
    {
        "clarify",
        "clarification",
        "ask",
        "question",
        "ask_question",
        "need_more_info",
        "more_info",
        "followup",
        "follow_up",
    }
)
CLASSIFY_WORDS = frozenset(
    {"classify", "classification", "final", "decide", "categorize", "categorise"}
)
CATEGORY_NAMES = ("category", "label", "topic", "class", "queue", "department")
FALLBACK_LABELS = ("other", "unknown", "general", "misc", "none", "uncategorized")
REASON_NAMES = ("reason", "explanation", "rationale", "justification")
#: Decision attributes by the property names that ask for them, and their enum synonyms.
ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "priority": ("priority", "urgency", "severity"),
    "sentiment": ("sentiment", "tone", "mood"),
    "language": ("language", "locale"),
}
ATTRIBUTE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "urgent": ("urgent", "critical", "highest", "emergency", "p1"),
    "high": ("high", "important", "p2"),
    "normal": ("normal", "medium", "moderate", "standard", "p3"),
    "low": ("low", "lowest", "minor", "p4"),
    "negative": ("negative", "angry", "upset", "frustrated"),
    "neutral": ("neutral", "mixed"),
    "positive": ("positive", "happy", "satisfied"),
}
#: Names that carry the decision, so a nullable property so named is no declared field.
DECISION_NAMES = (
    "question",
    "summary",
    "confidence",
    "score",
    "probability",
    "action",
    "decision",
    *REASON_NAMES,
    *CATEGORY_NAMES,
    *(name for names in ATTRIBUTE_NAMES.values() for name in names),
)
MAX_DEPTH = 12

_FORMAT_EXAMPLES = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "customer@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


def _norm(value: object) -> str:
    return str(value).strip().lower().replace("-", "_").replace(" ", "_")


def attribute_of(name: str) -> str | None:
    """The decision attribute (priority, sentiment, language) a property name asks for."""
    lowered = name.lower()
    for attribute, names in ATTRIBUTE_NAMES.items():
        if any(word in lowered for word in names):
            return attribute
    return None


def _nullable(schema: dict[str, Any]) -> bool:
    if "null" in _types(schema):
        return True
    if isinstance(schema.get("enum"), list) and None in schema["enum"]:
        return True
    branches = [*(schema.get("anyOf") or []), *(schema.get("oneOf") or [])]
    return any(isinstance(b, dict) and _types(b) == ["null"] for b in branches)


def is_declared_field(schema: dict[str, Any], name: str) -> bool:
    """A nullable property without decision meaning: its value is extracted from the text."""
    lowered = name.lower()
    return bool(name) and _nullable(schema) and not any(w in lowered for w in DECISION_NAMES)


def is_action_enum(values: list[Any], name: str = "") -> bool:
    """An enum whose values name actions (clarify/classify) rather than categories."""
    if any(word in name.lower() for word in CATEGORY_NAMES):
        return False
    return any(_norm(v) in CLARIFY_WORDS or _norm(v) in CLASSIFY_WORDS for v in values)


@dataclass
class SchemaHints:
    """What the brain needs to know about a schema before deciding."""

    labels: list[str] = field(default_factory=list)
    can_clarify: bool = True


def _walk(
    schema: object, root: dict[str, Any], seen: set[str], depth: int = 0
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (property name, subschema) pairs across the schema, following refs once."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        seen.add(ref)
        yield from _walk(_resolve(ref, root), root, seen, depth + 1)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key) or []:
            yield from _walk(sub, root, seen, depth + 1)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _walk(items, root, seen, depth + 1)
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            yield name, sub
            yield from _walk(sub, root, seen, depth + 1)


def analyse(schema: dict[str, Any]) -> SchemaHints:
    """Find category labels and whether the schema lets the model ask a question."""
    hints = SchemaHints()
    action_enums: list[list[Any]] = []
    named_labels: list[str] = []
    other_labels: list[str] = []
    clarify_fields = False
    for name, sub in _walk(schema, schema, set()):
        values = _enum_values(sub, schema)
        lowered = name.lower()
        target = _resolve(str(sub["$ref"]), schema) if "$ref" in sub else sub
        if attribute_of(name) or is_declared_field(
            target if isinstance(target, dict) else {}, name
        ):
            pass  # priority, sentiment, extra fields: their values are no categories
        elif values and is_action_enum(values, name):
            action_enums.append(values)
        elif values:
            labels = [v for v in values if isinstance(v, str) and v.lower() not in FALLBACK_LABELS]
            named = any(word in lowered for word in CATEGORY_NAMES)
            (named_labels if named else other_labels).extend(labels)
        if "question" in lowered or (
            _types(sub) == ["boolean"] and any(w in lowered for w in ("clarif", "vague", "need"))
        ):
            clarify_fields = True
    hints.labels = named_labels or other_labels
    if action_enums:
        hints.can_clarify = any(_norm(v) in CLARIFY_WORDS for e in action_enums for v in e)
    else:
        hints.can_clarify = clarify_fields
    return hints


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node


def _enum_values(schema: dict[str, Any], root: dict[str, Any]) -> list[Any]:
    if "$ref" in schema:
        target = _resolve(str(schema["$ref"]), root)
        if isinstance(target, dict):
            return _enum_values(target, root)
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    return []


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return ["object"]
    if "items" in schema or "prefixItems" in schema:
        return ["array"]
    if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
        return ["string"]
    if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
        return ["number"]
    return []


class _Filler:
    def __init__(self, root: dict[str, Any], decision: Decision, text: str) -> None:
        self.root = root
        self.decision = decision
        self.text = text

    def value(self, schema: object, name: str, depth: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return self._string({}, name)
        if depth > MAX_DEPTH:
            return None
        if "$ref" in schema:
            target = _resolve(str(schema["$ref"]), self.root)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(
                {**target, **rest} if isinstance(target, dict) else rest, name, depth + 1
            )
        if "allOf" in schema:
            return self.value(self._merge_all_of(schema), name, depth + 1)
        if "const" in schema:
            return schema["const"]
        if is_declared_field(schema, name):
            return self._declared(schema)
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._enum(schema["enum"], name)
        for key in ("anyOf", "oneOf"):
            branches = [b for b in schema.get(key) or [] if isinstance(b, dict)]
            if branches:
                rest = {k: v for k, v in schema.items() if k != key}
                non_null = [b for b in branches if _types(b) != ["null"]]
                return self.value({**rest, **(non_null or branches)[0]}, name, depth + 1)
        types = [t for t in _types(schema) if t != "null"] or (
            ["null"] if _types(schema) == ["null"] else ["string"]
        )
        kind = types[0]
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("number", "integer"):
            return self._number(schema, name, integer=kind == "integer")
        if kind == "boolean":
            return self._boolean(name)
        if kind == "null":
            return None
        return self._string(schema, name)

    def _declared(self, schema: dict[str, Any]) -> Any:
        for key in ("anyOf", "oneOf"):
            branches = [b for b in schema.get(key) or [] if isinstance(b, dict)]
            non_null = [b for b in branches if _types(b) != ["null"]]
            if non_null:
                rest = {k: v for k, v in schema.items() if k != key}
                branch = non_null[0]
                if "$ref" in branch:
                    target = _resolve(str(branch["$ref"]), self.root)
                    branch = target if isinstance(target, dict) else {}
                schema = {**rest, **branch}
        return extract.extract(schema, _types(schema), self.text)

    def _merge_all_of(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in schema["allOf"]:
            if isinstance(sub, dict) and "$ref" in sub:
                target = _resolve(str(sub["$ref"]), self.root)
                sub = target if isinstance(target, dict) else {}
            if not isinstance(sub, dict):
                continue
            for key, val in sub.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **val}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *val]
                else:
                    merged.setdefault(key, val)
        return merged

    def _enum(self, values: list[Any], name: str) -> Any:
        if is_action_enum(values, name):
            wanted = CLARIFY_WORDS if self.decision.is_clarify else CLASSIFY_WORDS
            for value in values:
                if _norm(value) in wanted:
                    return value
            return values[0]
        attribute = attribute_of(name)
        if attribute is not None:
            chosen = self._attribute_value(attribute, values)
            if chosen is not None:
                return chosen
        category = self.decision.category
        if category is not None:
            for value in values:
                if isinstance(value, str) and value.lower() == category.lower():
                    return value
        for fallback in FALLBACK_LABELS:
            for value in values:
                if isinstance(value, str) and value.lower() == fallback:
                    return value
        return values[0]

    def _attribute_value(self, attribute: str, values: list[Any]) -> Any:
        wanted = str(getattr(self.decision, attribute)).lower()
        words = ATTRIBUTE_SYNONYMS.get(wanted, (wanted,))
        for word in words:
            for value in values:
                if isinstance(value, str) and value.lower() == word:
                    return value
        for value in values:  # a language enum of regional tags: "de" picks "de-DE"
            if isinstance(value, str) and value.lower().split("-")[0] == wanted:
                return value
        return None

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = list(props) if depth < MAX_DEPTH // 2 else [n for n in props if n in required]
        result = {name: self.value(props[name], name, depth + 1) for name in names}
        extra = schema.get("additionalProperties")
        for name in required:
            if name not in result:
                result[name] = self.value(extra if isinstance(extra, dict) else {}, name, depth + 1)
        return result

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = [s for s in schema.get("prefixItems") or []]
        items = schema.get("items", {})
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        count = max(low, len(prefix), 1 if depth < MAX_DEPTH // 2 else 0)
        if isinstance(high, int):
            count = min(count, high)
        if items is False:
            count = min(count, len(prefix))
        out = [
            self.value(prefix[i] if i < len(prefix) else items, name, depth + 1)
            for i in range(count)
        ]
        if schema.get("uniqueItems") and len(out) > 1:
            enum = _enum_values(items, self.root) if isinstance(items, dict) else []
            if enum and len(enum) >= len(out):
                out = enum[: len(out)]
            elif all(isinstance(v, str) for v in out):
                out = [f"{v}{i}" if i else v for i, v in enumerate(out)]
        return out

    def _number(self, schema: dict[str, Any], name: str, *, integer: bool) -> float | int:
        lowered = name.lower()
        if "confidence" in lowered or "score" in lowered or "probability" in lowered:
            target: float = self.decision.confidence
        else:
            target = 0.0
        low = schema.get("minimum")
        high = schema.get("maximum")
        ex_low = schema.get("exclusiveMinimum")
        ex_high = schema.get("exclusiveMaximum")
        step = 1.0 if integer else 0.01
        if isinstance(low, int | float):
            target = max(target, float(low))
        if isinstance(ex_low, int | float) and target <= ex_low:
            target = float(ex_low) + step
        if isinstance(high, int | float):
            target = min(target, float(high))
        if isinstance(ex_high, int | float) and target >= ex_high:
            target = float(ex_high) - step
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple > 0:
            target = math.ceil(target / multiple) * multiple
            if isinstance(multiple, int) and float(target).is_integer():
                return int(target)
        if integer:
            return math.ceil(target)
        return round(target, 6)

    def _boolean(self, name: str) -> bool:
        lowered = name.lower()
        if any(word in lowered for word in ("clarif", "vague", "need", "ask")):
            return self.decision.is_clarify
        if any(word in lowered for word in ("final", "classif", "confident", "resolved")):
            return not self.decision.is_clarify
        return False

    def _string(self, schema: dict[str, Any], name: str) -> str:
        lowered = name.lower()
        decision = self.decision
        attribute = attribute_of(name)
        regex = extract.declared_format(schema)
        found = extract.find_format(self.text, regex) if regex else None
        if found is not None:
            return found
        if "question" in lowered:
            text = decision.question if decision.is_clarify else ""
        elif "summary" in lowered:
            text = decision.summary
        elif attribute is not None:
            text = str(getattr(decision, attribute))
        elif any(word in lowered for word in REASON_NAMES):
            text = decision.reason
        elif any(word in lowered for word in ("category", "label", "topic", "class")):
            text = decision.category or "OTHER"
        elif "action" in lowered or "decision" in lowered:
            text = decision.action
        elif isinstance(schema.get("format"), str) and schema["format"] in _FORMAT_EXAMPLES:
            return _FORMAT_EXAMPLES[schema["format"]]
        else:
            text = ""
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        if len(text) < low:
            text = text + "x" * (low - len(text))
        if isinstance(high, int) and len(text) > high:
            text = text[:high]
        return text


def fill(schema: dict[str, Any], decision: Decision, text: str = "") -> Any:
    """A value valid for `schema` that carries `decision` wherever the schema has room for it;
    declared fields are looked up in `text` (the customer's words)."""
    return _Filler(schema, decision, text).value(schema, "", 0)
