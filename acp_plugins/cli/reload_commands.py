"""The commands that replace running plugins: ``reload ID`` and ``dev PATH``.

``reload`` starts a host, brings up what is installed now of one plugin beside
its running instance and switches to it, as a long-running host does (its
output says whether the new version would take over, and why not). ``dev``
keeps a host running, watches an editable plugin project's files and reloads its
plugins on every change, until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from pathlib import Path

from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from acp_plugins.cli.output import print_json
from acp_plugins.host import PluginHost
from acp_plugins.runtime.reload import ReloadFailed, ReloadResult

__all__ = ["cmd_dev", "cmd_reload", "describe"]

#: Which changed files make ``dev`` reload (the rest: editor swap files, caches...).
_WATCHED_SUFFIXES = (".py", ".json", ".toml", ".cfg", ".txt", ".yaml", ".yml")


def describe(result: ReloadResult) -> str:
    """One line for people about one reload."""
    versions = f"{result.from_version} -> {result.to_version}"
    if result.ok:
        return f"{result.outcome} '{result.plugin_id}' {versions} in {result.seconds:.2f} s: " + (
            result.detail
        )
    return f"{result.outcome}: '{result.plugin_id}' {versions}: {result.detail}"


async def _reload_one(host: PluginHost, plugin_id: str, suspend_dependents: bool) -> ReloadResult:
    try:
        return await host.reload(plugin_id, suspend_dependents=suspend_dependents)
    except ReloadFailed as failed:
        return failed.result


async def cmd_reload(host: PluginHost, args: argparse.Namespace) -> int:
    """Reload one plugin; exit 1 (the old instance kept) if the new one is refused or fails."""
    await host.start_plugin(args.plugin_id)
    host.record(args.plugin_id)  # not installed: one clear line, exit 3
    result = await _reload_one(host, args.plugin_id, args.suspend_dependents)
    if args.json:
        print_json(result.to_dict())
    elif result.ok:
        print(describe(result))
    else:
        raise CliError(describe(result), EXIT_FAILED)
    return EXIT_OK if result.ok else EXIT_FAILED


def _plugins_from(host: PluginHost, project: Path) -> list[str]:
    """The installed plugins whose manifest lies in ``project`` (an editable install of it)."""
    found = []
    for record in host.records.values():
        path = record.manifest_path
        if path is not None and (project == path.resolve() or project in path.resolve().parents):
            found.append(record.plugin_id)
    return sorted(found)


def _relevant(changes: Sequence[tuple[object, str]]) -> list[str]:
    names = sorted({str(path) for _, path in changes})
    return [
        n for n in names if n.endswith(_WATCHED_SUFFIXES) and "__pycache__" not in Path(n).parts
    ]


async def cmd_dev(host: PluginHost, args: argparse.Namespace) -> int:
    """Watch an editable plugin project and reload its plugins on every change."""
    from watchfiles import awatch

    project = Path(args.path).resolve()
    if not project.is_dir():
        raise CliError(f"{args.path} is not a folder (give a plugin project's folder)", EXIT_USAGE)
    plugin_ids = _plugins_from(host, project)
    if not plugin_ids:
        raise CliError(
            f"no installed plugin comes from {project}; install it in editable mode first "
            f"(pip install -e {args.path}) in the environment the host discovers",
            EXIT_USAGE,
        )
    for plugin_id in plugin_ids:
        await host.start_plugin(plugin_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    ready: dict[str, object] = {"watching": str(project), "plugins": plugin_ids,
             "states": {pid: host.record(pid).state.value for pid in plugin_ids}}  # fmt: skip
    try:
        # an empty set of changes comes every rust_timeout without any: the first one
        # says the watcher runs, and only then is "watching" true
        async for changes in awatch(
            project, stop_event=stop, debounce=200, step=50, rust_timeout=300,
            yield_on_timeout=True,
        ):  # fmt: skip
            if ready:
                _say(args, ready, f"watching {project} for {', '.join(plugin_ids)}; Ctrl-C stops")
                ready = {}
            changed = _relevant(list(changes))
            if not changed:
                continue
            for plugin_id in plugin_ids:
                result = await _reload_one(host, plugin_id, False)
                shown = ", ".join(Path(c).name for c in changed[:3])
                more = f" (+{len(changed) - 3})" if len(changed) > 3 else ""
                _say(
                    args,
                    {"changed": changed, **result.to_dict()},
                    f"{shown}{more} changed: {describe(result)}",
                )
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(number)
    _say(args, {"stopped": True}, "stopped")
    return EXIT_OK


def _say(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    if args.json:
        print_json(data, compact=True)
    else:
        print(text, flush=True)
