"""Starting a worker process: its command line, its privileges, and why it ended.

The worker is started with an empty environment, ``-I`` (no user site, no
``PYTHON*`` variables), ``-B``, in a session of its own, and, where the system
allows, behind ``unshare --net`` (no network) and ``setpriv`` (no new
privileges, no capabilities). Its one channel to the host is a Unix socket
pair; its stdout and stderr go to a temporary file, whose last line explains
an exit the worker could not report itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import IO, Protocol

from acp_plugins.isolation.sandbox import BASE_ALLOWED_MODULES, PERMISSION_MODULES, SandboxSpec
from acp_plugins.isolation.worker import EXIT_LOAD_FAILED, EXIT_OUT_OF_MEMORY
from acp_plugins.loading.permissions import Permission
from acp_plugins.loading.trust import MIB, IsolationPolicy, WorkerLimits
from acp_plugins.printable import printable

__all__ = [
    "PACKAGE_ROOT",
    "WORKER_ENVIRONMENT",
    "WorkerProcess",
    "describe_exit",
    "kill_group",
    "privilege_wrapper",
    "sandbox_spec",
    "spawn_worker",
    "stderr_tail",
]

#: The whole environment of a worker (and of the zygote): nothing of the host's.
WORKER_ENVIRONMENT = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}
#: The folder acp_plugins is imported from (workers import the package from there too).
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

_BOOT = (
    "import sys\n"
    "if sys.argv[2] not in sys.path: sys.path.append(sys.argv[2])\n"
    "from acp_plugins.isolation.worker import main\n"
    "sys.exit(main(sys.argv[1:2]))\n"
)


class Process(Protocol):
    """What the host uses of a worker's process: a :class:`subprocess.Popen`, or a forked one."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class WorkerProcess:
    """A started worker's process: its pid, its output, and why it ended.

    It leads a session of its own, killed whole; if the object is dropped while
    the process runs (a host dropped without ``stop()``), the session is killed.
    """

    def __init__(self, process: Process, output: IO[bytes]) -> None:
        self.process = process
        self.pid = process.pid
        self.output: IO[bytes] | None = output
        #: Why the host killed it (``None``: it was not killed by the host).
        self.kill_reason: str | None = None
        self._reaper = weakref.finalize(self, kill_group, process.pid)

    def running(self) -> bool:
        return self.process.poll() is None

    def leaf_pid(self) -> int:
        """The pid of the worker's interpreter: the last of the launcher's descendants.

        The started process may be a launcher (a shell, bubblewrap and its init) that
        runs the interpreter as a descendant; its CPU time and memory are the worker's.
        """
        pid = self.pid
        for _depth in range(8):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                break
            if not children:
                break
            pid = int(children[-1])
        return pid

    def kill(self, reason: str) -> None:
        """SIGKILL the worker's session; the first reason given is the one kept."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.running():
            kill_group(self.pid)

    def stop(self, reason: str) -> None:
        """Give the worker a moment to exit on its own, then kill it; close its output."""
        if self.running():
            try:
                self.process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                self.kill(reason)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=5)
        if not self.running():
            self._reaper.detach()
        if self.output is not None:
            self.output.close()
            self.output = None

    async def exit_reason(self, limits: WorkerLimits) -> str:
        """Why the worker ended, once it has (a worker that will not end is killed)."""
        deadline = time.monotonic() + 1.0
        while self.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.running():
            self.kill(self.kill_reason or "closed its channel but did not exit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        return describe_exit(
            self.process.returncode, self.kill_reason, stderr_tail(self.output), limits
        )


@cache
def interpreter_folders() -> frozenset[str]:
    """The folders of every link on the way from ``sys.executable`` to the interpreter.

    A virtual environment's ``python`` may be a link to another environment's, which
    links to the installed one: the worker execs the first, so every one of them must
    be in its view.
    """
    found: set[str] = set()
    path = Path(sys.executable).absolute()
    for _hop in range(16):
        found.add(str(path.parent))
        if not path.is_symlink():
            break
        path = (path.parent / os.readlink(path)).absolute()
    found.add(str(Path(sys.executable).resolve().parent))
    return frozenset(found)


@cache
def privilege_wrapper(network: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The command prefix that drops privileges on this system, and warnings for what cannot be.

    Tried once per process: ``unshare --net`` (a network namespace without
    interfaces) for workers without ``network``, and ``setpriv`` for
    no-new-privs and an empty capability set.
    """
    prefix: list[str] = []
    warnings: list[str] = []
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if not network:
        if unshare and _runs([unshare, "--net", "true"]):
            prefix += [unshare, "--net", "--"]
        else:
            warnings.append("no network namespace for workers (unshare --net is not permitted)")
    if setpriv:
        full = [setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        if _runs([*full, "true"]):
            prefix += full
        elif _runs([setpriv, "--no-new-privs", "true"]):
            prefix += [setpriv, "--no-new-privs", "--"]
            warnings.append("workers keep their capabilities (setpriv cannot drop them here)")
        else:
            warnings.append("workers run without no-new-privs (setpriv is not permitted)")
    else:
        warnings.append("workers run without no-new-privs (setpriv is not installed)")
    return tuple(prefix), tuple(warnings)


def _runs(command: Sequence[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=5, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def kill_group(pid: int) -> None:
    """SIGKILL the worker's whole session (it leads a process group of its own)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # not yet the leader of its group (a forked worker, just started)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def sandbox_spec(
    plugin_id: str,
    *,
    granted: frozenset[Permission],
    requested: frozenset[Permission],
    data_dir: Path,
    read_roots: Sequence[str],
    own_packages: frozenset[str],
    dependency_modules: frozenset[str],
    policy: IsolationPolicy,
    data_read_only: bool = False,
) -> SandboxSpec:
    """What the worker of ``plugin_id`` may do: what it requested and was granted.

    A permission the host's policy would grant but the manifest does not request
    opens nothing (no ``sqlite3`` for a plugin that asks for no data permission).
    """
    limits = policy.limits_for(plugin_id)
    names = {p.value for p in granted}
    opened = {p.value for p in granted & requested}
    allowed = set(BASE_ALLOWED_MODULES) | set(dependency_modules)
    for name in opened:
        allowed |= PERMISSION_MODULES.get(name, frozenset())
    allowed |= set(policy.allowed_modules.get(plugin_id, frozenset()))
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *read_roots}
    roots |= {p for p in sys.path if p and os.path.isabs(p) and "site-packages" in p}
    roots |= interpreter_folders()
    roots.add(PACKAGE_ROOT)
    return SandboxSpec(
        plugin_id=plugin_id,
        data_dir=str(data_dir),
        read_roots=tuple(sorted(roots)),
        allowed_modules=frozenset(allowed),
        own_packages=own_packages,
        memory_bytes=limits.memory_mb * MIB,
        open_files=limits.open_files,
        file_bytes=limits.file_mb * MIB,
        processes=limits.processes,
        allow_network="network" in opened,
        allow_processes="run-processes" in opened,
        seccomp=policy.seccomp,
        landlock=policy.landlock,
        python_layer=policy.python_layer,
        data_read_only=data_read_only,
        granted=tuple(sorted(names)),
    )


def spawn_worker(prefix: Sequence[str], data_dir: Path) -> tuple[WorkerProcess, socket.socket]:
    """Start a worker process in ``data_dir`` behind ``prefix`` (see :func:`privilege_wrapper`)."""
    parent, child = socket.socketpair()
    output = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the worker's life)
    try:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-I", "-B", "-c", _BOOT, str(child.fileno()), PACKAGE_ROOT],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=dict(WORKER_ENVIRONMENT),
            cwd=str(data_dir),
            start_new_session=True,
        )
    except BaseException:
        parent.close()
        output.close()
        raise
    finally:
        child.close()
    return WorkerProcess(process, output), parent


def describe_exit(
    code: int | None, kill_reason: str | None, tail: str, limits: WorkerLimits
) -> str:
    """Why a worker ended, for people: killed (and why), out of memory, a signal, a status."""
    if kill_reason is not None:
        return f"was killed: {kill_reason}" + (f" ({tail})" if tail else "")
    if code == EXIT_OUT_OF_MEMORY:
        return f"ran out of memory (limit {limits.memory_mb} MiB) and exited"
    if code == EXIT_LOAD_FAILED:
        return "could not load the plugin"
    if code is not None and (code < 0 or 128 < code < 128 + 65):
        number = -code if code < 0 else code - 128  # a launcher reports 128 + the signal
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        return f"was killed by {name}"
    return f"exited with status {code}" + (f": {tail}" if tail else "")


def stderr_tail(output: IO[bytes] | None) -> str:
    """The last line the worker wrote to its output (at most 300 characters)."""
    if output is None:
        return ""
    try:
        output.seek(0)
        lines = output.read()[-4000:].decode(errors="replace").strip().splitlines()
    except (OSError, ValueError):
        return ""
    return printable(lines[-1], limit=300) if lines else ""
