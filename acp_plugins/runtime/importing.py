"""Importing a trusted plugin's code, and checking it implements what its manifest declares."""

from __future__ import annotations

from importlib.metadata import EntryPoint

from acp_plugins.errors import InterfaceMismatch, PluginImportError
from acp_plugins.loading.discovery import (
    ENTRY_POINT_GROUP,
    code_elsewhere,
    forget_stale_modules,
)
from acp_plugins.loading.interfaces import INTERFACE_HOOKS, Interface, interface_of_hook
from acp_plugins.loading.manifest import Manifest
from acp_plugins.runtime.record import PluginRecord

__all__ = ["check_interfaces", "import_plugin"]


def import_plugin(record: PluginRecord) -> object:
    """Import the entry point's object; instantiate it if it is a class."""
    entry_point = EntryPoint(record.plugin_id, record.entry_point, ENTRY_POINT_GROUP)
    if record.manifest_path is not None:
        forget_stale_modules(record.entry_point, record.manifest_path.parent)
    try:
        loaded = entry_point.load()
    except (Exception, SystemExit) as error:
        raise PluginImportError(
            f"importing '{record.entry_point}' failed: {type(error).__name__}: {error}",
            plugin_id=record.plugin_id,
        ) from error
    if record.manifest_path is not None:
        elsewhere = code_elsewhere(
            record.plugin_id, record.entry_point, record.manifest_path.parent
        )
        if elsewhere:
            raise PluginImportError(elsewhere, plugin_id=record.plugin_id)
    if isinstance(loaded, type):
        try:
            return loaded()
        except (Exception, SystemExit) as error:
            raise PluginImportError(
                f"creating {loaded.__name__}() failed: {type(error).__name__}: {error}",
                plugin_id=record.plugin_id,
            ) from error
    return loaded


def check_interfaces(manifest: Manifest, hooks: frozenset[str], plugin_object: object) -> None:
    """Declared interfaces must be implemented in full, and implemented ones declared."""
    declared = set(manifest.interfaces)
    problems = []
    for interface in sorted(declared, key=lambda i: i.value):
        missing = sorted(INTERFACE_HOOKS[interface] - hooks)
        if missing:
            hint = [name for name in missing if callable(getattr(plugin_object, name, None))]
            text = f"declares {interface.value} but does not implement {', '.join(missing)}"
            if hint:
                verb = "exists but is" if len(hint) == 1 else "exist but are"
                text += f" ({', '.join(hint)} {verb} not marked with @acp_plugins.hookimpl)"
            problems.append(text)
    undeclared: dict[Interface, list[str]] = {}
    for hook in sorted(hooks):
        owner = interface_of_hook(hook)
        if owner is not None and owner not in declared:
            undeclared.setdefault(owner, []).append(hook)
    for interface, names in undeclared.items():
        problems.append(
            f"implements {', '.join(names)} of {interface.value} but does not declare "
            f"{interface.value} in its manifest's interfaces"
        )
    if problems:
        raise InterfaceMismatch(
            f"'{manifest.plugin_id}' " + "; ".join(problems), plugin_id=manifest.plugin_id
        )
