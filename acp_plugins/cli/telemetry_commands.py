"""``acp-plugins health`` and ``acp-plugins telemetry``: how plugins are doing, and figures."""

from __future__ import annotations

import argparse
import sys

from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK
from acp_plugins.cli.output import print_json, table
from acp_plugins.host import PluginHost
from acp_plugins.models import TimeRange
from acp_plugins.telemetry import PluginHealth, TelemetryReport

__all__ = ["cmd_health", "cmd_telemetry"]

#: Statuses that make ``acp-plugins health`` exit 1.
_BAD = frozenset({"failing"})


async def cmd_health(host: PluginHost, args: argparse.Namespace) -> int:
    """The health of one plugin, or of every installed one; exit 1 if any is failing."""
    ids = [args.plugin_id] if args.plugin_id else sorted(host.records)
    if args.plugin_id:
        host.record(args.plugin_id)  # an unknown id: one clear error, exit 1
        await host.start_plugin(args.plugin_id)
    verdicts = [await host.telemetry.get_plugin_health(plugin_id) for plugin_id in ids]
    if args.json:
        print_json([verdict.model_dump(mode="json") for verdict in verdicts])
    else:
        _print_health(verdicts)
    return EXIT_FAILED if any(v.status in _BAD for v in verdicts) else EXIT_OK


def _print_health(verdicts: list[PluginHealth]) -> None:
    if not verdicts:
        print("no plugins installed")
        return
    rows = [
        (v.plugin_id, v.status, f"{v.calls}", f"{v.error_rate:.0%}", "; ".join(v.reasons))
        for v in verdicts
    ]
    window = f"{verdicts[0].window_seconds:g} s"
    print(table(("PLUGIN", "STATUS", f"CALLS ({window})", "ERRORS", "WHY"), rows, wrap_last=True))


async def cmd_telemetry(host: PluginHost, args: argparse.Namespace) -> int:
    """The stored figures of the last DURATION, or the Prometheus exposition now."""
    if args.prometheus:
        sys.stdout.write(host.telemetry.prometheus().decode())
        return EXIT_OK
    report = await host.telemetry.generate_telemetry_report(TimeRange.last(args.since))
    if args.json:
        print_json(report.model_dump(mode="json"))
    else:
        _print_report(report)
    return EXIT_OK


def _print_report(report: TelemetryReport) -> None:
    span = f"{report.time_range.start:%Y-%m-%d %H:%M} to {report.time_range.end:%Y-%m-%d %H:%M} UTC"
    print(f"telemetry from {span}")
    if not (report.hooks or report.workers or report.metrics):
        print("no calls were recorded in that time")
    rows: list[tuple[object, ...]]
    if report.hooks:
        print()
        rows = [
            (h.plugin_id, h.hook, h.calls, h.errors, h.timeouts, _ms(h.p50_ms), _ms(h.p99_ms),
             _ms(h.max_ms))
            for h in report.hooks
        ]  # fmt: skip
        print(table(("PLUGIN", "HOOK", "CALLS", "ERRORS", "TIMEOUTS", "P50", "P99", "MAX"), rows))
    if report.workers:
        print()
        rows = [
            (w.plugin_id, _mib(w.resident_bytes_max), f"{w.cpu_seconds:.2f} s",
             _mib(w.read_bytes), _mib(w.write_bytes), w.open_files_max, w.restarts)
            for w in report.workers
        ]  # fmt: skip
        print(table(("WORKER", "RSS MAX", "CPU", "READ", "WRITTEN", "FILES", "RESTARTS"), rows))
    if report.metrics:
        print()
        rows = [
            (m.plugin_id, m.metric, m.count, f"{m.mean:g}", f"{m.min:g}", f"{m.max:g}",
             f"{m.last:g}")
            for m in report.metrics
        ]  # fmt: skip
        print(table(("PLUGIN", "METRIC", "COUNT", "MEAN", "MIN", "MAX", "LAST"), rows))
    for kind, names in report.usage.items():
        print()
        print(table((kind.upper(), "COUNT"), sorted(names.items(), key=lambda item: -item[1])))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1048576:.1f} MiB"
