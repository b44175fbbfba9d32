"""``acp-plugins send`` as a user runs it: does it slow down as unrelated plugins are installed?

Two plugin directories, installed with pip: the four samples (echo, tools,
sqlite-store, activity-analytics), and the echo sample alone. Each run is a fresh
``python -m acp_plugins send --type echo hello`` (isolated, every kernel layer on,
a data directory of its own), the two sides alternating; only echo answers. The
ratio is what the other three plugins cost a command that does not use them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

__all__ = ["SendTimes", "measure_send"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("acp-echo", "acp-tools", "acp-sqlite-store", "acp-activity-analytics")


@dataclass(frozen=True)
class SendTimes:
    """Seconds of every run: with the four samples installed, with echo alone."""

    all_samples: list[float]
    handler_only: list[float]


def _install(target: Path, projects: tuple[str, ...]) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--target", str(target),
        *(str(ROOT / "sample_plugins" / name) for name in projects),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)


def _send(plugins: Path, data: Path) -> float:
    env = dict(os.environ)
    env.update(ACP_HOST_PLUGIN_PATH=json.dumps([str(plugins)]), ACP_HOST_DATA_DIR=str(data))
    command = [sys.executable, "-m", "acp_plugins", "send", "--type", "echo", "hello"]
    started = perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = perf_counter() - started
    if done.returncode != 0 or "hello" not in done.stdout:
        raise RuntimeError(f"send failed (exit {done.returncode}): {done.stdout}{done.stderr}")
    return elapsed


def measure_send(runs: int) -> SendTimes:
    """Time ``runs`` sends on each side, after one untimed warm-up each."""
    times = SendTimes(all_samples=[], handler_only=[])
    with tempfile.TemporaryDirectory(prefix="acp-bench-send-") as workdir:
        root = Path(workdir)
        sides = (
            (root / "all", SAMPLES, times.all_samples),
            (root / "echo", SAMPLES[:1], times.handler_only),
        )
        for directory, projects, _ in sides:
            _install(directory, projects)
        for index in range(runs + 1):
            order = sides if index % 2 == 0 else sides[::-1]
            for directory, _, into in order:
                elapsed = _send(directory, root / "data" / f"{directory.name}-{index}")
                if index:  # the first of each is the warm-up
                    into.append(elapsed)
    return times
