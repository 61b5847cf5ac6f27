"""The producers' Redis Lua scripts, one `.lua` file each; every file's header documents its KEYS
and ARGV. `load(name)` returns a script's source for `redis.Redis.register_script`."""

from __future__ import annotations

from common.lua import source


def load(name: str) -> str:
    """The source of `<name>.lua` from this package."""
    return source(__name__, name)
