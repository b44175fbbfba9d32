"""The data directory quota: what a worker's data directory holds, and acting past the limit.

The quota is enforced by accounting: the host measures the directory (the
blocks its files take) every ``interval`` seconds while the worker runs. Past
``disk_mb`` the worker is stopped and restarted with its data directory readable
and removable but not writable (Landlock; a read-only mount where Landlock is
missing), so the plugin can clear space but not add to it; the next restart
once it is back under the quota gives write access back. A plugin can overshoot
by what it writes within one interval (each file is also held to ``file_mb`` by
``RLIMIT_FSIZE``).

Writing fast dirties page cache, which the kernel charges to the worker's memory
cgroup: a worker filling its directory may be killed for its memory before the
next measure. :meth:`DiskQuota.verdict` is therefore asked again when a worker
dies, so that the cause named is the quota, not the memory it exhausted on the way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from acp_plugins.loading.trust import MIB, WorkerLimits

if TYPE_CHECKING:
    from acp_plugins.isolation.cgroups import WorkerCgroup
    from acp_plugins.isolation.launch import WorkerProcess

__all__ = ["DiskQuota", "data_usage", "why_it_ended"]


def data_usage(folder: Path) -> int:
    """Bytes the files under ``folder`` take on disk (their allocated blocks)."""
    total = 0
    pending = [str(folder)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total


class DiskQuota:
    """Watches one data directory and calls ``on_over`` (with why) once it is over ``limit_mb``."""

    def __init__(
        self,
        folder: Path,
        limit_mb: int,
        on_over: Callable[[str], None],
        *,
        interval: float = 0.25,
    ) -> None:
        self.folder = folder
        self.limit = limit_mb * MIB
        self.on_over = on_over
        self.interval = interval

    def over(self) -> bool:
        """Whether the directory is over its quota now."""
        return data_usage(self.folder) > self.limit

    def verdict(self) -> str | None:
        """Why the worker must stop, when the directory is over its quota now; else None."""
        used = data_usage(self.folder)
        if used <= self.limit:
            return None
        return (
            f"filled its data directory past its quota ({used / MIB:.0f} MiB of "
            f"{self.limit // MIB} MiB); it restarts able to clear it but not to write"
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            verdict = await asyncio.to_thread(self.verdict)
            if verdict is not None:
                self.on_over(verdict)
                return


async def why_it_ended(
    process: WorkerProcess,
    limits: WorkerLimits,
    cgroup: WorkerCgroup | None,
    quota: DiskQuota | None,
) -> str:
    """Why a worker ended: the host's own reason, else its quota, its memory, its exit.

    ``quota`` is the one it was held to (``None`` when it ran with its data read-only).
    """
    reason = await process.exit_reason(limits)
    if process.kill_reason is not None:  # the host stopped it, and said why
        return reason
    if quota is not None:
        over_quota = await asyncio.to_thread(quota.verdict)
        if over_quota is not None:
            return over_quota
    if cgroup is not None and cgroup.out_of_memory():
        return f"ran out of memory (limit {limits.memory_mb} MiB) and was killed"
    return reason
