"""The kernel layers a worker is started inside: namespaces, a uid of its own, its cgroup.

The host starts each worker behind a launcher that the worker cannot undo:

1. ``/bin/sh`` writes its own pid into the worker's cgroup (:mod:`.cgroups`), then
   runs the next step, so everything the worker ever runs is in that cgroup;
2. bubblewrap gives it namespaces of its own: **mount** (a view holding only
   the system's libraries, the Python installation and the plugin code read-only,
   the plugin's data directory writable, a private ``/tmp`` and ``/dev``, and a
   ``/proc`` of its own), **PID** (it sees and can signal only itself), **IPC**,
   **UTS**, and **network** unless ``network`` is granted; it dies with the host;
3. ``setpriv`` switches to the plugin's **own uid** (when the host runs as root)
   with no capabilities, no way to gain any (no-new-privs) and no groups.

Inside, the worker then adds rlimits, Landlock and seccomp to itself
(:mod:`.sandbox`) before any plugin code is imported. A layer that this machine
cannot give is a warning; :attr:`~acp_plugins.loading.trust.IsolationPolicy.strict_layers`
turns it into a refusal to start the plugin.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from acp_plugins.errors import PluginImportError
from acp_plugins.isolation.cgroups import WorkerCgroup
from acp_plugins.isolation.launch import privilege_wrapper
from acp_plugins.isolation.sandbox import SandboxSpec
from acp_plugins.isolation.view import Mount, bubblewrap_args, worker_view
from acp_plugins.loading.trust import IsolationPolicy, WorkerLimits

__all__ = [
    "KERNEL_LAYERS",
    "Confinement",
    "confine",
    "layer_refusal",
    "prepare_confinement",
    "worker_uid",
]

#: The layers set up from outside, before the worker's interpreter starts.
KERNEL_LAYERS = (
    "mount-namespace",
    "pid-namespace",
    "ipc-namespace",
    "network-namespace",
    "own-uid",
    "no-capabilities",
    "cgroup",
)

#: Joins the cgroups named before ``--``, then runs what follows.
_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
#: The uids of plugins, when the host runs as root: far above any real account.
_UID_BASE, _UID_SPAN = 2_000_000, 1_000_000
#: The host name inside a worker's UTS namespace.
HOSTNAME = "acp-worker"


@dataclass(frozen=True, slots=True)
class Confinement:
    """How one worker is started: the command before its interpreter, and what it gives."""

    command: tuple[str, ...]
    #: Kernel layers in force, from :data:`KERNEL_LAYERS`.
    layers: tuple[str, ...]
    #: Layer -> why it is missing, for each one that is.
    missing: dict[str, str]
    #: The uid the worker runs as (``None``: the host's own).
    uid: int | None
    pid_namespace: bool
    #: The worker's view (empty: it has no mount namespace) and the folder it starts in.
    view: tuple[Mount, ...] = ()
    chdir: str = ""
    #: The ``cgroup.procs`` files the worker joins before anything else.
    cgroup_files: tuple[str, ...] = ()


def prepare_confinement(
    spec: SandboxSpec,
    *,
    policy: IsolationPolicy,
    limits: WorkerLimits,
    cgroup_name: str,
    hidden: Sequence[Path],
) -> tuple[SandboxSpec, Confinement, WorkerCgroup | None]:
    """Make the worker's cgroup, its launcher and (as root) hand it its data directory.

    Returns the spec to send to the worker (it learns whether it has a PID
    namespace of its own), the confinement, and the cgroup to remove when it ends.
    """
    cgroup: WorkerCgroup | None = None
    problem: str | None = "turned off in the isolation settings"
    if policy.cgroups:
        made = WorkerCgroup.create(cgroup_name, limits)
        cgroup, problem = (made, None) if isinstance(made, WorkerCgroup) else (None, made)
    confinement = confine(spec, policy=policy, cgroup=cgroup, cgroup_problem=problem, hidden=hidden)
    if confinement.uid is not None:
        _hand_over(Path(spec.data_dir), confinement.uid)
    return replace(spec, pid_namespace=confinement.pid_namespace), confinement, cgroup


def _hand_over(data_dir: Path, uid: int) -> None:
    """Make the plugin's uid the owner of its data directory and everything in it."""
    os.chown(data_dir, uid, uid)
    os.chmod(data_dir, 0o700)
    for folder, directories, files in os.walk(data_dir):
        for name in directories + files:
            path = os.path.join(folder, name)
            if os.lstat(path).st_uid != uid:
                os.lchown(path, uid, uid)


def layer_refusal(
    plugin_id: str, policy: IsolationPolicy, missing: Mapping[str, str]
) -> PluginImportError | None:
    """With ``strict_layers``, why a worker lacking a layer must not run (else ``None``)."""
    lacking = {layer: why for layer, why in missing.items() if layer != "python"}
    if not policy.strict_layers or not lacking:
        return None
    reason = "; ".join(f"{layer}: {why}" for layer, why in lacking.items())
    return PluginImportError(
        f"'{plugin_id}' was not started: its worker would lack isolation layers "
        f"({reason}) and the host's isolation settings are strict",
        plugin_id=plugin_id,
    )


def worker_uid(plugin_id: str) -> int:
    """The uid a plugin's worker runs as when the host is root: stable across restarts."""
    return _UID_BASE + zlib.crc32(plugin_id.encode()) % _UID_SPAN


def confine(
    spec: SandboxSpec,
    *,
    policy: IsolationPolicy,
    cgroup: WorkerCgroup | None,
    cgroup_problem: str | None,
    hidden: Sequence[Path] = (),
) -> Confinement:
    """The launcher for the worker of ``spec``, with the layers it gives and lacks.

    ``hidden``: folders that must not be seen even if a read-only folder holds them
    (the host's data root: other plugins' data, the overrides, the audit log).
    """
    missing: dict[str, str] = {}
    layers: list[str] = []
    command: list[str] = []
    if cgroup is not None:
        command += ["/bin/sh", "-c", _JOIN, "acp-join", *cgroup.procs_files, "--"]
        layers.append("cgroup")
    else:
        missing["cgroup"] = cgroup_problem or "cgroups are turned off in the isolation settings"
    problem = bubblewrap_problem() if policy.namespaces else "turned off in the settings"
    uid = _uid_for(spec, policy, own_view=problem is None)
    view: list[Mount] = []
    chdir = ""
    if problem is None:
        view, chdir = worker_view(
            read_roots=spec.read_roots,
            data_dir=spec.data_dir,
            hidden=hidden,
            network=spec.allow_network,
            data_read_only=spec.data_read_only and not spec.landlock,
        )
        command += _bubblewrap(spec, view, chdir, root=os.geteuid() == 0)
        layers += ["mount-namespace", "pid-namespace", "ipc-namespace"]
        if not spec.allow_network:
            layers.append("network-namespace")
    else:
        for layer in ("mount-namespace", "pid-namespace", "ipc-namespace"):
            missing[layer] = f"bubblewrap cannot be used: {problem}"
        if policy.drop_privileges and not spec.allow_network:
            prefix, _warnings = privilege_wrapper(network=False)
            if "--net" in prefix:
                command += list(prefix[: prefix.index("--") + 1])
                layers.append("network-namespace")
    if "network-namespace" not in layers and not spec.allow_network:
        missing["network-namespace"] = "neither bubblewrap nor unshare --net can be used"
    setpriv = shutil.which("setpriv")
    if policy.drop_privileges and setpriv:
        drop = [setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        if isinstance(uid, int):
            drop[1:1] = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            layers.append("own-uid")
        command += [*drop, "--"]
        layers.append("no-capabilities")
    else:
        missing["no-capabilities"] = (
            "setpriv is not installed" if policy.drop_privileges else "turned off in the settings"
        )
    if "own-uid" not in layers:
        missing["own-uid"] = uid if isinstance(uid, str) else "setpriv is not installed"
    return Confinement(
        tuple(command),
        tuple(layer for layer in KERNEL_LAYERS if layer in layers),
        {layer: missing[layer] for layer in KERNEL_LAYERS if layer in missing},
        uid if isinstance(uid, int) and "own-uid" in layers else None,
        pid_namespace="pid-namespace" in layers,
        view=tuple(view),
        chdir=chdir,
        cgroup_files=tuple(cgroup.procs_files) if cgroup is not None else (),
    )


def _uid_for(spec: SandboxSpec, policy: IsolationPolicy, *, own_view: bool) -> int | str:
    """The plugin's own uid, or why the worker keeps the host's.

    Another uid must be able to read the folders the worker reads. In a view of
    its own the folders above them are made traversable; without one, they must be
    too (a Python installed under a 0700 ``/root`` is out of reach).
    """
    if not policy.own_uid:
        return "turned off in the settings"
    if os.geteuid() != 0:
        return "the host does not run as root (the worker keeps the host's uid)"
    for root in spec.read_roots:
        folders = [Path(root)] if own_view else [Path(root), *Path(root).parents]
        for folder in folders:
            try:
                mode = os.stat(folder).st_mode
            except OSError:
                continue
            wanted = 0o005 if folder == Path(root) else 0o001
            if stat.S_ISDIR(mode) and (mode & wanted) != wanted:
                return f"{folder} is not readable by other users (chmod o+rx it)"
    return worker_uid(spec.plugin_id)


@cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox here (``None``: it can). Tried once per process."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "it is not installed (Debian: apt-get install bubblewrap)"
    probe = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-net"]
    if os.geteuid() != 0:
        probe.append("--unshare-user")
    probe += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip()[:200] or f"exit {done.returncode}"
    return None


def _bubblewrap(spec: SandboxSpec, view: Sequence[Mount], chdir: str, *, root: bool) -> list[str]:
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--hostname", HOSTNAME]
    if not spec.allow_network:
        args.append("--unshare-net")
    if not root:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    return args + bubblewrap_args(view, chdir)
