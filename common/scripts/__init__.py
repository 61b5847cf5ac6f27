"""Lua scripts shared by producers and the worker's broker transport (`load(name)`)."""

from __future__ import annotations

from common.lua import source


def load(name: str) -> str:
    """The source of `<name>.lua` from this package."""
    return source(__name__, name)
