"""Telemetry and health with a real plugin, in-process and isolated.

The gauge fixture (tests/fixture_plugins/acp-fx-gauge) does what its messages say:
fail, stall, record a figure, write bytes, turn its health_check sick or well;
gauge-user depends on it. Each test starts a host of its own over one install.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from acp_plugins import (
    TRUST_ALL,
    AcpPluginsError,
    IsolationPolicy,
    Message,
    PluginHost,
    TimeRange,
    WorkerLimits,
)
from acp_plugins.config.settings import TelemetrySettings
from acp_plugins.telemetry.store import HookRow, TelemetryBatch, TelemetryStore
from conftest import close_loop, fixture_plugin

Host = Callable[..., tuple[PluginHost, Callable[..., Any]]]


@pytest.fixture(scope="module")
def gauge_plugins(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(fixture_plugin("acp-fx-gauge"))


@pytest.fixture(params=["in-process", "isolated"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_host(gauge_plugins: Path, tmp_path: Path, mode: str) -> Iterator[Host]:
    """Start a host over the gauge plugins (stopped, with its loop, after the test)."""
    started: list[tuple[PluginHost, asyncio.AbstractEventLoop]] = []

    def make(**telemetry: Any) -> tuple[PluginHost, Callable[..., Any]]:
        isolation = (
            TRUST_ALL
            if mode == "in-process"
            else IsolationPolicy(limits=WorkerLimits(cpu_share=None))
        )
        host = PluginHost(
            search_path=[gauge_plugins],
            data_root=tmp_path / "data",
            isolation=isolation,
            timeout=2.0,
            telemetry=TelemetrySettings(**telemetry),
        )
        loop = asyncio.new_event_loop()
        loop.run_until_complete(host.start())
        assert {r.plugin_id for r in host.active()} == {"gauge", "gauge-user"}
        started.append((host, loop))
        return host, loop.run_until_complete

    yield make
    for host, loop in started:
        loop.run_until_complete(host.stop())
        close_loop(loop)


def _say(
    host: PluginHost, run: Callable[..., Any], *contents: str, kind: str = "gauge"
) -> list[str]:
    answers = []
    for content in contents:
        routed = run(host.send(Message(type=kind, content=content)))
        answers.append(routed.response.content if routed.handled else f"unhandled {routed.errors}")
    return answers


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# -- latency ------------------------------------------------------------------------


def test_hook_latency_has_quantiles_that_see_the_slow_call(make_host: Host) -> None:
    host, run = make_host()
    _say(host, run, *["ok"] * 40, "stall 0.3")
    stats = host.record("gauge").to_dict()["metrics"]["handle_message"]
    assert stats["calls"] == 41
    assert stats["p50_ms"] < 50
    assert 250 <= stats["p99_ms"] <= 500  # the stalled call is the top 2.5 %
    assert stats["p95_ms"] < 50


# -- health -------------------------------------------------------------------------


def test_a_plugin_is_healthy_until_its_health_check_says_otherwise(make_host: Host) -> None:
    host, run = make_host()
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert (health.status, health.reasons) == ("healthy", [])
    _say(host, run, "sick")
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert health.status == "failing"
    assert health.reasons == ["its health_check answered False"]
    user = run(host.telemetry.get_plugin_health("gauge-user"))
    assert (user.status, user.reasons) == ("degraded", ["depends on 'gauge', which is failing"])
    _say(host, run, "well")
    assert run(host.telemetry.get_plugin_health("gauge")).status == "healthy"


def test_errors_in_the_window_make_a_plugin_failing_and_it_recovers_when_they_age_out(
    make_host: Host,
) -> None:
    host, run = make_host(interval=0.1, error_window=1.0)
    _say(host, run, *["fail"] * 6, "ok", "ok")
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert health.status == "failing"
    assert health.errors == 6 and health.calls >= 16  # can_handle's 8 calls too
    assert health.reasons == ["6 of 8 handle_message calls failed in the last 1 s (75%)"]
    run(asyncio.sleep(1.6))  # the sampler marks every 0.1 s: the errors are older than 1 s
    _say(host, run, "ok")
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert (health.status, health.errors) == ("healthy", 0)


def test_one_error_in_few_calls_is_degraded_and_a_timeout_is_too(make_host: Host) -> None:
    host, run = make_host()
    _say(host, run, "fail")
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert health.status == "degraded"
    _say(host, run, *["ok"] * 30, "stall 3")  # over the host's 2 s timeout
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert health.status == "degraded"
    assert any("timed out" in reason for reason in health.reasons)


def test_suspended_stopped_and_unknown_plugins(make_host: Host) -> None:
    host, run = make_host()
    run(host.suspend("gauge-user"))
    assert run(host.telemetry.get_plugin_health("gauge-user")).status == "suspended"
    run(host.unload("gauge-user"))
    stopped = run(host.telemetry.get_plugin_health("gauge-user"))
    assert stopped.status == "stopped" and "unloaded" in stopped.reasons[0]
    with pytest.raises(AcpPluginsError, match="no plugin 'nobody' is installed"):
        run(host.telemetry.get_plugin_health("nobody"))


# -- plugins' own figures -----------------------------------------------------------


def test_a_plugin_records_figures_of_its_own_and_bad_ones_are_refused(make_host: Host) -> None:
    host, run = make_host()
    assert _say(host, run, "metric queue_depth 1", "metric queue_depth 5", "metric queue_depth 3")
    figure = host.telemetry.figures.of("gauge")["queue_depth"].to_dict()
    assert (figure["count"], figure["sum"], figure["min"], figure["max"], figure["last"]) == (
        3, 9.0, 1.0, 5.0, 3.0,
    )  # fmt: skip
    (bad_name,) = _say(host, run, "metric Queue-Depth 1")
    assert bad_name.startswith("refused:") and "lowercase identifier" in bad_name
    (bad_value,) = _say(host, run, "metric depth text")
    assert bad_value.startswith("refused:") and "finite number" in bad_value
    answers = _say(host, run, *[f"metric m{n} 1" for n in range(100)])
    assert answers[:99] == ["done"] * 99  # queue_depth and m0..m98: 100 names
    assert "already has 100 names" in answers[99]
    assert "Queue-Depth" not in host.telemetry.figures.of("gauge")
    assert len(host.telemetry.figures.of("gauge")) == 100


# -- the database and the report ----------------------------------------------------


def test_a_report_covers_more_than_one_host_s_life(make_host: Host, tmp_path: Path) -> None:
    first, run = make_host()
    _say(first, run, "ok", "ok", "fail", "metric depth 2")
    _say(first, run, "?", kind="made-up")
    run(first.run_command("tick"))
    run(first.stop())
    second, run = make_host()
    _say(second, run, "ok")
    report = run(second.telemetry.generate_telemetry_report(TimeRange.last(timedelta(hours=1))))
    (handled,) = [h for h in report.hooks if (h.plugin_id, h.hook) == ("gauge", "handle_message")]
    assert (handled.calls, handled.errors) == (5, 1)
    assert handled.p99_ms is not None and handled.max_ms >= handled.p99_ms
    assert report.usage["messages"] == {"gauge": 5, "(other)": 1}
    assert report.usage["commands"] == {"gauge:tick": 1}
    (depth,) = report.metrics
    assert (depth.plugin_id, depth.metric, depth.count, depth.last) == ("gauge", "depth", 1, 2.0)
    database = tmp_path / "data" / "telemetry.sqlite"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM hook_calls").fetchone()[0] > 0
    # a range before any of it was written holds nothing
    earlier = TimeRange(start=report.time_range.start, end=report.time_range.start)
    assert run(second.telemetry.generate_telemetry_report(earlier)).hooks == []


def test_rows_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path / "t.sqlite", retention=100.0)
    row = HookRow("p", "handle_message", 1, 0, 0, 0.001, 0.001, None)
    store.write(TelemetryBatch(at=1000.0, hooks=[row]))
    store.write(TelemetryBatch(at=1050.0, hooks=[row]))
    assert len(store.read(0, 2000).hooks) == 2
    store.write(TelemetryBatch(at=1120.0, hooks=[row]))  # 1000 is now past the 100 s kept
    assert [at for at, _ in store.read(0, 2000).hooks] == [1050.0, 1120.0]


def test_with_telemetry_off_nothing_is_stored_and_no_histograms_are_kept(
    make_host: Host, tmp_path: Path
) -> None:
    host, run = make_host(enabled=False)
    _say(host, run, "ok", "ok")
    stats = host.record("gauge").to_dict()["metrics"]["handle_message"]
    assert stats["calls"] == 2 and "p99_ms" not in stats
    assert host.telemetry.usage is None
    run(host.stop())
    assert not (tmp_path / "data" / "telemetry.sqlite").exists()
    assert "acp_plugin_hook_duration_seconds_bucket" not in host.telemetry.prometheus().decode()


# -- Prometheus ---------------------------------------------------------------------


def test_the_prometheus_exposition_counts_calls_by_outcome_with_bounded_labels(
    make_host: Host, mode: str
) -> None:
    host, run = make_host()
    _say(host, run, "ok", "ok", "ok", "fail", "fail", "metric depth 7")
    for n in range(50):  # made-up types: all counted as one label value
        _say(host, run, "x", kind=f"made-up-{n}")
    samples = _samples(host.telemetry.prometheus().decode())
    key = (
        "acp_plugin_hook_calls_total",
        (("hook", "handle_message"), ("outcome", "ok"), ("plugin", "gauge")),
    )
    assert samples[key] == 4
    key = (
        "acp_plugin_hook_calls_total",
        (("hook", "handle_message"), ("outcome", "error"), ("plugin", "gauge")),
    )
    assert samples[key] == 2
    count = (
        "acp_plugin_hook_duration_seconds_count",
        (("hook", "handle_message"), ("plugin", "gauge")),
    )
    assert samples[count] == 6
    inf = (
        "acp_plugin_hook_duration_seconds_bucket",
        (("hook", "handle_message"), ("le", "+Inf"), ("plugin", "gauge")),
    )
    assert samples[inf] == 6
    messages = {labels for name, labels in samples if name == "acp_messages_total"}
    assert messages == {(("type", "gauge"),), (("type", "(other)"),)}
    assert samples[("acp_messages_total", (("type", "(other)"),))] == 50
    assert samples[("acp_plugin_metric", (("metric", "depth"), ("plugin", "gauge")))] == 7.0
    plugins = {dict(labels).get("plugin") for _, labels in samples} - {None}
    assert plugins == {"gauge", "gauge-user"}
    up = samples[("acp_plugin_up", (("plugin", "gauge"),))]
    assert up == 1
    workers = {name for name, _ in samples if name.startswith("acp_worker_")}
    if mode == "isolated":
        assert {"acp_worker_resident_bytes", "acp_worker_cpu_seconds_total"} <= workers
    else:
        assert {
            n for n in workers if not n.endswith(("restarts_total", "paused_seconds_total"))
        } == set()


@pytest.mark.parametrize("mode", ["isolated"])  # an in-process plugin has no process to read
def test_a_worker_s_memory_cpu_and_bytes_written_are_read_from_proc(make_host: Host) -> None:
    host, run = make_host()
    _say(host, run, "write 3000000", "spin 0.15")
    samples = _samples(host.telemetry.prometheus().decode())
    labels = (("plugin", "gauge"),)
    assert samples[("acp_worker_write_bytes_total", labels)] >= 3_000_000
    assert samples[("acp_worker_resident_bytes", labels)] > 5_000_000
    assert samples[("acp_worker_open_files", labels)] >= 3
    assert samples[("acp_worker_cpu_seconds_total", labels)] >= 0.1
    report = run(host.telemetry.generate_telemetry_report(TimeRange.last(timedelta(hours=1))))
    (worker,) = [w for w in report.workers if w.plugin_id == "gauge"]
    assert worker.write_bytes >= 3_000_000 and worker.resident_bytes_max is not None


def test_the_stored_histogram_agrees_with_the_live_one(make_host: Host, tmp_path: Path) -> None:
    host, run = make_host()
    _say(host, run, *["ok"] * 20, "stall 0.2")
    live = host.record("gauge").stats("handle_message")
    report = run(host.telemetry.generate_telemetry_report(TimeRange.last(timedelta(hours=1))))
    (stored,) = [h for h in report.hooks if h.hook == "handle_message" and h.plugin_id == "gauge"]
    assert stored.calls == live.calls
    assert stored.p99_ms == pytest.approx(round((live.quantile(0.99) or 0) * 1000, 3))
    with sqlite3.connect(tmp_path / "data" / "telemetry.sqlite") as db:
        rows = db.execute("SELECT buckets FROM hook_calls WHERE hook = 'handle_message'").fetchall()
    assert sum(sum(json.loads(raw)) for (raw,) in rows) == live.calls


def test_hosts_writing_one_database_at_once_lose_no_row(tmp_path: Path) -> None:
    import threading

    store = TelemetryStore(tmp_path / "shared.sqlite", retention=86_400.0)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for k in range(40):
                row = HookRow(f"p{n}", "handle_message", 1, 0, 0, 0.001, 0.001, None)
                TelemetryStore(store.path, 86_400.0).write(
                    TelemetryBatch(at=time.time() + k * 1e-3, hooks=[row])
                )
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = store.read(0, time.time() + 3600).hooks
    assert sorted({row.plugin for _, row in rows}) == ["p0", "p1", "p2", "p3"]
    assert len(rows) == 160


@pytest.mark.parametrize("mode", ["isolated"])
def test_a_plugin_whose_worker_was_killed_is_failing_until_it_is_back(make_host: Host) -> None:
    host, run = make_host()
    handle = host.record("gauge").handle
    pid = getattr(handle, "worker_pid", None)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    health = run(host.telemetry.get_plugin_health("gauge"))
    assert health.status == "failing", health
    assert any("worker" in reason or "health_check failed" in reason for reason in health.reasons)
    deadline = time.monotonic() + 20
    while run(host.telemetry.get_plugin_health("gauge")).status != "healthy":
        assert time.monotonic() < deadline, "the restarted worker never became healthy"
        run(asyncio.sleep(0.1))


def test_a_plugin_waiting_for_its_first_use_is_healthy(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    directory = install_plugins(fixture_plugin("acp-fx-lazy"))
    host = PluginHost(
        search_path=[directory], data_root=tmp_path / "data", isolation=TRUST_ALL, on_demand=True
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(host.start())
        assert host.record("greeter").waiting
        health = loop.run_until_complete(host.telemetry.get_plugin_health("greeter"))
        assert (health.status, health.reasons) == ("healthy", [])
        loop.run_until_complete(host.stop())
    finally:
        close_loop(loop)


def test_the_host_records_a_figure_for_a_plugin_as_its_context_does(make_host: Host) -> None:
    host, run = make_host()
    host.telemetry.record_metric("gauge", "from_host", 2)
    _say(host, run, "metric from_host 5")
    figure = host.telemetry.figures.of("gauge")["from_host"]
    assert (figure.count, figure.total, figure.last) == (2, 7.0, 5.0)
    with pytest.raises(AcpPluginsError, match="finite number"):
        host.telemetry.record_metric("gauge", "from_host", float("nan"))
