"""Guarded calls into plugins: timeout, exception capture, metrics.

Every call the host makes into a plugin goes through :class:`CallGuard`. Whatever
the plugin does (raise, hang, return garbage) the caller gets either the result
or a :class:`~acp_plugins.errors.PluginCallError`, the plugin's record gets the
error and the call's latency, and no other plugin is affected.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from functools import partial
from time import perf_counter
from types import CoroutineType
from typing import Any

from acp_plugins.errors import CallTimeout, PluginCallError
from acp_plugins.printable import printable
from acp_plugins.runtime.latency import LATENCY_BOUNDS
from acp_plugins.runtime.record import PluginFailure, PluginRecord

__all__ = ["DEFAULT_TIMEOUT", "CallGuard", "call_lifecycle_hook", "invalid_return"]

logger = logging.getLogger(__name__)

#: Seconds a call into a plugin may take before it is abandoned.
DEFAULT_TIMEOUT = 5.0

#: Result types that are never awaitable: most answers, checked without the ABC machinery.
_PLAIN_RESULTS: frozenset[type] = frozenset(
    {float, int, bool, str, bytes, type(None), dict, list, tuple}
)


def _is_awaitable(value: object) -> bool:
    kind = type(value)
    if kind in _PLAIN_RESULTS:
        return False
    return kind is CoroutineType or inspect.isawaitable(value)


#: Each latency bucket's bounds: over ``_LOWER[i]``, up to ``_UPPER[i]``.
_LOWER = (0.0, *LATENCY_BOUNDS)
_UPPER = (*LATENCY_BOUNDS, float("inf"))


class CallGuard:
    """Calls hooks of plugins, one or many at once, never letting a failure escape raw."""

    __slots__ = ("_in_flight", "timeout")

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        #: id(handle) -> its calls still running (awaited ones; a plain hook ends as it starts).
        self._in_flight: dict[int, int] = {}

    def running(self, handle: object) -> int:
        """How many calls started on ``handle`` are still running."""
        return self._in_flight.get(id(handle), 0)

    async def drained(self, handle: object, seconds: float) -> int:
        """Wait up to ``seconds`` for the calls running on ``handle`` to end; those left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.running(handle) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return self.running(handle)

    def _landed(self, key: int, _task: object) -> None:
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
        else:
            del self._in_flight[key]

    async def call(
        self,
        record: PluginRecord,
        hook: str,
        kwargs: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call ``hook`` of one plugin; raise :class:`PluginCallError` on any failure."""
        outcome = await self._run(record, hook, kwargs, timeout)
        if isinstance(outcome, PluginCallError):
            raise outcome
        return outcome

    async def call_many(
        self,
        records: Sequence[PluginRecord],
        hook: str,
        kwargs: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> list[Any]:
        """Call ``hook`` of several plugins concurrently (each within ``timeout``, if given).

        Returns one outcome per record, in order: the result, or the
        :class:`PluginCallError` that call ended with. Plain hooks complete as
        they are started; only awaitable results are gathered.
        """
        outcomes: list[Any] = [None] * len(records)
        pending: list[tuple[int, PluginRecord, Any, float]] = []
        limit = self.timeout
        bucket_of, bounds = bisect_left, LATENCY_BOUNDS  # local: read once, not per call
        # the calls of one fan-out mostly take alike: the last bucket's bounds are kept and
        # a call that falls in them is counted without a search
        bucket, lower, upper = 0, 0.0, -1.0
        # one clock read per call: a call starts when the one before it ended
        started = perf_counter()
        for position, record in enumerate(records):
            try:
                result = record.handle.invoke(hook, kwargs)  # type: ignore[union-attr]
            except (Exception, SystemExit) as error:
                outcomes[position] = self._failed(record, hook, error, started)
                started = perf_counter()
                continue
            kind = type(result)
            if kind not in _PLAIN_RESULTS and (
                kind is CoroutineType or inspect.isawaitable(result)
            ):
                pending.append((position, record, result, started))
                started = perf_counter()
                continue
            ended = perf_counter()
            elapsed, started = ended - started, ended
            if elapsed > limit:  # a plain hook cannot be interrupted; its late answer is refused
                outcomes[position] = self._timed_out(record, hook, ended - elapsed, limit)
                continue
            stats = record.metrics.get(hook) or record.stats(hook)  # _finished, inline
            stats.calls += 1
            stats.total_seconds += elapsed
            if elapsed > stats.max_seconds:
                stats.max_seconds = elapsed
            if (buckets := stats.buckets) is not None:
                if not lower < elapsed <= upper:
                    bucket = bucket_of(bounds, elapsed)
                    lower, upper = _LOWER[bucket], _UPPER[bucket]
                buckets[bucket] += 1
            outcomes[position] = result
        if pending:
            settled = await self._settle(
                [(r, result, t) for _, r, result, t in pending], hook, timeout
            )
            for (position, *_), outcome in zip(pending, settled, strict=True):
                outcomes[position] = outcome
        return outcomes

    async def _run(
        self, record: PluginRecord, hook: str, kwargs: Mapping[str, Any], timeout: float | None
    ) -> Any:
        started = perf_counter()
        handle = record.handle
        if handle is None:
            return self._failed(record, hook, RuntimeError("the plugin is not loaded"), started)
        try:
            result = handle.invoke(hook, kwargs)
        except (Exception, SystemExit) as error:
            return self._failed(record, hook, error, started)
        if _is_awaitable(result):
            return await self._await(record, hook, result, started, timeout)
        return self._finished(record, hook, result, started, timeout)

    async def _await(
        self, record: PluginRecord, hook: str, awaitable: Any, started: float, timeout: float | None
    ) -> Any:
        return (await self._settle([(record, awaitable, started)], hook, timeout))[0]

    async def _settle(
        self,
        calls: Sequence[tuple[PluginRecord, Any, float]],
        hook: str,
        timeout: float | None,
    ) -> list[Any]:
        """Await the awaitables of started calls concurrently, each within the time limit.

        Each runs as a task; one that is not done at the limit is cancelled and
        left behind rather than awaited, so a plugin that ignores cancellation
        cannot hold the host.
        """
        limit = self.timeout if timeout is None else timeout
        tasks = [asyncio.ensure_future(_contained(awaitable)) for _, awaitable, _ in calls]
        # counted per handle, so that a reload knows when the old one's calls are done;
        # no await has run since these calls started: each record's handle is still theirs
        in_flight = self._in_flight
        for (record, _, _), task in zip(calls, tasks, strict=True):
            key = id(record.handle)
            in_flight[key] = in_flight.get(key, 0) + 1
            task.add_done_callback(partial(self._landed, key))
        try:
            await asyncio.wait(tasks, timeout=limit)
        except asyncio.CancelledError:  # the caller gave up: so do the plugins' calls
            for task in tasks:
                task.cancel()
            raise
        outcomes = []
        for (record, _, started), task in zip(calls, tasks, strict=True):
            if not task.done():
                task.cancel()
                task.add_done_callback(_forget)
                outcomes.append(self._timed_out(record, hook, started, limit))
            elif task.cancelled():
                outcomes.append(self._failed(record, hook, RuntimeError("cancelled"), started))
            elif isinstance(raised := task.exception(), _PluginRaised):
                outcomes.append(self._failed(record, hook, raised.error, started))
            else:
                result, ended = task.result()
                outcomes.append(self._finished(record, hook, result, started, timeout, ended))
        return outcomes

    def _finished(
        self,
        record: PluginRecord,
        hook: str,
        result: Any,
        started: float,
        timeout: float | None,
        ended: float | None = None,
    ) -> Any:
        limit = self.timeout if timeout is None else timeout
        elapsed = (ended or perf_counter()) - started
        if elapsed > limit:
            # A plain hook run inline cannot be interrupted; its late answer is still refused.
            return self._timed_out(record, hook, started, limit)
        stats = record.metrics.get(hook) or record.stats(hook)
        stats.calls += 1
        stats.total_seconds += elapsed
        if elapsed > stats.max_seconds:
            stats.max_seconds = elapsed
        if (buckets := stats.buckets) is not None:
            buckets[bisect_left(LATENCY_BOUNDS, elapsed)] += 1
        return result

    def _timed_out(
        self, record: PluginRecord, hook: str, started: float, limit: float
    ) -> PluginCallError:
        record.stats(hook).add(perf_counter() - started, error=True, timeout=True)
        error = CallTimeout(
            f"'{record.plugin_id}' did not answer {hook} within {limit:g} s",
            plugin_id=record.plugin_id,
            hook=hook,
        )
        record.call_errors.append(PluginFailure(hook, error.message))
        logger.warning("%s", error.message)
        return error

    def _failed(
        self, record: PluginRecord, hook: str, error: BaseException, started: float
    ) -> PluginCallError:
        record.stats(hook).add(perf_counter() - started, error=True)
        if isinstance(error, PluginCallError) and error.plugin_id == record.plugin_id:
            failure = error
        elif isinstance(error, PluginCallError):  # raised by another plugin this one called
            failure = PluginCallError(
                f"'{record.plugin_id}' failed in {hook}: {error.message}",
                plugin_id=record.plugin_id,
                hook=hook,
            )
            failure.__cause__ = error
        else:
            failure = PluginCallError(
                f"'{record.plugin_id}' failed in {hook}: {type(error).__name__}: "
                + printable(error, limit=2000),
                plugin_id=record.plugin_id,
                hook=hook,
            )
            failure.__cause__ = error
        record.call_errors.append(PluginFailure(hook, failure.message))
        logger.warning("%s", failure.message)
        logger.debug("%s: traceback", record.plugin_id, exc_info=error)
        return failure


def invalid_return(record: PluginRecord, hook: str, what: str) -> PluginCallError:
    """The error for a plugin that returned something unusable from ``hook``, recorded on it."""
    error = PluginCallError(
        f"'{record.plugin_id}' returned {what} from {hook}", plugin_id=record.plugin_id, hook=hook
    )
    record.call_errors.append(PluginFailure(hook, error.message))
    record.stats(hook).errors += 1
    logger.warning("%s", error.message)
    return error


async def call_lifecycle_hook(
    guard: CallGuard, record: PluginRecord, hook: str, kwargs: Mapping[str, Any], stage: str
) -> bool:
    """Call an optional lifecycle hook; ``False`` (recorded at ``stage``) if it fails or refuses."""
    handle = record.handle
    if handle is None or not handle.implements(hook):
        return True
    try:
        result = await guard.call(record, hook, kwargs)
    except PluginCallError as error:
        record.fail(stage, error.message)
        return False
    if result is False:
        record.fail(stage, f"'{record.plugin_id}' refused: {hook} returned False")
        return False
    return True


def _forget(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's outcome so that asyncio does not report it."""
    if not task.cancelled():
        task.exception()


class _PluginRaised(Exception):
    """Carries what a plugin's awaitable raised out of the task that ran it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


async def _contained(awaitable: Any) -> tuple[Any, float]:
    """Await a plugin's awaitable: its result and when it ended, or :class:`_PluginRaised`.

    The awaitable runs as a task, and a task re-raises ``SystemExit`` out of the
    event loop itself; and a ``TimeoutError`` the plugin raises must not be taken
    for the guard's own timeout. Cancellation passes through.
    """
    try:
        return await awaitable, perf_counter()
    except (Exception, SystemExit) as error:
        raise _PluginRaised(error) from error
