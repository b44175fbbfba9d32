"""Run the acp-plugins benchmarks: ``python -m benchmarks [--runs N] [--plugins N] ...``.

Every benchmark measures acp-plugins and a baseline in the same invocation,
several runs each, and reports the medians, their ratio and the goal for it.
Progress goes to stderr; the table (or, with ``--json``, a JSON document) to stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

import pluggy

import acp_plugins
from benchmarks import env
from benchmarks.cli_send import measure_send
from benchmarks.dispatch import measure_dispatch, measure_telemetry, profile_dispatch
from benchmarks.isolation import measure_isolation, summary
from benchmarks.server import CONCURRENCY, measure_server
from benchmarks.startup import measure_startup, profile_startup

BENCHMARKS = (
    "dispatch", "telemetry", "discover", "discover-stevedore", "start", "start-large",
    "isolation", "send", "server",
)  # fmt: skip


@dataclass(frozen=True)
class Result:
    """One row of the table."""

    name: str
    description: str
    baseline_name: str
    unit: str  # "us/msg", "us/call" or "ms"
    ours: list[float]  # seconds per run
    baseline: list[float]
    goal: float | None  # maximum ratio; None = informational

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ratio(self) -> float:
        return self.ours_median / self.baseline_median

    @property
    def ok(self) -> bool | None:
        return None if self.goal is None else self.ratio <= self.goal

    def scaled(self, seconds: float) -> float:
        return seconds * (1e6 if self.unit.startswith("us") else 1e3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            ours=self._summary(self.ours),
            baseline=self._summary(self.baseline),
            ratio=round(self.ratio, 4),
            ok=self.ok,
        )
        return data

    def _summary(self, runs: list[float]) -> dict[str, Any]:
        values = [round(self.scaled(value), 3) for value in runs]
        return {
            "median": round(self.scaled(statistics.median(runs)), 3),
            "min": min(values),
            "max": max(values),
            "runs": values,
        }


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _bench_dispatch(args: argparse.Namespace) -> list[Result]:
    results = []
    for is_async in (False, True):
        kind = "async" if is_async else "sync"
        directory = env.dispatch_env(is_async=is_async, rebuild=args.rebuild)
        _log(f"[dispatch-{kind}] {args.runs} runs x {args.messages} messages ...")
        times = measure_dispatch(
            str(directory), is_async=is_async, runs=args.runs, messages=args.messages
        )
        if args.profile:
            _log(f"[dispatch-{kind}] cProfile of the host side (one run):")
            _log(profile_dispatch(str(directory), is_async=is_async, messages=args.messages))
        results.append(
            Result(
                name="dispatch" if not is_async else "dispatch-async",
                description=(
                    f"await host.send(m) among {env.DISPATCH_HANDLERS} {kind} message handlers"
                ),
                baseline_name=(
                    "raw pluggy: hook.can_handle, max, winner.handle_message"
                    + (" (asyncio.gather)" if is_async else "")
                ),
                unit="us/msg",
                ours=times.host,
                baseline=times.baseline,
                goal=None if is_async else 1.5,
            )
        )
    return results


def _bench_telemetry(args: argparse.Namespace) -> Result:
    directory = env.dispatch_env(is_async=False, rebuild=args.rebuild)
    _log(f"[telemetry] {args.runs} runs x {args.messages} messages, on and off ...")
    times = measure_telemetry(str(directory), runs=args.runs, messages=args.messages)
    return Result(
        name="telemetry",
        description=(
            f"await host.send(m) among {env.DISPATCH_HANDLERS} sync handlers, telemetry on "
            "(histograms, usage, written every 1 s)"
        ),
        baseline_name="the same host with telemetry off",
        unit="us/msg",
        ours=times.host,
        baseline=times.baseline,
        goal=1.10,
    )


def _startup(
    name: str,
    what: str,
    goal: float | None,
    description: str,
    baseline: str,
    *,
    against: str = "stevedore",
    large: bool = False,
) -> Callable[[argparse.Namespace], Result]:
    def bench(args: argparse.Namespace) -> Result:
        count = args.large if large else args.plugins
        directory = env.plugins_env(count, rebuild=args.rebuild)
        _log(
            f"[{name}] {args.runs} runs x 2 fresh interpreters, {count} plugins, "
            f"against {against} ({args.stevedore_cache} stevedore cache) ..."
        )
        times = measure_startup(
            what,
            directory,
            count,
            runs=args.runs,
            cache_root=env.cache_root(),
            stevedore_cache=args.stevedore_cache,
            baseline=against,
        )
        if args.profile:
            _log(f"[{name}] cProfile of one acp-plugins run (fresh interpreter):")
            _log(profile_startup(what, directory, count, cache_root=env.cache_root()))
        return Result(
            name=name,
            description=description.format(n=count),
            baseline_name=baseline.format(n=count, cache=args.stevedore_cache),
            unit="ms",
            ours=times.host,
            baseline=times.baseline,
            goal=goal,
        )

    return bench


STARTUP = {
    "discover": _startup(
        "discover",
        "discover",
        1.5,
        "acp_plugins.discover(search_path=[dir]): {n} manifests validated, nothing imported",
        "importlib.metadata.entry_points(group=...): {n} entry points listed",
        against="listing",
    ),
    "discover-stevedore": _startup(
        "discover-stevedore",
        "discover",
        None,
        "acp_plugins.discover(search_path=[dir]): {n} manifests validated, nothing imported",
        "stevedore ExtensionManager(invoke_on_load=False), {cache} cache: imports {n} plugins",
    ),
    "start": _startup(
        "start",
        "start",
        1.5,
        "PluginHost(search_path=[dir]).start(): {n} plugins to Active",
        "stevedore ExtensionManager(invoke_on_load=True), {cache} cache",
    ),
    "start-large": _startup(
        "start-large",
        "start",
        1.5,
        "PluginHost(search_path=[dir]).start(): {n} plugins to Active",
        "stevedore ExtensionManager(invoke_on_load=True), {cache} cache",
        large=True,
    ),
}


def _bench_isolation(args: argparse.Namespace) -> tuple[list[Result], dict[str, Any]]:
    calls = max(args.messages // 5, 200)
    _log(f"[isolation] {args.runs} runs x {calls} calls, {args.runs} worker starts ...")
    times = measure_isolation(args.runs, calls)
    results = [
        Result(
            name="isolated-call",
            description="await handle.invoke('can_handle', {message}) on the echo sample's worker",
            baseline_name="raw multiprocessing.Pipe round trip of the same message fields",
            unit="us/call",
            ours=times.call,
            baseline=times.pipe,
            goal=2.5,
        ),
        Result(
            name="isolated-call-100k",
            description="await handle.invoke('handle_message', ...) with 100 KB each way",
            baseline_name="a blocking socket to a JSON peer, 100 KB each way",
            unit="us/call",
            ours=times.big_call,
            baseline=times.big_socket,
            goal=1.2,
        ),
        Result(
            name="asyncio-floor",
            description="the same call frame echoed by a bare asyncio peer (no plugin, no checks)",
            baseline_name="raw multiprocessing.Pipe round trip of the same message fields",
            unit="us/call",
            ours=times.floor,
            baseline=times.pipe,
            goal=None,
        ),
        Result(
            name="worker-start",
            description="WorkerHandle.start(): fork from the zygote, layers, import echo, ready",
            baseline_name="python -I -c pass",
            unit="ms",
            ours=times.start,
            baseline=times.bare_start,
            goal=2.0,
        ),
        Result(
            name="layers-call",
            description="the isolated call, with the kernel layers",
            baseline_name="the same call, kernel layers off",
            unit="us/call",
            ours=times.call,
            baseline=times.bare_call,
            goal=None,
        ),
        Result(
            name="layers-start",
            description="a fresh-interpreter worker start (zygote off), with the kernel layers",
            baseline_name="the same start, kernel layers off",
            unit="ms",
            ours=times.layered_start,
            baseline=times.unlayered_start,
            goal=None,
        ),
    ]
    return results, summary(times)


def _bench_send(args: argparse.Namespace) -> Result:
    _log(f"[send] {args.runs} runs x 2 fresh `acp-plugins send` processes ...")
    times = measure_send(args.runs)
    return Result(
        name="send",
        description="acp-plugins send --type echo hello, the 4 samples installed, isolated",
        baseline_name="the same with only the echo sample installed",
        unit="ms",
        ours=times.all_samples,
        baseline=times.handler_only,
        goal=1.2,
    )


def _bench_server(args: argparse.Namespace) -> tuple[list[Result], dict[str, Any]]:
    count = max(500, args.messages // 5)
    _log(f"[server] {count} requests per route, {CONCURRENCY} at once ...")
    load = measure_server(count=count)
    floor = load.latencies["floor"]
    results = [
        Result(
            name=f"server-{route}",
            description=f"acp-plugins serve: {label}, {CONCURRENCY} connections",
            baseline_name="a bare FastAPI route on uvicorn answering constant JSON",
            unit="ms",
            ours=load.latencies[route],
            baseline=floor,
            goal=None,
        )
        for route, label in (("plugins", "GET /api/v1/plugins"),
                             ("messages", "POST /api/v1/messages (echo, trusted)"))
    ]  # fmt: skip
    notes = {
        f"server {route}": f"{load.per_second(route):.0f} requests/s, p50 "
        f"{load.quantile(route, 0.5) * 1000:.2f} ms, p99 {load.quantile(route, 0.99) * 1000:.2f} ms"
        for route in ("floor", "plugins", "messages")
    }
    return results, notes


def _table(results: Sequence[Result], args: argparse.Namespace, elapsed: float) -> str:
    header = ("benchmark", "acp-plugins", "baseline", "ratio", "goal", "ok")
    rows = []
    for r in results:
        unit = r.unit.replace("us", "µs")
        rows.append(
            (
                r.name,
                f"{r.scaled(r.ours_median):.2f} {unit}",
                f"{r.scaled(r.baseline_median):.2f} {unit}",
                f"{r.ratio:.2f}x",
                "info" if r.goal is None else f"<= {r.goal:g}x",
                "-" if r.ok is None else ("yes" if r.ok else "NO"),
            )
        )
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [
        f"acp-plugins benchmarks: medians of {args.runs} runs; {args.plugins} plugins for "
        f"discover/start; {args.messages} messages per dispatch run",
        f"Python {platform.python_version()}, acp-plugins {acp_plugins.__version__}, "
        f"pluggy {pluggy.__version__}, stevedore {version('stevedore')}",
        "",
        line(header),
        "-+-".join("-" * width for width in widths),
        *(line(row) for row in rows),
        "",
    ]
    for r in results:
        spread, base = _spread(r, r.ours), _spread(r, r.baseline)
        out.append(f"{r.name}: {r.description}")
        out.append(f"    acp-plugins runs: {spread}")
        out.append(f"    baseline ({r.baseline_name}) runs: {base}")
    out.append("")
    out.append(f"environment: {env.cache_root()}   total time: {elapsed:.1f} s")
    return "\n".join(out)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark acp-plugins against raw pluggy and stevedore.",
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs per side (default 5)")
    parser.add_argument(
        "--plugins", type=int, default=500, help="installed plugins for discover/start (500)"
    )
    parser.add_argument(
        "--large", type=int, default=2000, help="installed plugins for start-large (2000)"
    )
    parser.add_argument(
        "--messages", type=int, default=5000, help="messages per dispatch run (default 5000)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark ({', '.join(BENCHMARKS)}); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--stevedore-cache",
        choices=("warm", "cold"),
        default="warm",
        help="stevedore's on-disk entry point cache for discover/start (default warm)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile of the acp-plugins side of each benchmark (stderr)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="regenerate and reinstall the plugin environments"
    )
    args = parser.parse_args(argv)
    if min(args.runs, args.plugins, args.large, args.messages) < 1:
        parser.error("--runs, --plugins, --large and --messages must be positive")
    if importlib.util.find_spec("stevedore") is None:
        parser.error("stevedore is needed for the baselines: pip install -e '.[bench]'")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    selected = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    results: list[Result] = []
    if "dispatch" in selected:
        results.extend(_bench_dispatch(args))
    if "telemetry" in selected:
        results.append(_bench_telemetry(args))
    for name, bench in STARTUP.items():
        if name in selected:
            results.append(bench(args))
    notes: dict[str, Any] = {}
    if "isolation" in selected:
        isolated, notes = _bench_isolation(args)
        results.extend(isolated)
    if "send" in selected:
        results.append(_bench_send(args))
    if "server" in selected:
        served, served_notes = _bench_server(args)
        results.extend(served)
        notes.update(served_notes)
    elapsed = time.perf_counter() - started
    if args.json:
        document = {
            "python": platform.python_version(),
            "versions": {
                "acp-plugins": acp_plugins.__version__,
                "pluggy": pluggy.__version__,
                "stevedore": version("stevedore"),
            },
            "runs": args.runs,
            "plugins": args.plugins,
            "messages": args.messages,
            "stevedore_cache": args.stevedore_cache,
            "environment": str(env.cache_root()),
            "total_seconds": round(elapsed, 2),
            "results": [r.to_dict() for r in results],
            "notes": notes,
        }
        print(json.dumps(document, indent=2))
    else:
        print(_table(results, args, elapsed))
        for key, value in notes.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _spread(result: Any, values: list[float]) -> str:
    """Every run, or, for many (one per request), the quartiles and the extremes."""
    if len(values) <= 20:
        return ", ".join(f"{result.scaled(v):.2f}" for v in values)
    ordered = sorted(values)
    at = {name: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
          for name, q in (("min", 0.0), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75),
                          ("p99", 0.99))}  # fmt: skip
    shown = ", ".join(f"{name} {result.scaled(v):.2f}" for name, v in at.items())
    return f"{len(values)} samples: {shown}, max {result.scaled(ordered[-1]):.2f}"
