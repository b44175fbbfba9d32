"""The host's side of the zygote: starting it, asking it for a worker, and the forked process.

A host starts at most one zygote (:mod:`acp_plugins.isolation.zygote`), on its first
isolated worker, and stops it with the host. Before the first worker it forks a
probe that enters every layer and exits: where this machine does not let a
process make its own namespaces, the zygote is not used and workers start as
fresh interpreters behind bubblewrap (:func:`~acp_plugins.isolation.launch.spawn_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict
from typing import IO, Any

from acp_plugins.isolation.confinement import HOSTNAME, Confinement
from acp_plugins.isolation.launch import (
    PACKAGE_ROOT,
    WORKER_ENVIRONMENT,
    WorkerProcess,
    kill_group,
    stderr_tail,
)

__all__ = ["ForkedProcess", "Zygote"]

logger = logging.getLogger(__name__)

_BOOT = (
    "import sys\n"
    "if sys.argv[2] not in sys.path: sys.path.append(sys.argv[2])\n"
    "from acp_plugins.isolation.zygote import main\n"
    "sys.exit(main(sys.argv[1:2]))\n"
)
_START_TIMEOUT = 30.0
_REPLY_BYTES = 4096


class ForkedProcess:
    """A worker forked by the zygote, with the face of :class:`subprocess.Popen` the host uses.

    The host is not its parent: its exit status comes through a pipe written by
    the first process of its session, which waits for the worker.
    """

    def __init__(self, pid: int, status: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._status = status

    def poll(self) -> int | None:
        if self.returncode is None and self._ready(0):
            self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not self._ready(timeout):
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            self._collect()
        assert self.returncode is not None
        return self.returncode

    def _ready(self, timeout: float | None) -> bool:
        return bool(select.select([self._status], [], [], timeout)[0])

    def _collect(self) -> None:
        data = os.read(self._status, 32)
        os.close(self._status)
        # no status at all: the session's first process was killed (the whole session is)
        self.returncode = int(data) if data.strip().lstrip(b"-").isdigit() else -signal.SIGKILL

    def __del__(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):
                os.close(self._status)


class Zygote:
    """One host's zygote: started on first use, probed once, stopped with the host."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._output: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        #: One request at a time: the answers come back in the order of the requests.
        self._turn = asyncio.Lock()
        #: Why the zygote is not used (``None``: not tried yet, or it works).
        self.problem: str | None = None
        self._usable: bool | None = None

    async def usable(self, probe: Confinement) -> bool:
        """Whether workers can be forked here; the first call starts and probes the zygote."""
        async with self._lock:
            if self._usable and self._process is not None and self._process.poll() is not None:
                logger.warning(
                    "the zygote ended (%s); starting a new one", self._process.returncode
                )
                self.stop()  # killed (by the OOM killer, say): the next worker starts a new one
                self._usable = None
            if self._usable is None:
                self.problem = await self._start(probe)
                self._usable = self.problem is None
                if self.problem is not None:
                    logger.info("workers start as fresh interpreters: %s", self.problem)
                    self.stop()
            return self._usable

    async def fork(self, confinement: Confinement) -> tuple[WorkerProcess, socket.socket]:
        """A worker confined by ``confinement``, and the host's end of its channel."""
        parent, child = socket.socketpair()
        output = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the worker's life)
        try:
            pid, status = await self._request(_request(confinement), child, output)
        except BaseException:
            parent.close()
            output.close()
            raise
        finally:
            child.close()
        return WorkerProcess(ForkedProcess(pid, status), output), parent

    @property
    def pid(self) -> int | None:
        """The zygote's pid while it runs."""
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        """Stop the zygote (its forked workers die with it)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            kill_group(self._process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None
        if self._output is not None:
            self._output.close()
            self._output = None

    async def _start(self, probe: Confinement) -> str | None:
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the zygote's life)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", _BOOT, str(theirs.fileno()), PACKAGE_ROOT],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=self._output,
                env=dict(WORKER_ENVIRONMENT),
                cwd="/",
                start_new_session=True,
            )
        except OSError as error:
            control.close()
            return f"the zygote could not be started ({error})"
        finally:
            theirs.close()
        control.setblocking(False)
        self._control = control
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_recv(control, _REPLY_BYTES), _START_TIMEOUT)
            with tempfile.TemporaryFile() as output:
                pid, status = await self._request({**_request(probe), "probe": True}, None, output)
                code = await loop.run_in_executor(None, ForkedProcess(pid, status).wait, 10.0)
                why = stderr_tail(output)
        except (OSError, ValueError, asyncio.TimeoutError, subprocess.TimeoutExpired) as error:
            return f"the zygote did not answer ({error or type(error).__name__})"
        if code != 0:
            return f"a forked process cannot enter its own namespaces here: {why}"
        return None

    async def _request(
        self, request: dict[str, Any], channel: socket.socket | None, output: IO[bytes]
    ) -> tuple[int, int]:
        control = self._control
        if control is None:
            raise OSError("the zygote is not running")
        async with self._turn:
            return await self._ask(control, request, channel, output)

    async def _ask(
        self,
        control: socket.socket,
        request: dict[str, Any],
        channel: socket.socket | None,
        output: IO[bytes],
    ) -> tuple[int, int]:
        read, write = os.pipe()
        try:
            channel_fd = channel.fileno() if channel is not None else os.open(os.devnull, os.O_RDWR)
            try:
                fds = [channel_fd, output.fileno(), write]
                socket.send_fds(control, [json.dumps(request).encode()], fds)
            finally:
                if channel is None:
                    os.close(channel_fd)
            loop = asyncio.get_running_loop()
            reply = json.loads(await asyncio.wait_for(loop.sock_recv(control, _REPLY_BYTES), 10))
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        if "pid" not in reply:
            os.close(read)
            raise OSError(f"the zygote could not fork a worker: {reply.get('error')}")
        return int(reply["pid"]), read


def _request(confinement: Confinement) -> dict[str, Any]:
    return {
        "view": [asdict(step) for step in confinement.view],
        "chdir": confinement.chdir,
        "uid": confinement.uid,
        "cgroups": list(confinement.cgroup_files),
        "network": "network-namespace" not in confinement.layers,
        "hostname": HOSTNAME,
    }
