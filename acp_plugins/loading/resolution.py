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
from acp_plugins.loading.manifest import Manifest

__all__ = ["Resolution", "find_cycles", "resolve"]

Graph = Mapping[str, set[str]]


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
            return f"supports Python up to {manifest.max_python} but the host runs Python {running}"
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


def _reaches(start: str, goal: str, inside: set[str], avoid: set[str], graph: Graph) -> bool:
    """Whether ``goal`` can be reached from ``start`` through ``inside``, avoiding ``avoid``."""
    seen = {start}
    todo = [start]
    while todo:
        for succ in graph.get(todo.pop(), ()):
            if succ == goal:
                return True
            if succ in inside and succ not in avoid and succ not in seen:
                seen.add(succ)
                todo.append(succ)
    return False


def _cycle_through(start: str, inside: set[str], graph: Graph) -> list[str]:
    """A cycle from ``start`` back to it within its strongly connected component ``inside``.

    The walk takes the first (sorted) successor from which ``start`` can still be
    reached without revisiting a node, so it always closes at ``start`` and
    passes through as many members as that greedy choice allows.
    """
    path = [start]
    while True:
        visited = set(path)
        nxt = next(
            (
                succ
                for succ in sorted(graph[path[-1]] & inside)
                if succ not in visited and _reaches(succ, start, inside, visited | {succ}, graph)
            ),
            None,
        )
        if nxt is None:  # only the step back to ``start`` is left
            path.append(start)
            return path
        path.append(nxt)


def _cycle_paths(members: list[str], graph: Graph) -> dict[str, str]:
    """Member -> a readable cycle through it, e.g. ``a -> b -> a``.

    Members on the cycle through the first member share its path; any other
    member gets a cycle of its own, starting from it, so that every message
    names a cycle its plugin is really on.
    """
    inside = set(members)
    cycles: list[list[str]] = []
    paths: dict[str, str] = {}
    for member in members:
        cycle = next((c for c in cycles if member in c), None)
        if cycle is None:
            cycle = _cycle_through(member, inside, graph)
            cycles.append(cycle)
        paths[member] = " -> ".join(cycle)
    return paths


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
        for member, path in _cycle_paths(members, graph).items():
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
