"""The data directory quota: what a worker's data directory holds, and acting past the limit.

The quota is enforced by accounting: the host measures the directory (the
blocks its files take) every ``interval`` seconds while the worker runs. Past
``disk_mb`` the worker is stopped and restarted with its data directory readable
and removable but not writable (Landlock; a read-only mount where Landlock is
missing), so the plugin can clear space but not add to it; the next restart
once it is back under the quota gives write access back. A plugin can overshoot
by what it writes within one interval (each file is also held to ``file_mb`` by
``RLIMIT_FSIZE``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from acp_plugins.loading.trust import MIB

__all__ = ["DiskQuota", "data_usage"]


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

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            used = await asyncio.to_thread(data_usage, self.folder)
            if used > self.limit:
                self.on_over(
                    f"filled its data directory past its quota ({used / MIB:.0f} MiB of "
                    f"{self.limit // MIB} MiB); it restarts able to clear it but not to write"
                )
                return
