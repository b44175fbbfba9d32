"""Nested settings data: locations inside it, merging, and finding what supplies a location."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "Loc",
    "Locator",
    "deep_merge",
    "dotted",
    "every_loc",
    "key_in",
    "leaves",
    "leaves_loc",
    "mapped_locator",
    "supplied_depth",
]

#: A location inside settings: keys, and list indexes as pydantic reports them.
Loc = tuple[str | int, ...]

#: Where the value at a location is written (``file:line``, a variable, ``default``).
Locator = Callable[[Loc], str]


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        elif isinstance(value, Mapping):
            merged[key] = deep_merge({}, value)
        else:
            merged[key] = value
    return merged


def supplied_depth(raw: Any, loc: Loc) -> int | None:
    """How much of ``loc`` ``raw`` supplies: all of it, or the part up to a plain value that
    pydantic looked inside; ``None`` if ``raw`` does not have it."""
    node = raw
    for depth, part in enumerate(loc):
        if isinstance(node, Mapping):
            key = key_in(node, part)
            if key is None:
                return None
            node = node[key]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return depth or None
    return len(loc)


def key_in(node: Mapping[Any, Any], part: str | int) -> Any:
    if part in node:
        return part
    if isinstance(part, str):  # settings match names case-insensitively
        for key in node:
            if isinstance(key, str) and key.lower() == part.lower():
                return key
    return None


def dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def leaves_loc(values: Mapping[str, Any], prefix: Loc = ()) -> list[tuple[Loc, Any]]:
    """Every leaf of nested mappings (a non-mapping, or an empty mapping) with its path."""
    found: list[tuple[Loc, Any]] = []
    for key, value in values.items():
        loc = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            found += leaves_loc(value, loc)
        else:
            found.append((loc, value))
    return found


def leaves(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(dotted(loc), value) for loc, value in leaves_loc(values)]


def every_loc(data: Mapping[str, Any], prefix: Loc = ()) -> list[Loc]:
    found: list[Loc] = []
    for key, value in data.items():
        loc = (*prefix, key)
        found.append(loc)
        if isinstance(value, Mapping):
            found += every_loc(value, loc)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found.append((*loc, index))
                if isinstance(item, Mapping):
                    found += every_loc(item, (*loc, index))
    return found


def mapped_locator(where: dict[str, str]) -> Locator:
    def locate(loc: Loc) -> str:
        for depth in range(len(loc), 0, -1):
            found = where.get(dotted(loc[:depth]))
            if found is not None:
                return found
        return where.get("", "default")

    return locate
