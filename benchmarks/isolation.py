"""Isolated plugins: a call's round trip, a worker's start, its memory, the CPU governor.

* ``isolated-call``: ``await handle.invoke("can_handle", {"message": m})`` on the echo
  sample running in its worker (frame, socket, the worker calls the hook, frame
  back, the host rebuilds the answer), against a raw ``multiprocessing.Pipe``
  round trip of the same payload (the message's fields out, a float back) to a
  child process that answers at once. Both sequential, in one run, alternating.
* ``worker-start``: ``WorkerHandle.start()`` of the echo sample (spawn, sandbox,
  import, ready), against starting a bare interpreter (``python -I -c pass``).
* ``isolated-call-100k``: ``handle_message`` of the echo sample with 100 KB of content
  each way, against a blocking socket to a child that reads a length-prefixed JSON
  frame and answers with the same content (what any JSON-over-a-socket design pays).
* ``asyncio-floor`` (informational): the same call frame echoed by a bare asyncio
  peer over a socket pair, both sides asyncio: what the event loops alone cost,
  before any validation, sandbox or plugin.
* ``layers-call`` and ``layers-start``: the same call and the same start with every
  kernel layer (namespaces, own uid, cgroup, Landlock) against the same with those
  layers off (rlimits, seccomp and the Python layer on in both): what the kernel
  layers cost.
* memory: the worker's resident set and its proportional set (PSS: shared pages
  counted once per sharer, from ``/proc/PID/smaps_rollup``) once started; the CPU
  share: what a worker spinning in a thread really got with a 10 % share (its
  cgroup's CPU quota, or the SIGSTOP governor where there is no cgroup).

Workers run with the CPU governor off for the call and start benchmarks, since a
worker kept busy by a benchmark is exactly what the governor holds back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from time import perf_counter
from typing import Any

from acp_plugins import Message, PluginHost
from acp_plugins.isolation.cpu_governor import cpu_seconds
from acp_plugins.isolation.forking import Zygote
from acp_plugins.isolation.protocol import FrameReader, encode_frame, encode_value
from acp_plugins.isolation.worker_handle import WorkerHandle
from acp_plugins.loading.trust import IsolationPolicy, WorkerLimits

__all__ = ["IsolationTimes", "measure_isolation"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class IsolationTimes:
    """Seconds per call / per start of every run, and the informational figures."""

    call: list[float] = field(default_factory=list)
    pipe: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    bare_start: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    pss_mb: list[float] = field(default_factory=list)
    big_call: list[float] = field(default_factory=list)
    big_socket: list[float] = field(default_factory=list)
    governed_share: float = 0.0
    bare_call: list[float] = field(default_factory=list)
    layered_start: list[float] = field(default_factory=list)
    unlayered_start: list[float] = field(default_factory=list)
    #: Started as a fresh interpreter behind bubblewrap (the zygote off).
    spawn_start: list[float] = field(default_factory=list)
    #: The first worker's start, which starts and probes the zygote.
    first_start: float = 0.0


def _echo_child(connection: Connection) -> None:
    while True:
        payload = connection.recv()
        if payload is None:
            return
        connection.send(1.0 if payload["content"] else 0.0)


BIG = 100_000  # bytes of content each way


def _recv_exactly(peer: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = peer.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _json_frame(value: Any) -> bytes:
    body = json.dumps(value).encode()
    return len(body).to_bytes(4, "big") + body


def _json_child(fd: int, parents_end: int) -> None:
    os.close(parents_end)  # inherited by the fork: the parent closing its end must end this
    peer = socket.socket(fileno=fd)
    with contextlib.suppress(EOFError):
        while True:
            size = int.from_bytes(_recv_exactly(peer, 4), "big")
            message = json.loads(_recv_exactly(peer, size))
            peer.sendall(_json_frame({"content": "> " + message["content"]}))


def _json_round_trips(payload: dict[str, Any], calls: int, runs: int) -> list[float]:
    """Blocking JSON frames to a child over a socket pair: the 100 KB baseline."""
    ours, theirs = socket.socketpair()
    process = multiprocessing.get_context("fork").Process(
        target=_json_child, args=(theirs.fileno(), ours.fileno()), daemon=True
    )
    process.start()
    theirs.close()
    results = []
    for run in range(runs + 1):
        started = perf_counter()
        for _ in range(calls):
            ours.sendall(_json_frame(payload))
            size = int.from_bytes(_recv_exactly(ours, 4), "big")
            assert len(json.loads(_recv_exactly(ours, size))["content"]) == BIG + 2
        if run:  # the first is the warm-up
            results.append((perf_counter() - started) / calls)
    ours.close()
    process.join(5)
    return results


def _pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _floor_child(fd: int) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        transport: list[asyncio.Transport] = []

        def answer(frame: dict[str, Any]) -> None:
            transport[0].write(encode_frame({"op": "result", "id": frame["id"], "value": 1.0}))

        made, _ = await loop.connect_accepted_socket(
            lambda: FrameReader(answer, lambda error: done.set_result(None)),
            sock=socket.socket(fileno=fd),
        )
        transport.append(made)
        await done

    asyncio.run(serve())


async def _floor(message: Message, calls: int, runs: int) -> list[float]:
    """Round trips of the call frame to a bare asyncio peer (no plugin, no checks)."""
    ours, theirs = socket.socketpair()
    process = multiprocessing.get_context("fork").Process(
        target=_floor_child, args=(theirs.fileno(),)
    )
    process.start()
    theirs.close()
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[Any]] = {}
    transport, _ = await loop.connect_accepted_socket(
        lambda: FrameReader(lambda f: waiting.pop(f["id"]).set_result(f), lambda e: None),
        sock=ours,
    )
    kwargs = {"message": encode_value(message)}
    results = []
    for run in range(runs + 1):
        started = perf_counter()
        for index in range(calls):
            future = waiting[index] = loop.create_future()
            transport.write(
                encode_frame({"op": "call", "id": index, "hook": "can_handle", "kwargs": kwargs})
            )
            await future
        if run:  # the first is the warm-up
            results.append((perf_counter() - started) / calls)
    transport.close()
    process.join(5)
    return results


def _install(target: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--target", str(target),
        str(ROOT / "sample_plugins" / "acp-echo"),
        str(ROOT / "tests" / "fixture_plugins" / "acp-fx-attacks"),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


#: The kernel layers off: what is left is rlimits, seccomp and the Python layer.
NO_KERNEL_LAYERS = {"namespaces": False, "landlock": False, "cgroups": False, "own_uid": False}


async def _host(directory: Path, data: Path, limits: WorkerLimits, **layers: bool) -> PluginHost:
    host = PluginHost(
        search_path=[directory],
        data_root=data,
        isolation=IsolationPolicy(limits=limits, **layers),
    )
    await host.start()
    return host


async def _measure(runs: int, calls: int, workdir: Path) -> IsolationTimes:
    directory = workdir / "plugins"
    _install(directory)
    times = IsolationTimes()
    ungoverned = WorkerLimits(cpu_share=None)
    host = await _host(directory, workdir / "data", ungoverned)
    handle = host.record("echo").handle
    assert isinstance(handle, WorkerHandle) and handle.alive
    message = Message(type="echo", content="hello agents", sender="bench")
    payload = message.model_dump(mode="json")

    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_echo_child, args=(child,))
    process.start()

    bare_host = await _host(directory, workdir / "bare", ungoverned, **NO_KERNEL_LAYERS)
    bare = bare_host.record("echo").handle
    assert isinstance(bare, WorkerHandle) and bare.alive and "mount-namespace" not in bare.layers

    async def ours(target: WorkerHandle = handle) -> float:
        started = perf_counter()
        for _ in range(calls):
            await target.invoke("can_handle", {"message": message})
        return (perf_counter() - started) / calls

    def pipe() -> float:
        started = perf_counter()
        for _ in range(calls):
            parent.send(payload)
            parent.recv()
        return (perf_counter() - started) / calls

    assert await handle.invoke("can_handle", {"message": message}) == 1.0
    await ours()
    pipe()  # warm-up
    await ours(bare)
    for _ in range(runs):
        times.call.append(await ours())
        times.pipe.append(pipe())
        times.bare_call.append(await ours(bare))
    await bare_host.stop()
    parent.send(None)
    process.join()
    times.floor = await _floor(message, calls, runs)
    for plugin_id in ("echo", "intruder", "victim"):  # a host's three idle workers
        pid = host.record(plugin_id).handle.worker_pid or 0  # type: ignore[attr-defined]
        times.rss_mb.append(_rss_mb(pid))
        times.pss_mb.append(_pss_mb(pid))

    big = Message(type="echo", content="x" * BIG, sender="bench")
    context = host.record("echo").context
    big_calls = max(calls // 20, 20)

    async def big_call() -> float:
        started = perf_counter()
        for _ in range(big_calls):
            answer = await handle.invoke("handle_message", {"message": big, "context": context})
            assert len(answer.content) > BIG
        return (perf_counter() - started) / big_calls

    await big_call()  # warm-up
    for _ in range(runs):
        times.big_call.append(await big_call())
        times.big_socket.extend(_json_round_trips(big.model_dump(mode="json"), big_calls, 1))
    await host.stop()

    zygote = Zygote()

    def fresh(name: str, policy: IsolationPolicy, forks: Zygote | None) -> WorkerHandle:
        return WorkerHandle(
            "echo",
            manifest=handle.manifest,
            entry_point=handle.entry_point,
            granted=handle.granted,
            data_dir=workdir / "data" / "plugins" / name,
            search_path=[directory],
            policy=policy,
            events=host.workers,
            own_packages=handle.own_packages,
            code_dirs=[Path(d) for d in handle.code_dirs],
            zygote=forks,
        )

    first = fresh("start-first", IsolationPolicy(limits=ungoverned), zygote)
    started = perf_counter()
    await first.start()  # starts and probes the zygote: once per host
    times.first_start = perf_counter() - started
    assert zygote.problem is None, zygote.problem
    first.close()
    layered = IsolationPolicy(limits=ungoverned)
    spawned = IsolationPolicy(limits=ungoverned, zygote=False)
    unlayered = IsolationPolicy(limits=ungoverned, zygote=False, **NO_KERNEL_LAYERS)
    for index in range(runs):
        started = perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        times.bare_start.append(perf_counter() - started)
        for policy, into, forks in (
            (layered, times.start, zygote),
            (spawned, times.spawn_start, None),
            (unlayered, times.unlayered_start, None),
        ):
            worker = fresh(f"start-{index}-{len(into)}", policy, forks)
            started = perf_counter()
            await worker.start()
            into.append(perf_counter() - started)
            assert worker.worker_pid is not None
            worker.close()
    zygote.stop()
    times.layered_start = times.spawn_start  # both fresh interpreters: only the layers differ

    governed = await _host(
        directory, workdir / "governed", WorkerLimits(cpu_share=0.1, cpu_window=2.0)
    )
    await governed.run_command("intruder:spin-thread", [])
    spinner = governed.record("intruder").handle
    assert isinstance(spinner, WorkerHandle) and spinner.worker_pid is not None
    pid = spinner.worker_pid
    await asyncio.sleep(2.0)
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(6.0)
    times.governed_share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    await governed.stop()
    return times


def measure_isolation(runs: int, calls: int) -> IsolationTimes:
    """Run every isolation measurement in a throwaway directory."""
    with tempfile.TemporaryDirectory(prefix="acp-bench-isolation-") as workdir:
        return asyncio.run(_measure(runs, calls, Path(workdir)))


def summary(times: IsolationTimes) -> dict[str, Any]:
    """The informational figures, for the table's notes."""
    return {
        "worker_rss_mb_median": round(statistics.median(times.rss_mb), 1),
        "worker_pss_mb_median": round(statistics.median(times.pss_mb), 1),
        "worker_pss_mb_target": 8.0,
        "governed_share_with_10_percent": round(times.governed_share, 3),
        "worker_start_bubblewrap_ms_median": round(statistics.median(times.spawn_start) * 1000, 1),
        "first_worker_start_with_the_zygote_ms": round(times.first_start * 1000, 1),
    }
