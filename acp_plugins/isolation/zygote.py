"""The zygote: one pre-imported process per host that forks a worker for each plugin.

Started by the host (:mod:`acp_plugins.isolation.forking`) as a fresh interpreter,
``-I -B`` with an empty environment, like a worker. It imports the worker's code
(pydantic, pluggy, the plugin API), freezes those objects out of the garbage
collector's way so that their pages stay shared, and then only forks: it never
imports plugin code and is never sent configuration or secrets, so a worker
forked from it inherits nothing of any plugin (Android's and Chrome's model).

Each request brings three descriptors (the worker's end of its channel, its
output file, and the write end of a pipe for its exit status) and what its
confinement is (:class:`~acp_plugins.isolation.confinement.Confinement`). The
forked process leads a session of its own, joins the worker's cgroup and
unshares its namespaces; its child, the first process of the new PID namespace,
builds its view, drops to the plugin's uid without capabilities, and only then
runs the worker (which adds its rlimits, Landlock and seccomp and imports the
plugin). The first process waits for that child and writes its exit status to
the pipe. Nothing else of the zygote runs in the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

__all__ = ["EXIT_CONFINEMENT", "main"]

#: Exit status of a forked worker that could not enter every kernel layer.
EXIT_CONFINEMENT = 72
_PR_SET_PDEATHSIG = 1
#: The largest request: a view of a few hundred mounts.
_REQUEST_BYTES = 1 << 20


def main(argv: Sequence[str]) -> int:
    """Serve fork requests on descriptor ``argv[0]`` until the host closes it."""
    control = socket.socket(fileno=int(argv[0]))
    _die_with_parent()
    import acp_plugins.isolation.worker  # noqa: F401  (what every worker runs)
    from acp_plugins.isolation import namespaces  # noqa: F401
    from acp_plugins.isolation.sandbox import seccomp_library

    with contextlib.suppress(OSError):  # a worker says so itself if it is missing
        seccomp_library()

    with open("/proc/sys/kernel/cap_last_cap") as file:
        last_capability = int(file.read())
    gc.collect()
    gc.freeze()  # the pre-imported objects stay out of the collector: their pages stay shared
    control.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        readable, _, _ = select.select([control], [], [], 0.5)
        _reap()
        if not readable:
            continue
        try:
            data, fds, _flags, _address = socket.recv_fds(control, _REQUEST_BYTES, 3)
        except OSError:
            return 0
        if not data:
            return 0
        try:
            request = json.loads(data)
            pid = os.fork()
        except (OSError, ValueError) as error:
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"error": str(error)}).encode())
            continue
        if pid == 0:
            _first(request, fds, control, last_capability)
        for fd in fds:
            os.close(fd)
        del request, data
        control.send(json.dumps({"pid": pid}).encode())


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _die_with_parent() -> None:
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _first(
    request: Mapping[str, Any], fds: Sequence[int], control: socket.socket, last_capability: int
) -> NoReturn:
    """The forked process: a session, the cgroup, the namespaces; then waits for the worker."""
    from acp_plugins.isolation import namespaces

    channel, output, status = fds
    code = EXIT_CONFINEMENT
    try:
        control.close()
        os.setsid()
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        _die_with_parent()
        namespaces.join_cgroups(request["cgroups"])
        namespaces.enter_namespaces(network=request["network"], hostname=request["hostname"])
        pid = os.fork()
        if pid == 0:
            os.close(status)
            _worker(request, channel, last_capability)
        os.close(channel)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except BaseException as error:  # reported as the worker's exit
        print(f"could not enter its sandbox: {error}", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        os.write(status, str(code).encode())
    os._exit(0)


def _worker(request: Mapping[str, Any], channel: int, last_capability: int) -> NoReturn:
    """The first process of the new PID namespace: the view, the uid; then the worker."""
    from acp_plugins.isolation import namespaces
    from acp_plugins.isolation.view import Mount

    code = EXIT_CONFINEMENT
    try:
        _die_with_parent()
        view = [Mount(**step) for step in request["view"]]
        namespaces.enter_view(view, request["chdir"])
        namespaces.drop_privileges(request["uid"], last_capability)
        os.closerange(3, channel)
        os.closerange(channel + 1, os.sysconf("SC_OPEN_MAX"))
        if request.get("probe"):
            os._exit(0)
        from acp_plugins.isolation.worker import main as worker_main

        code = worker_main([str(channel)])
    except BaseException:  # the host reports the exit
        traceback.print_exc()
        print(f"could not enter its sandbox: {sys.exc_info()[1]}", file=sys.stderr)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
