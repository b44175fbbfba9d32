"""Where the configuration layers come from: the global and user TOML files, and the environment.

Reading a file also keeps, for each key, the line it is written on, so that a
problem can name ``file:line``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from acp_plugins.config.origins import Layer
from acp_plugins.config.trees import Loc, Locator, deep_merge, supplied_depth
from acp_plugins.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 by the nox matrix
    import tomli as tomllib

__all__ = ["ConfigSources"]


@dataclass(frozen=True, slots=True)
class ConfigSources:
    """Where the configuration layers come from: two TOML files and an environment.

    ``global_tables`` are plugin tables given by an embedding application
    (``PluginHost(settings=...)``); they belong to the global layer, over the
    global file's tables.
    """

    global_file: Path | None = None
    user_file: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    global_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls,
        *,
        global_file: Path | None = None,
        user_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ConfigSources:
        """The sources as the command line and the environment name them.

        Global file: ``global_file``, else ``$ACP_CONFIG_FILE``, else ``./acp-plugins.toml``.
        User file: ``user_file``, else ``$ACP_USER_CONFIG``, else
        ``$XDG_CONFIG_HOME/acp-plugins/config.toml`` (``~/.config/...``). A file named
        explicitly must exist (reading it fails otherwise); a default location is used
        only if the file is there.
        """
        env = dict(os.environ if environ is None else environ)
        if global_file is None:
            if env.get("ACP_CONFIG_FILE"):
                global_file = Path(env["ACP_CONFIG_FILE"])
            elif Path("acp-plugins.toml").is_file():
                global_file = Path("acp-plugins.toml")
        if user_file is None:
            if env.get("ACP_USER_CONFIG"):
                user_file = Path(env["ACP_USER_CONFIG"])
            else:
                base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
                candidate = Path(base) / "acp-plugins" / "config.toml"
                user_file = candidate if candidate.is_file() else None
        return cls(global_file=global_file, user_file=user_file, environ=env)

    def with_global_tables(self, tables: Mapping[str, Mapping[str, Any]]) -> ConfigSources:
        """These sources with ``tables`` (plugin id -> settings) merged over the global file's."""
        merged = dict(self.global_tables)
        for plugin_id, table in tables.items():
            merged[plugin_id] = deep_merge(merged.get(plugin_id, {}), table)
        return replace(self, global_tables=merged)

    def table(self, layer: Layer, name: str) -> tuple[dict[str, Any], Callable[[str], str]]:
        """Table ``[plugins.<name>]`` of the global or user file, and where each key is.

        The second item maps a dotted key path to ``"file:line"`` where that key is
        written (best effort: the nearest enclosing table or key, else the file name).
        Raises :class:`ConfigError` if the file cannot be read or is not valid TOML.
        """
        data, where = self.located_table(layer, name)
        return data, dotted_locator(where)

    def host_table(self, layer: Layer) -> tuple[dict[str, Any], Callable[[str], str]]:
        """Table ``[host]`` (the host's own settings) of the global or user file."""
        data, where = self._table(layer, ("host",), "host")
        return data, dotted_locator(where)

    def plugin_tables(self, layer: Layer) -> dict[str, dict[str, Any]]:
        """Every ``[plugins.<id>]`` table of the global or user file, by plugin id."""
        tables, _ = self._table(layer, ("plugins",), None)
        ids = set(tables) | (set(self.global_tables) if layer is Layer.GLOBAL else set())
        return {plugin_id: self.located_table(layer, plugin_id)[0] for plugin_id in sorted(ids)}

    def located_table(self, layer: Layer, name: str) -> tuple[dict[str, Any], Locator]:
        data, where = self._table(layer, ("plugins", name), name)
        given = self.global_tables.get(name) if layer is Layer.GLOBAL else None
        if not given:
            return data, where

        def where_given(loc: Loc) -> str:
            if supplied_depth(given, loc) is not None:
                return "PluginHost(settings=...)"
            return where(loc)

        return deep_merge(data, given), where_given

    def _table(
        self, layer: Layer, header: tuple[str, ...], owner: str | None
    ) -> tuple[dict[str, Any], Locator]:
        if layer is Layer.GLOBAL:
            path = self.global_file
        elif layer is Layer.USER:
            path = self.user_file
        else:
            raise ValueError(f"only the global and user layers are files, not {layer.value!r}")
        if path is None:
            return {}, lambda loc: "default"
        document = _TomlDocument.read(path, owner)
        return document.table(header, owner), document.where_fn(header)


def dotted_locator(where: Locator) -> Callable[[str], str]:
    return lambda dotted: where(tuple(dotted.split(".")) if dotted else ())


_BARE_OR_QUOTED = r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'"""
_HEADER = re.compile(
    rf"""^\s*\[\[?\s*((?:{_BARE_OR_QUOTED})(?:\s*\.\s*(?:{_BARE_OR_QUOTED}))*)\s*\]\]?"""
)
_KEY = re.compile(rf"""^\s*((?:{_BARE_OR_QUOTED})(?:\s*\.\s*(?:{_BARE_OR_QUOTED}))*)\s*=""")
_KEY_PART = re.compile(_BARE_OR_QUOTED)
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True, slots=True)
class _TomlDocument:
    """A parsed TOML file and, for finding where keys are written, its key lines."""

    path: Path
    data: dict[str, Any]
    keys: tuple[tuple[int, tuple[str, ...]], ...]  # (line number, full key path) in file order

    @classmethod
    def read(cls, path: Path, owner: str | None) -> _TomlDocument:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist; create it or name another one",
                plugin_id=owner,
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {path}: {error}", plugin_id=owner) from None
        try:
            data = tomllib.loads(text)
        except RecursionError:
            raise ConfigError(
                f"{path}: config file is nested too deeply to read (arrays or tables inside "
                "each other thousands of times)",
                plugin_id=owner,
            ) from None
        except tomllib.TOMLDecodeError as error:
            line = _TOML_LINE.search(str(error))
            where = f"{path}:{line.group(1)}" if line else str(path)
            raise ConfigError(
                f"{where}: config file is not valid TOML: {error}", plugin_id=owner
            ) from None
        return cls(path, data, tuple(_key_lines(text)))

    def table(self, header: tuple[str, ...], owner: str | None) -> dict[str, Any]:
        node: Any = self.data
        for depth, part in enumerate(header):
            node = node.get(part, {})
            if not isinstance(node, dict):
                name = ".".join(header[: depth + 1])
                raise ConfigError(
                    f"{self.where(header[: depth + 1])}: '{name}' must be a table, "
                    f"not {type(node).__name__}",
                    plugin_id=owner,
                )
        return cast(dict[str, Any], node)

    def where_fn(self, header: tuple[str, ...]) -> Locator:
        return lambda loc: self.where(header + tuple(str(part) for part in loc), len(header))

    def where(self, target: tuple[str, ...], least: int = 1) -> str:
        """``file:line`` of the key or table nearest to ``target``: the first line whose key
        shares the longest start with it (at least ``least`` parts); else the file name."""
        best_line, best_score = 0, least - 1
        for line, key in self.keys:
            score = 0
            for mine, theirs in zip(key, target, strict=False):
                if mine != theirs:
                    break
                score += 1
            if score > best_score:
                best_line, best_score = line, score
        return f"{self.path}:{best_line}" if best_line else str(self.path)


def _key_lines(text: str) -> list[tuple[int, tuple[str, ...]]]:
    found: list[tuple[int, tuple[str, ...]]] = []
    table: tuple[str, ...] = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:  # inside a multi-line string: not a key line
            in_string = quotes % 2 == 0
            continue
        if header := _HEADER.match(line):
            table = _key_parts(header.group(1))
            found.append((number, table))
        elif key := _KEY.match(line):
            found.append((number, table + _key_parts(key.group(1))))
        in_string = quotes % 2 == 1
    return found


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = []
    for token in _KEY_PART.findall(dotted):
        if token.startswith('"'):
            token = tomllib.loads(f"k = {token}")["k"]
        elif token.startswith("'"):
            token = token[1:-1]
        parts.append(token)
    return tuple(parts)
