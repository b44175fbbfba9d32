"""A cgroup per worker: the kernel holds it to its memory, its CPU share and its process count.

Made by the host before the worker starts, and joined by the worker's first
process before it runs anything else (the launcher writes its own pid into
``cgroup.procs`` and then starts the sandbox), so nothing of the worker ever
runs outside it. Version 2 (one ``cgroup.controllers`` hierarchy) is used where
it is mounted, else the version 1 controllers ``memory``, ``cpu`` and ``pids``.
Where no cgroup can be made (no permission, nothing mounted), the worker runs
without, the rlimits and the CPU governor hold instead, and the host says so.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from acp_plugins.loading.trust import MIB, WorkerLimits

__all__ = ["CGROUP_ROOT", "WorkerCgroup", "cgroup_name"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_GROUP = "acp-plugins"
_PERIOD_US = 100_000
_started = itertools.count(1)


@dataclass(slots=True)
class WorkerCgroup:
    """The cgroup directories (one on v2, one per controller on v1) of one worker."""

    directories: tuple[Path, ...]
    version: int

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The files the worker's first process writes its pid into, to join."""
        return tuple(str(d / "cgroup.procs") for d in self.directories)

    @classmethod
    def create(cls, name: str, limits: WorkerLimits) -> WorkerCgroup | str:
        """Make the cgroup of worker ``name`` with ``limits``; a warning if it cannot be."""
        try:
            if (CGROUP_ROOT / "cgroup.controllers").is_file():
                return cls._create_v2(name, limits)
            return cls._create_v1(name, limits)
        except OSError as error:
            return f"no cgroup for workers ({error.strerror or error}: {error.filename or ''})"

    @classmethod
    def _create_v2(cls, name: str, limits: WorkerLimits) -> WorkerCgroup:
        parent = CGROUP_ROOT / _GROUP
        parent.mkdir(exist_ok=True)
        for directory in (CGROUP_ROOT, parent):
            control = directory / "cgroup.subtree_control"
            enabled = control.read_text().split()
            wanted = [c for c in ("memory", "cpu", "pids") if c not in enabled]
            if wanted:
                control.write_text(" ".join(f"+{c}" for c in wanted))
        group = parent / name
        group.mkdir()
        (group / "memory.max").write_text(str(limits.memory_mb * MIB))
        with contextlib.suppress(FileNotFoundError):  # no swap accounting
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(limits.processes))
        if limits.cpu_share is not None:
            quota = max(int(limits.cpu_share * _PERIOD_US), 1000)
            (group / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
        return cls((group,), 2)

    @classmethod
    def _create_v1(cls, name: str, limits: WorkerLimits) -> WorkerCgroup:
        made: list[Path] = []
        try:
            for controller in ("memory", "pids", "cpu"):
                if controller == "cpu" and limits.cpu_share is None:
                    continue
                parent = CGROUP_ROOT / controller / _GROUP
                parent.mkdir(exist_ok=True)
                group = parent / name
                group.mkdir()
                made.append(group)
            memory, pids = made[0], made[1]
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mb * MIB))
            with contextlib.suppress(OSError):  # only where swap is accounted
                (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_mb * MIB))
            (pids / "pids.max").write_text(str(limits.processes))
            if limits.cpu_share is not None:
                cpu = made[2]
                (cpu / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(
                    str(max(int(limits.cpu_share * _PERIOD_US), 1000))
                )
        except OSError:
            cls(tuple(made), 1).remove()
            raise
        return cls(tuple(made), 1)

    @property
    def limits_cpu(self) -> bool:
        """Whether the kernel holds the worker to its CPU share (else the governor does)."""
        if self.version == 2:
            return (self.directories[0] / "cpu.max").read_text().split()[0] != "max"
        return any(d.parent.parent.name == "cpu" for d in self.directories)

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of this cgroup for going over its memory."""
        for directory in self.directories:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                with contextlib.suppress(OSError):
                    for line in (directory / name).read_text().splitlines():
                        field, _, value = line.partition(" ")
                        if field == key and int(value or 0) > 0:
                            return True
        return False

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(line) for line in Path(path).read_text().split()}
        return sorted(found)

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (waiting a little for the last ones)."""
        for directory in self.directories:
            for _attempt in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def cgroup_name(plugin_id: str) -> str:
    """A new name for one worker's cgroup: this process's pid, a count, the plugin."""
    return f"{os.getpid()}-{next(_started)}-{plugin_id}"
