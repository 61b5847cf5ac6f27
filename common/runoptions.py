"""What the commands that run decisions in bulk share on the command line, declared once.

`triage eval` and `triage reprocess start` both take `--taxonomy`, `--model` and
`--system-prompt-file`, and exit with the same codes for the same failures; scripts rely on the
two meaning the same, so they share one declaration and one reading (`option_overrides`). A run
configuration file is `common.runconfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

Command = TypeVar("Command", bound=Callable[..., Any])

#: Exit codes (1 is each command's own "not what you wanted": below the bar, declined).
EXIT_USAGE = 2
EXIT_API = 3
EXIT_INTERRUPTED = 130


class UsageFailure(click.ClickException):
    """A mistake in what was asked: nothing was spent."""

    exit_code = EXIT_USAGE


class ApiFailure(click.ClickException):
    """The API failed and the run stopped (what was done is kept)."""

    exit_code = EXIT_API


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OPTIONS = (
    click.option(
        "--taxonomy",
        type=_FILE,
        help="Taxonomy file (YAML/TOML) instead of TRIAGE_TAXONOMY_FILE.",
    ),
    click.option("--model", help="Model id instead of TRIAGE_MODEL."),
    click.option(
        "--system-prompt-file",
        type=_FILE,
        help="System prompt template instead of TRIAGE_SYSTEM_PROMPT_FILE.",
    ),
)


def decision_options(command: Command) -> Command:
    """Adds `--taxonomy`, `--model` and `--system-prompt-file` (in that order in `--help`)."""
    for option in reversed(_OPTIONS):  # click applies decorators bottom-up
        command = option(command)
    return command


def option_overrides(
    taxonomy: Path | None, model: str | None, system_prompt_file: Path | None
) -> dict[str, Any]:
    """The options given, as `Settings` field overrides (an option left out changes nothing)."""
    overrides: dict[str, Any] = {}
    if taxonomy is not None:
        overrides["taxonomy_file"] = taxonomy
    if model:
        overrides["model"] = model
    if system_prompt_file is not None:
        overrides["system_prompt_file"] = system_prompt_file
    return overrides
