"""What an isolated worker does to itself before any plugin code is imported.

Runs inside the worker process only (see :mod:`acp_plugins.isolation.worker`). In order:

1. resource limits with ``setrlimit``: memory (data segment), open files, file
   size, processes, core dumps;
2. a seccomp filter (through libseccomp, where the kernel and the library are
   there): no ``execve``, no ``fork`` (threads still work), no internet or
   netlink sockets, no ``ptrace``, no raising the limits again, no mounts,
   namespaces or kernel modules;
3. a PEP 578 audit hook that refuses, at the Python level, the operations the
   plugin was not granted (processes, sockets, ``ctypes``, files outside the
   plugin's own data directory, peeking at every object through ``gc``), and an
   import policy that lets the plugin's own code import only the allowed modules.

The audit hook cannot be removed once installed. It is the layer that gives
clear, named refusals; seccomp and the limits are the layers that still hold if a
plugin finds a way around Python (the README's threat model says which is which).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import importlib
import importlib.machinery
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = [
    "BASE_ALLOWED_MODULES",
    "SandboxSpec",
    "SandboxViolation",
    "apply_limits",
    "die_with_the_host",
    "install_audit_hook",
    "install_seccomp",
]

#: Modules every isolated plugin may import: the specification's list, then
#: language basics that perform no I/O of their own (the I/O they could reach is
#: checked by the audit hook anyway), then the plugin API and what it is built on.
BASE_ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        # the specification's list
        "json", "datetime", "collections", "itertools", "functools", "operator", "re",
        "string", "math",
        # language basics
        "__future__", "abc", "asyncio", "base64", "bisect", "calendar", "contextlib",
        "contextvars", "copy", "csv", "dataclasses", "decimal", "enum", "fractions",
        "hashlib", "heapq", "hmac", "io", "keyword", "logging", "numbers", "pathlib",
        "pprint", "random", "secrets", "statistics", "struct", "textwrap", "threading",
        "time", "types", "typing", "typing_extensions", "uuid", "warnings", "weakref",
        "zoneinfo",
        # the plugin API
        "acp_plugins", "pydantic", "pydantic_core", "pluggy", "annotated_types",
        "typing_inspection",
    }
)  # fmt: skip

#: Modules a permission adds to the allowed ones.
PERMISSION_MODULES: dict[str, frozenset[str]] = {
    "read-data": frozenset({"sqlite3"}),
    "write-data": frozenset({"sqlite3"}),
    "manage-database": frozenset({"sqlite3"}),
    "network": frozenset({"socket", "ssl", "http", "urllib", "selectors"}),
    "run-processes": frozenset({"subprocess", "shlex", "signal"}),
}

#: Linux constants (stable ABI) the seccomp filter needs.
_AF_UNIX, _AF_INET, _AF_INET6, _AF_NETLINK, _AF_PACKET = 1, 2, 10, 16, 17
_CLONE_THREAD = 0x00010000
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ, _SCMP_CMP_MASKED_EQ = 4, 7
_PR_SET_PDEATHSIG = 1


class SandboxViolation(PermissionError):
    """Raised inside a worker when the plugin tries what its sandbox refuses."""


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What one worker is allowed: sent by the host, applied by the worker to itself."""

    plugin_id: str
    data_dir: str
    #: Directories the plugin may read from (its code, Python's own files).
    read_roots: tuple[str, ...] = ()
    #: Top-level module names the plugin's own code may import.
    allowed_modules: frozenset[str] = BASE_ALLOWED_MODULES
    #: Top-level packages that are the plugin's own (its code imports freely inside them).
    own_packages: frozenset[str] = frozenset()
    memory_bytes: int = 100 * 1024 * 1024
    open_files: int = 64
    file_bytes: int = 64 * 1024 * 1024
    processes: int = 64
    allow_network: bool = False
    allow_processes: bool = False
    seccomp: bool = True
    landlock: bool = True
    #: The audit hook and the import policy (clear refusals; not the boundary).
    python_layer: bool = True
    #: Whether the worker runs in a PID namespace of its own (its parent is then pid 1).
    pid_namespace: bool = False
    #: Over its quota: the data directory may be read and cleared, not written.
    data_read_only: bool = False
    #: Filled in by the host: permission names, for messages.
    granted: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "data_dir": self.data_dir,
            "read_roots": list(self.read_roots),
            "allowed_modules": sorted(self.allowed_modules),
            "own_packages": sorted(self.own_packages),
            "memory_bytes": self.memory_bytes,
            "open_files": self.open_files,
            "file_bytes": self.file_bytes,
            "processes": self.processes,
            "allow_network": self.allow_network,
            "allow_processes": self.allow_processes,
            "seccomp": self.seccomp,
            "landlock": self.landlock,
            "python_layer": self.python_layer,
            "pid_namespace": self.pid_namespace,
            "data_read_only": self.data_read_only,
            "granted": list(self.granted),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxSpec:
        return cls(
            plugin_id=str(data["plugin_id"]),
            data_dir=str(data["data_dir"]),
            read_roots=tuple(data.get("read_roots", ())),
            allowed_modules=frozenset(data.get("allowed_modules", BASE_ALLOWED_MODULES)),
            own_packages=frozenset(data.get("own_packages", ())),
            memory_bytes=int(data["memory_bytes"]),
            open_files=int(data["open_files"]),
            file_bytes=int(data["file_bytes"]),
            processes=int(data["processes"]),
            allow_network=bool(data["allow_network"]),
            allow_processes=bool(data["allow_processes"]),
            seccomp=bool(data.get("seccomp", True)),
            landlock=bool(data.get("landlock", True)),
            python_layer=bool(data.get("python_layer", True)),
            pid_namespace=bool(data.get("pid_namespace", False)),
            data_read_only=bool(data.get("data_read_only", False)),
            granted=tuple(data.get("granted", ())),
        )


def apply_limits(spec: SandboxSpec) -> None:
    """Lower this process's resource limits (soft and hard, so they cannot be raised)."""
    limits = [
        (resource.RLIMIT_DATA, spec.memory_bytes),
        (resource.RLIMIT_NOFILE, spec.open_files),
        (resource.RLIMIT_FSIZE, spec.file_bytes),
        (resource.RLIMIT_NPROC, spec.processes),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


@functools.cache
def seccomp_library() -> Any:
    """libseccomp, loaded once (``find_library`` runs ``ldconfig``: the zygote does it for all)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    return ctypes.CDLL(name, use_errno=True)


def install_seccomp(spec: SandboxSpec) -> str | None:
    """Load the seccomp filter; ``None`` on success, else why it could not be (a warning)."""
    if not spec.seccomp:
        return "seccomp is turned off in the host's isolation settings"
    import ctypes

    try:
        lib = seccomp_library()
    except OSError as error:
        return f"libseccomp is not available ({error}); install libseccomp2"

    class ArgCmp(ctypes.Structure):
        _fields_ = [
            ("arg", ctypes.c_uint),
            ("op", ctypes.c_int),
            ("datum_a", ctypes.c_uint64),
            ("datum_b", ctypes.c_uint64),
        ]

    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ArgCmp)
    ]  # fmt: skip
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]

    def deny(code: int) -> int:
        return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO(code)

    context = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not context:
        return "seccomp_init failed; the kernel may not support seccomp filters"
    rules: list[tuple[str, int, list[tuple[int, int, int, int]]]] = []
    for syscall in (
        "ptrace", "process_vm_readv", "process_vm_writev", "setrlimit", "prlimit64",
        "mount", "umount2", "unshare", "setns", "chroot", "pivot_root", "kexec_load",
        "init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
        "keyctl", "add_key", "request_key", "personality", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at",
        "name_to_handle_at", "move_mount", "open_tree", "fsopen", "fsmount", "fspick",
        "mount_setattr", "quotactl", "swapon", "swapoff", "reboot", "acct",
        "pidfd_getfd", "kcmp", "process_madvise", "lookup_dcookie",
    ):  # fmt: skip
        rules.append((syscall, deny(errno.EPERM), []))
    if not spec.allow_processes:
        rules += [
            ("execve", deny(errno.EPERM), []),
            ("execveat", deny(errno.EPERM), []),
            ("fork", deny(errno.EPERM), []),
            ("vfork", deny(errno.EPERM), []),
            # threads are clone() with CLONE_THREAD; a new process is clone() without it
            ("clone", deny(errno.EPERM), [(0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, 0)]),
            # clone3 hides its flags behind a pointer: refuse it, glibc falls back to clone
            ("clone3", deny(errno.ENOSYS), []),
            # a process handle is for signalling or waiting on processes of its own
            ("pidfd_open", deny(errno.EPERM), []),
            ("pidfd_send_signal", deny(errno.EPERM), []),
        ]
    if not spec.allow_network:
        for family in (_AF_INET, _AF_INET6, _AF_NETLINK, _AF_PACKET):
            rules.append(("socket", deny(errno.EACCES), [(0, _SCMP_CMP_EQ, family, 0)]))
        # Unix sockets reach servers by path or abstract name; the worker's channel is
        # inherited, and socketpair() (asyncio's self-pipe) stays allowed
        rules.append(("socket", deny(errno.EACCES), [(0, _SCMP_CMP_EQ, _AF_UNIX, 0)]))
    try:
        for syscall, action, comparisons in rules:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                continue  # not on this architecture
            array = (ArgCmp * max(len(comparisons), 1))(*(ArgCmp(*c) for c in comparisons))
            result = lib.seccomp_rule_add_array(context, action, number, len(comparisons), array)
            if result < 0:
                return f"seccomp rule for {syscall} was refused ({os.strerror(-result)})"
        result = lib.seccomp_load(context)
        if result < 0:
            return f"seccomp_load failed ({os.strerror(-result)})"
    finally:
        lib.seccomp_release(context)
    return None


def die_with_the_host(*, in_pid_namespace: bool = False) -> None:
    """Ask the kernel to kill this worker when the host that started it dies (Linux).

    In a PID namespace of its own the worker's parent is always pid 1 (bubblewrap's
    init, which dies with the host), so the parent's pid tells nothing there.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1 and not in_pid_namespace:  # the host died before the request
            os._exit(1)


#: Audit events that are refused outright unless a permission allows them.
_PROCESS_EVENTS = frozenset(
    {
        "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
        "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
    }
)  # fmt: skip
_NETWORK_EVENTS = frozenset(
    {
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.gethostname", "socket.getnameinfo", "urllib.Request", "http.client.connect",
    }
)  # fmt: skip
#: Refused for every isolated plugin.
_ALWAYS_REFUSED = frozenset(
    {
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
        "sys.addaudithook", "sys.setprofile", "sys.settrace", "resource.setrlimit",
        "resource.prlimit", "os.chroot", "sys.remote_exec", "ctypes.dlopen",
        "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata",
        "ctypes.cdata/buffer", "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at",
        "ctypes.create_string_buffer", "ctypes.create_unicode_buffer", "ctypes.memmove",
        "ctypes.memset", "mmap.__new__", "os.setuid", "os.setgid",
    }
)  # fmt: skip
#: Path operations that change the file system: only inside the data directory.
_WRITE_PATH_EVENTS = frozenset(
    {
        "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
        "os.utime", "os.link", "os.symlink", "os.chflags", "os.lchflags", "os.setxattr",
        "os.removexattr", "shutil.rmtree", "shutil.copyfile", "shutil.copymode",
        "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.chown",
        "shutil.make_archive", "shutil.unpack_archive",
    }
)  # fmt: skip
#: Path operations that only read: the data directory and the read roots.
_READ_PATH_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.chdir", "os.getxattr"})
_TWO_PATH_EVENTS = frozenset({"os.rename", "os.link", "os.symlink", "shutil.copyfile"})

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class _Policy:
    """The audit hook's decisions for one worker."""

    def __init__(
        self, spec: SandboxSpec, report: Callable[[str, str], None], channel_fd: int | None
    ) -> None:
        self.spec = spec
        self.report = report
        self.channel_fd = channel_fd
        self.data_dir = os.path.realpath(spec.data_dir)
        self.read_roots = tuple(os.path.realpath(root) for root in spec.read_roots)
        self.allowed = spec.allowed_modules | spec.own_packages
        self.busy = threading.local()
        self.armed = False

    def refuse_import(self, name: str) -> None:
        """Refuse importing ``name``, unless it is not installed at all: then say that."""
        top = name.partition(".")[0]
        if not self.installed(top):
            raise ModuleNotFoundError(
                f"No module named {top!r}: it is not installed where the host runs "
                "(add it to the plugin's dependencies and install it)",
                name=top,
            )
        self.refuse("import", f"import {name!r} (not an allowed module)")

    def installed(self, top: str) -> bool:
        """Whether a top-level module exists on the worker's path (looked up, not imported)."""
        if top in sys.modules or top in sys.builtin_module_names:
            return True
        was, self.busy.on = getattr(self.busy, "on", False), True  # the lookup only stats
        try:
            return importlib.machinery.PathFinder.find_spec(top) is not None
        except (ImportError, ValueError, OSError):
            return False
        finally:
            self.busy.on = was

    def refuse(self, event: str, detail: str) -> None:
        message = f"'{self.spec.plugin_id}' may not {detail} (sandbox refused {event})"
        try:
            self.report(event, message)
        finally:
            raise SandboxViolation(message)

    def inside(self, path: Any, roots: Iterable[str]) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor: the open itself was checked
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            return False
        real = os.path.realpath(os.fspath(path))
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)

    def check_open(self, path: Any, mode: Any, flags: Any) -> None:
        if path is None or isinstance(path, int):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            if not self.inside(path, (self.data_dir,)):
                self.refuse("open", f"write {path!r} (outside its data directory)")
        elif not self.inside(path, (self.data_dir, *self.read_roots)):
            self.refuse("open", f"read {path!r} (outside its data directory)")

    def on_channel(self, args: tuple[Any, ...]) -> bool:
        """Whether a socket event is about the worker's own channel to the host.

        asyncio sends a backlog with ``sendmsg`` (Python 3.12 and later), which is
        audited like any socket operation; the channel is the worker's, not the
        plugin's network access.
        """
        try:
            return (
                self.channel_fd is not None and bool(args) and args[0].fileno() == self.channel_fd
            )
        except (AttributeError, OSError, TypeError, ValueError):
            return False

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or getattr(self.busy, "on", False):
            return
        self.busy.on = True
        try:
            self.decide(event, args)
        finally:
            self.busy.on = False

    def decide(self, event: str, args: tuple[Any, ...]) -> None:
        spec = self.spec
        if event == "open":
            path, mode, flags = (*args, None, None)[:3]
            self.check_open(path, mode, flags)
        elif event == "import":
            name = str(args[0]).partition(".")[0]
            if name not in self.allowed and _importer_is_plugin(self.spec.own_packages):
                self.refuse_import(str(args[0]))
        elif event in _ALWAYS_REFUSED or event.startswith("ctypes."):
            self.refuse(event, f"use {event}")
        elif event in _PROCESS_EVENTS:
            if not spec.allow_processes:
                self.refuse(event, "start or signal processes (needs 'run-processes')")
        elif event in _NETWORK_EVENTS:
            if not spec.allow_network and not self.on_channel(args):
                self.refuse(event, "use the network (needs 'network')")
        elif event in _WRITE_PATH_EVENTS or event in _TWO_PATH_EVENTS:
            paths = args[:2] if event in _TWO_PATH_EVENTS else args[:1]
            for path in paths:
                if not self.inside(path, (self.data_dir,)):
                    self.refuse(event, f"change {path!r} (outside its data directory)")
        elif event in _READ_PATH_EVENTS:
            if args and not self.inside(args[0], (self.data_dir, *self.read_roots)):
                self.refuse(event, f"look into {args[0]!r} (outside its data directory)")
        elif event == "sqlite3.connect":
            database = args[0] if args else None
            if database not in (":memory:", b":memory:", "") and not self.inside(
                database, (self.data_dir,)
            ):
                self.refuse(event, f"open database {database!r} (outside its data directory)")


def _importer_is_plugin(own_packages: frozenset[str]) -> bool:
    """Whether the import being made was asked for by the plugin's own code.

    Modules the plugin may use import what they need themselves (``datetime``
    imports ``_datetime``); only a request coming from the plugin's own package
    is held to the list.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (
            name.startswith("importlib")
            or name == "acp_plugins.isolation.sandbox"
            or frame.f_code.co_filename.startswith("<frozen importlib")
        ):
            return isinstance(name, str) and name.partition(".")[0] in own_packages
        frame = frame.f_back
    return False


def install_audit_hook(
    spec: SandboxSpec, report: Callable[[str, str], None], channel_fd: int | None = None
) -> Callable[[], None]:
    """Install the audit hook and the import guards; returns the function that arms them.

    The hook is installed disarmed so that the worker can finish setting up; once
    armed it stays armed (there is no way to disarm it from outside this module).
    """
    policy = _Policy(spec, report, channel_fd)
    sys.addaudithook(policy)
    original_import = builtins.__import__
    original_import_module = importlib.import_module

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if policy.armed and level == 0:
            # the calling frame, not the ``globals`` argument, which a caller can forge
            caller = str(sys._getframe(1).f_globals.get("__name__", "")).partition(".")[0]
            top = name.partition(".")[0]
            if caller in spec.own_packages and top not in policy.allowed:
                policy.refuse_import(name)
        return original_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name: str, package: str | None = None) -> Any:
        if policy.armed and not name.startswith("."):
            top = name.partition(".")[0]
            caller = str(sys._getframe(1).f_globals.get("__name__", "")).partition(".")[0]
            if caller in spec.own_packages and top not in policy.allowed:
                policy.refuse_import(name)
        return original_import_module(name, package)

    builtins.__import__ = guarded_import  # type: ignore[assignment]
    importlib.import_module = guarded_import_module
    for loaded in ("ctypes", "ctypes.util", "_ctypes"):
        sys.modules.pop(loaded, None)  # a later import of ctypes must go through the hook

    def arm() -> None:
        policy.armed = True

    return arm
