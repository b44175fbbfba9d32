"""The configuration layers, and where an effective value came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["DEFAULT_ORIGIN", "Layer", "ValueOrigin"]


class Layer(str, Enum):
    """The configuration layers, lowest precedence first."""

    DEFAULTS = "defaults"
    GLOBAL = "global"
    ENVIRONMENT = "environment"
    USER = "user"
    RUNTIME = "runtime"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ValueOrigin:
    """Where an effective value came from: its layer and the file line, variable or default."""

    layer: Layer
    source: str

    def __str__(self) -> str:
        return f"{self.layer.value} ({self.source})"


DEFAULT_ORIGIN = ValueOrigin(Layer.DEFAULTS, "default")
