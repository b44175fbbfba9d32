"""Write docs/models.md, the reference of the models plugin authors use, from the models.

    python docs/generate_reference.py          # rewrite docs/models.md
    python docs/generate_reference.py --check  # exit 1 if docs/models.md is out of date

tests/test_docs.py runs the check, so the reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from acp_plugins import models

TARGET = Path(__file__).with_name("models.md")

#: The models, in the order an author meets them, under the interface that uses them.
SECTIONS: tuple[tuple[str, tuple[type[BaseModel], ...]], ...] = (
    ("Messages (`IMessageHandler`)", (models.Message, models.MessageResponse)),
    (
        "Commands (`ICommandHandler`)",
        (
            models.CommandDefinition,
            models.ArgumentDefinition,
            models.OptionDefinition,
            models.CommandResult,
        ),
    ),
    (
        "Data (`IDataProvider`)",
        (models.DataSourceDefinition, models.DataQuery, models.DataResult, models.TimeRange),
    ),
    (
        "Analytics (`IAnalyticsProvider`)",
        (models.MetricDefinition, models.MetricsData, models.MetricPoint, models.Report),
    ),
)

HEADER = """# Models for plugin authors

Generated from `acp_plugins/models.py` by `docs/generate_reference.py`; do not edit by
hand. Every model refuses unknown fields. Import them from `acp_plugins`.

**Typed arguments.** A command's positional arguments and `--options` are checked against
their declared `type` before `execute_command` runs, and delivered converted in `params`
(`int`, `float`, `bool`: `true/false/yes/no/on/off/1/0`, `str`); `args` keeps the
positional ones as the strings given. NaN and infinite floats are refused.
"""


def _type_name(annotation: Any) -> str:
    text = re.sub(r"\b(typing|datetime|acp_plugins\.models)\.", "", str(annotation))
    text = text.replace("NoneType", "None")
    if inspect.isclass(annotation) and not typing.get_args(annotation):
        text = annotation.__name__
    return text.replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        factory = field.default_factory
        name = getattr(factory, "__name__", "")
        if name in ("list", "dict"):
            return "`[]`" if name == "list" else "`{}`"
        return "generated"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{field.default!r}`"


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                shown = f"`{value}`" if name == "pattern" else value  # not a link: code
                parts.append(f"{name} {shown}")
    return "; ".join(parts)


def _model(model: type[BaseModel]) -> list[str]:
    doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"### `{model.__name__}`", "", doc, "", "| field | type | default | meaning |"]
    lines.append("|---|---|---|---|")
    for name, field in model.model_fields.items():
        meaning = field.description or ""
        limits = _constraints(field)
        if limits:
            meaning = f"{meaning} ({limits.replace('|', chr(92) + '|')})".strip()
        lines.append(
            f"| `{name}` | `{_type_name(field.annotation)}` | {_default(field)} | {meaning} |"
        )
    return [*lines, ""]


def render() -> str:
    """The whole reference, as it should be on disk."""
    lines = [HEADER]
    for title, section in SECTIONS:
        lines += [f"## {title}", ""]
        for model in section:
            lines += _model(model)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date; run python docs/generate_reference.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
