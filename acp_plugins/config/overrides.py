"""The runtime overrides: ``{plugin_id: {nested settings}}`` in one JSON file the host owns.

``acp-plugins config set`` and ``PluginHost.set_config`` change settings while the host runs;
:class:`OverrideStore` keeps those changes in ``<data_dir>/overrides.json``, the highest of the
configuration layers. What it guarantees:

- **A write is all or nothing.** The new content goes to a temp file in the same directory
  (``.<name>.tmp-<random>``), is flushed and fsynced, then ``os.replace``-d onto the file, and
  the directory is fsynced. A crash or kill at any moment leaves the old or the new complete
  file, never a partial one; the temp file a killed writer leaves behind is never read, and the
  next write removes such files once they are a minute old.
- **No lost update.** Every change is a read-modify-write under an exclusive ``fcntl.flock`` on
  ``<name>.lock`` beside the file, so two processes setting values at once both land. Reads take
  a shared lock. (POSIX only: the lock is ``flock``.)
- **Nothing is dropped silently.** A file that is not JSON, not an object of objects, or nested
  more than ``MAX_DEPTH`` levels deep, is
  moved aside to ``<name>.corrupt-<UTC timestamp>``; :attr:`OverrideStore.problem` says where
  it went, a warning is logged, and the host goes on as if there were no overrides.
- **Only JSON goes in.** A value that would not come back from the file as it went in (a set,
  a NaN, a dict with non-string keys...) is refused with :class:`TypeError` before anything is
  written; a setting path must be dotted identifiers such as ``db.path`` (:class:`ValueError`).

A new file is created readable by its owner only (overrides may hold secrets); rewriting an
existing file keeps its permissions.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import math
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["OverrideStore"]

logger = logging.getLogger(__name__)

Overrides = dict[str, dict[str, Any]]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: How deep the file's objects and arrays may nest (a plugin entry and its settings tables).
MAX_DEPTH = 40
#: A killed writer's temp file is removed by a later write once it is this old (seconds).
STALE_TEMP_AGE = 60.0

# Lock files this thread holds (absolute path -> held exclusively): a read made from inside an
# update's change function must not wait for the lock its own thread holds.
_held = threading.local()


class OverrideStore:
    """Runtime overrides, ``{plugin_id: {nested settings}}``, persisted in one JSON file.

    Every call reads the file afresh, so a store always sees what other processes wrote.
    """

    __slots__ = ("_lock_path", "path", "problem")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: Set when the file was corrupt and moved aside; says where it went.
        self.problem: str | None = None
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"OverrideStore({str(self.path)!r})"

    def load(self) -> Overrides:
        """Every plugin's overrides (a copy the caller owns); ``{}`` when there is no file."""
        if not self.path.parent.is_dir():
            return {}
        with self._locked(exclusive=False) as exclusive:
            data, reason = self._read()
            if reason is None:
                return data
            if exclusive:
                self._set_aside(reason)
                return {}
        # Moving the file aside is a change: do it under the exclusive lock, after checking
        # that no other process has dealt with the file in between.
        with self._locked(exclusive=True):
            return self._read_for_update()

    def get(self, plugin_id: str) -> dict[str, Any]:
        """The overrides of one plugin (a copy the caller owns); ``{}`` when it has none."""
        return self.load().get(plugin_id, {})

    def update(self, change: Callable[[Overrides], None]) -> Overrides:
        """Apply ``change`` to the overrides and persist the result; return the new overrides.

        Under the exclusive lock: the file is read again, ``change(data)`` mutates ``data`` in
        place, and the result is written atomically (not at all when nothing changed). If
        ``change`` raises, or leaves something that is not JSON, nothing is written and the
        exception propagates. ``change`` may call :meth:`load` and :meth:`get` but not
        :meth:`update`, :meth:`set` or :meth:`unset` (:class:`RuntimeError`): make every change
        in the one function.
        """
        with self.editing() as data:
            change(data)
        return data

    @contextmanager
    def editing(self) -> Iterator[Overrides]:
        """Hold the exclusive lock and yield the overrides, read afresh, to change in place.

        On a normal exit the changed overrides are checked and written atomically (not at
        all when nothing changed); if the block raises, nothing is written. The lock is
        held for the whole block, so the block may validate the change (even with an
        ``await``) before it lands: no other process writes in between.
        """
        with self._locked(exclusive=True):
            data = self._read_for_update()
            before = copy.deepcopy(data)
            yield data
            if data != before:
                _check_overrides(data)
                self._write(data)

    def set(self, plugin_id: str, path: str, value: Any) -> None:
        """Override setting ``path`` (``"db.path"``) of ``plugin_id`` with ``value``.

        Tables on the way are created as needed; one that held a plain value is replaced by a
        table. ``value`` must be JSON (:class:`TypeError` otherwise), and replaces whatever
        ``path`` held, table or not.
        """
        _check_plugin_id(plugin_id)
        keys = _split_path(path)
        _check_json(value, f"the value for {plugin_id!r} setting {path!r}")
        stored = copy.deepcopy(value)

        def change(data: Overrides) -> None:
            table: dict[str, Any] = data.setdefault(plugin_id, {})
            for key in keys[:-1]:
                child = table.get(key)
                if not isinstance(child, dict):
                    child = table[key] = {}
                table = child
            table[keys[-1]] = stored

        self.update(change)

    def unset(self, plugin_id: str, path: str) -> bool:
        """Remove the override of setting ``path`` of ``plugin_id``; True if there was one.

        Tables left empty by the removal are removed too, up to the plugin's entry.
        """
        _check_plugin_id(plugin_id)
        keys = _split_path(path)
        removed = False

        def change(data: Overrides) -> None:
            nonlocal removed
            removed = _remove(data, [plugin_id, *keys])

        self.update(change)
        return removed

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[bool]:
        """Hold the lock file; yield whether the lock is held exclusively."""
        held: dict[str, bool] = _held.__dict__.setdefault("locks", {})
        key = os.path.abspath(self._lock_path)
        if key in held:
            if exclusive:
                raise RuntimeError(
                    f"the overrides in {self.path} are already being updated by this thread; "
                    "make every change in the one function given to update()"
                )
            yield held[key]
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            held[key] = exclusive
            try:
                yield exclusive
            finally:
                del held[key]
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> tuple[Overrides, str | None]:
        """The file's overrides, or ``({}, reason)`` when the file is corrupt."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, None
        return _parse(raw)

    def _read_for_update(self) -> Overrides:
        """Read under the exclusive lock, moving a corrupt file aside."""
        data, reason = self._read()
        if reason is not None:
            self._set_aside(reason)
        return data

    def _set_aside(self, reason: str) -> None:
        """Move the corrupt file out of the way (it is never overwritten) and report it."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        # Two corrupt files in one second: keep both. Safe, the exclusive lock is held.
        serial = 1
        while target.exists():
            serial += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{serial}")
        os.replace(self.path, target)
        _fsync_directory(self.path.parent)
        self.problem = (
            f"overrides file {self.path} was corrupt ({reason}) and was moved to {target}; "
            "the host goes on without runtime overrides"
        )
        logger.warning("%s", self.problem)

    def _write(self, data: Overrides) -> None:
        """Replace the file with ``data``, atomically and durably."""
        # Serialise first: a failure here must not leave even a temp file behind. ASCII, so
        # that any str (even a lone surrogate) is written and reads back as it was.
        content = json.dumps(data, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
        directory = self.path.parent
        self._remove_stale_temp_files()
        try:
            mode: int | None = stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            mode = None  # mkstemp's 0o600 stays
        fd, temp = tempfile.mkstemp(dir=directory, prefix=self._temp_prefix)
        try:
            with os.fdopen(fd, "wb") as handle:
                if mode is not None:
                    os.fchmod(handle.fileno(), mode)
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(directory)

    @property
    def _temp_prefix(self) -> str:
        return f".{self.path.name}.tmp-"

    def _remove_stale_temp_files(self) -> None:
        """Remove temp files that killed writers left (only old ones, to be safe)."""
        cutoff = time.time() - STALE_TEMP_AGE
        with os.scandir(self.path.parent) as entries:
            for entry in entries:
                if not entry.name.startswith(self._temp_prefix):
                    continue
                with suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)


def _parse(raw: bytes) -> tuple[Overrides, str | None]:
    """Overrides from the file's bytes, or ``({}, reason)`` when they are not valid."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        return {}, "nested too deeply to read"
    except UnicodeDecodeError as error:
        return {}, f"not UTF-8 text: byte {error.start}"
    except json.JSONDecodeError as error:
        return {}, f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    except ValueError as error:
        return {}, f"invalid JSON: {error}"
    if not isinstance(data, dict):
        return {}, f"the top level is {_kind(data)}, not an object"
    for plugin_id, settings in data.items():
        if not isinstance(settings, dict):
            return {}, f"the entry of {plugin_id!r} is {_kind(settings)}, not an object"
    if _depth(data) > MAX_DEPTH:
        return {}, f"nested more than {MAX_DEPTH} levels deep"
    return data, None


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in ``value``, measured without recursion.

    A container met twice (shared, or containing itself) is measured once.
    """
    deepest, stack, seen = 0, [(value, 0)], set()
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)) and id(item) not in seen:
            seen.add(id(item))
            deepest = max(deepest, level + 1)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_plugin_id(plugin_id: str) -> None:
    if not isinstance(plugin_id, str) or not plugin_id:
        raise ValueError(f"plugin id must be a non-empty string, not {plugin_id!r}")


def _split_path(path: str) -> list[str]:
    """``"db.path"`` -> ``["db", "path"]``; ValueError unless dotted identifiers."""
    keys = path.split(".") if isinstance(path, str) else []
    if not keys or not all(_KEY.fullmatch(key) for key in keys):
        raise ValueError(
            f"setting path {path!r} is not valid: use names of letters, digits and '_' "
            "joined by dots, such as 'db.path'"
        )
    return keys


def _remove(table: dict[str, Any], keys: list[str]) -> bool:
    """Delete ``keys`` from nested ``table``, pruning tables left empty; True if found."""
    first, rest = keys[0], keys[1:]
    if not rest:
        if first not in table:
            return False
        del table[first]
        return True
    child = table.get(first)
    if not isinstance(child, dict) or not _remove(child, rest):
        return False
    if not child:
        del table[first]
    return True


def _check_overrides(data: Overrides) -> None:
    """TypeError unless ``data`` is ``{plugin_id: {JSON}}`` (what update() may write)."""
    for plugin_id, settings in data.items():
        _check_plugin_id(plugin_id)
        if not isinstance(settings, dict):
            raise TypeError(
                f"the overrides of {plugin_id!r} must be a dict of settings, not {_kind(settings)}"
            )
        _check_json(settings, f"the overrides of {plugin_id!r}", root="settings")


def _check_json(value: Any, what: str, root: str = "value") -> None:
    """TypeError unless ``value`` is JSON that reads back equal (names the bad part)."""
    if _depth(value) > MAX_DEPTH - 2:  # within a plugin's entry in the file
        raise TypeError(f"{what} nests more than {MAX_DEPTH - 2} levels deep")
    problem = _json_problem(value, root, set())
    if problem is not None:
        where, reason = problem
        raise TypeError(f"{what} is not JSON-serialisable: {where} {reason}")


def _json_problem(value: Any, where: str, open_containers: set[int]) -> tuple[str, str] | None:
    """(where, what is wrong) for the first part of ``value`` that is not plain JSON."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, f"is {value}, which JSON cannot hold")
    if isinstance(value, (dict, list)):
        if id(value) in open_containers:
            return where, "contains itself"
        open_containers.add(id(value))
        try:
            if isinstance(value, list):
                items = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
            else:
                for key in value:
                    if not isinstance(key, str):
                        return where, f"has a key {key!r} that is not a string"
                items = [(f"{where}[{key!r}]", item) for key, item in value.items()]
            for item_where, item in items:
                problem = _json_problem(item, item_where, open_containers)
                if problem is not None:
                    return problem
        finally:
            open_containers.discard(id(value))
        return None
    return where, f"is of type {type(value).__name__}"


def _kind(value: Any) -> str:
    """How JSON calls the type of ``value`` (for messages)."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return kinds.get(type(value), f"a {type(value).__name__}")
