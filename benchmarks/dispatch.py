"""Message dispatch: ``await host.send(message)`` vs the same hooks through raw pluggy.

Both sides use the same :data:`~benchmarks.env.DISPATCH_HANDLERS` installed plugin
distributions. The host discovers and starts them (``PluginHost(search_path=[DIR])``);
the baseline imports the same classes and registers fresh instances on its own
``pluggy.PluginManager("acp")`` carrying the acp hookspecs, then for each message
calls ``pm.hook.can_handle(message=m)``, picks the highest score and calls the
winner's ``handle_message`` directly. Everything runs inside one event loop; each
run loops over the same pre-built messages, in blocks of :data:`BLOCK` that
alternate between the two sides.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import pstats
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from time import perf_counter
from typing import Any

import pluggy

import acp_plugins
import acp_plugins.hookspecs
from acp_plugins import Message, MessageResponse, PluginHost, PluginState, TelemetrySettings
from acp_plugins.loading.trust import TRUST_ALL

__all__ = ["BLOCK", "DispatchTimes", "measure_dispatch", "measure_telemetry", "profile_dispatch"]

#: Messages per timed block; each run interleaves blocks of the two sides.
BLOCK = 250


@dataclass(frozen=True)
class DispatchTimes:
    """Seconds per message of every run, for the host and for raw pluggy."""

    host: list[float]
    baseline: list[float]


class _RawPluggy:
    """The baseline: the same plugin classes on a bare pluggy manager."""

    def __init__(self, host: PluginHost) -> None:
        self.manager = pluggy.PluginManager("acp")
        for module in acp_plugins.hookspecs.SPEC_MODULES:
            self.manager.add_hookspecs(module)
        self.ids: dict[int, str] = {}
        for record in host.records.values():
            plugin_class = EntryPoint(
                record.plugin_id, record.entry_point, acp_plugins.ENTRY_POINT_GROUP
            ).load()
            plugin = plugin_class()
            self.manager.register(plugin, name=record.plugin_id)
            self.ids[id(plugin)] = record.plugin_id
        hook = self.manager.hook
        self.can_handle = hook.can_handle
        # pluggy calls implementations last-registered first; results come in that order.
        self.plugins: list[Any] = [
            impl.plugin for impl in reversed(hook.can_handle.get_hookimpls())
        ]

    def plugin_id(self, index: int) -> str:
        return self.ids[id(self.plugins[index])]

    def dispatch(self, message: Message) -> tuple[int, MessageResponse]:
        scores = self.can_handle(message=message)
        best = scores.index(max(scores))
        return best, self.plugins[best].handle_message(message=message)

    async def dispatch_async(self, message: Message) -> tuple[int, MessageResponse]:
        scores = await asyncio.gather(*self.can_handle(message=message))
        best = scores.index(max(scores))
        return best, await self.plugins[best].handle_message(message=message)


def _messages(count: int) -> list[Message]:
    # Content lengths 1..10 make the winner rotate among the handlers.
    return [Message(type="chat", content="x" * (i % 10 + 1)) for i in range(count)]


async def _check(
    host: PluginHost, raw: _RawPluggy, messages: Sequence[Message], is_async: bool
) -> None:
    """Both sides must pick the same winner and get the same answer."""
    winners = set()
    for message in messages[:20]:
        routed = await host.send(message)
        if is_async:
            index, response = await raw.dispatch_async(message)
            scores = await asyncio.gather(*raw.can_handle(message=message))
            direct = [await p.can_handle(message=message) for p in raw.plugins]
        else:
            index, response = raw.dispatch(message)
            scores = raw.can_handle(message=message)
            direct = [p.can_handle(message=message) for p in raw.plugins]
        assert list(scores) == direct, "pluggy results are not in the expected plugin order"
        assert len(set(scores)) == len(scores), "scores must be distinct"
        assert routed.handled and not routed.errors, routed
        assert routed.plugin_id == raw.plugin_id(index), (routed.plugin_id, raw.plugin_id(index))
        assert routed.response.content == response.content
        winners.add(routed.plugin_id)
    assert len(winners) > 1, "the winner should rotate among the handlers"


async def _time_host(host: PluginHost, messages: Sequence[Message]) -> float:
    send = host.send
    started = perf_counter()
    for message in messages:
        await send(message)
    return perf_counter() - started


async def _time_raw(raw: _RawPluggy, messages: Sequence[Message], is_async: bool) -> float:
    if is_async:
        dispatch_async = raw.dispatch_async
        started = perf_counter()
        for message in messages:
            await dispatch_async(message)
    else:
        dispatch = raw.dispatch
        started = perf_counter()
        for message in messages:
            dispatch(message)
    return perf_counter() - started


async def _measure(directory: str, *, is_async: bool, runs: int, count: int) -> DispatchTimes:
    with tempfile.TemporaryDirectory(prefix="acp-bench-dispatch-") as data_root:
        host = PluginHost(search_path=[directory], data_root=data_root, isolation=TRUST_ALL)
        await host.start()
        states = {r.plugin_id: r.state for r in host.records.values()}
        assert states and all(s is PluginState.ACTIVE for s in states.values()), states
        raw = _RawPluggy(host)
        assert len(raw.plugins) == len(states), (len(raw.plugins), len(states))
        messages = _messages(count)
        await _check(host, raw, messages, is_async)

        host_times: list[float] = []
        raw_times: list[float] = []
        await _time_host(host, messages)  # warm-up, not recorded
        await _time_raw(raw, messages, is_async)
        blocks = [messages[i : i + BLOCK] for i in range(0, len(messages), BLOCK)]
        for index in range(runs):
            gc.collect()
            host_total = raw_total = 0.0
            # Short blocks, alternating which side goes first, so that the machine's
            # bursts of noise hit both sides alike.
            for position, block in enumerate(blocks):
                if (index + position) % 2 == 0:
                    host_total += await _time_host(host, block)
                    raw_total += await _time_raw(raw, block, is_async)
                else:
                    raw_total += await _time_raw(raw, block, is_async)
                    host_total += await _time_host(host, block)
            host_times.append(host_total / len(messages))
            raw_times.append(raw_total / len(messages))
        await host.stop()
    return DispatchTimes(host=host_times, baseline=raw_times)


def measure_dispatch(directory: str, *, is_async: bool, runs: int, messages: int) -> DispatchTimes:
    """Seconds per message over ``runs`` runs of ``messages`` messages, host and raw pluggy."""
    return asyncio.run(_measure(directory, is_async=is_async, runs=runs, count=messages))


async def _measure_telemetry(directory: str, *, runs: int, count: int) -> DispatchTimes:
    """Two hosts over the same plugins, telemetry on (written every second) and off."""
    with tempfile.TemporaryDirectory(prefix="acp-bench-telemetry-") as data_root:
        on = PluginHost(
            search_path=[directory], data_root=f"{data_root}/on", isolation=TRUST_ALL,
            telemetry=TelemetrySettings(interval=1.0),
        )  # fmt: skip
        off = PluginHost(
            search_path=[directory], data_root=f"{data_root}/off", isolation=TRUST_ALL,
            telemetry=TelemetrySettings(enabled=False),
        )  # fmt: skip
        await on.start()
        await off.start()
        messages = _messages(count)
        for host in (on, off):
            for message in messages[:20]:
                routed = await host.send(message)
                assert routed.handled and not routed.errors, routed
            await _time_host(host, messages)  # warm-up
        blocks = [messages[i : i + BLOCK] for i in range(0, len(messages), BLOCK)]
        on_times: list[float] = []
        off_times: list[float] = []
        for index in range(runs):
            gc.collect()
            on_total = off_total = 0.0
            for position, block in enumerate(blocks):
                if (index + position) % 2 == 0:
                    on_total += await _time_host(on, block)
                    off_total += await _time_host(off, block)
                else:
                    off_total += await _time_host(off, block)
                    on_total += await _time_host(on, block)
            on_times.append(on_total / len(messages))
            off_times.append(off_total / len(messages))
        stats = on.record(next(iter(on.records))).stats("can_handle")
        assert stats.buckets is not None and sum(stats.buckets) == stats.calls
        await on.stop()
        await off.stop()
        assert (Path(data_root) / "on" / "telemetry.sqlite").exists()
        assert not (Path(data_root) / "off" / "telemetry.sqlite").exists()
    return DispatchTimes(host=on_times, baseline=off_times)


def measure_telemetry(directory: str, *, runs: int, messages: int) -> DispatchTimes:
    """Seconds per message, telemetry on (``host``) and off (``baseline``)."""
    return asyncio.run(_measure_telemetry(directory, runs=runs, count=messages))


async def _profile(directory: str, *, is_async: bool, count: int) -> str:
    with tempfile.TemporaryDirectory(prefix="acp-bench-dispatch-") as data_root:
        host = PluginHost(search_path=[directory], data_root=data_root, isolation=TRUST_ALL)
        await host.start()
        messages = _messages(count)
        await _time_host(host, messages)  # warm-up
        profiler = cProfile.Profile()
        profiler.enable()
        await _time_host(host, messages)
        profiler.disable()
        await host.stop()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


def profile_dispatch(directory: str, *, is_async: bool, messages: int) -> str:
    """cProfile output (hottest functions first) of the host side of one dispatch run."""
    return asyncio.run(_profile(directory, is_async=is_async, count=messages))
