"""Loading Redis Lua scripts kept as `.lua` files beside the code that runs them.

Each file's header documents its KEYS and ARGV; `source(package, name)` returns the text of
`<package>/<name>.lua` for `redis.Redis.register_script`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def source(package: str, name: str) -> str:
    """The source of `<name>.lua` in `package` (a package shipped with its .lua files)."""
    return resources.files(package).joinpath(f"{name}.lua").read_text(encoding="utf-8")
