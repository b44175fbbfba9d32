"""A worker's view of the file system: the mounts of its own root, in order.

One plan, two ways of building it: bubblewrap's command line (:func:`bubblewrap_args`,
for a worker started as a fresh interpreter) or the same mounts made by a
process forked from the zygote for itself (:mod:`acp_plugins.isolation.namespaces`).
Whichever way, the view holds the system's libraries, the Python installation and
the plugin's code read-only, its data directory writable, a private ``/tmp``,
``/var/tmp`` and ``/dev``, and a ``/proc`` of its own PID namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from acp_plugins.loading.trust import MIB

__all__ = ["DEVICES", "Mount", "bubblewrap_args", "worker_view"]

#: The system folders a worker's view holds, read-only (libraries the interpreter links).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_NETWORK_FILES = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
)
#: The device nodes of a private ``/dev`` (bubblewrap's ``--dev``).
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_TMP_MIB = 64

Kind = Literal["dir", "ro-bind", "ro-bind-try", "bind", "tmpfs", "symlink", "proc", "dev"]


@dataclass(frozen=True, slots=True)
class Mount:
    """One step of a view: a folder, a bind mount, a tmpfs, a link, ``/proc`` or ``/dev``."""

    kind: Kind
    path: str
    #: What a bind mount shows, or a link's target.
    source: str = ""
    mode: int = 0o755
    #: A tmpfs's size in bytes (0: the kernel's default).
    size: int = 0


def worker_view(
    *,
    read_roots: Sequence[str],
    data_dir: str,
    hidden: Sequence[Path],
    network: bool,
    data_read_only: bool,
) -> tuple[list[Mount], str]:
    """The mounts of a worker's view, and the folder it starts in (its data directory).

    ``hidden``: folders that must not be seen even if a read-only folder holds them
    (the host's data root: other plugins' data, the overrides, the audit log).
    """
    # /tmp only holds the mount points of the host's folders under it; the worker's own
    # temporary files go to a private /var/tmp (TMPDIR)
    steps = [Mount("proc", "/proc"), Mount("dev", "/dev"), Mount("tmpfs", "/tmp")]
    steps += [Mount("dir", "/var"), Mount("tmpfs", "/var/tmp", mode=0o1777, size=_TMP_MIB * MIB)]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            steps.append(Mount("symlink", directory, source=os.readlink(directory)))
        elif os.path.isdir(directory):
            steps.append(Mount("ro-bind", directory, source=directory))
    for path in _SYSTEM_FILES + (_NETWORK_FILES if network else ()):
        # a link (/etc/localtime) is followed here: inside the view it would point nowhere
        steps.append(Mount("ro-bind-try", path, source=os.path.realpath(path)))
    made: set[str] = {"/", "/tmp", "/var"}
    for directory in _outermost(p for p in read_roots if os.path.isdir(p)):
        if not any(_beneath(directory, system) for system in SYSTEM_DIRS):
            steps += [*_parents(directory, made), Mount("ro-bind", directory, source=directory)]
    real_data = os.path.realpath(data_dir)
    for folder in hidden:
        real = os.path.realpath(folder)
        if any(_beneath(real, root) for root in read_roots):
            steps.append(Mount("tmpfs", real))  # an empty folder over what a read-only one holds
    steps += _parents(real_data, made)
    steps.append(Mount("ro-bind" if data_read_only else "bind", real_data, source=real_data))
    return steps, real_data


def bubblewrap_args(steps: Iterable[Mount], chdir: str) -> list[str]:
    """The view as bubblewrap options (after the namespace options)."""
    args: list[str] = []
    for step in steps:
        if step.kind == "dir":
            args += ["--perms", f"{step.mode:04o}", "--dir", step.path]
        elif step.kind == "tmpfs":
            if step.mode != 0o755:
                args += ["--perms", f"{step.mode:04o}"]
            if step.size:
                args += ["--size", str(step.size)]
            args += ["--tmpfs", step.path]
        elif step.kind == "symlink":
            args += ["--symlink", step.source, step.path]
        elif step.kind in ("proc", "dev"):
            args += [f"--{step.kind}", step.path]
        else:
            args += [f"--{step.kind}", step.source, step.path]
    return [*args, "--chdir", chdir]


def _parents(path: str, made: set[str]) -> list[Mount]:
    """Make the folders above ``path`` in the view traversable (bubblewrap makes them 0700)."""
    steps: list[Mount] = []
    parts = Path(path).parts
    for depth in range(2, len(parts)):
        folder = str(Path(*parts[:depth]))
        if folder not in made:
            made.add(folder)
            steps.append(Mount("dir", folder))
    return steps


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths that are not inside another of them, sorted."""
    real = sorted({os.path.realpath(p) for p in paths})
    kept: list[str] = []
    for path in real:
        if not any(_beneath(path, outer) for outer in kept):
            kept.append(path)
    return kept


def _beneath(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder + "/") or folder == "/"
