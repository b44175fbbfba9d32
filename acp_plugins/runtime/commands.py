"""The command registry: command names of active plugins, conflicts, argument checks.

Every command is reachable as ``plugin_id:command``. The plain name works when
exactly one active plugin offers it; when several do, it is a conflict, reported
by :attr:`CommandRegistry.conflicts` and refused with the candidates named.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from acp_plugins.errors import CommandConflictError, CommandUsageError, UnknownCommand
from acp_plugins.models import ArgumentDefinition, CommandDefinition
from acp_plugins.runtime.record import PluginRecord

__all__ = ["CommandEntry", "CommandRegistry", "check_arguments"]


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
            raise UnknownCommand(
                f"no active plugin offers command '{name}'; "
                "`acp-plugins commands` lists what is available"
            )
        if len(entries) > 1:
            choices = ", ".join(sorted(entry.qualified_name for entry in entries))
            raise CommandConflictError(
                f"command '{name}' is offered by several plugins; name one of: {choices}"
            )
        entry = entries[0]
        return self._records[entry.plugin_id], entry.definition


def _convert(argument: ArgumentDefinition, value: str) -> None:
    if argument.type == "int":
        int(value)
    elif argument.type == "float":
        float(value)
    elif argument.type == "bool" and value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
        raise ValueError(value)


def check_arguments(plugin_id: str, definition: CommandDefinition, args: Sequence[str]) -> None:
    """Raise :class:`CommandUsageError` (with the usage) unless ``args`` fit ``definition``."""
    usage = f"usage: {definition.usage}"
    arguments = definition.arguments
    required = sum(1 for argument in arguments if argument.required)
    variadic = bool(arguments) and arguments[-1].variadic
    problem = None
    if len(args) < required:
        missing = arguments[len(args)].name.upper()
        problem = f"missing argument {missing}"
    elif not variadic and len(args) > len(arguments):
        problem = f"{len(args) - len(arguments)} argument(s) too many"
    else:
        for index, value in enumerate(args):
            argument = arguments[min(index, len(arguments) - 1)]
            try:
                _convert(argument, value)
            except ValueError:
                problem = f"{argument.name.upper()} must be {argument.type}, not {value!r}"
                break
    if problem:
        raise CommandUsageError(
            f"{plugin_id}:{definition.name}: {problem}; {usage}", plugin_id=plugin_id
        )
