"""docker-compose.yml and .env.example only reference commands, options and settings that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from common.settings import Settings, env_name
from triage.main import _register_commands, cli

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\b((?:TRIAGE|ANTHROPIC)_[A-Z0-9_]+)")


def known_variables() -> set[str]:
    """Every Settings field's variable, and the envvars of `triage` options."""
    _register_commands()
    names = {env_name(field) for field in Settings.model_fields}

    def walk(command: click.Command) -> None:
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            names.update(str(e) for e in envvars if e)
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    walk(cli)
    return names


def check_triage_command(argv: list[str]) -> None:
    """`triage SUB [SUB…] [--opt …]`: the command exists and accepts every option given."""
    _register_commands()
    command: click.Command = cli
    rest = argv[1:]
    path = ["triage"]
    while isinstance(command, click.Group):
        assert rest, f"{' '.join(path)} needs a subcommand"
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no command `{' '.join([*path, rest[0]])}`"
        path.append(rest[0])
        command, rest = sub, rest[1:]
    if command.context_settings.get("ignore_unknown_options"):
        return  # `triage worker` passes the rest to celery
    options = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    for token in rest:
        if token.startswith("-") and token != "-":
            name = token.split("=", 1)[0]
            assert name in options, f"`{' '.join(path)}` has no option {name}"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_production_shaped():
    """Compose runs Redis with noeviction and AOF, Flower, a stop grace, an offline emulator."""
    services = compose()["services"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy noeviction" in redis_command
    assert "--appendonly yes" in redis_command
    env = services["worker"]["environment"]
    assert "TRIAGE_WORKER_POOL" in env and "TRIAGE_WORKER_CONCURRENCY" in env
    assert "flower" in " ".join(services["flower"]["command"])
    assert services["emulator"]["profiles"] == ["offline"]
    assert services["worker"]["stop_grace_period"]


def test_every_triage_command_in_compose_exists():
    """Every `triage` command in compose and its header examples exists with those options."""
    commands: list[list[str]] = []
    for service in compose()["services"].values():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if command and command[0] == "triage":
            commands.append(command)
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():  # the usage examples in the header comments
        if line.lstrip().startswith("#") and " triage " in line:
            example = line.split(" triage ", 1)[1].split("#", 1)[0]
            commands.append(["triage", *shlex.split(example)])
    assert len(commands) >= 4
    for command in commands:
        check_triage_command(command)


def test_every_variable_in_compose_and_env_example_is_a_setting():
    """Every TRIAGE_/ANTHROPIC_ variable in compose and .env.example is a known setting."""
    known = known_variables()
    referenced: set[str] = set()
    for service in compose()["services"].values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        referenced.update(name for name in environment if VARIABLE.fullmatch(name))
    compose_text = (ROOT / "docker-compose.yml").read_text()
    referenced.update(re.findall(r"\$\{(\w+)", compose_text))
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            referenced.add(match.group(1))
    referenced = {name for name in referenced if VARIABLE.fullmatch(name)}
    assert {"ANTHROPIC_API_KEY", "TRIAGE_METRICS_PORT", "TRIAGE_WORKER_POOL"} <= referenced
    unknown = sorted(referenced - known)
    assert not unknown, f"referenced but not settings: {unknown}"


def test_the_checker_catches_mistakes():
    """The checkers reject an unknown command, an unknown option and an unknown variable."""
    check_triage_command(["triage", "events", "tail", "--follow"])
    for bad in (["triage", "nosuch"], ["triage", "events", "tail", "--nosuch"]):
        try:
            check_triage_command(bad)
        except AssertionError:
            continue
        raise AssertionError(f"{bad} was accepted")
    assert "TRIAGE_NOSUCH" not in known_variables()
