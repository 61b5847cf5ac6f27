"""A decision configuration for a reprocessing run or the shadow run, read from a file (pure).

The file (YAML, TOML or JSON) names what shapes a decision; paths are relative to the file:

```yaml
taxonomy: taxonomy-v2.yaml          # TRIAGE_TAXONOMY_FILE for this configuration
system_prompt_file: prompt-v2.txt   # TRIAGE_SYSTEM_PROMPT_FILE
model: claude-sonnet-4-6            # TRIAGE_MODEL
settings:                           # other decision settings, by name
  max_tokens: 2048
  review_below: 0.7
```

`overrides()` gives them as `Settings` field names; `worker.decide.rerun` derives the settings of
the configuration from the live ones. Only settings that shape a decision may be overridden
(`DECISION_SETTINGS`): where state lives, how the worker runs and who gets mail stay the live
ones. `TRIAGE_SHADOW_CONFIG` names such a file; `triage reprocess --config F` reads one too.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

#: Settings a run configuration may change: those that shape the request or read the result.
DECISION_SETTINGS = (
    "model",
    "max_tokens",
    "taxonomy_file",
    "categories",
    "system_prompt_file",
    "max_clarifications",
    "confidence_high",
    "confidence_low",
    "review_below",
    "prompt_caching",
    "cache_system_prompt",
    "history_token_budget",
    "max_turn_chars",
    "max_question_chars",
)
#: Keys of the file besides `settings` (`taxonomy` is `taxonomy_file`).
TOP_LEVEL = {
    "taxonomy": "taxonomy_file",
    "system_prompt_file": "system_prompt_file",
    "model": "model",
}
PATH_SETTINGS = ("taxonomy_file", "system_prompt_file")


class RunConfigError(ValueError):
    """The file or an override is not a run configuration; the message names what is wrong."""


def parse_override(text: str) -> tuple[str, str]:
    """`NAME=VALUE` (a `--set` option): the setting's field name, lower case, and its value."""
    name, sep, value = text.partition("=")
    name = name.strip().lower().removeprefix("triage_")
    if not sep or not name:
        raise RunConfigError(f"{text!r}: write NAME=VALUE, e.g. max_tokens=2048")
    if name not in DECISION_SETTINGS:
        raise RunConfigError(
            f"{name!r} is not a decision setting; one of: {', '.join(DECISION_SETTINGS)}"
        )
    return name, value.strip()


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def load_run_config(path: Path) -> dict[str, Any]:
    """The overrides a run configuration file names (`Settings` field names; paths resolved
    against the file's directory). Raises `RunConfigError` naming the file and the problem."""
    try:
        data = _read(path)
    except OSError as exc:
        raise RunConfigError(f"{path}: cannot read: {exc}") from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RunConfigError(f"{path}: not YAML, TOML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RunConfigError(f"{path}: expected a mapping (taxonomy, system_prompt_file, model)")
    unknown = sorted(set(data) - set(TOP_LEVEL) - {"settings"})
    if unknown:
        raise RunConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; "
            "known: taxonomy, system_prompt_file, model, settings"
        )
    overrides: dict[str, Any] = {TOP_LEVEL[k]: v for k, v in data.items() if k in TOP_LEVEL}
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise RunConfigError(f"{path}: settings must be a mapping of setting names to values")
    for name, value in settings.items():
        field = str(name).lower().removeprefix("triage_")
        if field not in DECISION_SETTINGS:
            raise RunConfigError(
                f"{path}: settings.{name} is not a decision setting; "
                f"one of: {', '.join(DECISION_SETTINGS)}"
            )
        overrides[field] = value
    for name in PATH_SETTINGS:
        if overrides.get(name) is not None:
            target = Path(str(overrides[name]))
            overrides[name] = target if target.is_absolute() else path.parent / target
    if not overrides:
        raise RunConfigError(f"{path}: names nothing to change (taxonomy, prompt, model, settings)")
    return overrides
