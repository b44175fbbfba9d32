"""The kernel layers a worker forked from the zygote puts itself in, before any plugin code.

What bubblewrap and setpriv do for a worker started as a fresh interpreter, done
with the same system calls by the forked process itself (see
:mod:`acp_plugins.isolation.zygote`): namespaces of its own (mount, PID, IPC, UTS,
cgroup, and network unless granted; a user namespace when the host is not root),
the view of :func:`acp_plugins.isolation.view.worker_view` as its root
(``pivot_root``; the host's root is detached), its cgroup, the plugin's own uid,
no capabilities (bounding, ambient, inheritable, permitted, effective) and
no-new-privs. Each step either succeeds or raises :class:`ConfinementError`: a
process that could not enter every layer exits before the plugin is imported.
"""

from __future__ import annotations

import ctypes
import os
import platform
import socket
from collections.abc import Sequence

from acp_plugins.isolation.view import DEVICES, Mount

__all__ = [
    "ConfinementError",
    "drop_privileges",
    "enter_namespaces",
    "enter_view",
    "join_cgroups",
]

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x08000000, 0x10000000, 0x20000000
CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_NOATIME, _MS_NODIRATIME, _MS_BIND = 32, 1024, 2048, 4096
_MS_REC, _MS_SILENT, _MS_SLAVE, _MS_RELATIME = 16384, 32768, 1 << 19, 1 << 21
_MNT_DETACH = 2
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
_CAPABILITY_VERSION_3 = 0x20080522
#: pivot_root and capset have no libc wrapper everywhere: their numbers per machine.
_SYSCALLS = {"x86_64": (155, 126), "aarch64": (41, 91)}
#: Folders of /proc that stay read-only, as bubblewrap keeps them.
_PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")
#: The folder the new root is built in (inside the new mount namespace only).
_BASE = "/tmp"


class ConfinementError(OSError):
    """A kernel layer could not be entered: the worker must not go on."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise ConfinementError(error, f"{what}: {os.strerror(error)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    result = _libc.mount(
        _bytes(source), target.encode(), _bytes(fstype), flags, _bytes(data or None)
    )
    _check(result, f"mount {target}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _syscall(name: str, *args: object) -> int:
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise ConfinementError(0, f"{name}: unknown system call number on {platform.machine()}")
    number = numbers[0] if name == "pivot_root" else numbers[1]
    _libc.syscall.restype = ctypes.c_long
    return int(_libc.syscall(number, *args))


def join_cgroups(procs_files: Sequence[str]) -> None:
    """Move this process into the worker's cgroup (everything it starts stays there)."""
    for path in procs_files:
        try:
            with open(path, "w") as procs:
                procs.write("0")
        except OSError as error:
            raise ConfinementError(error.errno, f"joining {path}: {error.strerror}") from None


def enter_namespaces(*, network: bool, hostname: str) -> None:
    """Unshare every namespace but the PID one's first process (the next ``fork`` is it).

    When the host is not root a user namespace maps this process's uid onto itself,
    so the mounts that follow are allowed and give nothing outside.
    """
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    if not network:
        flags |= CLONE_NEWNET
    uid, gid = os.geteuid(), os.getegid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    _check(_libc.unshare(flags), "unshare")
    if uid != 0:
        for path, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            with open(f"/proc/self/{path}", "w") as file:
                file.write(text)
    socket.sethostname(hostname)


def enter_view(view: Sequence[Mount], chdir: str) -> None:
    """Make ``view`` this process's root, as bubblewrap does; the host's root is detached.

    Called by the first process of the new PID namespace (its ``/proc`` shows that
    namespace only).
    """
    _mount(None, "/", None, _MS_SILENT | _MS_SLAVE | _MS_REC)
    _mount("tmpfs", _BASE, "tmpfs", _MS_NODEV | _MS_NOSUID, "mode=0755")
    os.chdir(_BASE)
    os.mkdir("newroot", 0o755)
    _mount("newroot", "newroot", None, _MS_SILENT | _MS_BIND | _MS_REC)
    os.mkdir("oldroot", 0o755)
    _check(_syscall("pivot_root", _BASE.encode(), b"oldroot"), "pivot_root")
    os.chdir("/")
    for step in view:
        _apply(step)
    _check(_libc.umount2(b"/oldroot", _MNT_DETACH), "detaching the host's root")
    os.chdir("/newroot")
    _check(_syscall("pivot_root", b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", _MNT_DETACH), "detaching the build root")
    os.chdir(chdir)


def _apply(step: Mount) -> None:
    target = "/newroot" + step.path
    source = "/oldroot" + step.source
    if step.kind == "dir":
        _make_dirs(target, step.mode)
    elif step.kind == "symlink":
        _make_dirs(os.path.dirname(target))
        os.symlink(step.source, target)
    elif step.kind == "tmpfs":
        _make_dirs(target)
        options = f"mode={step.mode:o}" + (f",size={step.size}" if step.size else "")
        _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
    elif step.kind == "proc":
        _make_dirs(target)
        _mount("proc", target, "proc", _MS_NOSUID | _MS_NOEXEC | _MS_NODEV)
        for name in _PROC_READ_ONLY:
            path = f"{target}/{name}"
            if os.path.exists(path):
                _bind(path, path, read_only=True)
    elif step.kind == "dev":
        _make_dev(target)
    elif step.kind == "ro-bind-try" and not os.path.lexists(source):
        return
    else:
        _bind(source, target, read_only=step.kind != "bind")


def _make_dirs(path: str, mode: int = 0o755) -> None:
    if not os.path.isdir(path):
        _make_dirs(os.path.dirname(path))
        os.mkdir(path)
        os.chmod(path, mode)


def _bind(source: str, target: str, *, read_only: bool) -> None:
    if os.path.isdir(source):
        _make_dirs(target)
    elif not os.path.exists(target):
        _make_dirs(os.path.dirname(target))
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(source, target, None, _MS_SILENT | _MS_BIND | _MS_REC)
    if read_only:
        for mount_point in [target, *_mounts_beneath(target)]:
            flags = _locked_flags(mount_point)
            _mount(
                None, mount_point, None, _MS_SILENT | _MS_BIND | _MS_REMOUNT | _MS_RDONLY | flags
            )


def _mounts_beneath(target: str) -> list[str]:
    """The mount points strictly beneath ``target`` (a recursive bind brought them)."""
    found: list[str] = []
    with open("/oldroot/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(target.rstrip("/") + "/"):
                found.append(point)
    return found


def _locked_flags(path: str) -> int:
    """The flags a read-only remount must keep (a user namespace may not clear them)."""
    flag = os.statvfs(path).f_flag
    kept = 0
    for statvfs_bit, mount_bit in (
        (os.ST_NOSUID, _MS_NOSUID),
        (os.ST_NODEV, _MS_NODEV),
        (os.ST_NOEXEC, _MS_NOEXEC),
        (os.ST_NOATIME, _MS_NOATIME),
        (os.ST_NODIRATIME, _MS_NODIRATIME),
        (os.ST_RELATIME, _MS_RELATIME),
    ):
        if flag & statvfs_bit:
            kept |= mount_bit
    return kept


def _make_dev(target: str) -> None:
    """A private ``/dev``: a tmpfs with the harmless device nodes and the usual links."""
    _make_dirs(target)
    _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=0755")
    for name in DEVICES:
        if os.path.exists(f"/oldroot/dev/{name}"):
            _bind(f"/oldroot/dev/{name}", f"{target}/{name}", read_only=False)
    for name, link in (("stdin", "0"), ("stdout", "1"), ("stderr", "2")):
        os.symlink(f"/proc/self/fd/{link}", f"{target}/{name}")
    os.symlink("/proc/self/fd", f"{target}/fd")
    os.mkdir(f"{target}/shm", 0o1777)
    os.chmod(f"{target}/shm", 0o1777)


def drop_privileges(uid: int | None, last_capability: int) -> None:
    """Become ``uid`` (when given) with no capabilities and no way to gain any."""
    for capability in range(last_capability + 1):
        _check(_libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0), "dropping the bounding set")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        # a change of uid makes the process undumpable (its /proc files root's, its own
        # memory unreadable to itself); an exec, as bubblewrap's setpriv does, resets it
        _check(_libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
    _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient")
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()
    _check(_syscall("capset", ctypes.byref(header), ctypes.byref(empty)), "capset")
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no-new-privs")
