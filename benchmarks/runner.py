"""One measured run of ``discover`` or ``start``, in a fresh interpreter.

Run by file path (``python benchmarks/runner.py MODE DIR COUNT [--profile]``), never imported
by the benchmark process itself, so every run starts with cold import caches.
Libraries (acp_plugins, pluggy, pydantic, stevedore) are imported before the
clock starts; only the work is timed. Prints one JSON object:
``{"seconds": ..., "count": ...}``. With ``--profile`` the run is made under
cProfile and its hottest functions are printed to stderr (the time is then inflated).

Modes:

* ``discover-acp``: ``acp_plugins.discover(search_path=[DIR])``, no plugin imported;
  every plugin must come back with a manifest and no error.
* ``discover-stevedore``: ``ExtensionManager("acp.plugins", invoke_on_load=False)``
  with DIR put first on ``sys.path``; imports every entry point.
* ``discover-listing``: a bare ``importlib.metadata.entry_points(group="acp.plugins")``
  with DIR added as the host adds it: the entry points listed, nothing read or imported
  (the floor any discovery pays).
* ``start-acp``: ``PluginHost(search_path=[DIR], data_root=TMP).start()``; every
  plugin must end Active.
* ``start-stevedore``: ``ExtensionManager("acp.plugins", invoke_on_load=True)``.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib.metadata
import json
import pstats
import site
import sys
import tempfile
from time import perf_counter

import stevedore

import acp_plugins

MODES = ("discover-acp", "discover-stevedore", "discover-listing", "start-acp", "start-stevedore")


def _discover_acp(directory: str, count: int) -> float:
    started = perf_counter()
    found = acp_plugins.discover(search_path=[directory])
    elapsed = perf_counter() - started
    assert len(found) == count, f"found {len(found)} plugins, expected {count}"
    bad = [item for item in found if item.manifest is None or item.error is not None]
    assert not bad, f"{len(bad)} plugins without a valid manifest, e.g. {bad[0]}"
    assert not any(name.startswith("acp_bench_") for name in sys.modules), "a plugin was imported"
    return elapsed


def _stevedore(directory: str, count: int, *, invoke_on_load: bool) -> float:
    started = perf_counter()
    site.addsitedir(directory)  # the same place on sys.path as the host puts a search path
    manager: stevedore.ExtensionManager[acp_plugins.Plugin] = stevedore.ExtensionManager(
        namespace=acp_plugins.ENTRY_POINT_GROUP, invoke_on_load=invoke_on_load
    )
    elapsed = perf_counter() - started
    loaded = len(manager.extensions)
    assert loaded == count, f"stevedore loaded {loaded} extensions, expected {count}"
    if invoke_on_load:
        assert all(isinstance(ext.obj, acp_plugins.Plugin) for ext in manager.extensions)
    return elapsed


def _listing(directory: str, count: int) -> float:
    started = perf_counter()
    site.addsitedir(directory)
    listed = importlib.metadata.entry_points(group=acp_plugins.ENTRY_POINT_GROUP)
    elapsed = perf_counter() - started
    assert len(listed) == count, f"listed {len(listed)} entry points, expected {count}"
    return elapsed


def _start_acp(directory: str, count: int) -> float:
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="acp-bench-data-") as data_root:
        started = perf_counter()
        host = acp_plugins.PluginHost(
            search_path=[directory], data_root=data_root, isolation=acp_plugins.TRUST_ALL
        )
        loop.run_until_complete(host.start())
        elapsed = perf_counter() - started
    loop.close()
    records = host.records
    assert len(records) == count, f"host found {len(records)} plugins, expected {count}"
    inactive = [r for r in records.values() if r.state is not acp_plugins.PluginState.ACTIVE]
    assert not inactive, (
        f"{len(inactive)} plugins not active, e.g. {inactive[0].plugin_id}: "
        f"{inactive[0].state.value} ({inactive[0].reason})"
    )
    return elapsed


def _run(mode: str, directory: str, count: int) -> float:
    if mode == "discover-acp":
        return _discover_acp(directory, count)
    if mode == "discover-stevedore":
        return _stevedore(directory, count, invoke_on_load=False)
    if mode == "discover-listing":
        return _listing(directory, count)
    if mode == "start-acp":
        return _start_acp(directory, count)
    return _stevedore(directory, count, invoke_on_load=True)


def main(argv: list[str]) -> int:
    profile = "--profile" in argv
    args = [arg for arg in argv if arg != "--profile"]
    if len(args) != 3 or args[0] not in MODES:
        print(f"usage: runner.py {{{','.join(MODES)}}} DIR COUNT [--profile]", file=sys.stderr)
        return 2
    mode, directory, count_text = args
    count = int(count_text)
    if profile:
        profiler = cProfile.Profile()
        seconds = profiler.runcall(_run, mode, directory, count)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
    else:
        seconds = _run(mode, directory, count)
    print(json.dumps({"seconds": seconds, "count": count}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
