"""The command registry: command names of active plugins, conflicts, argument parsing.

Every command is reachable as ``plugin_id:command``. The plain name works when
exactly one active plugin offers it; when several do, it is a conflict, reported
by :attr:`CommandRegistry.conflicts` and refused with the candidates named.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from acp_plugins.errors import CommandConflictError, CommandUsageError, UnknownCommand
from acp_plugins.models import CommandDefinition
from acp_plugins.runtime.record import PluginRecord

__all__ = ["CommandEntry", "CommandRegistry", "ParsedArguments", "parse_arguments"]


@dataclass(frozen=True, slots=True)
class CommandEntry:
    """One command of one plugin."""

    plugin_id: str
    definition: CommandDefinition

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin_id}:{self.definition.name}"


class CommandRegistry:
    """Maps command names to the plugins that offer them."""

    __slots__ = ("_by_name", "_records")

    def __init__(self) -> None:
        self._by_name: dict[str, list[CommandEntry]] = {}
        self._records: dict[str, PluginRecord] = {}

    def rebuild(self, records: Iterable[PluginRecord]) -> None:
        """Take the commands of ``records`` (the active command handlers)."""
        self._by_name = {}
        self._records = {}
        for record in records:
            self.add(record)

    def add(self, record: PluginRecord) -> None:
        """Take the commands of one more plugin (one that has just become active)."""
        self._records[record.plugin_id] = record
        for definition in record.commands.values():
            entry = CommandEntry(record.plugin_id, definition)
            self._by_name.setdefault(definition.name, []).append(entry)

    @property
    def conflicts(self) -> dict[str, list[str]]:
        """Command name -> the plugin ids that all offer it."""
        return {
            name: sorted(entry.plugin_id for entry in entries)
            for name, entries in sorted(self._by_name.items())
            if len(entries) > 1
        }

    def entries(self) -> list[CommandEntry]:
        """Every command of every active plugin, by qualified name."""
        every = [entry for entries in self._by_name.values() for entry in entries]
        return sorted(every, key=lambda entry: entry.qualified_name)

    def resolve(self, name: str) -> tuple[PluginRecord, CommandDefinition]:
        """The plugin and definition ``name`` (plain or ``plugin_id:command``) refers to."""
        plugin_id, sep, command = name.rpartition(":")
        if sep:
            record = self._records.get(plugin_id)
            definition = record.commands.get(command) if record else None
            if record is None or definition is None:
                raise UnknownCommand(
                    f"no active plugin '{plugin_id}' offers command '{command}'; "
                    "`acp-plugins commands` lists what is available"
                )
            return record, definition
        entries = self._by_name.get(name)
        if not entries:
            close = difflib.get_close_matches(name, list(self._by_name), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UnknownCommand(
                f"no active plugin offers command '{name}'; {hint}"
                "`acp-plugins commands` lists what is available"
            )
        if len(entries) > 1:
            choices = ", ".join(sorted(entry.qualified_name for entry in entries))
            raise CommandConflictError(
                f"command '{name}' is offered by several plugins; name one of: {choices}"
            )
        entry = entries[0]
        return self._records[entry.plugin_id], entry.definition


_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def _convert(kind: str, value: str) -> str | int | float | bool:
    """``value`` as ``kind``; raises ValueError if it is not one."""
    if kind == "int":
        return int(value)
    if kind == "float":
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(value)
        return number
    if kind == "bool":
        lowered = value.lower()
        if lowered not in _TRUE | _FALSE:
            raise ValueError(value)
        return lowered in _TRUE
    return value


@dataclass(frozen=True, slots=True)
class ParsedArguments:
    """A command line for one command, checked against its definition."""

    args: list[str]
    """The positional arguments as given (strings)."""
    params: dict[str, Any]
    """Every argument and option by name, converted to its declared type.

    An optional argument that was not given is ``None``, a variadic one a list; an
    option not given has its default (a flag: ``False``). Option keys use ``_``
    for ``-`` (``--max-days`` -> ``max_days``).
    """


def parse_arguments(
    plugin_id: str, definition: CommandDefinition, tokens: Sequence[str]
) -> ParsedArguments:
    """Check ``tokens`` against ``definition``; raise :class:`CommandUsageError` with the usage.

    ``--NAME VALUE``, ``--NAME=VALUE`` and flags ``--NAME`` may come anywhere; ``--``
    ends the options (what follows is positional even if it starts with ``--``).
    """
    try:
        return _parse(definition, list(tokens))
    except _Problem as problem:
        raise CommandUsageError(
            f"{plugin_id}:{definition.name}: {problem}; usage: {definition.usage}",
            plugin_id=plugin_id,
        ) from None


class _Problem(Exception):
    pass


def _parse(definition: CommandDefinition, tokens: list[str]) -> ParsedArguments:
    options = {option.name: option for option in definition.options}
    params: dict[str, Any] = {
        o.key: False if o.type == "bool" else o.default for o in options.values()
    }
    given: set[str] = set()
    positional: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            positional.extend(tokens[index:])
            break
        if not (token.startswith("--") and len(token) > 2):
            positional.append(token)
            continue
        name, has_value, value = token[2:].partition("=")
        option = options.get(name)
        if option is None:
            raise _Problem(_unknown_option(name, definition))
        if option.type == "bool":
            if has_value:
                raise _Problem(f"--{name} is a flag and takes no value")
            params[option.key] = True
        else:
            if not has_value:
                if index == len(tokens):
                    raise _Problem(f"--{name} needs a value ({option.type})")
                value = tokens[index]
                index += 1
            params[option.key] = _typed(f"--{name}", option.type, value)
        given.add(name)
    for option in options.values():
        if option.required and option.name not in given:
            raise _Problem(f"missing option --{option.name}")
    _positional_params(definition, positional, params)
    return ParsedArguments(positional, params)


def _unknown_option(name: str, definition: CommandDefinition) -> str:
    names = [option.name for option in definition.options]
    if not names:
        return (
            f"unknown option --{name} (it takes no options; put '--' before arguments "
            "that begin with '--')"
        )
    close = difflib.get_close_matches(name, names, n=1)
    hint = (
        f"did you mean --{close[0]}?" if close else "options: " + ", ".join(f"--{n}" for n in names)
    )
    return f"unknown option --{name} ({hint})"


def _typed(label: str, kind: str, value: str) -> str | int | float | bool:
    try:
        return _convert(kind, value)
    except ValueError:
        raise _Problem(f"{label} must be {kind}, not {value!r}") from None


def _positional_params(
    definition: CommandDefinition, values: list[str], params: dict[str, Any]
) -> None:
    arguments = definition.arguments
    required = sum(1 for argument in arguments if argument.required)
    variadic = bool(arguments) and arguments[-1].variadic
    if len(values) < required:
        raise _Problem(f"missing argument {arguments[len(values)].name.upper()}")
    if not variadic and len(values) > len(arguments):
        raise _Problem(f"{len(values) - len(arguments)} argument(s) too many")
    for index, argument in enumerate(arguments):
        label = argument.name.upper()
        if argument.variadic:
            params[argument.name] = [_typed(label, argument.type, v) for v in values[index:]]
        elif index < len(values):
            params[argument.name] = _typed(label, argument.type, values[index])
        else:
            params[argument.name] = None
