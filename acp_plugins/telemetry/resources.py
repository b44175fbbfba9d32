"""What a worker process uses, read from ``/proc/PID``: memory, CPU, I/O, open files.

- ``resident_bytes``: ``VmRSS`` of ``/proc/PID/status``;
- ``cpu_seconds``: user and system time of ``/proc/PID/stat`` (this process, since it
  started: a restarted worker counts from zero again);
- ``read_bytes`` / ``write_bytes``: ``rchar`` / ``wchar`` of ``/proc/PID/io``, every byte
  the process read or wrote through system calls (files, pipes and its channel to the
  host alike, cached or not);
- ``open_files``: the entries of ``/proc/PID/fd``.

A figure the host may not read (another user's process without the rights to
inspect it) is ``None``, as is everything once the process is gone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acp_plugins.runtime.record import PluginRecord

__all__ = ["ProcessUsage", "WorkerReading", "process_usage", "worker_readings"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One reading of a process's resources (``None``: not readable)."""

    resident_bytes: int | None = None
    cpu_seconds: float | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    open_files: int | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _status_rss(text: str | None) -> int | None:
    for line in (text or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def _stat_cpu(text: str | None) -> float | None:
    if not text or ")" not in text:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ")"
    fields = text.rsplit(")", 1)[1].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    except (IndexError, ValueError):
        return None


def _io(text: str | None) -> tuple[int | None, int | None]:
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, number = line.partition(":")
        if number.strip().isdigit():
            values[key] = int(number)
    return values.get("rchar"), values.get("wchar")


def _open_files(folder: Path) -> int | None:
    try:
        return len(os.listdir(folder))
    except OSError:
        return None


def process_usage(pid: int | None) -> ProcessUsage:
    """What process ``pid`` uses now (every figure ``None`` if it is gone or ``pid`` is None)."""
    if pid is None:
        return ProcessUsage()
    proc = Path(f"/proc/{pid}")
    read_bytes, write_bytes = _io(_read(proc / "io"))
    return ProcessUsage(
        resident_bytes=_status_rss(_read(proc / "status")),
        cpu_seconds=_stat_cpu(_read(proc / "stat")),
        read_bytes=read_bytes,
        write_bytes=write_bytes,
        open_files=_open_files(proc / "fd"),
    )


@dataclass(frozen=True, slots=True)
class WorkerReading:
    """One isolated plugin's worker now: its process's resources and the supervisor's counts."""

    plugin_id: str
    pid: int | None
    usage: ProcessUsage
    restarts: int
    paused_seconds: float


def worker_readings(records: Mapping[str, PluginRecord]) -> list[WorkerReading]:
    """A reading of every isolated plugin's worker, by plugin id."""
    readings = []
    for plugin_id, record in sorted(records.items()):
        shown = record.isolation() or {}
        if shown.get("mode") != "isolated":
            continue
        pid: int | None = getattr(record.handle, "worker_pid", None)  # None: not running
        readings.append(
            WorkerReading(
                plugin_id=plugin_id,
                pid=pid,
                usage=process_usage(pid),
                restarts=int(shown.get("restarts") or 0),
                paused_seconds=float(shown.get("cpu_paused_seconds") or 0.0),
            )
        )
    return readings
