"""The host's isolation policy: which plugins run in-process, and the limits of the others.

A plugin runs in the host's process only if the policy trusts it by id (``"*"``
trusts every plugin). Every other plugin runs in a worker process of its own with
the limits below (see :mod:`acp_plugins.isolation.worker_handle` and
:mod:`acp_plugins.isolation.sandbox`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["TRUST_ALL", "IsolationPolicy", "WorkerLimits"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    """The limits of one isolated plugin's worker (the specification's defaults)."""

    #: Memory the worker may allocate (its data segment, ``RLIMIT_DATA``), in MiB.
    memory_mb: int = 100
    #: Share of one CPU the worker may use, averaged over ``cpu_window`` seconds
    #: (``None``: no limit). A worker above it is paused until it is back within.
    cpu_share: float | None = 0.1
    cpu_window: float = 5.0
    open_files: int = 64
    file_mb: int = 64
    processes: int = 64
    #: Seconds a cancelled call may take to end before its worker is killed as hung.
    cancel_grace: float = 1.0
    #: Seconds a worker may take to import its plugin and say it is ready.
    start_timeout: float = 20.0
    #: Total size the plugin's data directory may grow to, in MiB.
    disk_mb: int = 256
    #: Frames a worker may send per second (twice that in a burst) before it is killed.
    frames_per_second: int = 2000
    #: Context calls a worker may have waiting for the host at once; more are refused.
    context_calls: int = 64


@dataclass(frozen=True, slots=True)
class IsolationPolicy:
    """Who is trusted, the workers' limits, and when a failing worker stops being restarted.

    :param trusted: plugin ids that run in-process; ``"*"`` trusts every plugin.
    :param limits: the limits of every worker, unless ``per_plugin`` says otherwise.
    :param allowed_modules: extra modules a plugin's code may import, by plugin id.
    :param max_failures: worker failures within ``failure_window`` seconds that
        suspend the plugin (the circuit breaker) instead of restarting it again.
    :param restart_backoff: seconds before the first restart; doubled for each
        further failure in the window, at most ``max_backoff``.
    :param seccomp: load the seccomp filter in workers (where the kernel allows).
    :param drop_privileges: start workers with no-new-privs and no capabilities, in a
        network namespace of their own unless granted ``network`` (where the system
        allows; otherwise a warning is logged and the other layers still hold).
    :param namespaces: start workers in mount, PID, IPC and network namespaces of their
        own (bubblewrap).
    :param landlock: confine workers' file access with Landlock.
    :param cgroups: hold workers to their memory, CPU and process limits with a cgroup
        each (the rlimits and the CPU governor hold where none can be made).
    :param own_uid: run each worker as a uid of its own when the host runs as root.
    :param python_layer: install the audit hook and the import policy in workers: they
        give clear, named refusals, but the kernel layers are the boundary. Turned off
        only to show that the kernel layers hold alone.
    :param strict_layers: refuse to start a worker that lacks any kernel layer, instead
        of starting it with a warning.
    :param zygote: fork workers from one pre-imported process per host, each entering
        the same kernel layers itself (falls back to fresh interpreters behind
        bubblewrap where a process cannot make its own namespaces).
    """

    trusted: frozenset[str] = frozenset()
    limits: WorkerLimits = WorkerLimits()
    per_plugin: Mapping[str, WorkerLimits] = field(default_factory=dict)
    allowed_modules: Mapping[str, frozenset[str]] = field(default_factory=dict)
    max_failures: int = 3
    failure_window: float = 60.0
    restart_backoff: float = 0.25
    max_backoff: float = 10.0
    seccomp: bool = True
    drop_privileges: bool = True
    namespaces: bool = True
    landlock: bool = True
    cgroups: bool = True
    own_uid: bool = True
    python_layer: bool = True
    strict_layers: bool = False
    zygote: bool = True

    def __post_init__(self) -> None:
        trusted: object = self.trusted
        if isinstance(trusted, IsolationPolicy):
            raise TypeError(
                "IsolationPolicy(trusted=...) takes plugin ids, not a policy; to trust every "
                "plugin pass isolation=TRUST_ALL to the host, or use trusted={'*'}"
            )
        if isinstance(trusted, str):  # one id: not its letters
            trusted = (trusted,)
        if not isinstance(trusted, Iterable) or not all(isinstance(i, str) for i in trusted):
            raise TypeError(
                f"IsolationPolicy(trusted=...) takes plugin ids (strings), not {trusted!r}"
            )
        object.__setattr__(self, "trusted", frozenset(trusted))
        for name, limits in [("limits", self.limits), *self.per_plugin.items()]:
            if not isinstance(limits, WorkerLimits):
                raise TypeError(f"the limits of {name!r} must be WorkerLimits, not {limits!r}")
        for name in ("max_failures", "failure_window", "restart_backoff", "max_backoff"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (0 < value < float("inf"))
            ):
                raise ValueError(f"IsolationPolicy({name}=...) must be a positive number")

    @classmethod
    def trusting(cls, plugin_ids: Iterable[str]) -> IsolationPolicy:
        """A policy that trusts ``plugin_ids`` (``["*"]``: all) and isolates the rest."""
        return cls(trusted=frozenset(plugin_ids))

    def is_trusted(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` runs in the host's own process."""
        return "*" in self.trusted or plugin_id in self.trusted

    def limits_for(self, plugin_id: str) -> WorkerLimits:
        return self.per_plugin.get(plugin_id, self.limits)


#: Every plugin in-process: for development and for hosts that run only their own plugins.
TRUST_ALL = IsolationPolicy(trusted=frozenset({"*"}))
