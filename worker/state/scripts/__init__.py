"""The worker's Redis Lua scripts, one `.lua` file each; every file's header documents its KEYS and
ARGV. `load(name)` returns a script's source for `redis.Redis.register_script`."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The source of `<name>.lua` from this package."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
