"""Dependency resolution: who can load, in which order, and why the others cannot.

Unit tests build :class:`Manifest` objects directly; hypothesis checks the order
and the cycle detection on random dependency graphs against brute force; the
end-to-end tests run a host over the ``acp-fx-deps`` fixture distributions.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from acp_plugins import DependencyError, Manifest, PluginHost, PluginState
from acp_plugins.loading.resolution import Resolution, find_cycles, resolve
from acp_plugins.loading.trust import TRUST_ALL
from conftest import SAMPLE_PROJECTS, fixture_plugin, sample

HOST_PYTHON = (3, 11)


def plugin(
    plugin_id: str,
    version: str = "1.0.0",
    *,
    needs: Mapping[str, str] | None = None,
    core: str | None = None,
    min_python: str | None = None,
    max_python: str | None = None,
) -> Manifest:
    """A manifest for ``plugin_id`` needing the plugins (id -> range) in ``needs``."""
    dependencies = dict(needs or {})
    if core is not None:
        dependencies["core"] = core
    return Manifest.model_validate(
        {
            "manifest_version": "1.0",
            "plugin_id": plugin_id,
            "name": plugin_id.title(),
            "version": version,
            "dependencies": dependencies,
            "min_python": min_python,
            "max_python": max_python,
        }
    )


def resolved(
    *manifests: Manifest,
    core: str = "2.0.0",
    python: tuple[int, int] = HOST_PYTHON,
    unavailable: Mapping[str, str] | None = None,
) -> Resolution:
    result = resolve(
        {manifest.plugin_id: manifest for manifest in manifests},
        core_version=Version(core),
        python=python,
        unavailable=unavailable,
    )
    assert set(result.order).isdisjoint(result.failures)
    assert set(result.order) | set(result.failures) == {m.plugin_id for m in manifests}
    for plugin_id, failure in result.failures.items():
        assert isinstance(failure, DependencyError)
        assert failure.plugin_id == plugin_id
    return result


def reasons(result: Resolution) -> dict[str, str]:
    return {plugin_id: failure.message for plugin_id, failure in result.failures.items()}


# -- order -----------------------------------------------------------------------------


def test_dependencies_come_before_their_dependents() -> None:
    result = resolved(
        plugin("reports", needs={"analytics": "*"}),
        plugin("analytics", needs={"store": "^1.0.0"}),
        plugin("store"),
    )
    assert result.order == ("store", "analytics", "reports")
    assert result.failures == {}


def test_the_order_is_the_same_whatever_order_the_manifests_come_in() -> None:
    manifests = [
        plugin("top", needs={"left": "*", "right": "*"}),
        plugin("left", needs={"base": "*"}),
        plugin("right", needs={"base": "*"}),
        plugin("base"),
        plugin("alone"),
    ]
    orders = {resolved(*permutation).order for permutation in itertools.permutations(manifests)}
    # ties are broken by plugin id: the smallest id whose dependencies are placed goes first
    assert orders == {("alone", "base", "left", "right", "top")}


def test_no_plugins_resolve_to_nothing() -> None:
    assert resolved() == Resolution(order=(), failures={})


# -- a plugin's own problems -----------------------------------------------------------


def test_a_missing_dependency_is_named_with_the_wanted_range() -> None:
    result = resolved(plugin("needs-ghost", needs={"ghost": "^1.0.0"}), plugin("solo"))

    assert reasons(result) == {
        "needs-ghost": "'needs-ghost' needs plugin 'ghost' (^1.0.0), which is not installed; "
        "install it"
    }
    assert result.order == ("solo",)


@pytest.mark.parametrize(
    ("wanted", "installed", "ok"),
    [
        ("^1.2.0", "1.2.0", True),
        ("^1.2.0", "1.9.9", True),
        ("^1.2.0", "2.0.0", False),
        ("^1.2.0", "1.1.9", False),
        ("~1.2", "1.2.7", True),
        ("~1.2", "1.3.0", False),
        (">=5.0 <6", "1.0.0", False),
        (">=1.2,<2", "1.5", True),
        ("1.x || ^3", "3.4.0", True),
        ("1.x || ^3", "2.0.0", False),
        ("*", "0.0.1", True),
        ("^1.0.0", "1.1.0rc1", False),  # pre-releases only where the range names one
    ],
)
def test_a_dependency_must_be_installed_in_a_version_inside_the_range(
    wanted: str, installed: str, ok: bool
) -> None:
    result = resolved(plugin("user", needs={"lib": wanted}), plugin("lib", installed))

    if ok:
        assert result.order == ("lib", "user")
    else:
        assert reasons(result) == {
            "user": f"'user' needs plugin 'lib' {wanted} but version {installed} is installed; "
            "install a version of 'lib' that matches"
        }
        assert result.order == ("lib",)


@pytest.mark.parametrize(
    ("wanted", "core", "ok"),
    [
        ("^2.0.0", "2.0.0", True),
        ("^2.0.0", "2.7.1", True),
        ("^2.0.0", "3.0.0", False),
        ("^3.0.0", "2.0.0", False),
        ("~2.0", "2.1.0", False),
        (">=2", "10.0.0", True),
    ],
)
def test_the_core_version_must_be_inside_the_core_range(wanted: str, core: str, ok: bool) -> None:
    result = resolved(plugin("future", core=wanted), plugin("no-core-range"), core=core)

    if ok:
        assert result.failures == {}
    else:
        assert reasons(result) == {
            "future": f"'future' needs core {wanted} but this host offers core {core}; "
            "install a version of the plugin made for this host"
        }
    assert "no-core-range" in result.order


PYTHON_BOUNDS = [
    # (min_python, max_python, host python, the problem or None)
    ("3.10", None, (3, 9), "'p' needs Python >= 3.10 but the host runs Python 3.9"),
    ("3.10", None, (3, 10), None),
    ("3.9", None, (3, 10), None),  # numbers, not text: 3.10 is after 3.9
    (None, "3.9", (3, 10), "'p' supports Python up to 3.9 but the host runs Python 3.10"),
    (None, "3.12", (3, 12), None),  # every micro release of the newest one
    (None, "3.12", (3, 13), "'p' supports Python up to 3.12 but the host runs Python 3.13"),
    ("3.11", "3.11", (3, 11), None),
    ("3.11", "3.11", (3, 12), "'p' supports Python up to 3.11 but the host runs Python 3.12"),
    (None, None, (3, 0), None),
]


@pytest.mark.parametrize(("low", "high", "python", "problem"), PYTHON_BOUNDS)
def test_the_host_python_must_be_inside_the_plugin_bounds(
    low: str | None, high: str | None, python: tuple[int, int], problem: str | None
) -> None:
    result = resolved(plugin("p", min_python=low, max_python=high), python=python)

    assert reasons(result) == ({} if problem is None else {"p": problem})


# -- cycles ------------------------------------------------------------------------------


def test_every_member_of_a_cycle_fails_naming_the_cycle() -> None:
    result = resolved(
        plugin("a", needs={"b": "*"}),
        plugin("b", needs={"c": "1.x"}),
        plugin("c", needs={"a": "^1.0.0"}),
        plugin("d"),
    )

    cycle = "a -> b -> c -> a"
    assert reasons(result) == {
        member: f"'{member}' is part of a dependency cycle: {cycle}; "
        "break the cycle by removing one of these dependencies"
        for member in "abc"
    }
    assert result.order == ("d",)


def test_a_plugin_depending_on_itself_is_a_cycle_of_one() -> None:
    result = resolved(plugin("narcissus", needs={"narcissus": "*"}))
    assert "is part of a dependency cycle: narcissus -> narcissus; " in reasons(result)["narcissus"]


def test_each_member_is_shown_a_cycle_it_is_on() -> None:
    # a <-> b <-> c: one strongly connected component, but no cycle a -> b -> c -> a
    result = resolved(
        plugin("a", needs={"b": "*"}),
        plugin("b", needs={"a": "*", "c": "*"}),
        plugin("c", needs={"b": "*"}),
    )

    messages = reasons(result)
    assert "dependency cycle: a -> b -> a; " in messages["a"]
    assert "dependency cycle: a -> b -> a; " in messages["b"]
    assert "dependency cycle: c -> b -> c; " in messages["c"]


def test_a_cycle_member_with_a_problem_of_its_own_reports_that_problem() -> None:
    result = resolved(
        plugin("a", needs={"b": "*"}, max_python="3.9"),
        plugin("b", needs={"a": "*"}),
    )

    assert reasons(result)["a"] == "'a' supports Python up to 3.9 but the host runs Python 3.11"
    assert reasons(result)["b"].startswith("'b' is part of a dependency cycle: a -> b -> a; ")


# -- the cascade -------------------------------------------------------------------------


def test_dependents_of_a_plugin_that_cannot_load_fail_naming_it() -> None:
    result = resolved(
        plugin("needs-ghost", needs={"ghost": "^1.0.0"}),
        plugin("needs-needs-ghost", needs={"needs-ghost": "*"}),
        plugin("top", needs={"needs-needs-ghost": "*", "fine": "*"}),
        plugin("fine"),
    )

    ghost = "'needs-ghost' needs plugin 'ghost' (^1.0.0), which is not installed; install it"
    middle = f"'needs-needs-ghost' depends on 'needs-ghost', which cannot load: {ghost}"
    assert reasons(result) == {
        "needs-ghost": ghost,
        "needs-needs-ghost": middle,
        "top": f"'top' depends on 'needs-needs-ghost', which cannot load: {middle}",
    }
    assert result.order == ("fine",)


def test_dependents_of_a_cycle_fail_without_being_part_of_it() -> None:
    result = resolved(
        plugin("a", needs={"b": "*"}),
        plugin("b", needs={"a": "*"}),
        plugin("user", needs={"b": "*"}),
    )

    assert reasons(result)["user"].startswith(
        "'user' depends on 'b', which cannot load: 'b' is part of a dependency cycle: a -> b -> a"
    )


def test_a_plugin_needing_a_wrong_version_and_a_broken_plugin_reports_its_own_problem() -> None:
    result = resolved(
        plugin("user", needs={"broken": "*", "lib": "^2.0.0"}),
        plugin("broken", needs={"ghost": "*"}),
        plugin("lib", "1.0.0"),
    )
    assert reasons(result)["user"].startswith("'user' needs plugin 'lib' ^2.0.0 but version 1.0.0")


def test_unavailable_plugins_fail_their_dependents_with_their_own_reason() -> None:
    refused = (
        "permission 'execute-commands' requested by 'greedy' is not granted; "
        "grant it to 'greedy' in the host's permission policy or remove it from the manifest"
    )
    result = resolved(
        plugin("needs-greedy", needs={"greedy": "*"}),
        plugin("solo"),
        unavailable={"greedy": refused},
    )

    assert reasons(result) == {
        "needs-greedy": f"'needs-greedy' depends on 'greedy', which cannot load: {refused}"
    }
    assert result.order == ("solo",)  # the unavailable plugin itself is neither


def test_unrelated_plugins_resolve_whatever_fails_around_them() -> None:
    result = resolved(
        plugin("cycle-a", needs={"cycle-b": "*"}),
        plugin("cycle-b", needs={"cycle-a": "*"}),
        plugin("needs-ghost", needs={"ghost": "*"}),
        plugin("future", core="^3.0.0"),
        plugin("old", max_python="3.8"),
        plugin("wrong", needs={"base": "^2"}),
        plugin("base"),
        plugin("user", needs={"base": "^1"}),
        plugin("solo"),
    )

    assert result.order == ("base", "solo", "user")
    assert set(result.failures) == {"cycle-a", "cycle-b", "needs-ghost", "future", "old", "wrong"}


# -- properties on random graphs -----------------------------------------------------------

Graph = dict[str, set[str]]


@st.composite
def graphs(draw: st.DrawFn, *, acyclic: bool) -> Graph:
    """Plugin id -> the ids it depends on; with ``acyclic``, a DAG."""
    size = draw(st.integers(min_value=1, max_value=9))
    names = draw(st.permutations([f"p{i}" for i in range(size)]))
    index = st.integers(min_value=0, max_value=size - 1)
    edges = draw(st.sets(st.tuples(index, index), max_size=3 * size))
    graph: Graph = {name: set() for name in names}
    for source, target in edges:
        if not acyclic or target < source:  # in a DAG, only earlier names are depended on
            graph[names[source]].add(names[target])
    return graph


def manifests_of(graph: Graph) -> list[Manifest]:
    return [plugin(pid, needs={dep: "^1.0.0" for dep in deps}) for pid, deps in graph.items()]


def reachable(graph: Graph, start: str) -> set[str]:
    """Every node reachable from ``start`` by one or more edges."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def assert_topological(order: tuple[str, ...], graph: Graph) -> None:
    position = {pid: i for i, pid in enumerate(order)}
    for pid in order:
        for dep in graph[pid]:
            assert position[dep] < position[pid], (dep, pid, order)


@given(graph=graphs(acyclic=True))
def test_a_dag_resolves_completely_in_a_topological_order(graph: Graph) -> None:
    result = resolved(*manifests_of(graph))

    assert result.failures == {}
    assert sorted(result.order) == sorted(graph)
    assert_topological(result.order, graph)
    # deterministic: at each step, the smallest id whose dependencies are all placed
    placed: set[str] = set()
    for pid in result.order:
        ready = [p for p in graph if p not in placed and graph[p] <= placed]
        assert pid == min(ready)
        placed.add(pid)
    assert resolved(*reversed(manifests_of(graph))).order == result.order


@given(graph=graphs(acyclic=False))
@settings(max_examples=200)
def test_exactly_the_plugins_on_or_behind_a_cycle_fail(graph: Graph) -> None:
    result = resolved(*manifests_of(graph))

    on_cycle = {pid for pid in graph if pid in reachable(graph, pid)}
    behind = {pid for pid in graph if reachable(graph, pid) & on_cycle} - on_cycle
    assert set(result.failures) == on_cycle | behind
    assert sorted(result.order) == sorted(set(graph) - on_cycle - behind)
    assert_topological(result.order, graph)

    for pid, message in reasons(result).items():
        if pid in on_cycle:
            prefix = f"'{pid}' is part of a dependency cycle: "
            assert message.startswith(prefix)
            path = message.removeprefix(prefix).split(";")[0].split(" -> ")
            assert pid in path and path[0] == path[-1]
            assert len(set(path[:-1])) == len(path) - 1  # a simple cycle
            assert all(later in graph[earlier] for earlier, later in itertools.pairwise(path))
        else:
            dep = message.removeprefix(f"'{pid}' depends on '").split("'")[0]
            assert dep in graph[pid] and dep in result.failures


@given(graph=graphs(acyclic=False))
@settings(max_examples=200)
def test_find_cycles_agrees_with_reachability(graph: Graph) -> None:
    cycles = find_cycles(graph)

    on_cycle = {pid for pid in graph if pid in reachable(graph, pid)}
    expected = {
        frozenset(other for other in on_cycle if other == pid or (
            other in reachable(graph, pid) and pid in reachable(graph, other)
        ))
        for pid in on_cycle
    }  # fmt: skip
    assert {frozenset(component) for component in cycles} == expected
    assert len(cycles) == len(expected)  # no component twice
    assert all(component == sorted(component) for component in cycles)


def test_find_cycles_ignores_dependencies_that_are_not_in_the_graph() -> None:
    assert find_cycles({"a": {"ghost", "b"}, "b": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"ghost"}}) == []


def test_find_cycles_handles_a_long_chain_without_recursion() -> None:
    size = sys.getrecursionlimit() + 100
    chain = {f"p{i}": {f"p{i + 1}"} for i in range(size)}
    chain[f"p{size}"] = {"p0"}
    (cycle,) = find_cycles(chain)
    assert len(cycle) == size + 1


# -- end to end: a host over the fixture distributions -----------------------------------------


@pytest.fixture(scope="module")
def deps_dir(install_plugins: Callable[..., Path]) -> Path:
    """The samples next to the plugins with dependency problems."""
    return install_plugins(
        fixture_plugin("acp-fx-deps"), *(sample(name) for name in SAMPLE_PROJECTS)
    )


def test_a_host_reports_each_dependency_problem_and_starts_the_rest(
    deps_dir: Path, tmp_path: Path, run: Callable[..., object]
) -> None:
    host = PluginHost(isolation=TRUST_ALL, search_path=[deps_dir], data_root=tmp_path)

    run(host.start())

    cycle = (
        "is part of a dependency cycle: cycle-a -> cycle-b -> cycle-c -> cycle-a; "
        "break the cycle by removing one of these dependencies"
    )
    ghost = "'needs-ghost' needs plugin 'ghost' (^1.0.0), which is not installed; install it"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    expected = {
        "cycle-a": f"'cycle-a' {cycle}",
        "cycle-b": f"'cycle-b' {cycle}",
        "cycle-c": f"'cycle-c' {cycle}",
        "needs-ghost": ghost,
        "needs-needs-ghost": f"'needs-needs-ghost' depends on 'needs-ghost', which cannot load: "
        f"{ghost}",
        "needs-new-echo": "'needs-new-echo' needs plugin 'echo' >=5.0 <6 but version 1.0.0 is "
        "installed; install a version of 'echo' that matches",
        "needs-greedy": "'needs-greedy' needs plugin 'greedy' (*), which is not installed; "
        "install it",
        "future-core": "'future-core' needs core ^3.0.0 but this host offers core 2.0.0; "
        "install a version of the plugin made for this host",
        "old-python": f"'old-python' supports Python up to 3.8 but the host runs Python {running}",
    }
    for plugin_id, reason in expected.items():
        record = host.records[plugin_id]
        assert (record.state, record.reason) == (PluginState.DISCOVERED, reason)
        assert [failure.stage for failure in record.failures] == ["resolve"]
    active = {record.plugin_id for record in host.active()}
    assert active == {"needs-echo", "echo", "tools", "sqlite-store", "activity-analytics"}
    assert host.load_order.index("echo") < host.load_order.index("needs-echo")
    assert set(host.load_order) == active
    run(host.stop())


def test_the_host_checks_plugins_against_the_python_it_is_told(
    deps_dir: Path, tmp_path: Path
) -> None:
    host = PluginHost(
        isolation=TRUST_ALL, search_path=[deps_dir], data_root=tmp_path, python=(3, 8)
    )
    host.discover()

    assert host.records["echo"].reason == (
        "'echo' needs Python >= 3.10 but the host runs Python 3.8"
    )
    assert host.records["needs-echo"].reason == (
        "'needs-echo' depends on 'echo', which cannot load: "
        "'echo' needs Python >= 3.10 but the host runs Python 3.8"
    )
    assert "old-python" in host.load_order


def test_a_dependency_refused_for_its_permissions_fails_its_dependents(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-deps"), fixture_plugin("acp-fx-rejected"))
    host = PluginHost(isolation=TRUST_ALL, search_path=[plugins], data_root=tmp_path)
    host.discover()

    greedy = host.records["greedy"].reason
    assert greedy is not None and greedy.startswith("permissions 'manage-database', ")
    assert host.records["needs-greedy"].reason == (
        f"'needs-greedy' depends on 'greedy', which cannot load: {greedy}"
    )
