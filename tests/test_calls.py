"""Tests for acp_plugins.runtime.calls: every call into a plugin is guarded, counted and timed.

The guard is the host's own (``host.guard``) and the plugins are real installed
ones: ``loud`` (raises or hangs as ``message.metadata["loud"]`` asks),
``blocking`` (plain sync, sleeps ``content`` seconds), ``slow-a``/``slow-b``
(async, think ``metadata["delays"][id]`` seconds, default 0.3) and ``quits``
(``sys.exit()``, or its own ``TimeoutError``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest

from acp_plugins import CallStats, CallTimeout, Message, PluginCallError, PluginHost
from acp_plugins.loading.trust import TRUST_ALL
from acp_plugins.runtime.record import CALL_ERROR_HISTORY
from conftest import fixture_plugin, sample


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        sample("acp-echo"), fixture_plugin("acp-fx-faulty"), fixture_plugin("acp-fx-slow")
    )


@pytest.fixture()
def host(plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]) -> PluginHost:
    started = PluginHost(
        isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path, timeout=0.5
    )
    run(started.start())
    return started


def ask(host: PluginHost, run: Callable[..., Any], plugin_id: str, **metadata: Any) -> Any:
    """Call ``can_handle`` of one plugin through the guard."""
    message = Message(type="chat", metadata=metadata)
    return run(host.guard.call(host.record(plugin_id), "can_handle", {"message": message}))


# -- results, errors, timeouts --------------------------------------------------------


def test_a_result_is_returned_and_counted(host: PluginHost, run: Callable[..., Any]) -> None:
    assert ask(host, run, "slow-a", delays={"slow-a": 0.0}) == 0.4
    stats = host.record("slow-a").metrics["can_handle"]
    assert (stats.calls, stats.errors, stats.timeouts) == (1, 0, 0)
    assert list(host.record("slow-a").call_errors) == []


def test_metrics_count_calls_errors_and_timeouts(host: PluginHost, run: Callable[..., Any]) -> None:
    assert ask(host, run, "loud") == 0.0
    for _ in range(2):
        with pytest.raises(PluginCallError):
            ask(host, run, "loud", loud="raise")
    with pytest.raises(CallTimeout):
        ask(host, run, "loud", loud="hang-score")
    stats = host.record("loud").metrics["can_handle"]
    assert (stats.calls, stats.errors, stats.timeouts) == (4, 3, 1)
    assert stats.max_seconds >= 0.5  # the timed-out call
    assert stats.mean_seconds == pytest.approx(stats.total_seconds / 4)
    assert [failure.message for failure in host.record("loud").call_errors] == [
        "'loud' failed in can_handle: ValueError: cannot score this",
        "'loud' failed in can_handle: ValueError: cannot score this",
        "'loud' did not answer can_handle within 0.5 s",
    ]


def test_an_error_names_the_plugin_the_hook_and_the_cause(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    with pytest.raises(PluginCallError) as caught:
        ask(host, run, "loud", loud="raise")
    error = caught.value
    assert error.message == "'loud' failed in can_handle: ValueError: cannot score this"
    assert (error.plugin_id, error.hook) == ("loud", "can_handle")
    assert isinstance(error.__cause__, ValueError)
    assert not isinstance(error, CallTimeout)


def test_a_hanging_hook_is_abandoned_at_the_timeout(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    started = perf_counter()
    with pytest.raises(CallTimeout) as caught:
        ask(host, run, "loud", loud="hang-score")
    assert 0.5 <= perf_counter() - started < 0.8
    assert caught.value.message == "'loud' did not answer can_handle within 0.5 s"
    assert caught.value.hook == "can_handle"


def test_a_plugins_own_timeout_error_is_an_error_not_a_timeout(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    with pytest.raises(PluginCallError) as caught:
        ask(host, run, "quits", quits="timeout-error")
    assert not isinstance(caught.value, CallTimeout)
    assert caught.value.message == (
        "'quits' failed in can_handle: TimeoutError: upstream service timed out"
    )
    stats = host.record("quits").metrics["can_handle"]
    assert (stats.calls, stats.errors, stats.timeouts) == (1, 1, 0)


@pytest.mark.parametrize(
    ("plugin_id", "hook", "timeout", "kwargs"),
    [
        # async: cancelled at its own timeout
        ("slow-a", "can_handle", 0.1, {"message": Message(type="slow")}),
        # plain and inline: runs to the end, but its late answer is refused
        ("blocking", "handle_message", 0.1,
         {"message": Message(type="block", content="0.2"), "context": None}),
    ],
)  # fmt: skip
def test_a_per_call_timeout_overrides_the_guards(
    host: PluginHost,
    run: Callable[..., Any],
    plugin_id: str,
    hook: str,
    timeout: float,
    kwargs: dict[str, Any],
) -> None:
    record = host.record(plugin_id)
    with pytest.raises(CallTimeout) as caught:
        run(host.guard.call(record, hook, kwargs, timeout=timeout))
    assert caught.value.message == f"'{plugin_id}' did not answer {hook} within 0.1 s"
    assert record.metrics[hook].timeouts == 1


def test_a_plugin_that_is_not_loaded_fails_cleanly(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    record = host.record("echo")
    run(host.unload("echo"))
    with pytest.raises(PluginCallError) as caught:
        run(host.guard.call(record, "can_handle", {"message": Message(type="echo")}))
    assert caught.value.message == (
        "'echo' failed in can_handle: RuntimeError: the plugin is not loaded"
    )


def test_call_errors_keep_only_recent_history(host: PluginHost, run: Callable[..., Any]) -> None:
    for _ in range(CALL_ERROR_HISTORY + 5):
        with pytest.raises(PluginCallError):
            ask(host, run, "loud", loud="raise")
    record = host.record("loud")
    assert len(record.call_errors) == CALL_ERROR_HISTORY == 50
    assert record.metrics["can_handle"].errors == CALL_ERROR_HISTORY + 5  # counts keep counting


# -- SystemExit -----------------------------------------------------------------------


def test_system_exit_from_a_plain_hook_is_captured(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    record = host.record("quits")
    with pytest.raises(PluginCallError) as caught:
        kwargs = {"message": Message(type="quit"), "context": None}
        run(host.guard.call(record, "handle_message", kwargs))
    assert caught.value.message == "'quits' failed in handle_message: SystemExit: 3"
    assert isinstance(caught.value.__cause__, SystemExit)


def test_system_exit_from_an_async_hook_is_captured_and_the_loop_goes_on(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    with pytest.raises(PluginCallError) as caught:
        ask(host, run, "quits", quits="exit")
    assert caught.value.message == "'quits' failed in can_handle: SystemExit: 2"
    # the same event loop still serves: nothing escaped it
    assert run(host.send(Message(type="echo", content="alive"))).response.content == "echo: alive"


def test_system_exit_while_routing_is_recorded(host: PluginHost, run: Callable[..., Any]) -> None:
    routed = run(host.send(Message(type="quit", metadata={"quits": "exit"})))
    assert not routed.handled
    assert routed.errors == {"quits": "'quits' failed in can_handle: SystemExit: 2"}


# -- call_many --------------------------------------------------------------------------


def test_call_many_keeps_the_order_of_the_records(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    order = ["slow-b", "blocking", "loud", "slow-a", "quits", "echo"]
    message = Message(
        type="any",
        metadata={"loud": "raise", "quits": "exit", "delays": {"slow-b": 0.3, "slow-a": 0.05}},
    )
    records = [host.record(pid) for pid in order]
    started = perf_counter()
    outcomes = run(host.guard.call_many(records, "can_handle", {"message": message}))
    elapsed = perf_counter() - started
    # slow-b finishes last but comes first; blocking (plain) finishes at once but comes second
    assert outcomes[0] == 0.6
    assert outcomes[1] == 0.5
    assert isinstance(outcomes[2], PluginCallError)
    assert outcomes[2].message == "'loud' failed in can_handle: ValueError: cannot score this"
    assert outcomes[3] == 0.4
    assert isinstance(outcomes[4], PluginCallError)
    assert outcomes[4].message == "'quits' failed in can_handle: SystemExit: 2"
    assert outcomes[5] == 0.1
    assert len(outcomes) == len(order)
    assert elapsed < 0.5  # gathered, not one after the other (0.35 s)


def test_call_many_returns_errors_instead_of_raising(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    message = Message(type="chat", metadata={"loud": "hang-score"})
    outcomes = run(host.guard.call_many([host.record("loud")], "can_handle", {"message": message}))
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], CallTimeout)


def test_call_many_of_nobody_is_empty(host: PluginHost, run: Callable[..., Any]) -> None:
    assert run(host.guard.call_many([], "can_handle", {"message": Message(type="x")})) == []


# -- CallStats --------------------------------------------------------------------------


def test_call_stats_as_json() -> None:
    stats = CallStats()
    assert stats.mean_seconds == 0.0
    stats.add(0.010)
    stats.add(0.030, error=True)
    stats.add(0.500, error=True, timeout=True)
    assert stats.to_dict() == {
        "calls": 3,
        "errors": 2,
        "timeouts": 1,
        "mean_ms": 180.0,
        "max_ms": 500.0,
    }
