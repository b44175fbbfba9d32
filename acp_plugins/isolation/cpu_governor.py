"""Holds a worker process to its share of the CPU, measured by the host.

The machine's cgroups are not the host's to change, so the host reads each
worker's CPU time (``/proc/<pid>/stat``, user + system) every ``interval``
seconds. When the worker has used more than ``share`` of the wall time over the
last ``window`` seconds, it is paused (``SIGSTOP``) for exactly as long as it
takes its average to fall back to the share, then continued (``SIGCONT``).
A process that someone else has stopped (an operator's ``SIGSTOP``, a debugger)
is left alone: the governor neither pauses nor continues it. A stop that comes
while the governor itself holds the process paused stays pending in the kernel
(``/proc/<pid>/status``, ``ShdPnd``); the governor sees it and does not continue
the process then either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable

__all__ = ["CpuGovernor", "cpu_seconds", "process_state"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used; raises ``OSError`` once it is gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    # after the command name: state is field 3, utime 14 and stime 15 (1-based, man proc)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_state(pid: int) -> str:
    """The state letter of ``pid`` (``R`` running, ``S`` sleeping, ``T`` stopped...)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rpartition(b")")[2].split()[0].decode()


_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


def stop_pending(pid: int) -> bool:
    """Whether a stop signal is pending for ``pid`` (sent while it was already stopped)."""
    with open(f"/proc/{pid}/status", "rb") as status:
        fields = dict(line.split(b":", 1) for line in status if b":" in line)
    pending = int(fields.get(b"ShdPnd", b"0").strip(), 16) | int(
        fields.get(b"SigPnd", b"0").strip(), 16
    )
    return any(pending & (1 << (number - 1)) for number in _STOP_SIGNALS)


class CpuGovernor:
    """Samples one process's CPU time and pauses it while it is over its share."""

    def __init__(
        self,
        pid: int,
        share: float,
        window: float,
        *,
        interval: float = 0.1,
        on_throttle: Callable[[float, float], None] | None = None,
    ) -> None:
        self.pid = pid
        self.share = share
        self.window = window
        self.interval = interval
        self.on_throttle = on_throttle
        #: Total seconds the process was held paused, and how many times.
        self.paused_seconds = 0.0
        self.pauses = 0
        self.paused = False
        #: The highest share of a CPU seen over a window (what the process asked for).
        self.highest_usage = 0.0
        self._samples: deque[tuple[float, float]] = deque()

    @classmethod
    def reporting(
        cls, pid: int, share: float, window: float, report: Callable[[str], None]
    ) -> CpuGovernor:
        """A governor that reports its first pause and every 50th after it."""
        governor: CpuGovernor

        def throttled(usage: float, pause: float) -> None:
            if governor.pauses % 50 == 0:
                report(f"used {usage:.0%} of a CPU (share {share:.0%}); paused {pause:.2f} s")

        governor = cls(pid, share, window, on_throttle=throttled)
        return governor

    def usage(self) -> float:
        """The share of one CPU used over the samples kept (0.0 before two samples)."""
        if len(self._samples) < 2:
            return 0.0
        (wall0, cpu0), (wall1, cpu1) = self._samples[0], self._samples[-1]
        return (cpu1 - cpu0) / (wall1 - wall0) if wall1 > wall0 else 0.0

    async def run(self) -> None:
        """Govern until the process is gone or the task is cancelled."""
        try:
            while True:
                if process_state(self.pid) in ("T", "t"):  # stopped by someone else
                    await asyncio.sleep(self.interval)
                    continue
                now, used = time.monotonic(), cpu_seconds(self.pid)
                self._samples.append((now, used))
                while self._samples and now - self._samples[0][0] > self.window:
                    self._samples.popleft()
                wall0, cpu0 = self._samples[0]
                span, spent = now - wall0, used - cpu0
                if span >= self.interval:
                    self.highest_usage = max(self.highest_usage, spent / span)
                if span >= self.interval and spent > self.share * span:
                    pause = min(spent / self.share - span, self.window)
                    await self._pause(pause)
                    # the pause is idle time of the window, seen at the next sample
                else:
                    await asyncio.sleep(self.interval)
        except (OSError, ProcessLookupError):
            return
        finally:
            if self.paused:
                self._signal(signal.SIGCONT)

    async def _pause(self, seconds: float) -> None:
        if self.on_throttle is not None:
            self.on_throttle(self.usage(), seconds)
        self._signal(signal.SIGSTOP)
        self.paused = True
        delivered = False
        try:
            # until the kernel has delivered this stop, a pending one is the governor's own
            delivered = await self._until_stopped()
            await asyncio.sleep(seconds)
        finally:
            with contextlib.suppress(OSError):
                # a stop pending after the governor's own took effect is someone else's
                if not delivered or not stop_pending(self.pid):
                    self._signal(signal.SIGCONT)
            self.paused = False
            self.paused_seconds += seconds
            self.pauses += 1

    async def _until_stopped(self, patience: float = 1.0) -> bool:
        """Wait (at most ``patience`` s) until the process is stopped; whether it is."""
        deadline = time.monotonic() + patience
        while process_state(self.pid) not in ("T", "t"):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)
