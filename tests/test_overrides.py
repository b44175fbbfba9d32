"""Tests for acp_plugins.config.overrides: the runtime overrides file, real files and processes.

The crash and race tests start real writer processes (``tests/overrides_writer.py``): one is
killed with SIGKILL at random moments while it rewrites a multi-megabyte file, and the file
must always be a complete old or new state; three write at once, and no update may be lost.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acp_plugins.config import overrides
from acp_plugins.config.overrides import OverrideStore
from conftest import fixture_plugin

REPO = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).with_name("overrides_writer.py")


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "overrides.json"


def on_disk(path: Path) -> Any:
    """The file's content, read without the store (which would move a corrupt file aside)."""
    return json.loads(path.read_bytes())


# -- set, get, unset -------------------------------------------------------------------------


def test_a_missing_file_is_no_overrides_and_reading_creates_nothing(path: Path) -> None:
    store = OverrideStore(path)
    assert store.load() == {}
    assert store.get("echo") == {}
    assert store.problem is None
    assert not path.parent.exists()


def test_set_creates_the_directory_the_file_and_nested_tables(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "db.path", "/tmp/echo.db")
    store.set("echo", "db.pool.size", 5)
    store.set("echo", "greeting", "hi")
    store.set("sqlite-store", "timeout", 2.5)

    expected = {
        "echo": {"db": {"path": "/tmp/echo.db", "pool": {"size": 5}}, "greeting": "hi"},
        "sqlite-store": {"timeout": 2.5},
    }
    assert store.load() == expected
    assert OverrideStore(path).load() == expected
    assert store.get("echo") == expected["echo"]
    assert on_disk(path) == expected
    assert path.with_name("overrides.json.lock").exists()


def test_the_file_is_indented_sorted_json(path: Path) -> None:
    store = OverrideStore(path)
    store.set("zeta", "b", 1)
    store.set("alpha", "a", "é")
    expected = {"alpha": {"a": "é"}, "zeta": {"b": 1}}
    text = json.dumps(expected, indent=2, sort_keys=True) + "\n"
    assert path.read_text(encoding="ascii") == text


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -7, 2**70, 1.5, -0.25, "", "text ✓", "lone \ud800",
     [], [1, "a", None, [2]], {}, {"nested": {"deep": [1.0, {"x": None}]}}],
)  # fmt: skip
def test_every_json_value_round_trips(path: Path, value: Any) -> None:
    OverrideStore(path).set("echo", "a.b", value)
    got = OverrideStore(path).get("echo")["a"]["b"]
    assert got == value
    assert type(got) is type(value)


def test_load_and_get_return_copies(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "a.b", [1])
    store.load()["echo"]["a"]["b"].append(2)
    store.get("echo")["a"].clear()
    assert store.get("echo") == {"a": {"b": [1]}}


def test_set_replaces_a_table_with_a_value_and_a_value_with_a_table(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "db.path", "x")
    store.set("echo", "db", "flat")
    assert store.get("echo") == {"db": "flat"}
    store.set("echo", "db.path.parts", ["a"])
    assert store.get("echo") == {"db": {"path": {"parts": ["a"]}}}


def test_set_does_not_keep_a_reference_to_the_value(path: Path) -> None:
    store = OverrideStore(path)
    value = {"a": [1]}
    store.set("echo", "x", value)
    value["a"].append(2)
    assert store.get("echo") == {"x": {"a": [1]}}


def test_unset_removes_and_prunes_empty_tables_up_to_the_plugin(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "db.pool.size", 5)
    store.set("echo", "db.path", "x")
    store.set("tools", "a", 1)

    assert store.unset("echo", "db.pool.size") is True
    assert store.get("echo") == {"db": {"path": "x"}}
    assert store.unset("echo", "db.path") is True
    assert store.load() == {"tools": {"a": 1}}
    assert store.unset("tools", "a") is True
    assert store.load() == {}
    assert on_disk(path) == {}


def test_unset_removes_a_whole_table(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "db.pool.size", 5)
    store.set("echo", "other", 1)
    assert store.unset("echo", "db") is True
    assert store.get("echo") == {"other": 1}


@pytest.mark.parametrize("setting", ["missing", "db.missing", "db.path.below", "a.b.c"])
def test_unset_of_what_is_not_there_is_false_and_writes_nothing(path: Path, setting: str) -> None:
    store = OverrideStore(path)
    store.set("echo", "db.path", "x")
    before = path.stat()
    assert store.unset("echo", setting) is False
    assert store.unset("nobody", "db") is False
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_ino == before.st_ino  # not even rewritten with the same content
    assert store.get("echo") == {"db": {"path": "x"}}


def test_unset_on_a_missing_file_is_false_and_creates_no_file(path: Path) -> None:
    assert OverrideStore(path).unset("echo", "a") is False
    assert not path.exists()


BAD_PATH = "is not valid: use names of letters, digits and '_' joined by dots, such as 'db.path'"


@pytest.mark.parametrize(
    "setting", ["", ".", "a.", ".a", "a..b", "1a", "a-b", "a b", "a.b.", "a.b c", "ä.b", 5, None]
)
def test_a_bad_setting_path_is_refused_and_nothing_is_written(path: Path, setting: Any) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    content = path.read_bytes()
    with pytest.raises(ValueError) as raised:
        store.set("echo", setting, 2)
    assert str(raised.value) == f"setting path {setting!r} {BAD_PATH}"
    with pytest.raises(ValueError, match="is not valid"):
        store.unset("echo", setting)
    assert path.read_bytes() == content


@pytest.mark.parametrize("plugin_id", ["", None, 3])
def test_a_bad_plugin_id_is_refused(path: Path, plugin_id: Any) -> None:
    with pytest.raises(ValueError) as raised:
        OverrideStore(path).set(plugin_id, "a", 1)
    assert str(raised.value) == f"plugin id must be a non-empty string, not {plugin_id!r}"
    assert not path.exists()


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({1, 2}, "value is of type set"),
        ((1, 2), "value is of type tuple"),
        (b"bytes", "value is of type bytes"),
        (1j, "value is of type complex"),
        ({"a": [1, object()]}, "value['a'][1] is of type object"),
        ({1: "a"}, "value has a key 1 that is not a string"),
        (float("nan"), "value is nan, which JSON cannot hold"),
        ([1.0, float("-inf")], "value[1] is -inf, which JSON cannot hold"),
        (_cycle(), "value[0] contains itself"),
    ],
)
def test_a_value_that_is_not_json_is_refused_and_nothing_is_written(
    path: Path, value: Any, problem: str
) -> None:
    store = OverrideStore(path)
    with pytest.raises(TypeError) as raised:
        store.set("echo", "db.path", value)
    assert str(raised.value) == (
        f"the value for 'echo' setting 'db.path' is not JSON-serialisable: {problem}"
    )
    assert not path.exists()
    store.set("echo", "a", 1)
    content = path.read_bytes()
    with pytest.raises(TypeError):
        store.set("echo", "db.path", value)
    assert path.read_bytes() == content


# -- update ----------------------------------------------------------------------------------


def test_update_returns_the_new_overrides(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)

    def change(data: dict[str, dict[str, Any]]) -> None:
        data["echo"]["b"] = 2
        data["tools"] = {"c": 3}

    assert store.update(change) == {"echo": {"a": 1, "b": 2}, "tools": {"c": 3}}
    assert on_disk(path) == {"echo": {"a": 1, "b": 2}, "tools": {"c": 3}}


def test_a_change_that_raises_writes_nothing(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    content = path.read_bytes()

    def change(data: dict[str, dict[str, Any]]) -> None:
        data["echo"]["a"] = 2
        raise LookupError("refused")

    with pytest.raises(LookupError, match="refused"):
        store.update(change)
    assert path.read_bytes() == content
    assert sorted(os.listdir(path.parent)) == ["overrides.json", "overrides.json.lock"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"echo": 5}, "the overrides of 'echo' must be a dict of settings, not a number"),
        ({"echo": [1]}, "the overrides of 'echo' must be a dict of settings, not an array"),
        ({"echo": {"a": {1}}}, "the overrides of 'echo' is not JSON-serialisable: "
         "settings['a'] is of type set"),
        ({"echo": {"a": {2: 1}}}, "the overrides of 'echo' is not JSON-serialisable: "
         "settings['a'] has a key 2 that is not a string"),
    ],
)  # fmt: skip
def test_a_change_that_leaves_no_json_writes_nothing(
    path: Path, entries: dict[str, Any], message: str
) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    content = path.read_bytes()
    with pytest.raises(TypeError) as raised:
        store.update(lambda data: data.update(entries))
    assert str(raised.value) == message
    assert path.read_bytes() == content


def test_a_change_that_changes_nothing_writes_nothing(path: Path) -> None:
    store = OverrideStore(path)
    assert store.update(lambda data: None) == {}
    assert not path.exists()


def test_a_change_may_read_the_store_but_not_update_it(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    seen: list[Any] = []

    def change(data: dict[str, dict[str, Any]]) -> None:
        # Another store on the same file, too: the lock is per file, not per store.
        seen.append(OverrideStore(path).get("echo"))
        seen.append(store.load())
        store.set("echo", "b", 2)

    with pytest.raises(RuntimeError, match="already being updated by this thread"):
        store.update(change)
    assert seen == [{"a": 1}, {"echo": {"a": 1}}]
    assert store.get("echo") == {"a": 1}


# -- atomic writes ---------------------------------------------------------------------------


def test_a_new_file_is_private_and_a_rewrite_keeps_the_mode(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    store.set("echo", "a", 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_old_stray_temp_files_are_removed_by_the_next_write(path: Path) -> None:
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    old = path.with_name(".overrides.json.tmp-old1234")
    fresh = path.with_name(".overrides.json.tmp-new1234")
    other = path.with_name(".other.json.tmp-old1234")
    for stray in (old, fresh, other):
        stray.write_text('{"echo": {"a": "partial')
    hour_ago = time.time() - 3600
    for stray in (old, other):
        os.utime(stray, (hour_ago, hour_ago))

    assert store.get("echo") == {"a": 1}  # strays are never read
    store.set("echo", "a", 2)
    assert not old.exists()
    assert fresh.exists()  # a minute may not have passed: could be a live writer's
    assert other.exists()  # not ours
    assert store.get("echo") == {"a": 2}


def _start_writer(*args: str) -> subprocess.Popen[str]:
    """Start tests/overrides_writer.py; it has imported the store once this returns."""
    # This checkout's package, whatever is installed.
    pythonpath = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    process = subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n", "the writer did not start"
    return process


def _go(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("go\n")
    process.stdin.flush()
    assert process.stdout.readline() == "started\n"


@pytest.fixture()
def writers() -> Iterator[list[subprocess.Popen[str]]]:
    """Writer processes to kill at the end, whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


BIG = 3 * 1024 * 1024
KILLS = 15


def test_a_writer_killed_at_any_moment_leaves_a_complete_file(
    path: Path, writers: list[subprocess.Popen[str]]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    last_n = -1
    path.parent.mkdir()
    # The next writers start (import) while the current one writes, to keep the test short.
    waiting = deque(_start_writer("big", str(path), str(BIG)) for _ in range(3))
    writers.extend(waiting)
    for kill in range(KILLS):
        writer = waiting.popleft()
        if len(writers) < KILLS:
            waiting.append(_start_writer("big", str(path), str(BIG)))
            writers.append(waiting[-1])
        _go(writer)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(writer.pid, signal.SIGKILL)
        assert writer.wait() == -signal.SIGKILL

        where = f"after kill {kill + 1} (random seed {seed})"
        # Only the first writer may die before its first write; after that there is a file.
        assert path.exists() or kill == 0, f"the file went missing {where}"
        data = on_disk(path) if path.exists() else {}  # JSONDecodeError: a partial file
        assert set(data) <= {"writer", "other"}, where
        if "writer" in data:
            n, big = data["writer"]["n"], data["writer"]["big"]
            assert big == "x" * (BIG + n), f"len(big) is {len(big)} for n={n} {where}"
            assert n >= last_n, f"n went back from {last_n} to {n} {where}"
            last_n = n
        if kill:
            assert data["other"] == {"kill": kill - 1}, where

        store = OverrideStore(path)
        store.set("other", "kill", kill)
        assert store.problem is None
        assert OverrideStore(path).get("other") == {"kill": kill}
        assert OverrideStore(path).get("writer").get("n", -1) == last_n


def test_processes_writing_at_once_lose_no_update(
    path: Path, writers: list[subprocess.Popen[str]]
) -> None:
    count, per_process = 3, 50
    for name in range(count):
        writers.append(_start_writer("keys", str(path), str(name), str(per_process)))
    for writer in writers:  # all are ready: let them go together
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        assert writer.wait(timeout=60) == 0

    expected = {f"k{name}_{i}": i for name in range(count) for i in range(per_process)}
    assert OverrideStore(path).get("race") == expected


def test_threads_writing_at_once_lose_no_update(path: Path) -> None:
    def write(name: int) -> None:
        store = OverrideStore(path)
        for i in range(20):
            store.set("race", f"t{name}_{i}", i)

    threads = [threading.Thread(target=write, args=(name,)) for name in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert OverrideStore(path).get("race") == {f"t{n}_{i}": i for n in range(3) for i in range(20)}


# -- a corrupt file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "invalid JSON: Expecting property name enclosed in double quotes "
         "at line 1 column 2"),
        (b'{"echo": {"a": 1}', "invalid JSON: Expecting ',' delimiter at line 1 column 18"),
        (b"", "invalid JSON: Expecting value at line 1 column 1"),
        (b"\x00\x01garbage\xff", "not UTF-8 text: byte 9"),
        (b'{"echo": {"a": NaN}}', "invalid JSON: NaN is not a JSON value"),
        (b"[]", "the top level is an array, not an object"),
        (b"null", "the top level is null, not an object"),
        (b'{"echo": 5}', "the entry of 'echo' is a number, not an object"),
        (b'{"echo": {}, "tools": "on"}', "the entry of 'tools' is a string, not an object"),
    ],
)  # fmt: skip
def test_a_corrupt_file_is_moved_aside_and_reported(
    path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    path.parent.mkdir()
    path.write_bytes(content)
    store = OverrideStore(path)

    with caplog.at_level(logging.WARNING, logger="acp_plugins.config.overrides"):
        assert store.load() == {}

    [aside] = path.parent.glob("overrides.json.corrupt-*")
    assert aside.name[len("overrides.json.corrupt-") :].endswith("Z")
    time.strptime(aside.name[len("overrides.json.corrupt-") :], "%Y%m%dT%H%M%SZ")
    assert aside.read_bytes() == content
    assert not path.exists()
    assert store.problem == (
        f"overrides file {path} was corrupt ({reason}) and was moved to {aside}; "
        "the host goes on without runtime overrides"
    )
    assert [record.getMessage() for record in caplog.records] == [store.problem]

    store.set("echo", "a", 1)
    assert OverrideStore(path).load() == {"echo": {"a": 1}}
    assert aside.read_bytes() == content


def test_a_corrupt_file_found_by_an_update_is_moved_aside_before_the_write(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"garbage")
    store = OverrideStore(path)
    store.set("echo", "a", 1)
    [aside] = path.parent.glob("overrides.json.corrupt-*")
    assert aside.read_bytes() == b"garbage"
    assert store.problem is not None and str(aside) in store.problem
    assert on_disk(path) == {"echo": {"a": 1}}


def test_two_corrupt_files_in_one_second_are_both_kept(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FrozenClock:
        @staticmethod
        def now(tz: timezone) -> datetime:
            return datetime(2025, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(overrides, "datetime", FrozenClock)
    path.parent.mkdir()
    store = OverrideStore(path)
    for content in (b"first", b"second"):
        path.write_bytes(content)
        assert store.load() == {}
    first = path.with_name("overrides.json.corrupt-20250102T030405Z")
    second = path.with_name("overrides.json.corrupt-20250102T030405Z-2")
    assert (first.read_bytes(), second.read_bytes()) == (b"first", b"second")
    assert store.problem is not None and store.problem.endswith(
        f"moved to {second}; the host goes on without runtime overrides"
    )


# -- the model: set and unset are plain nested-dict operations --------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
SETTING_PATHS = st.lists(KEYS, min_size=1, max_size=3).map(".".join)
PLUGIN_IDS = st.sampled_from(["echo", "sqlite-store"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
# Tables in values are never empty, so the model below has no empty tables to represent.
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, min_size=1),
    max_leaves=6,
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), PLUGIN_IDS, SETTING_PATHS, VALUES),
        st.tuples(st.just("unset"), PLUGIN_IDS, SETTING_PATHS, st.none()),
    ),
    max_size=12,
)

Leaves = dict[tuple[str, ...], Any]


def _leaves(prefix: tuple[str, ...], value: Any) -> Leaves:
    if not isinstance(value, dict):
        return {prefix: value}
    return {k: v for key, item in value.items() for k, v in _leaves((*prefix, key), item).items()}


def _nested(leaves: Leaves) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for keys, value in leaves.items():
        table = root
        for key in keys[:-1]:
            table = table.setdefault(key, {})
        table[keys[-1]] = value
    return root


@settings(deadline=None)
@given(OPERATIONS)
def test_set_and_unset_act_like_a_map_of_leaf_paths(
    operations: list[tuple[str, str, str, Any]],
) -> None:
    """The store against a flat model: ``{(plugin, key, ...): value}`` of the leaves only."""
    model: Leaves = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "overrides.json"
        store = OverrideStore(path)
        for operation, plugin_id, setting, value in operations:
            target = (plugin_id, *setting.split("."))
            below = [leaf for leaf in model if leaf[: len(target)] == target]
            if operation == "set":
                above = [leaf for leaf in model if target[: len(leaf)] == leaf]
                for leaf in below + above:
                    model.pop(leaf, None)
                model.update(_leaves(target, value))
                store.set(plugin_id, setting, value)
            else:
                for leaf in below:
                    del model[leaf]
                assert store.unset(plugin_id, setting) is bool(below)
        assert OverrideStore(path).load() == _nested(model)


# -- two hosts setting one plugin's settings at once ------------------------------------------

SETTER = r"""
import asyncio, sys
from pathlib import Path
from acp_plugins import PluginHost
from acp_plugins.loading.trust import TRUST_ALL

plugins, data, name, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

async def main():
    host = PluginHost(isolation=TRUST_ALL, search_path=[plugins], data_root=data)
    await host.start()
    print("ready", flush=True)
    sys.stdin.readline()
    key = "endpoint.url" if name == "a" else "ratio"
    for i in range(count):
        value = f"http://a/{i}" if name == "a" else float(i)
        await host.set_config("vault", key, value)  # acknowledged when it returns
    await host.stop()

asyncio.run(main())
"""


def test_two_hosts_setting_keys_of_one_plugin_lose_no_acknowledged_update(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-settings"))
    data = tmp_path / "data"
    count = 80
    setters = [
        subprocess.Popen(
            [sys.executable, "-c", SETTER, str(plugins), str(data), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for setter in setters:
        assert setter.stdout is not None and setter.stdout.readline().strip() == "ready"
    for setter in setters:  # both start at once
        assert setter.stdin is not None
        setter.stdin.write("go\n")
        setter.stdin.flush()
    for setter in setters:
        assert setter.wait(timeout=120) == 0
    # each host's last acknowledged value is in the file: neither wrote the other's back
    saved = json.loads((data / "overrides.json").read_text())["vault"]
    assert saved == {"endpoint": {"url": f"http://a/{count - 1}"}, "ratio": float(count - 1)}
