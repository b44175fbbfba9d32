"""The reload soak: messages at a steady rate while the plugin is upgraded and reloaded.

``python -m benchmarks.soak [--seconds 60] [--rate 1000] [--swaps 10] [--mode both] [--json]``
(or ``nox -s soak``). For each mode (the plugin trusted in the host's process, and
isolated in a worker), a host serves version 1.0.0 of a generated plugin, ``soak``,
and a sender offers ``--rate`` messages per second for ``--seconds``, open loop: each
message has its due time and its latency counts from then, so a stalled host cannot
hide its backlog. Meanwhile ``--swaps`` swaps, evenly spaced, alternate an upgrade
(``pip install --upgrade`` of the next version's wheel into the folder the host
searches, then ``host.reload``) and a plain reload of what is installed. Where the
swaps run late (a loaded machine), sending goes on at the same rate past ``--seconds``
until the last swap has returned and half a second more, so every swap is followed by
traffic; ``sent`` counts what was really offered.

Every answer names the version that gave it, and every instance appends each message
it handled to a file in its data directory. At the end the soak counts:

- **lost**: messages sent and not answered by the plugin (no handler, an error);
- **doubled**: messages the plugins' files show handled more than once;
- **p99 steady** and **p99 during reload**: latency percentiles of the messages due
  outside and inside a reload (from ``host.reload`` called to returned);
- **p99 during pip**: the same for messages due while an upgrade's ``pip install``
  ran beside the host (a process of its own sharing the CPUs), reported apart.

It exits 1 if any message was lost or doubled, if a swap failed, or if the p99 during
reload is over ``--max-ratio`` (10) times the steady p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from acp_plugins import TRUST_ALL, IsolationPolicy, Message, PluginHost, WorkerLimits
from acp_plugins.testing.packaging import write_wheel

__all__ = ["SoakResult", "main", "run_soak"]

MODES = ("in-process", "isolated")

_PLUGIN = '''\
"""The soak's plugin, version {version}: answers with its version, logs what it handled."""

from __future__ import annotations

from acp_plugins import Message, MessageResponse, Plugin, hookimpl

VERSION = "{version}"


class SoakPlugin(Plugin):
    """Handles every ``soak`` message; one line per message in ``handled.log``."""

    def __init__(self) -> None:
        self._log = None

    @hookimpl
    def initialize(self, context) -> None:
        self._log = open(context.data_dir / "handled.log", "a", buffering=1)

    @hookimpl
    def get_supported_message_types(self) -> list[str]:
        return ["soak"]

    @hookimpl
    def can_handle(self, message: Message) -> float:
        return 1.0

    @hookimpl
    def handle_message(self, message: Message) -> MessageResponse:
        self._log.write(VERSION + " " + message.content + "\\n")
        return MessageResponse(content=VERSION + "/" + message.content)

    @hookimpl
    def on_unload(self) -> None:
        if self._log is not None:
            self._log.close()
'''


@dataclass
class SoakResult:
    """What one mode's soak measured."""

    mode: str
    seconds: float
    rate: int
    sent: int = 0
    answered: int = 0
    lost: int = 0
    doubled: int = 0
    swaps: list[dict[str, object]] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    p50_steady_ms: float = 0.0
    p99_steady_ms: float = 0.0
    p99_reload_ms: float = 0.0
    max_reload_ms: float = 0.0
    p99_install_ms: float = 0.0
    handled: int = 0
    during_reload: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """p99 during reload over the steady p99."""
        return self.p99_reload_ms / self.p99_steady_ms if self.p99_steady_ms else math.inf

    @property
    def swaps_failed(self) -> int:
        return sum(1 for swap in self.swaps if not swap["ok"])

    def passed(self, max_ratio: float) -> bool:
        """No message lost or doubled, every swap done, the p99 ratio within ``max_ratio``."""
        return (
            self.lost == 0
            and self.doubled == 0
            and self.swaps_failed == 0
            and self.sent == self.answered == self.handled
            and self.ratio <= max_ratio
        )


class _Versions:
    """Wheels of the soak plugin, installed with pip into the folder the host searches."""

    def __init__(self, root: Path) -> None:
        self.wheels = root / "wheels"
        self.wheels.mkdir(parents=True)
        self.target = root / "plugins"
        self.target.mkdir()
        self.target.chmod(0o755)  # isolated workers run as uids of their own

    def wheel(self, version: str) -> Path:
        manifest = {
            "manifest_version": "1.0", "plugin_id": "soak", "name": "Soak",
            "version": version, "dependencies": {"core": "^2.0.0"},
            "permissions": ["read-messaging"], "interfaces": ["IMessageHandler"],
        }  # fmt: skip
        files = {
            "acp_soak/__init__.py": b"",
            "acp_soak/plugin.py": _PLUGIN.format(version=version).encode(),
            "acp_soak/manifest.json": json.dumps(manifest).encode(),
        }
        return write_wheel(
            self.wheels, dist_name="acp-soak", package="acp_soak", version=version,
            entry_point="soak = acp_soak.plugin:SoakPlugin", files=files,
        )  # fmt: skip

    def install(self, version: str) -> None:
        wheel = self.wheel(version)
        for old in self.target.glob("acp_soak-*.dist-info"):  # pip --target keeps them
            shutil.rmtree(old)
        command = [
            sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--upgrade",
            "--disable-pip-version-check", "-q", "--target", str(self.target), str(wheel),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pip install of soak {version} failed: {done.stderr.strip()}")


_TAIL_SECONDS = 0.5


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def _soak(host: PluginHost, versions: _Versions, result: SoakResult, swaps: int) -> None:
    loop = asyncio.get_running_loop()
    latencies: list[float | None] = []
    due_at: list[float] = []
    windows: list[tuple[float, float]] = []
    installs: list[tuple[float, float]] = []
    answers: Counter[str] = Counter()
    pending: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.2
    end = start + result.seconds
    swaps_done: list[float] = []  # when the last swap returned

    async def one(n: int, due: float) -> None:
        try:
            routed = await host.send(Message(type="soak", content=str(n), sender="soak"))
        except Exception as error:
            result.errors.append(f"message {n}: {error}")
            return
        if not routed.handled or routed.response is None:
            result.errors.append(f"message {n}: not handled {routed.errors or ''}".strip())
            return
        version, _, echoed = routed.response.content.partition("/")
        if echoed != str(n):
            result.errors.append(f"message {n}: answered {routed.response.content!r}")
            return
        latencies[n] = loop.time() - due
        answers[version] += 1

    def sending(due: float) -> bool:
        # past --seconds, go on until the last swap is done and a tail has followed it,
        # so that every swap (late on a loaded machine) is followed by traffic
        if due < end:
            return True
        return not swaps_done or due < swaps_done[0] + _TAIL_SECONDS

    async def sender() -> None:
        n = 0
        while sending(due := start + n / result.rate):
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            due_at.append(due)
            latencies.append(None)
            task = asyncio.ensure_future(one(n, due))
            n += 1
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def swapper() -> None:
        version = 0
        for k in range(swaps):
            at = start + result.seconds * (k + 1) / (swaps + 1)
            await asyncio.sleep(max(0.0, at - loop.time()))
            upgrade = k % 2 == 0
            swap: dict[str, object] = {"kind": "upgrade" if upgrade else "reload", "ok": False}
            try:
                if upgrade:
                    version += 1
                    began = loop.time()
                    await asyncio.to_thread(versions.install, f"1.0.{version}")
                    installs.append((began, loop.time()))
                began = loop.time()
                reloaded = await host.reload("soak")
                windows.append((began, loop.time()))
                swap.update(reloaded.to_dict())
                swap["ok"] = reloaded.ok
            except Exception as error:
                swap["error"] = str(error)
            result.swaps.append(swap)
        swaps_done.append(loop.time())

    await asyncio.gather(sender(), swapper())
    while pending:
        await asyncio.gather(*pending)
    result.sent = len(due_at)
    result.answered = sum(answers.values())
    result.lost = result.sent - result.answered
    result.versions = dict(sorted(answers.items()))

    steady: list[float] = []
    during: list[float] = []
    installing: list[float] = []
    for n, latency in enumerate(latencies):
        if latency is None:
            continue
        if any(begin <= due_at[n] <= end for begin, end in windows):
            during.append(latency)
        elif any(begin <= due_at[n] <= end for begin, end in installs):
            installing.append(latency)
        else:
            steady.append(latency)
    result.during_reload = len(during)
    result.p99_install_ms = _percentile(installing, 0.99) * 1000
    result.p50_steady_ms = statistics.median(steady) * 1000 if steady else 0.0
    result.p99_steady_ms = _percentile(steady, 0.99) * 1000
    result.p99_reload_ms = _percentile(during, 0.99) * 1000
    result.max_reload_ms = max(during, default=0.0) * 1000


def _handled(log: Path) -> Counter[str]:
    """How many times the plugin's instances handled each message, from their log."""
    return Counter(line.partition(" ")[2] for line in log.read_text().splitlines())


def run_soak(
    mode: str, *, seconds: float, rate: int, swaps: int, cpu_share: float | None = 1.0
) -> SoakResult:
    """Run one mode's soak in a throwaway folder and return what it measured.

    ``cpu_share`` is the isolated worker's CPU limit (the default policy's 10 % of a
    CPU is far below what 1,000 messages a second take: its quota would throttle it).
    """
    root = Path(tempfile.mkdtemp(prefix="acp-soak-"))
    root.chmod(0o755)
    try:
        versions = _Versions(root)
        versions.install("1.0.0")
        limits = WorkerLimits(cpu_share=cpu_share)
        isolation = TRUST_ALL if mode == "in-process" else IsolationPolicy(limits=limits)
        host = PluginHost(search_path=[versions.target], data_root=root / "data",
                          isolation=isolation)  # fmt: skip
        result = SoakResult(mode=mode, seconds=seconds, rate=rate)

        async def soak() -> None:
            await host.start()
            try:
                if host.record("soak").state.value != "active":
                    raise RuntimeError(f"the soak plugin did not start: {host.record('soak')}")
                await _soak(host, versions, result, swaps)
            finally:
                await host.stop()

        asyncio.run(soak())
        handled = _handled(host.data_dir("soak") / "handled.log")
        result.handled = sum(handled.values())
        result.doubled = sum(count - 1 for count in handled.values() if count > 1)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _table(results: list[SoakResult], max_ratio: float) -> str:
    header = (
        "| mode | sent | lost | doubled | swaps ok | p50 steady | p99 steady | p99 reload "
        "| ratio | max reload | p99 during pip | verdict |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.sent} | {r.lost} | {r.doubled} "
            f"| {len(r.swaps) - r.swaps_failed}/{len(r.swaps)} | {r.p50_steady_ms:.2f} ms "
            f"| {r.p99_steady_ms:.2f} ms | {r.p99_reload_ms:.2f} ms | {r.ratio:.1f}x "
            f"| {r.max_reload_ms:.1f} ms | {r.p99_install_ms:.1f} ms "
            f"| {'pass' if r.passed(max_ratio) else 'FAIL'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: run the soak, print the table (or JSON), exit 1 on a failure."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each soak")
    parser.add_argument("--rate", type=int, default=1000, help="messages offered per second")
    parser.add_argument("--swaps", type=int, default=10, help="upgrades and reloads, alternating")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--max-ratio", type=float, default=10.0,
                        help="highest p99 during reload over steady p99 that passes")  # fmt: skip
    parser.add_argument("--cpu-share", type=float, default=1.0,
                        help="the isolated worker's CPU limit, in CPUs (0: none)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args(argv)
    modes = MODES if options.mode == "both" else (options.mode,)
    results = []
    for mode in modes:
        print(f"[soak] {mode}: {options.rate}/s for {options.seconds:g} s, "
              f"{options.swaps} swaps ...", file=sys.stderr, flush=True)  # fmt: skip
        began = time.monotonic()
        share = options.cpu_share or None
        results.append(run_soak(mode, seconds=options.seconds, rate=options.rate,
                                swaps=options.swaps, cpu_share=share))  # fmt: skip
        print(f"[soak] {mode}: done in {time.monotonic() - began:.0f} s", file=sys.stderr)
    if options.json:
        documents = [
            {**asdict(r), "ratio": r.ratio, "passed": r.passed(options.max_ratio)} for r in results
        ]
        print(json.dumps(documents, indent=2))
    else:
        print(_table(results, options.max_ratio))
        for r in results:
            for error in r.errors[:10]:
                print(f"{r.mode}: {error}")
            for swap in r.swaps:
                if not swap["ok"]:
                    print(f"{r.mode}: swap failed: {swap}")
    return 0 if all(r.passed(options.max_ratio) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
