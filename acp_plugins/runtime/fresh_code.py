"""A trusted plugin's code imported afresh in the host's process, or why it cannot be.

Reloading an in-process plugin takes its packages' modules out of ``sys.modules``
(kept aside, so that a failed reload puts them back and the serving instance goes
on with the code it has), forgets their bytecode caches (an edit within the same
second as the last import, at the same size, would otherwise load the old
bytecode), and lets the entry point import again. Two things cannot be done
again in one process, and are said so instead: a compiled extension module of
the plugin (an extension is initialised once per process), and a dependency of
the plugin that changed on disk since it was imported (the new code would run
against the old dependency).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

from acp_plugins.loading.distributions import dependency_modules, top_level_modules

__all__ = ["FreshImport", "plugin_packages", "restart_needed"]


def plugin_packages(entry_point: str, distribution: str) -> frozenset[str]:
    """The top-level modules that are the plugin's own code (its entry point's, its
    distribution's)."""
    own = {entry_point.partition(":")[0].strip().partition(".")[0]}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        own |= top_level_modules(importlib.metadata.distribution(distribution))
    return frozenset(name for name in own if name and name != "acp_plugins")


def _modules_of(packages: frozenset[str]) -> dict[str, ModuleType]:
    return {
        name: module
        for name, module in list(sys.modules.items())
        if module is not None and name.partition(".")[0] in packages
    }


def restart_needed(packages: frozenset[str], distribution: str, loaded_at: float) -> str | None:
    """Why the plugin's code cannot be imported again in this process (``None``: it can)."""
    for name, module in sorted(_modules_of(packages).items()):
        location = getattr(module, "__file__", None) or ""
        if location.endswith(tuple(EXTENSION_SUFFIXES)):
            return (
                f"its module '{name}' is a compiled extension ({Path(location).name}), which "
                "cannot be loaded twice in one process; restart the host, or run the plugin "
                "isolated (a new worker imports it afresh)"
            )
    for name in sorted(dependency_modules(distribution)):
        location = getattr(sys.modules.get(name), "__file__", None)
        if not location:
            continue
        try:
            changed = Path(location).stat().st_mtime > loaded_at
        except OSError:
            changed = True  # gone: upgraded or removed since it was imported
        if changed:
            return (
                f"its dependency '{name}' changed on disk since it was imported, and the "
                "host's process still runs the old one; restart the host, or run the plugin "
                "isolated"
            )
    return None


@dataclass
class FreshImport:
    """The plugin's modules, set aside so that its entry point imports afresh."""

    packages: frozenset[str]
    saved: dict[str, ModuleType] = field(default_factory=dict)

    def begin(self) -> None:
        """Take the plugin's modules out of ``sys.modules`` and forget their bytecode."""
        self.saved = _modules_of(self.packages)
        for name, module in self.saved.items():
            del sys.modules[name]
            source = getattr(module, "__file__", None)
            if source and source.endswith(".py"):
                with contextlib.suppress(OSError, ValueError, NotImplementedError):
                    Path(importlib.util.cache_from_source(source)).unlink(missing_ok=True)
        importlib.invalidate_caches()

    def undo(self) -> None:
        """Put the old modules back (the new version failed): the old code goes on as it was."""
        for name in _modules_of(self.packages):
            del sys.modules[name]
        sys.modules.update(self.saved)
        self.saved = {}
