"""Checking what a plugin's hook returned against the model it must be."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from acp_plugins.models import CommandDefinition
from acp_plugins.runtime.calls import invalid_return
from acp_plugins.runtime.record import PluginRecord

__all__ = ["expect", "expect_commands", "expect_list", "expect_message_types"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def expect(record: PluginRecord, hook: str, value: object, model: type[ModelT]) -> ModelT:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValueError as error:
        raise invalid_return(record, hook, f"an invalid {model.__name__}: {error}") from None


def expect_list(
    record: PluginRecord, hook: str, value: object, model: type[ModelT]
) -> list[ModelT]:
    if not isinstance(value, (list, tuple)):
        raise invalid_return(
            record, hook, f"{type(value).__name__}, not a list of {model.__name__}"
        )
    return [expect(record, hook, item, model) for item in value]


def expect_commands(record: PluginRecord, value: object) -> dict[str, CommandDefinition]:
    if not isinstance(value, dict):
        raise invalid_return(
            record,
            "get_commands",
            f"{type(value).__name__}, not a dict of name -> CommandDefinition",
        )
    commands = {}
    for name, item in value.items():
        definition = expect(record, "get_commands", item, CommandDefinition)
        if definition.name != name:
            raise invalid_return(
                record, "get_commands", f"command {definition.name!r} under the key {name!r}"
            )
        commands[name] = definition
    return commands


def expect_message_types(record: PluginRecord, value: object) -> frozenset[str]:
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(t, str) for t in value
    ):
        raise invalid_return(
            record, "get_supported_message_types", f"{value!r}, not a list of strings"
        )
    return frozenset(value)
