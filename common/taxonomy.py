"""The taxonomy: the categories the model chooses from, their descriptions, examples and policy,
and extra decision fields to extract (`TRIAGE_TAXONOMY_FILE`, YAML or TOML).

```yaml
categories:
  - name: BILLING
    description: charges, invoices, refunds, payments, subscriptions
    examples: ["I was charged twice this month", "Where is my invoice for March?"]
    ask_questions: true      # false: never ask a question in this category, classify
    review_below: 0.7        # confidence under this sends the thread to review (default: setting)
fields:
  - name: order_number
    type: string             # string, integer, number, boolean or enum
    description: the order number the customer mentions, if any
    pattern: "^[A-Z]{2}-[0-9]{4,8}$"   # a value that does not match is dropped, not the decision
  - name: product
    type: enum
    values: [app, website, hardware]
```

A bad file stops start-up with one message naming the file, the line and the problem.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LABEL_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Fields every decision carries; a declared extra field may not reuse these names.
RESERVED = frozenset(
    {"action", "question", "category", "confidence", "reason", "priority", "language"}
    | {"sentiment", "summary", "fields"}
)
MAX_EXAMPLES = 10
MAX_EXAMPLE_CHARS = 500


class Category(BaseModel):
    """One label the model may choose, with what it sees about it and its policy."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    examples: list[str] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    ask_questions: bool = True
    review_below: float | None = Field(default=None, ge=0, le=1)

    @field_validator("name")
    @classmethod
    def _label(cls, value: str) -> str:
        value = value.strip().upper()
        if not LABEL_PATTERN.match(value):
            raise ValueError(f"category name {value!r} must match {LABEL_PATTERN.pattern}")
        return value

    @field_validator("examples")
    @classmethod
    def _short_examples(cls, value: list[str]) -> list[str]:
        for example in value:
            if len(example) > MAX_EXAMPLE_CHARS:
                raise ValueError(f"an example is over {MAX_EXAMPLE_CHARS} characters")
        return [" ".join(example.split()) for example in value]


class FieldSpec(BaseModel):
    """An extra value to extract from the thread (e.g. an order number)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["string", "integer", "number", "boolean", "enum"] = "string"
    description: str = ""
    values: list[str] = Field(default_factory=list)
    pattern: str | None = None

    @field_validator("name")
    @classmethod
    def _field_name(cls, value: str) -> str:
        if not FIELD_NAME.match(value):
            raise ValueError(f"field name {value!r} must match {FIELD_NAME.pattern}")
        if value in RESERVED:
            raise ValueError(f"field name {value!r} is a built-in decision field")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"pattern {value!r} is not a valid regular expression: {exc}"
                ) from None
        return value

    @model_validator(mode="after")
    def _enum_has_values(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError(f"field {self.name!r} is an enum without values")
        if self.type != "enum" and self.values:
            raise ValueError(f"field {self.name!r} has values but type {self.type!r}")
        return self

    def json_schema(self) -> dict[str, Any]:
        """This field in the decision schema (null when the thread does not say)."""
        kind: dict[str, Any]
        if self.type == "enum":
            kind = {"type": ["string", "null"], "enum": [*self.values, None]}
        else:
            kind = {"type": [self.type, "null"]}
        description = self.description or self.name.replace("_", " ")
        if self.pattern:
            description += f" (format: {self.pattern})"
        return {**kind, "description": description}

    def accepts(self, value: Any) -> bool:
        """Whether an extracted value is usable (type and format); None always is."""
        if value is None:
            return True
        if self.type == "enum":
            return value in self.values
        expected: dict[str, type | tuple[type, ...]] = {
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
        }
        if isinstance(value, bool) and self.type != "boolean":
            return False
        if not isinstance(value, expected[self.type]):
            return False
        return not (self.pattern and not re.fullmatch(self.pattern, str(value)))


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[Category] = Field(min_length=1)
    fields: list[FieldSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> Taxonomy:
        for kind, names in (
            ("category", [c.name for c in self.categories]),
            ("field", [f.name for f in self.fields]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{kind} {name!r} is declared twice")
                seen.add(name)
        return self


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message names the file, the line, the problem."""


def _yaml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Line (1-based) of every node path in a YAML document, for error messages."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, key.value))
                lines[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def _toml_line(text: str, path: tuple[Any, ...]) -> int:
    """Best effort for TOML (no positions after parsing): the line of the last named key."""
    names = [part for part in path if isinstance(part, str)]
    if not names:
        return 1
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"\s*{re.escape(names[-1])}\s*=", line):
            return number
    return 1


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and check a taxonomy file (`.toml`, or YAML for anything else)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    is_toml = path.suffix.lower() == ".toml"
    try:
        data = tomllib.loads(text) if is_toml else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaxonomyError(f"{path}: {where}{problem}") from None
    if not isinstance(data, dict):
        raise TaxonomyError(f"{path}: line 1: expected a mapping with `categories` (and `fields`)")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        if is_toml:
            line = _toml_line(text, loc)
        else:
            lines = _yaml_lines(text)
            line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
        where = ".".join(str(part) for part in loc) or "(top level)"
        raise TaxonomyError(f"{path}: line {line}: {where}: {first['msg']}") from None
