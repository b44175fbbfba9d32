"""What a worker needs to come back after a crash: its replay, its failure window, its events.

A worker that dies is restarted after a backoff and taken through the
lifecycle hooks it had been through (:class:`LifecycleReplay`), with the same
arguments, so the plugin is where it was, runtime settings included. Failures
are counted over a sliding window (:class:`FailureWindow`): past
``max_failures`` within ``failure_window`` seconds the worker is not restarted
again and the host is told (the circuit breaker).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from acp_plugins.loading.trust import IsolationPolicy

__all__ = ["REPLAYED", "FailureWindow", "LifecycleReplay", "WorkerEvents"]

#: The lifecycle hooks a restarted worker is taken through again, in order.
REPLAYED = (
    "$resolve_config",
    "on_discover",
    "on_load",
    "validate_config",
    "initialize",
    "on_initialize",
    "activate",
    "on_activate",
)


class WorkerEvents(Protocol):
    """What the host hears from its workers."""

    def worker_event(
        self, plugin_id: str, outcome: str, detail: str, *, failure: bool = False
    ) -> None:
        """Something happened to a worker (``failure``: record it on the plugin)."""
        ...

    def worker_layers(
        self, plugin_id: str, layers: Sequence[str], missing: Mapping[str, str]
    ) -> None:
        """A worker started with these isolation layers, and without these (and why)."""
        ...

    def sandbox_refused(self, plugin_id: str, event: str, message: str) -> None:
        """A worker's sandbox refused an operation."""
        ...

    def worker_gave_up(self, plugin_id: str, reason: str) -> None:
        """The worker failed too often; the host should suspend the plugin."""
        ...


class LifecycleReplay:
    """The lifecycle calls a restarted worker must be taken through again, with their arguments."""

    __slots__ = ("_calls", "_proposed_inputs")

    def __init__(self) -> None:
        self._calls: dict[str, Mapping[str, Any]] = {}
        self._proposed_inputs: dict[str, Any] | None = None

    def remember(self, hook: str, kwargs: Mapping[str, Any], result: Any) -> None:
        """Note a call that succeeded (a refused one, ``False``, changes nothing)."""
        if result is False:
            return
        calls = self._calls
        if hook == "$resolve_config":
            self._proposed_inputs = dict(kwargs)
            if "$resolve_config" not in calls:
                calls[hook] = dict(kwargs)  # the first: it is put in force at initialize
            return
        if hook in ("on_config_changed", "initialize") and self._proposed_inputs is not None:
            calls["$resolve_config"] = self._proposed_inputs
        if hook in REPLAYED:
            calls[hook] = dict(kwargs)
        elif hook == "on_config_changed":
            calls["validate_config"] = dict(kwargs)
        elif hook in ("deactivate", "on_suspend"):
            calls.pop("activate", None)
            calls.pop("on_activate", None)

    def calls(
        self, implemented: frozenset[str], skip: tuple[str, ...] = ()
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """The calls to make again, in lifecycle order, of the hooks the plugin implements."""
        return [
            (hook, self._calls[hook])
            for hook in REPLAYED
            if hook in self._calls
            and (hook in implemented or hook == "$resolve_config")
            and hook not in skip
        ]


class FailureWindow:
    """Failures within the last ``failure_window`` seconds, and the backoff before a restart."""

    __slots__ = ("_failures", "_policy")

    def __init__(self, policy: IsolationPolicy) -> None:
        self._policy = policy
        self._failures: deque[float] = deque()

    def __len__(self) -> int:
        return len(self._failures)

    def clear(self) -> None:
        """Start counting over (a plugin resumed by hand)."""
        self._failures.clear()

    def failed(self, now: float | None = None) -> float | None:
        """Count a failure; the delay before restarting, or ``None`` to give up."""
        now = time.monotonic() if now is None else now
        policy = self._policy
        self._failures.append(now)
        while self._failures and now - self._failures[0] > policy.failure_window:
            self._failures.popleft()
        if len(self._failures) >= policy.max_failures:
            return None
        backoff: float = policy.restart_backoff * 2 ** (len(self._failures) - 1)
        return min(backoff, policy.max_backoff)
