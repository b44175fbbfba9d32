"""Dependency resolution: core version, Python bounds, plugin-to-plugin ranges, order.

Given the manifests that passed validation, :func:`resolve` decides which
plugins can load and in which order (dependencies first). Each plugin that
cannot load gets its own reason: a missing dependency, a version outside the
range, a dependency cycle (named), an unsupported Python or core version, or a
dependency that itself cannot load (the cascade).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.version import Version

from acp_plugins.errors import DependencyError
from acp_plugins.manifest import Manifest

__all__ = ["Resolution", "find_cycles", "resolve"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which plugins can load (``order``, dependencies first) and why the others cannot."""

    order: tuple[str, ...]
    failures: Mapping[str, DependencyError] = field(default_factory=dict)


def _python_problem(manifest: Manifest, python: tuple[int, int]) -> str | None:
    running = f"{python[0]}.{python[1]}"
    if manifest.min_python is not None:
        major, minor = (int(part) for part in manifest.min_python.split("."))
        if python < (major, minor):
            return f"needs Python >= {manifest.min_python} but the host runs Python {running}"
    if manifest.max_python is not None:
        major, minor = (int(part) for part in manifest.max_python.split("."))
        if python > (major, minor):
            return f"supports Python up to {manifest.max_python} but the host runs {running}"
    return None


def _own_problems(
    manifest: Manifest,
    manifests: Mapping[str, Manifest],
    unavailable: Mapping[str, str],
    core_version: Version,
    python: tuple[int, int],
) -> str | None:
    problem = _python_problem(manifest, python)
    if problem:
        return problem
    core = manifest.core_range()
    if core is not None and not core.contains(core_version):
        return (
            f"needs core {core} but this host offers core {core_version}; "
            "install a version of the plugin made for this host"
        )
    for name, wanted in sorted(manifest.plugin_dependencies().items()):
        if name in unavailable:
            continue  # reported by the cascade below, with that plugin's own reason
        other = manifests.get(name)
        if other is None:
            return f"needs plugin '{name}' ({wanted}), which is not installed; install it"
        if not wanted.contains(other.version):
            return (
                f"needs plugin '{name}' {wanted} but version {other.version} is installed; "
                f"install a version of '{name}' that matches"
            )
    return None


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components that form cycles (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:
        nonlocal counter
        # iterative Tarjan: (node, iterator over its successors)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in graph:
                    continue
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _cycle_path(members: list[str], graph: Mapping[str, set[str]]) -> str:
    """A readable path around a cycle, e.g. ``a -> b -> a``."""
    inside = set(members)
    path = [members[0]]
    while True:
        following = sorted(graph[path[-1]] & inside)
        nxt = next((n for n in following if n not in path), following[0])
        path.append(nxt)
        if nxt == members[0] or nxt in path[:-1]:
            return " -> ".join(path)


def resolve(
    manifests: Mapping[str, Manifest],
    *,
    core_version: Version,
    python: tuple[int, int],
    unavailable: Mapping[str, str] | None = None,
) -> Resolution:
    """Decide the load order of ``manifests`` (plugin id -> manifest) and who cannot load.

    ``unavailable`` names installed plugins that are already refused (an invalid
    manifest, an ungranted permission) with the reason; their dependents fail too.
    """
    unavailable = dict(unavailable or {})
    failures: dict[str, DependencyError] = {}
    for plugin_id, manifest in manifests.items():
        problem = _own_problems(manifest, manifests, unavailable, core_version, python)
        if problem:
            failures[plugin_id] = DependencyError(f"'{plugin_id}' {problem}", plugin_id=plugin_id)

    graph = {pid: set(m.plugin_dependencies()) for pid, m in manifests.items()}
    for members in find_cycles(graph):
        path = _cycle_path(members, graph)
        for member in members:
            failures.setdefault(
                member,
                DependencyError(
                    f"'{member}' is part of a dependency cycle: {path}; "
                    "break the cycle by removing one of these dependencies",
                    plugin_id=member,
                ),
            )

    changed = True
    while changed:  # cascade: a plugin whose dependency cannot load cannot load either
        changed = False
        for plugin_id in sorted(manifests):
            if plugin_id in failures:
                continue
            broken = sorted(
                dep for dep in graph[plugin_id] if dep in failures or dep in unavailable
            )
            if broken:
                dep = broken[0]
                why = failures[dep] if dep in failures else unavailable[dep]
                failures[plugin_id] = DependencyError(
                    f"'{plugin_id}' depends on '{dep}', which cannot load: {why}",
                    plugin_id=plugin_id,
                )
                changed = True

    remaining = {pid: graph[pid] for pid in manifests if pid not in failures}
    dependents: dict[str, list[str]] = {pid: [] for pid in remaining}
    waiting = {pid: len(deps) for pid, deps in remaining.items()}
    for pid, deps in remaining.items():
        for dep in deps:
            dependents[dep].append(pid)
    ready = [pid for pid, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        pid = heapq.heappop(ready)
        order.append(pid)
        for dependent in dependents[pid]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    return Resolution(order=tuple(order), failures=failures)
