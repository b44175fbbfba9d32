"""Typed values that cross the boundary between the host and its plugins.

These are the models of the specification's interfaces: messages and their
responses, commands, data sources and queries, metrics and reports. Plugins
receive and return them; the host validates what plugins return.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ArgumentDefinition",
    "CommandDefinition",
    "CommandResult",
    "DataQuery",
    "DataResult",
    "DataSourceDefinition",
    "Message",
    "MessageResponse",
    "MetricDefinition",
    "MetricPoint",
    "MetricsData",
    "OptionDefinition",
    "Report",
    "TimeRange",
]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- messages ---------------------------------------------------------------


class Message(_Model):
    """A message exchanged between agents, offered to message handler plugins."""

    type: str = Field(min_length=1, description="Kind of message, e.g. 'chat'.")
    content: str = Field(default="", description="The text.")
    sender: str = Field(default="user", description="Who sent it (set by the host for plugins).")
    recipient: str | None = Field(default=None, description="Who it is for, if anyone.")
    id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        description="Unique per message; the same on every attempt (an idempotency key).",
    )
    timestamp: datetime = Field(default_factory=_now, description="When it was sent (UTC).")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Anything else, as JSON.")
    attempt: int = Field(
        default=1,
        ge=1,
        description="1 for the first handler; 2 and up when an earlier one failed and the "
        "host fails over (that one may have done part of the work: use `id` to tell).",
    )


class MessageResponse(_Model):
    """What a handler answers; ``handled`` is false only for the host's "unhandled" answer."""

    content: str = Field(default="", description="The answer's text.")
    handled: bool = Field(default=True, description="False only in the host's 'unhandled'.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Anything else, as JSON.")


# -- commands ---------------------------------------------------------------


ValueType = Literal["str", "int", "float", "bool"]
"""The types a command's arguments and options are converted to before the plugin sees them."""


class ArgumentDefinition(_Model):
    """One positional argument of a command."""

    name: str = Field(min_length=1, description="Shown in upper case in the usage line.")
    type: ValueType = Field(
        default="str", description="Checked, then delivered converted in `params`."
    )
    required: bool = Field(default=True, description="Optional ones come after required ones.")
    variadic: bool = Field(default=False, description="Takes all remaining arguments (last only).")
    help: str = Field(default="", description="One line for the usage text.")


class OptionDefinition(_Model):
    """One named option of a command: ``--days 3``, or a flag ``--metric`` if its type is bool."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]*$",
        description="Written `--NAME`; its key in `params` has '-' replaced by '_'.",
    )
    type: ValueType = Field(
        default="str", description="'bool' makes a flag that takes no value (default false)."
    )
    default: str | int | float | bool | None = Field(
        default=None, description="The value in `params` when the option is not given."
    )
    required: bool = Field(default=False, description="Whether it must be given (not for flags).")
    help: str = Field(default="", description="One line for the usage text.")

    @property
    def key(self) -> str:
        """The option's key in ``params``: ``max-days`` -> ``max_days``."""
        return self.name.replace("-", "_")

    @model_validator(mode="after")
    def _flag_or_value(self) -> OptionDefinition:
        if self.type == "bool" and self.required:
            raise ValueError(f"flag '--{self.name}' cannot be required")
        return self


class CommandDefinition(_Model):
    """A command a plugin offers: its name, what it does, its arguments and its options."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_-]*$", description="Also reachable as `plugin_id:name`."
    )
    description: str = Field(default="", description="One line for `acp-plugins commands`.")
    arguments: list[ArgumentDefinition] = Field(
        default_factory=list, description="Positional arguments, in order."
    )
    options: list[OptionDefinition] = Field(
        default_factory=list, description="Named options (`--days 3`, flags), in any order."
    )

    @model_validator(mode="after")
    def _arguments_in_order(self) -> CommandDefinition:
        seen_optional = False
        for index, argument in enumerate(self.arguments):
            if argument.variadic and index != len(self.arguments) - 1:
                raise ValueError(f"only the last argument may be variadic, not '{argument.name}'")
            if argument.required and seen_optional:
                raise ValueError(f"required argument '{argument.name}' follows an optional one")
            seen_optional = seen_optional or not argument.required
        keys = [a.name for a in self.arguments] + [o.key for o in self.options]
        doubled = sorted({key for key in keys if keys.count(key) > 1})
        if doubled:
            raise ValueError(f"names used twice among arguments and options: {', '.join(doubled)}")
        return self

    @property
    def usage(self) -> str:
        """One-line usage, e.g. ``add A B``, ``greet [NAME]``, ``forecast CITY [--days INT]``."""
        parts = [self.name]
        for argument in self.arguments:
            label = argument.name.upper() + ("..." if argument.variadic else "")
            parts.append(label if argument.required else f"[{label}]")
        for option in self.options:
            text = f"--{option.name}" + ("" if option.type == "bool" else f" {option.type.upper()}")
            parts.append(text if option.required else f"[{text}]")
        return " ".join(parts)


class CommandResult(_Model):
    """The outcome of a command."""

    success: bool = Field(default=True, description="False makes the CLI exit non-zero.")
    output: str = Field(default="", description="Text for people, printed by the CLI.")
    data: Any = Field(default=None, description="Anything JSON can hold, for scripts.")
    exit_code: int = Field(default=0, description="The CLI's exit status when not successful.")


# -- data -------------------------------------------------------------------


class DataSourceDefinition(_Model):
    """A data source a plugin provides, and the fields its rows carry."""

    source_id: str = Field(
        pattern=r"^[a-z][a-z0-9_.-]*$", description="Also reachable as `plugin_id:source_id`."
    )
    name: str = Field(default="", description="Display name.")
    description: str = Field(default="", description="One line for `acp-plugins sources`.")
    fields: dict[str, str] = Field(default_factory=dict, description="Field name -> type name.")
    time_field: str | None = Field(
        default=None, description="The field a query's time_range filters on."
    )


class TimeRange(_Model):
    """A half-open interval of time, ``start <= t < end``."""

    start: datetime = Field(description="Included.")
    end: datetime = Field(description="Excluded; not before `start`.")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end < self.start:
            raise ValueError("time range ends before it starts")
        return self

    @classmethod
    def last(cls, duration: timedelta, *, now: datetime | None = None) -> TimeRange:
        """The ``duration`` up to ``now`` (default: the current time, UTC)."""
        end = now or _now()
        return cls(start=end - duration, end=end)

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class DataQuery(_Model):
    """A structured query: equality filters, chosen fields, order, paging, time window."""

    filters: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Field -> the value it must equal."
    )
    fields: list[str] | None = Field(default=None, description="Only these fields; all if None.")
    order_by: str | None = Field(default=None, description="A field; prefix '-' for descending.")
    limit: int | None = Field(default=None, ge=0, description="At most this many rows.")
    offset: int = Field(default=0, ge=0, description="Rows to skip first.")
    time_range: TimeRange | None = Field(
        default=None, description="Only rows whose `time_field` falls inside."
    )


class DataResult(_Model):
    """Rows returned by a data source."""

    source_id: str = Field(description="The source that answered.")
    rows: list[dict[str, Any]] = Field(default_factory=list, description="Field -> value.")
    total: int | None = Field(default=None, description="Matching rows before paging, if known.")


# -- analytics --------------------------------------------------------------


class MetricDefinition(_Model):
    """A metric an analytics plugin can collect."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="The metric's id.")
    description: str = Field(default="", description="One line for `acp-plugins metrics`.")
    unit: str = Field(default="", description="E.g. 'messages', 'seconds'.")
    kind: Literal["counter", "gauge"] = Field(
        default="gauge", description="A counter only grows; a gauge goes up and down."
    )


class MetricPoint(_Model):
    """One value of one metric, optionally with labels (e.g. per agent)."""

    name: str = Field(description="A `MetricDefinition` name.")
    value: float = Field(description="The value.")
    labels: dict[str, str] = Field(default_factory=dict, description="E.g. {'agent': 'a1'}.")


class MetricsData(_Model):
    """Metric values collected over a time range."""

    time_range: TimeRange = Field(description="What the values cover.")
    points: list[MetricPoint] = Field(default_factory=list, description="The values.")
    source: str = Field(default="", description="Plugin id that collected them (set by the host).")


class Report(_Model):
    """A rendered report."""

    format: str = Field(description="'json', 'markdown', 'csv' or the plugin's own.")
    media_type: str = Field(description="E.g. 'text/markdown'.")
    content: str = Field(description="The rendered report.")
    title: str = Field(default="", description="A heading for it.")
