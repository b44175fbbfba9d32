"""A cgroup per worker: the kernel holds it to its memory, its CPU share and its process count.

Made by the host before the worker starts, and joined by the worker's first
process before it runs anything else (the launcher writes its own pid into
``cgroup.procs`` and then starts the sandbox), so nothing of the worker ever
runs outside it. Version 2 (one ``cgroup.controllers`` hierarchy) is used where
it is mounted, else the version 1 controllers ``memory``, ``cpu`` and ``pids``.
Where no cgroup can be made (no permission, nothing mounted), the worker runs
without, the rlimits and the CPU governor hold instead, and the host says so.

The CPU quota is put on once the worker has loaded its plugin and is ready
(:meth:`WorkerCgroup.hold_cpu`): under a quota of 10 % of a CPU, the start
(an interpreter importing its modules, a few hundred ms of CPU) would take ten
times as long. The start is bounded by the worker's ``start_timeout`` instead;
memory and process limits hold from the first instruction.

A host that is killed cannot remove its workers' cgroups (the kernel ends the
workers, the empty directories stay). Names carry a random part, so a later host
that happens to get the same pid never meets one, and each new cgroup's parent
is swept of the empty ones whose host is gone (:func:`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from acp_plugins.loading.trust import MIB, WorkerLimits

__all__ = ["CGROUP_ROOT", "WorkerCgroup", "cgroup_name", "sweep_stale"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_GROUP = "acp-plugins"
_PERIOD_US = 100_000
_started = itertools.count(1)
#: Tells this process's cgroups from those of an earlier process that had its pid.
_TOKEN = secrets.token_hex(4)
#: A cgroup younger than this may be one whose worker has not joined it yet.
_SWEEP_AGE_S = 60.0


@dataclass(slots=True)
class WorkerCgroup:
    """The cgroup directories (one on v2, one per controller on v1) of one worker."""

    directories: tuple[Path, ...]
    version: int
    #: The share of a CPU to hold the worker to once it is ready (None: no limit).
    cpu_share: float | None = None
    #: Whether the CPU quota is in force (see :meth:`hold_cpu`).
    holding_cpu: bool = False

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
        sweep_stale(parent)
        group = parent / name
        group.mkdir()
        (group / "memory.max").write_text(str(limits.memory_mb * MIB))
        with contextlib.suppress(FileNotFoundError):  # no swap accounting
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(limits.processes))
        if limits.cpu_share is not None:
            (group / "cpu.max").read_text()  # the controller is there: the quota can be set
        return cls((group,), 2, limits.cpu_share)

    @classmethod
    def _create_v1(cls, name: str, limits: WorkerLimits) -> WorkerCgroup:
        made: list[Path] = []
        try:
            for controller in ("memory", "pids", "cpu"):
                if controller == "cpu" and limits.cpu_share is None:
                    continue
                parent = CGROUP_ROOT / controller / _GROUP
                parent.mkdir(exist_ok=True)
                sweep_stale(parent)
                group = parent / name
                group.mkdir()
                made.append(group)
            memory, pids = made[0], made[1]
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mb * MIB))
            with contextlib.suppress(OSError):  # only where swap is accounted
                (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_mb * MIB))
            (pids / "pids.max").write_text(str(limits.processes))
            if limits.cpu_share is not None:
                (made[2] / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
        except OSError:
            cls(tuple(made), 1).remove()
            raise
        return cls(tuple(made), 1, limits.cpu_share)

    def hold_cpu(self) -> bool:
        """Put the CPU quota on (once the worker is ready); whether the kernel holds it now."""
        if self.cpu_share is None or self.holding_cpu:
            return self.holding_cpu
        quota = max(int(self.cpu_share * _PERIOD_US), 1000)
        try:
            if self.version == 2:
                (self.directories[0] / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
            else:
                cpu = next(d for d in self.directories if d.parent.parent.name == "cpu")
                (cpu / "cpu.cfs_quota_us").write_text(str(quota))
        except (OSError, StopIteration):
            return False
        self.holding_cpu = True
        return True

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
        """Remove the cgroup once its processes are gone.

        The worker's processes are waited for a little; any still there then (the
        worker has been stopped, so nothing in its cgroup may outlive it) are killed.
        """
        for directory in self.directories:
            for attempt in range(100):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt == 50:
                        _kill_members(directory)
                    time.sleep(0.01)


def _kill_members(directory: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        for line in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(line), signal.SIGKILL)


def sweep_stale(parent: Path, *, min_age_s: float = _SWEEP_AGE_S) -> list[str]:
    """Remove the empty worker cgroups under ``parent`` left by hosts that are gone.

    A cgroup is stale when no process is in it, the host whose pid starts its
    name is not running, and it is older than a worker's start could take (a
    younger one may be waiting for its worker: ``min_age_s``). The kernel refuses to remove a
    cgroup with processes, so a live worker's is never lost. Returns the names removed.
    """
    removed: list[str] = []
    now = time.time()
    try:
        children = [child for child in parent.iterdir() if child.is_dir()]
    except OSError:
        return removed
    for child in children:
        owner, _, rest = child.name.partition("-")
        if not owner.isdigit() or not rest or int(owner) == os.getpid():
            continue
        try:
            if _running(int(owner)) or now - child.stat().st_mtime < min_age_s:
                continue
            if (child / "cgroup.procs").read_text().strip():
                continue
            child.rmdir()
        except OSError:
            continue
        removed.append(child.name)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        return True
    return True


def cgroup_name(plugin_id: str) -> str:
    """A new name for a worker's cgroup: this process's pid, a random part, a count, the plugin."""
    return f"{os.getpid()}-{_TOKEN}-{next(_started)}-{plugin_id}"
