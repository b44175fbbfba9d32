"""Tests for acp_plugins.runtime.lifecycle: the state machine, and the host driving plugins.

The transition table is checked against the specification's state diagram. The
order of lifecycle calls is observed through ``lifecycle-log`` (from the
``acp-fx-faulty`` fixture project), which appends every lifecycle call it gets to
the file named by ``$ACP_FIXTURE_LIFECYCLE_LOG``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import TRANSITIONS, IllegalTransition, Message, PluginHost, PluginState
from acp_plugins.loading.trust import TRUST_ALL
from acp_plugins.runtime.lifecycle import check_transition
from conftest import fixture_plugin, sample

S = PluginState

#: The specification's diagram, edge by edge, plus Loaded/Initialized -> Unloaded.
SPEC_EDGES = {
    (S.DISCOVERED, S.LOADED),  # Dependencies resolved
    (S.LOADED, S.INITIALIZED),  # Configuration applied
    (S.INITIALIZED, S.ACTIVE),  # Plugin operational
    (S.ACTIVE, S.SUSPENDED),  # Temporarily disabled
    (S.ACTIVE, S.UNLOADED),  # Graceful shutdown
    (S.SUSPENDED, S.ACTIVE),  # Re-enabled
    (S.SUSPENDED, S.UNLOADED),  # Permanent removal
    (S.LOADED, S.UNLOADED),  # not in the diagram: removing a plugin that never became active
    (S.INITIALIZED, S.UNLOADED),  # idem
}

#: What the error says each state may go to instead.
ALLOWED_TEXT = {
    S.DISCOVERED: "loaded",
    S.LOADED: "initialized, unloaded",
    S.INITIALIZED: "active, unloaded",
    S.ACTIVE: "suspended, unloaded",
    S.SUSPENDED: "active, unloaded",
    S.UNLOADED: "none",
}

ALL_PAIRS = list(itertools.product(PluginState, repeat=2))
ILLEGAL_PAIRS = [pair for pair in ALL_PAIRS if pair not in SPEC_EDGES]


# -- the state machine --------------------------------------------------------


def test_transitions_are_the_specification_diagram() -> None:
    table = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert table == SPEC_EDGES
    assert set(TRANSITIONS) == set(PluginState)


def test_unloaded_is_final() -> None:
    assert TRANSITIONS[S.UNLOADED] == frozenset()


@pytest.mark.parametrize(("current", "target"), sorted(SPEC_EDGES), ids=lambda s: s.value)
def test_legal_transition_passes(current: PluginState, target: PluginState) -> None:
    check_transition("demo", current, target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL_PAIRS, ids=lambda s: s.value)
def test_illegal_transition_raises_with_what_is_allowed(
    current: PluginState, target: PluginState
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition("demo", current, target)
    assert caught.value.message == (
        f"'demo' cannot go from {current.value} to {target.value}; "
        f"from {current.value} it can go to: {ALLOWED_TEXT[current]}"
    )
    assert caught.value.plugin_id == "demo"


def test_every_pair_is_either_legal_or_illegal() -> None:
    assert len(ILLEGAL_PAIRS) + len(SPEC_EDGES) == len(PluginState) ** 2 == 36


# -- the host drives lifecycle-log through its states ---------------------------

START_CALLS = [
    "on_discover:lifecycle-log",
    "on_load",
    "validate_config",
    "initialize",
    "on_initialize",
    "activate",
    "on_activate",
]


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"), fixture_plugin("acp-fx-faulty"))


@pytest.fixture()
def lifecycle_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Point lifecycle-log at a fresh file; calling the result reads and empties it."""
    path = tmp_path / "lifecycle.log"
    monkeypatch.setenv("ACP_FIXTURE_LIFECYCLE_LOG", str(path))

    def take() -> list[str]:
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        path.unlink()
        return lines

    return take


def make_host(plugins_dir: Path, tmp_path: Path, **options: Any) -> PluginHost:
    return PluginHost(
        isolation=TRUST_ALL,
        search_path=[plugins_dir],
        data_root=tmp_path / "data",
        timeout=0.5,
        **options,
    )


def test_start_calls_lifecycle_hooks_in_order(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    assert lifecycle_log() == START_CALLS
    record = host.record("lifecycle-log")
    assert record.state is S.ACTIVE
    assert record.reason is None
    assert record.failures == []


def test_suspend_resume_unload_call_hooks_in_order(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    lifecycle_log()
    record = host.record("lifecycle-log")

    assert run(host.suspend("lifecycle-log")) is True
    assert record.state is S.SUSPENDED
    assert lifecycle_log() == ["deactivate", "on_suspend"]

    assert run(host.resume("lifecycle-log")) is True
    assert record.state is S.ACTIVE
    assert lifecycle_log() == ["activate", "on_activate"]

    assert run(host.unload("lifecycle-log")) is True
    assert record.state is S.UNLOADED
    assert lifecycle_log() == ["deactivate", "on_unload"]


def test_unloading_a_suspended_plugin_does_not_deactivate_it_twice(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    run(host.suspend("lifecycle-log"))
    lifecycle_log()
    assert run(host.unload("lifecycle-log")) is True
    assert lifecycle_log() == ["on_unload"]
    assert host.record("lifecycle-log").state is S.UNLOADED


def test_activate_also_resumes(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    run(host.suspend("lifecycle-log"))
    lifecycle_log()
    assert run(host.activate("lifecycle-log")) is True
    assert host.record("lifecycle-log").state is S.ACTIVE
    assert lifecycle_log() == ["activate", "on_activate"]


def test_stop_unloads_every_plugin(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    before = {pid: record.state for pid, record in host.records.items()}
    lifecycle_log()
    run(host.stop())
    assert lifecycle_log() == ["deactivate", "on_unload"]
    for pid, record in host.records.items():
        if before[pid] is S.DISCOVERED:  # never loaded: nothing to unload
            assert record.state is S.DISCOVERED, pid
        else:
            assert record.state is S.UNLOADED, pid
        assert record.handle is None, pid
    assert host.active() == []


# -- illegal requests through the host -------------------------------------------


def test_activating_an_active_plugin_is_illegal(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    lifecycle_log()
    with pytest.raises(IllegalTransition) as caught:
        run(host.activate("lifecycle-log"))
    assert caught.value.message == (
        "'lifecycle-log' cannot go from active to active; "
        "from active it can go to: suspended, unloaded"
    )
    assert host.record("lifecycle-log").state is S.ACTIVE
    assert lifecycle_log() == []  # refused before any plugin code ran


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("suspend", "'lifecycle-log' cannot go from unloaded to suspended; "
         "from unloaded it can go to: none"),
        ("activate", "'lifecycle-log' cannot go from unloaded to active; "
         "from unloaded it can go to: none"),
        ("unload", "'lifecycle-log' cannot go from unloaded to unloaded; "
         "from unloaded it can go to: none"),
        ("load", "'lifecycle-log' cannot go from unloaded to loaded; "
         "from unloaded it can go to: none"),
    ],
)  # fmt: skip
def test_an_unloaded_plugin_cannot_come_back(
    plugins_dir: Path,
    tmp_path: Path,
    run: Callable[..., Any],
    lifecycle_log: Any,
    operation: str,
    message: str,
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    run(host.unload("lifecycle-log"))
    lifecycle_log()
    with pytest.raises(IllegalTransition) as caught:
        run(getattr(host, operation)("lifecycle-log"))
    assert caught.value.message == message
    assert lifecycle_log() == []


def test_suspending_a_plugin_that_is_only_initialized_is_illegal(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    assert host.record("activate-refuses").state is S.INITIALIZED
    with pytest.raises(IllegalTransition, match="cannot go from initialized to suspended"):
        run(host.suspend("activate-refuses"))


# -- refusals keep the plugin where it was ---------------------------------------


def test_refused_configuration_leaves_the_plugin_loaded(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path, settings={"lifecycle-log": {"valid": False}})
    run(host.start())
    record = host.record("lifecycle-log")
    assert record.state is S.LOADED
    assert record.reason == "'lifecycle-log' refused: validate_config returned False"
    assert [(f.stage, f.message) for f in record.failures] == [("configure", record.reason)]
    assert lifecycle_log() == ["on_discover:lifecycle-log", "on_load", "validate_config"]
    assert host.record("echo").state is S.ACTIVE


def test_accepted_configuration_reaches_the_plugin(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path, settings={"lifecycle-log": {"valid": True}})
    run(host.start())
    record = host.record("lifecycle-log")
    assert record.state is S.ACTIVE
    assert record.config is not None
    assert record.config.settings == {"valid": True}


def test_a_plugin_left_loaded_can_be_unloaded(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], lifecycle_log: Any
) -> None:
    host = make_host(plugins_dir, tmp_path, settings={"lifecycle-log": {"valid": False}})
    run(host.start())
    lifecycle_log()
    assert run(host.unload("lifecycle-log")) is True
    assert host.record("lifecycle-log").state is S.UNLOADED
    assert lifecycle_log() == ["on_unload"]  # never active, so never deactivated


def test_a_plugin_left_initialized_can_be_unloaded(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    assert run(host.unload("activate-refuses")) is True
    record = host.record("activate-refuses")
    assert record.state is S.UNLOADED
    assert record.handle is None


def test_an_unloaded_plugin_no_longer_answers(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    assert run(host.send(Message(type="echo", content="hi"))).plugin_id == "echo"
    asked = host.record("echo").metrics["can_handle"].calls
    run(host.unload("echo"))
    routed = run(host.send(Message(type="echo", content="hi")))
    assert not routed.handled
    assert "echo" not in routed.scores
    assert host.record("echo").metrics["can_handle"].calls == asked  # not even asked


def test_a_suspended_plugin_no_longer_answers_until_resumed(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = make_host(plugins_dir, tmp_path)
    run(host.start())
    run(host.suspend("echo"))
    suspended = run(host.send(Message(type="echo", content="hi")))
    assert not suspended.handled
    assert "echo" not in suspended.scores
    run(host.resume("echo"))
    routed = run(host.send(Message(type="echo", content="hi")))
    assert routed.plugin_id == "echo"
    assert routed.response.content == "echo: hi"
