"""Tests for acp_plugins.runtime.routing: who answers a message, and what if plugins misbehave.

The handlers are real installed plugins: ``echo`` (1.0 for "echo" messages, 0.1
for "chat"), ``loud`` (any type; misbehaves as ``message.metadata["loud"]`` asks),
``blocking`` (plain sync handler of "block" messages that sleeps ``content``
seconds), and from ``acp-fx-slow``: ``slow-a`` (0.4) and ``slow-b`` (0.6), async
handlers of "slow" messages that each think 0.3 s before scoring, and ``quits``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest

from acp_plugins import Message, MessageResponse, PluginCallError, PluginHost, RoutedMessage
from acp_plugins.loading.trust import TRUST_ALL
from acp_plugins.runtime import routing
from acp_plugins.runtime.routing import coerce_response
from conftest import fixture_plugin, sample

TIMEOUT = 0.5


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        sample("acp-echo"), fixture_plugin("acp-fx-faulty"), fixture_plugin("acp-fx-slow")
    )


def make_host(plugins_dir: Path, tmp_path: Path, **options: Any) -> PluginHost:
    return PluginHost(
        isolation=TRUST_ALL,
        search_path=[plugins_dir],
        data_root=tmp_path / "data",
        **{"timeout": TIMEOUT, **options},
    )


@pytest.fixture()
def host(plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]) -> PluginHost:
    started = make_host(plugins_dir, tmp_path)
    run(started.start())
    return started


def loud(mode: str, type: str = "chat", content: str = "hi") -> Message:
    return Message(type=type, content=content, metadata={"loud": mode})


def can_handle_calls(host: PluginHost, plugin_id: str) -> int:
    stats = host.record(plugin_id).metrics.get("can_handle")
    return stats.calls if stats else 0


# -- who wins ---------------------------------------------------------------------


def test_the_highest_confidence_wins(host: PluginHost, run: Callable[..., Any]) -> None:
    routed = run(host.send(Message(type="slow", content="hi")))
    assert routed.plugin_id == "slow-b"  # 0.6 beats slow-a's 0.4, though slow-a sorts first
    assert routed.confidence == 0.6
    assert routed.response.content == "slow-b answered"
    assert routed.scores == {"loud": 0.0, "slow-a": 0.4, "slow-b": 0.6}
    assert routed.errors == {}
    assert "handle_message" not in host.record("slow-a").metrics  # only the winner answers


def test_a_tie_goes_to_the_plugin_id_that_sorts_first(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    # echo scores 1.0 for "echo" messages; in "hang" mode loud does too (and would hang)
    routed = run(host.send(loud("hang", type="echo")))
    assert routed.scores == {"echo": 1.0, "loud": 1.0}
    assert routed.plugin_id == "echo"
    assert routed.response.content == "echo: hi"
    assert "handle_message" not in host.record("loud").metrics
    assert routed.errors == {}


def test_a_low_but_positive_score_is_enough(host: PluginHost, run: Callable[..., Any]) -> None:
    routed = run(host.send(Message(type="chat", content="hello")))
    assert routed.plugin_id == "echo"
    assert routed.confidence == 0.1
    assert routed.response == MessageResponse(content="echo: hello")
    assert routed.handled


def test_plugins_not_supporting_the_type_are_never_asked(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    run(host.send(Message(type="echo", content="hi")))
    run(host.send(Message(type="block", content="0")))
    assert can_handle_calls(host, "echo") == 1  # not asked about "block"
    assert can_handle_calls(host, "blocking") == 1  # not asked about "echo"
    assert can_handle_calls(host, "slow-a") == 0
    assert can_handle_calls(host, "slow-b") == 0
    assert can_handle_calls(host, "loud") == 2  # "*" takes every type


def test_a_plain_string_answer_becomes_the_content(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    routed = run(host.send(Message(type="block", content="0")))
    assert routed.plugin_id == "blocking"
    assert routed.response == MessageResponse(content="woke up")


# -- scores that are not scores ---------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("too-sure", "'loud' returned 7.5, not a confidence between 0.0 and 1.0 from can_handle"),
        ("nan", "'loud' returned nan, not a confidence between 0.0 and 1.0 from can_handle"),
        ("text", "'loud' returned 'very', not a confidence between 0.0 and 1.0 from can_handle"),
        ("raise", "'loud' failed in can_handle: ValueError: cannot score this"),
    ],
)
def test_a_bad_score_is_recorded_and_someone_else_answers(
    host: PluginHost, run: Callable[..., Any], mode: str, error: str
) -> None:
    routed = run(host.send(loud(mode)))
    assert routed.plugin_id == "echo"
    assert routed.response.content == "echo: hi"
    assert routed.scores == {"echo": 0.1}  # loud's non-score is not a score
    assert routed.errors == {"loud": error}
    record = host.record("loud")
    assert [(f.stage, f.message) for f in record.call_errors] == [("can_handle", error)]
    assert record.metrics["can_handle"].errors == 1
    assert "handle_message" not in record.metrics


def test_a_hanging_score_times_out_without_holding_up_the_others(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    started = perf_counter()
    routed = run(host.send(loud("hang-score", type="slow")))
    elapsed = perf_counter() - started
    # asked together: the 0.5 s timeout, not 0.5 + 0.3 + 0.3
    assert TIMEOUT <= elapsed < 0.8
    assert routed.plugin_id == "slow-b"
    assert routed.scores == {"slow-a": 0.4, "slow-b": 0.6}
    assert routed.errors == {"loud": "'loud' did not answer can_handle within 0.5 s"}
    stats = host.record("loud").metrics["can_handle"]
    assert (stats.calls, stats.errors, stats.timeouts) == (1, 1, 1)


# -- a winner that fails hands over to the next best --------------------------------


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("hang", "'loud' did not answer handle_message within 0.5 s"),
        ("crash", "'loud' failed in handle_message: RuntimeError: handler crashed"),
        ("garbage", "'loud' returned int, not a MessageResponse from handle_message"),
    ],
)
def test_when_the_winner_fails_the_next_best_answers(
    host: PluginHost, run: Callable[..., Any], mode: str, error: str
) -> None:
    routed = run(host.send(loud(mode)))
    assert routed.scores == {"echo": 0.1, "loud": 1.0}
    assert routed.plugin_id == "echo"
    assert routed.confidence == 0.1
    assert routed.response.content == "echo: hi"
    assert routed.errors == {"loud": error}
    record = host.record("loud")
    assert [(f.stage, f.message) for f in record.call_errors] == [("handle_message", error)]
    assert record.metrics["handle_message"].errors == 1


def test_a_handler_that_ignores_cancellation_cannot_hold_the_host(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    started = perf_counter()
    routed = run(host.send(loud("stubborn")))  # swallows the cancellation for 2 s
    elapsed = perf_counter() - started
    assert elapsed < 1.0  # the 0.5 s timeout, not the 2 s the plugin insists on
    assert routed.plugin_id == "echo"
    assert routed.errors == {"loud": "'loud' did not answer handle_message within 0.5 s"}


def test_when_every_candidate_fails_the_message_is_unhandled(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    routed = run(host.send(Message(type="quit")))  # quits scores 1.0, then sys.exit()s
    assert routed.plugin_id is None
    assert not routed.handled
    assert not routed.response.handled
    assert routed.response.content.startswith(
        "every plugin that could handle this 'quit' message failed; "
        "a message handler is installed but not active: 'bad-signature'"
    )
    assert routed.errors == {"quits": "'quits' failed in handle_message: SystemExit: 3"}


# -- nobody answers ---------------------------------------------------------------


def test_nobody_confident_means_unhandled(host: PluginHost, run: Callable[..., Any]) -> None:
    routed = run(host.send(Message(type="weather", content="rain?")))  # only loud, with 0.0
    assert routed.plugin_id is None
    assert not routed.handled
    assert routed.confidence == 0.0
    assert routed.scores == {"loud": 0.0}
    assert not routed.response.handled
    assert routed.response.content.startswith(
        "no plugin is confident it can handle this 'weather' message; "
        "a message handler is installed but not active: 'bad-signature'"
    )


def test_no_handler_for_the_type_means_unhandled(host: PluginHost, run: Callable[..., Any]) -> None:
    run(host.suspend("loud"))  # loud takes every type
    routed = run(host.send(Message(type="weather")))
    assert not routed.handled
    assert routed.scores == {}
    assert not routed.response.handled
    assert routed.response.content.startswith(
        "no active plugin handles messages of type 'weather'; "
        "a message handler is installed but not active: 'bad-signature'"
    )


def test_routed_message_as_json(host: PluginHost, run: Callable[..., Any]) -> None:
    routed = run(host.send(loud("raise")))
    assert routed.to_dict() == {
        "plugin_id": "echo",
        "handled": True,
        "confidence": 0.1,
        "response": {"content": "echo: hi", "handled": True, "metadata": {}},
        "scores": {"echo": 0.1},
        "errors": {"loud": "'loud' failed in can_handle: ValueError: cannot score this"},
    }
    unhandled = RoutedMessage(None, 0.0, MessageResponse(content="x", handled=False))
    assert unhandled.to_dict()["handled"] is False


# -- concurrency --------------------------------------------------------------------


def test_handlers_are_asked_concurrently(host: PluginHost, run: Callable[..., Any]) -> None:
    started = perf_counter()
    routed = run(host.send(Message(type="slow")))
    elapsed = perf_counter() - started
    assert routed.plugin_id == "slow-b"
    assert elapsed < 0.5  # each thinks 0.3 s: one after the other would take 0.6 s


def test_sync_in_thread_lets_a_blocking_handler_time_out(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = make_host(plugins_dir, tmp_path, sync_in_thread=True)
    run(host.start())
    started = perf_counter()
    routed = run(host.send(Message(type="block", content="2")))
    elapsed = perf_counter() - started
    assert elapsed < 1.0  # abandoned at 0.5 s, not after the full 2 s
    assert not routed.handled
    assert routed.errors == {"blocking": "'blocking' did not answer handle_message within 0.5 s"}
    stats = host.record("blocking").metrics["handle_message"]
    assert (stats.calls, stats.errors, stats.timeouts) == (1, 1, 1)


def test_inline_a_blocking_handler_holds_the_call_but_its_late_answer_is_refused(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    started = perf_counter()
    routed = run(host.send(Message(type="block", content="0.7")))
    elapsed = perf_counter() - started
    assert elapsed >= 0.7  # a plain hook run inline cannot be interrupted
    assert not routed.handled
    assert routed.errors == {"blocking": "'blocking' did not answer handle_message within 0.5 s"}
    assert host.record("blocking").metrics["handle_message"].timeouts == 1


# -- coercing answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("plain text", MessageResponse(content="plain text")),
        ({"content": "from a dict", "metadata": {"k": 1}},
         MessageResponse(content="from a dict", metadata={"k": 1})),
        (MessageResponse(content="as is"), MessageResponse(content="as is")),
    ],
)  # fmt: skip
def test_coerce_response_accepts(host: PluginHost, answer: Any, expected: MessageResponse) -> None:
    assert coerce_response(host.record("echo"), answer) == expected


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, "'echo' returned NoneType, not a MessageResponse from handle_message"),
        (["a"], "'echo' returned list, not a MessageResponse from handle_message"),
        ({"text": "x"}, "'echo' returned an invalid response: "),
    ],
)
def test_coerce_response_refuses(host: PluginHost, answer: Any, error: str) -> None:
    record = host.record("echo")
    with pytest.raises(PluginCallError) as caught:
        coerce_response(record, answer)
    assert caught.value.message.startswith(error)
    assert caught.value.hook == "handle_message"
    assert record.call_errors[-1].message == caught.value.message


def _hung(delay: float) -> Message:
    return Message(type="slow", content="x", metadata={"delays": {"slow-a": delay, "slow-b": 0}})


def test_a_hung_scorer_is_left_out_after_a_few_timeouts_then_tried_again(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routing, "SCORING_PAUSE", 0.3)
    host = make_host(plugins_dir, tmp_path, timeout=5.0)
    run(host.start())
    assert (
        host.dispatcher.router.score_timeout == 1.0
    )  # scoring's own deadline, under the call timeout
    started = time.monotonic()
    for _ in range(routing.MAX_SCORING_TIMEOUTS):
        routed = run(host.send(_hung(30)))
        assert routed.plugin_id == "slow-b"
        assert "did not answer can_handle within 1 s" in routed.errors["slow-a"]
    assert time.monotonic() - started < 5.0 * routing.MAX_SCORING_TIMEOUTS / 2
    routed = run(host.send(_hung(30)))  # left out now: slow-a is not even asked
    assert "left out of routing" in routed.errors["slow-a"]
    assert can_handle_calls(host, "slow-a") == routing.MAX_SCORING_TIMEOUTS
    run(asyncio.sleep(0.35))
    routed = run(host.send(_hung(0)))  # after the pause it is asked again, and answers
    assert can_handle_calls(host, "slow-a") == routing.MAX_SCORING_TIMEOUTS + 1
    assert routed.scores["slow-a"] == 0.4 and "slow-a" not in routed.errors
    run(host.stop())


def test_failover_says_which_attempt_it_is_with_the_same_id(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    message = Message(type="slow", metadata={"fail-b": True, "delays": {"slow-a": 0, "slow-b": 0}})
    routed = run(host.send(message))
    assert routed.errors == {"slow-b": "'slow-b' failed in handle_message: RuntimeError: "
                                       "slow-b gave up on attempt 1"}  # fmt: skip
    assert routed.plugin_id == "slow-a"
    assert routed.response.content == f"slow-a answered attempt 2 of {message.id}"
    assert message.attempt == 1  # the caller's message is not changed
