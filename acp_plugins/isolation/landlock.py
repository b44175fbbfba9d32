"""Landlock: the kernel's own file-system (and TCP, signal, socket) rules for one worker.

Applied by the worker to itself before any plugin code is imported, after the
mount namespace has already hidden the rest of the host. A second layer over
the same paths: the Python installation, the plugin's code and the system
libraries may be read and executed, the data directory and the private
``/tmp`` may be written, and nothing else may be touched at all. Where the
kernel's Landlock is new enough (ABI 4 and 6), TCP ``bind``/``connect`` are
refused unless ``network`` is granted, and signals and abstract Unix sockets
cannot reach outside the worker.

Once applied, the rules cannot be lifted by the process or anything it starts.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

__all__ = ["landlock_abi", "restrict_self"]

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # x86_64 and arm64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REMOVE_DIR, _REMOVE_FILE, _MAKE_CHAR, _MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_MAKE_REG, _MAKE_SOCK, _MAKE_FIFO, _MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
_MAKE_SYM, _REFER, _TRUNCATE, _IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ = _EXECUTE | _READ_FILE | _READ_DIR
_WRITE = _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_DIR | _MAKE_REG | _MAKE_SYM | _MAKE_FIFO


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: Landlock is not available)."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = int(libc.syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))
    return max(version, 0)


def _handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    if abi >= 5:
        rights |= _IOCTL_DEV
    return rights


def restrict_self(
    *,
    read: Iterable[str],
    write: Iterable[str],
    clear: Iterable[str] = (),
    devices: Iterable[str] = ("/dev",),
    allow_tcp: bool = False,
) -> str | None:
    """Confine this process to these paths; ``None`` on success, else why not (a warning).

    ``read``: readable and executable; ``write``: everything, beneath; ``clear``:
    readable, and files may be removed or truncated but not written; ``devices``:
    readable and writable files (``/dev/null``, ``/dev/urandom``).
    """
    abi = landlock_abi()
    if abi < 1:
        return "Landlock is not available in this kernel"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    handled = _handled_fs(abi)
    attr = _RulesetAttr(handled, 0, 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    if abi >= 4 and not allow_tcp:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
    ruleset = int(libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0))
    if ruleset < 0:
        return f"Landlock ruleset refused ({os.strerror(ctypes.get_errno())})"
    try:
        writable = _WRITE | _READ | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
        device = _READ_FILE | _WRITE_FILE | (_IOCTL_DEV if abi >= 5 else 0)
        rules = [(path, _READ) for path in read]
        rules += [(path, writable & handled) for path in write]
        clearing = _READ | _REMOVE_FILE | _REMOVE_DIR | (_TRUNCATE if abi >= 3 else 0)
        rules += [(path, clearing & handled) for path in clear]
        rules += [(path, device & handled) for path in devices]
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # not in this worker's view: nothing to allow
            try:
                if not os.path.isdir(path):
                    access &= _EXECUTE | _READ_FILE | _WRITE_FILE | _TRUNCATE | _IOCTL_DEV
                rule = _PathBeneathAttr(access, fd)
                if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0):
                    return f"Landlock rule for {path} refused ({os.strerror(ctypes.get_errno())})"
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
            return f"no-new-privs refused ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0):
            return f"Landlock restrict_self refused ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return None
