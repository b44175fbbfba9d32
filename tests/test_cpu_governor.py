"""The CPU governor on real processes: it holds a spinner to its share, and leaves alone
a process that someone else has stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from acp_plugins.isolation.cpu_governor import CpuGovernor, cpu_seconds, process_state


@pytest.fixture()
def spinner() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield process
    process.kill()
    process.wait()


def _govern(governor: CpuGovernor, seconds: float, then: Callable[[], None] | None = None) -> None:
    """Run ``governor`` for ``seconds``; with ``then``, call it and go on as long again."""

    async def main() -> None:
        task = asyncio.ensure_future(governor.run())
        await asyncio.sleep(seconds)
        if then is not None:
            # the operator's stop comes during the governor's pause, once the process has
            # stopped (two stops sent before the first is delivered are one signal)
            while not (governor.paused and process_state(governor.pid) == "T"):
                await asyncio.sleep(0.001)
            then()
            await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_spinner_is_held_to_its_share(spinner: subprocess.Popen[bytes]) -> None:
    governor = CpuGovernor(spinner.pid, share=0.25, window=0.5)
    cpu0, wall0 = cpu_seconds(spinner.pid), time.monotonic()
    _govern(governor, 2.5)
    share = (cpu_seconds(spinner.pid) - cpu0) / (time.monotonic() - wall0)
    assert share < 0.4
    # a whole CPU when it gets one; paused whenever it took more than its share
    assert governor.pauses > 0 or governor.highest_usage <= 0.25 * 1.05
    assert process_state(spinner.pid) != "T"  # continued when the governor stops


def test_a_process_stopped_by_someone_else_stays_stopped(
    spinner: subprocess.Popen[bytes],
) -> None:
    governor = CpuGovernor(spinner.pid, share=0.25, window=1.0)

    def operator_stops_it() -> None:
        os.kill(spinner.pid, signal.SIGSTOP)

    # the operator stops the spinner while the governor holds it paused: when the governor's
    # pause ends it must not continue the spinner
    _govern(governor, 1.0, then=operator_stops_it)
    assert process_state(spinner.pid) == "T"
    os.kill(spinner.pid, signal.SIGCONT)


def test_a_stop_outside_the_governors_pauses_holds_too(spinner: subprocess.Popen[bytes]) -> None:
    governor = CpuGovernor(spinner.pid, share=0.25, window=1.0)
    os.kill(spinner.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while process_state(spinner.pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.001)  # delivered: a stop still on its way looks like a running process
    _govern(governor, 1.0)
    assert process_state(spinner.pid) == "T" and governor.pauses == 0
    os.kill(spinner.pid, signal.SIGCONT)
