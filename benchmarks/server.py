"""The management server under load: ``GET /api/v1/plugins`` and ``POST /api/v1/messages``.

``acp-plugins serve`` runs as its own process over the sample plugins (echo trusted),
and a client process sends requests from ``CONCURRENCY`` connections at once for a
fixed count, timing each. The baseline is the floor of the same HTTP stack: a bare
FastAPI app on uvicorn in a process of its own answering a constant JSON document,
measured in the same run by the same client. Reports requests per second and the
p50/p99 latency of each.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import httpx

from benchmarks.cli_send import SAMPLES, _install

__all__ = ["CONCURRENCY", "ServerLoad", "measure_server"]

#: Requests in flight at once.
CONCURRENCY = 8
_TOKEN = "bench-token"

_BASELINE = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/floor")
async def floor():
    return [{"plugin_id": "echo", "state": "active"}]
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@dataclass(frozen=True)
class ServerLoad:
    """Seconds per request of every request, per route, and the wall time of each run."""

    latencies: dict[str, list[float]]
    seconds: dict[str, float]
    count: int

    def per_second(self, route: str) -> float:
        return self.count / self.seconds[route]

    def quantile(self, route: str, fraction: float) -> float:
        ordered = sorted(self.latencies[route])
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            assert process.poll() is None, "the server under test exited"
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


async def _load(
    url: str, method: str, body: dict[str, str] | None, count: int
) -> tuple[list[float], float]:
    headers = {"Authorization": f"Bearer {_TOKEN}"}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
        for _ in range(20):  # warm-up
            (await client.request(method, url, json=body)).raise_for_status()
        left = iter(range(count))

        async def worker() -> None:
            for _ in left:
                started = perf_counter()
                answer = await client.request(method, url, json=body)
                latencies.append(perf_counter() - started)
                answer.raise_for_status()

        began = perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return latencies, perf_counter() - began


def measure_server(*, count: int) -> ServerLoad:
    """Load the server over the four samples (installed with pip) and the baseline."""
    with tempfile.TemporaryDirectory(prefix="acp-bench-server-") as data:
        samples = Path(data) / "plugins"
        _install(samples, SAMPLES)
        port, floor_port = _port(), _port()
        env = {**os.environ, "ACP_SERVER_TOKEN": _TOKEN, "ACP_HOST_TELEMETRY__INTERVAL": "10"}
        server = subprocess.Popen(
            [sys.executable, "-m", "acp_plugins", "serve", "--port", str(port), "--plugin-path",
             str(samples), "--data-dir", data, "--trust", "echo"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        floor = subprocess.Popen([sys.executable, "-c", _BASELINE, str(floor_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(f"{base}/api/v1/health", server)
            _wait(f"http://127.0.0.1:{floor_port}/floor", floor)
            while httpx.get(f"{base}/api/v1/health").json()["status"] != "ok":
                time.sleep(0.1)
            routes = {
                "floor": ("GET", f"http://127.0.0.1:{floor_port}/floor", None),
                "plugins": ("GET", f"{base}/api/v1/plugins", None),
                "messages": ("POST", f"{base}/api/v1/messages", {"type": "echo", "content": "hi"}),
            }
            latencies: dict[str, list[float]] = {}
            seconds: dict[str, float] = {}
            for name, (method, url, body) in routes.items():
                latencies[name], seconds[name] = asyncio.run(_load(url, method, body, count))
        finally:
            for process in (server, floor):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    return ServerLoad(latencies=latencies, seconds=seconds, count=count)
