"""``discover`` and ``start`` of many installed plugins, one fresh interpreter per run.

Each measured run is ``python benchmarks/runner.py MODE DIR N`` in a new process
(imports are cached per process); the runner imports the libraries first and
times only the work. The two sides alternate run by run.

Stevedore keeps an on-disk cache of entry points (``$XDG_CACHE_HOME/python-entrypoints``).
With ``stevedore_cache="warm"`` (the default) it lives in the benchmark environment and
is filled by the untimed warm-up run, as in a long-lived installation; with ``"cold"``
it is a directory holding stevedore's ``.disable`` marker that never gets a cache file,
so every run scans the installed distributions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RUNNER", "StartupTimes", "measure_startup", "profile_startup"]

RUNNER = Path(__file__).resolve().parent / "runner.py"


@dataclass(frozen=True)
class StartupTimes:
    """Seconds of every run, for acp-plugins and for stevedore."""

    host: list[float]
    baseline: list[float]


def _subprocess(
    mode: str, directory: Path, count: int, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(RUNNER), mode, str(directory), str(count), *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{mode} run failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def _run(mode: str, directory: Path, count: int, env: dict[str, str]) -> float:
    result = _subprocess(mode, directory, count, env)
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def _environment(cache_root: Path, stevedore_cache: str) -> dict[str, str]:
    if stevedore_cache not in ("warm", "cold"):
        raise ValueError(f"stevedore_cache must be 'warm' or 'cold', not {stevedore_cache!r}")
    cache_home = cache_root / f"xdg-cache-{stevedore_cache}"
    entry_point_cache = cache_home / "python-entrypoints"
    entry_point_cache.mkdir(parents=True, exist_ok=True)
    if stevedore_cache == "cold":
        (entry_point_cache / ".disable").touch()  # stevedore then never writes a cache file
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache_home)
    env.pop("PYTHONPATH", None)
    return env


def measure_startup(
    what: str,
    directory: Path,
    count: int,
    *,
    runs: int,
    cache_root: Path,
    stevedore_cache: str = "warm",
    baseline: str = "stevedore",
) -> StartupTimes:
    """Time ``what`` (``discover`` or ``start``) for acp-plugins and a baseline, ``runs`` each.

    ``baseline`` names the other side's mode: ``stevedore``, or ``listing`` (discover only).
    """
    env = _environment(cache_root, stevedore_cache)
    ours, theirs = f"{what}-acp", f"{what}-{baseline}"
    for mode in (ours, theirs):  # warm-up: OS file cache, stevedore's cache; not recorded
        _run(mode, directory, count, env)
    host: list[float] = []
    baseline: list[float] = []
    for index in range(runs):
        order = [(ours, host), (theirs, baseline)]
        if index % 2:
            order.reverse()
        for mode, times in order:
            times.append(_run(mode, directory, count, env))
    return StartupTimes(host=host, baseline=baseline)


def profile_startup(what: str, directory: Path, count: int, *, cache_root: Path) -> str:
    """cProfile output of one acp-plugins run of ``what`` in a fresh interpreter."""
    env = _environment(cache_root, "warm")
    return _subprocess(f"{what}-acp", directory, count, env, "--profile").stderr
