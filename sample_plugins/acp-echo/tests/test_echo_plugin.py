"""The echo sample, driven through a real host with the samples pip-installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from acp_plugins import Message, PluginHost, PluginState
from acp_plugins.loading.trust import TRUST_ALL


def _host(samples_dir: Path, tmp_path: Path, **kwargs: Any) -> PluginHost:
    return PluginHost(
        isolation=TRUST_ALL, search_path=[samples_dir], data_root=tmp_path / "data", **kwargs
    )


def test_echo_answers_echo_messages_with_certainty(
    samples_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = _host(samples_dir, tmp_path)
    run(host.start())
    assert host.record("echo").state is PluginState.ACTIVE
    routed = run(host.send(Message(type="echo", content="ping")))
    assert routed.plugin_id == "echo"
    assert routed.confidence == 1.0
    assert routed.response.content == "echo: ping"


def test_echo_is_a_low_confidence_fallback_for_chat(
    samples_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = _host(samples_dir, tmp_path)
    run(host.start())
    routed = run(host.send(Message(type="chat", content="anyone?")))
    assert routed.plugin_id == "echo"
    assert routed.confidence == 0.1


def test_echo_prefix_comes_from_its_settings(
    samples_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = _host(samples_dir, tmp_path, settings={"echo": {"prefix": ">> "}})
    run(host.start())
    routed = run(host.send(Message(type="echo", content="hi")))
    assert routed.response.content == ">> hi"


def test_echo_ignores_types_it_does_not_support(
    samples_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = _host(samples_dir, tmp_path)
    run(host.start())
    routed = run(host.send(Message(type="alarm", content="!")))
    assert routed.handled is False
    assert "can_handle" not in host.record("echo").metrics


def test_echo_forwards_at_plugin_messages_and_echoes_the_answer(
    samples_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = _host(samples_dir, tmp_path)
    run(host.start())
    routed = run(host.send(Message(type="echo", content="@echo hi there")))
    assert routed.response.content == "echo: echo says: echo: hi there"
    missing = run(host.send(Message(type="echo", content="@nobody hi")))
    assert not missing.handled
    assert "plugin 'nobody', which is not installed" in missing.errors["echo"]
    plain = run(host.send(Message(type="chat", content="@echo not forwarded in chat")))
    assert plain.response.content == "echo: @echo not forwarded in chat"
