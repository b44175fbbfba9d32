"""The attack suite and containment: a malicious plugin in a real worker, the host unharmed.

The intruder (tests/fixture_plugins/acp-fx-attacks) is a real installed
distribution; each of its commands is one attack. Every test asserts the exact
outcome: what was refused and why, what was killed, and that the host, the victim
and the echo sample kept serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import Message, PluginCallError, PluginHost, PluginState
from acp_plugins.audit import read_audit_log
from acp_plugins.isolation.cpu_governor import cpu_seconds
from acp_plugins.isolation.worker_handle import WorkerHandle
from acp_plugins.loading.trust import TRUST_ALL, IsolationPolicy, WorkerLimits
from conftest import close_loop, fixture_plugin, sample

Run = Callable[..., Any]

LIMITS = WorkerLimits(cancel_grace=0.3, cpu_share=None)


@pytest.fixture(scope="module")
def attack_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(fixture_plugin("acp-fx-attacks"), sample("acp-echo"))


def _host(attack_dir: Path, tmp_path: Path, **policy: Any) -> PluginHost:
    options: dict[str, Any] = {"limits": LIMITS, "restart_backoff": 0.05} | policy
    return PluginHost(
        search_path=[attack_dir],
        data_root=tmp_path / "data",
        timeout=2.0,
        isolation=IsolationPolicy(**options),
    )


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """One event loop for the module, so that one host can serve many tests."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    close_loop(loop)


def _started(attack_dir: Path, data: Path, run: Run) -> PluginHost:
    started = _host(attack_dir, data)
    run(started.start())
    assert {r.plugin_id for r in started.active()} == {"echo", "intruder", "victim"}
    return started


@pytest.fixture(scope="module")
def host(
    attack_dir: Path, tmp_path_factory: pytest.TempPathFactory, run: Run
) -> Iterator[PluginHost]:
    """A host shared by the attacks that the sandbox refuses (none of them harms a worker)."""
    started = _started(attack_dir, tmp_path_factory.mktemp("shared"), run)
    yield started
    run(started.stop())


@pytest.fixture()
def fresh_host(attack_dir: Path, tmp_path: Path, run: Run) -> Iterator[PluginHost]:
    """A host of its own, for the attacks that kill or wear out a worker."""
    started = _started(attack_dir, tmp_path, run)
    yield started
    run(started.stop())


def attack(host: PluginHost, run: Run, name: str, *args: str) -> str:
    """The attack's output, or the message of the error it ended with."""
    try:
        return str(run(host.run_command(f"intruder:{name}", list(args))).output)
    except PluginCallError as error:
        return error.message


def worker(host: PluginHost, plugin_id: str = "intruder") -> WorkerHandle:
    handle = host.record(plugin_id).handle
    assert isinstance(handle, WorkerHandle)
    return handle


def assert_host_unharmed(host: PluginHost, run: Run) -> None:
    answer = run(host.send(Message(type="echo", content="still here", sender="t")))
    assert answer.plugin_id == "echo" and answer.response.content.endswith("still here")
    assert run(host.run_command("victim:ping")).output == "pong"


def wait_until(run: Run, condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async def poll() -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "the condition did not come true in time"
            await asyncio.sleep(0.02)

    run(poll())


def sandbox_denials(host: PluginHost) -> list[str]:
    return [e.detail for e in host.audit.entries("intruder") if e.action == "sandbox"]


# -- refused by the sandbox: the call fails with the reason, the worker goes on ------------


def test_a_module_that_is_not_installed_is_said_to_be_not_installed(
    host: PluginHost, run: Run
) -> None:
    before = len(sandbox_denials(host))
    message = attack(host, run, "import-missing")
    assert message == (
        "'intruder' failed in execute_command: ModuleNotFoundError: No module named "
        "'acp_fx_no_such_module': it is not installed where the host runs (add it to the "
        "plugin's dependencies and install it)"
    )
    assert len(sandbox_denials(host)) == before  # not a refusal: nothing to audit


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("import-os", "may not import 'os' (not an allowed module)"),
        ("import-subprocess", "may not import 'subprocess' (not an allowed module)"),
        ("import-socket", "may not import 'socket' (not an allowed module)"),
        ("import-ctypes", "may not import 'ctypes' (not an allowed module)"),
        ("dunder-import", "may not import 'os' (not an allowed module)"),
        ("importlib-import", "may not import 'subprocess' (not an allowed module)"),
        ("escape-system", "may not start or signal processes (needs 'run-processes')"),
        ("fork", "(needs 'run-processes') (sandbox refused os.fork)"),
        ("read-passwd", "may not read '/etc/passwd' (outside its data directory)"),
    ],
)  # fmt: skip
def test_the_sandbox_refuses_with_the_reason_and_the_worker_goes_on(
    host: PluginHost, run: Run, name: str, refusal: str
) -> None:
    pid = worker(host).pid
    message = attack(host, run, name)
    assert message.startswith("'intruder' failed in execute_command: SandboxViolation: ")
    assert refusal in message
    assert any(refusal in detail for detail in sandbox_denials(host))
    assert worker(host).pid == pid and worker(host).alive  # refused, not crashed
    assert host.record("intruder").state is PluginState.ACTIVE
    assert_host_unharmed(host, run)


def test_gc_is_refused_whichever_way_it_is_reached(host: PluginHost, run: Run) -> None:
    message = attack(host, run, "gc-objects")
    assert "gc.get_objects" in message or "may not import 'gc'" in message


def test_os_system_never_runs(host: PluginHost, run: Run) -> None:
    marker = Path("/tmp/acp-intruder-was-here")
    marker.unlink(missing_ok=True)
    attack(host, run, "escape-system")
    assert not marker.exists()


def test_another_plugins_data_cannot_be_read(host: PluginHost, run: Run) -> None:
    secret = host.data_dir("victim") / "secret.txt"
    assert secret.read_text() == "the victim's secret"  # the victim, isolated too, wrote it
    message = attack(host, run, "read-file", str(secret))
    assert f"may not read '{secret}' (outside its data directory)" in message
    assert "the victim's secret" not in message


def test_nothing_is_written_outside_the_data_directory(
    host: PluginHost, run: Run, tmp_path: Path
) -> None:
    target = tmp_path / "planted.txt"
    message = attack(host, run, "write-outside", str(target))
    assert f"may not write '{target}' (outside its data directory)" in message
    assert not target.exists()


def test_the_plugin_may_write_in_its_own_data_directory(host: PluginHost, run: Run) -> None:
    assert attack(host, run, "write-inside") == "mine"
    assert (host.data_dir("intruder") / "notes.txt").read_text() == "mine"


def test_no_connection_reaches_a_server_on_localhost(host: PluginHost, run: Run) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(1)
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    listener = threading.Thread(target=accept)
    listener.start()
    message = attack(host, run, "connect", str(server.getsockname()[1]))
    listener.join()
    server.close()
    assert "may not use the network (needs 'network')" in message
    assert accepted == []


def test_the_manifest_cannot_be_tampered_with(host: PluginHost, run: Run) -> None:
    record = host.record("intruder")
    assert record.manifest_path is not None
    before = record.manifest_path.read_text()
    message = attack(host, run, "tamper-manifest")
    assert "may not write" in message and "manifest.json" in message
    assert record.manifest_path.read_text() == before
    assert record.manifest is not None
    assert [p.value for p in record.manifest.permissions] == ["read-messaging"]


def test_the_host_cannot_be_found_from_the_worker(host: PluginHost, run: Run) -> None:
    assert attack(host, run, "find-host") == "nothing"


# -- permissions are checked in the host ----------------------------------------------------


def test_a_context_call_without_its_permission_is_denied_and_audited(
    host: PluginHost, run: Run
) -> None:
    message = attack(host, run, "run-command")
    assert (
        "'intruder' may not run command 'victim:ping': permission 'execute-commands' "
        "was not granted" in message
    )
    denial = [e for e in host.audit.entries("intruder") if e.action == "deny"]
    assert [(e.permission, e.outcome) for e in denial] == [("execute-commands", "denied")]
    entries, bad = read_audit_log(host.data_root / "audit.jsonl", plugin_id="intruder")
    assert bad == 0 and any(e.action == "deny" for e in entries)


def test_a_granted_permission_lets_the_context_call_through(
    attack_dir: Path, tmp_path: Path, run: Run
) -> None:
    from acp_plugins import PermissionPolicy

    host = _host(attack_dir, tmp_path)
    host.policy = PermissionPolicy.from_names({"intruder": ["execute-commands"]})
    run(host.start())
    try:
        assert attack(host, run, "run-command") == "pong"
    finally:
        run(host.stop())


# -- containment: killed, restarted, reported, the host serving throughout -----------------


def test_a_memory_bomb_ends_the_worker_which_is_restarted(fresh_host: PluginHost, run: Run) -> None:
    host = fresh_host
    message = attack(host, run, "memory-bomb")
    assert "ran out of memory" in message
    wait_until(run, lambda: worker(host).alive and worker(host).restarts == 1)
    failures = [f.message for f in host.record("intruder").failures if f.stage == "isolation"]
    assert any("ran out of memory (limit 100 MiB)" in f for f in failures)
    assert attack(host, run, "write-inside") == "mine"  # replayed to Active: serving again
    assert_host_unharmed(host, run)


def test_a_hook_that_never_returns_is_killed_and_restarted(
    fresh_host: PluginHost, run: Run
) -> None:
    host = fresh_host
    first = worker(host).pid
    started = time.monotonic()
    message = attack(host, run, "spin-async")
    assert message == "'intruder' did not answer execute_command within 2 s"
    assert time.monotonic() - started < 4
    assert_host_unharmed(host, run)  # the host's loop was never blocked
    wait_until(run, lambda: worker(host).alive and worker(host).pid != first)
    failures = [f.message for f in host.record("intruder").failures]
    assert any(
        "was killed: did not end execute_command within its timeout and 0.3 s of grace" in f
        for f in failures
    ), failures
    assert attack(host, run, "write-inside") == "mine"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("garbage-frame", "broke the protocol (a frame is not valid JSON"),
        ("oversized-frame", "broke the protocol (a frame of 2147483647 bytes exceeds the limit"),
    ],
)
def test_garbage_on_the_channel_kills_the_worker(
    fresh_host: PluginHost, run: Run, name: str, reason: str
) -> None:
    host = fresh_host
    message = attack(host, run, name)
    assert "its worker was killed: " + reason in message
    wait_until(run, lambda: worker(host).alive and worker(host).restarts == 1)
    assert_host_unharmed(host, run)


def test_a_huge_response_is_refused_and_the_worker_goes_on(host: PluginHost, run: Run) -> None:
    pid = worker(host).pid
    message = attack(host, run, "huge-response")
    assert "exceeds 8388608 bytes" in message
    assert worker(host).pid == pid
    assert attack(host, run, "write-inside") == "mine"


def test_repeated_crashes_open_the_circuit_and_suspend_the_plugin(
    fresh_host: PluginHost, run: Run
) -> None:
    host = fresh_host
    for expected in (1, 2):
        message = attack(host, run, "crash")
        assert "its worker exited with status 3" in message
        wait_until(run, lambda n=expected: worker(host).restarts == n and worker(host).alive)
    attack(host, run, "crash")
    run(host.settle())
    record = host.record("intruder")
    assert record.state is PluginState.SUSPENDED
    assert "3 failures within 60 s, not restarted again" in (record.reason or "")
    assert [e.outcome for e in host.audit.entries("intruder") if e.action == "circuit"] == ["open"]
    assert_host_unharmed(host, run)
    # a person who fixed the cause resumes it: a fresh worker, replayed to Active
    assert run(host.resume("intruder"))
    assert attack(host, run, "write-inside") == "mine"


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "governor"])
def test_a_spinning_worker_is_held_to_its_cpu_share(
    attack_dir: Path, tmp_path: Path, run: Run, cgroups: bool
) -> None:
    limits = WorkerLimits(cpu_share=0.2, cpu_window=1.0, cancel_grace=0.3)
    host = _host(attack_dir, tmp_path, limits=limits, cgroups=cgroups)
    run(host.start())
    try:
        assert attack(host, run, "spin-thread") == "spinning"
        handle = worker(host)
        pid = handle.worker_pid
        assert pid is not None
        run(asyncio.sleep(1.0))  # past the first window
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        run(asyncio.sleep(3.0))
        share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
        assert share < 0.35  # unthrottled, the spinning thread takes a whole CPU
        if cgroups:  # the kernel's CPU quota holds it; no pausing from the host
            assert "cgroup" in handle.layers and handle.governor is None
        else:
            # on a loaded machine the spinner may never get more than its share on its own;
            # whenever it did, the governor paused it
            governor = handle.governor
            assert governor is not None
            assert governor.pauses > 0 or governor.highest_usage <= limits.cpu_share * 1.05
        assert_host_unharmed(host, run)
    finally:
        run(host.stop())


# -- the worker's view of the record ---------------------------------------------------------


def test_the_record_shows_how_each_plugin_runs(host: PluginHost) -> None:
    view = host.record("intruder").to_dict()["isolation"]
    assert view["mode"] == "isolated" and view["alive"] is True
    assert (view["memory_mb"], view["restarts"]) == (100, 0)
    assert isinstance(view["pid"], int)
    assert json.loads(json.dumps(view)) == view


def test_unloading_stops_every_worker(attack_dir: Path, tmp_path: Path, run: Run) -> None:
    host = _host(attack_dir, tmp_path)
    run(host.start())
    pids = [worker(host, pid).pid for pid in ("echo", "intruder", "victim")]
    run(host.stop())
    for pid in pids:
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_restarted_worker_gets_its_settings_back(fresh_host: PluginHost, run: Run) -> None:
    host = fresh_host
    run(host.set_config("echo", "prefix", "kept> "))
    echo = worker(host, "echo")
    assert echo.pid is not None
    os.kill(echo.pid, signal.SIGKILL)  # from outside: the kernel's OOM killer, say
    wait_until(run, lambda: echo.alive and echo.restarts == 1)
    failures = [f.message for f in host.record("echo").failures if f.stage == "isolation"]
    assert failures == ["worker was killed by SIGKILL"]
    answer = run(host.send(Message(type="echo", content="again", sender="t")))
    assert answer.response.content == "kept> again"


def test_workers_start_together_and_unused_ones_are_stopped(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    from conftest import SAMPLE_PROJECTS

    directory = install_plugins(*(sample(name) for name in SAMPLE_PROJECTS))
    host = PluginHost(
        search_path=[directory],
        data_root=tmp_path / "data",
        # sqlite-store's worker cannot start in 8 MiB, so activity-analytics cannot load
        isolation=IsolationPolicy(
            limits=LIMITS, per_plugin={"sqlite-store": WorkerLimits(memory_mb=8, cpu_share=None)}
        ),
    )
    run(host.start())
    try:
        analytics = host.record("activity-analytics")
        assert analytics.state is PluginState.DISCOVERED
        assert "depends on 'sqlite-store'" in (analytics.reason or "")
        store = host.record("sqlite-store")
        # out of its memory: where the first allocation fails (Python's or the loader's
        # mapping of _sqlite3) depends on what the worker had imported before its limits
        assert any(
            sign in (store.reason or "")
            for sign in ("failed to map segment", "MemoryError", "ran out of memory")
        )
        started = [
            e.detail for e in host.audit.entries("activity-analytics") if e.action == "worker"
        ]
        (pid,) = [int(detail.removeprefix("pid ")) for detail in started]
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or ") Z " in stat.read_text()  # stopped, not left running
        assert {r.plugin_id for r in host.active()} == {"echo", "tools"}
    finally:
        run(host.stop())


@pytest.mark.parametrize("cpus", [1, 2])
def test_no_more_workers_start_at_once_than_there_are_cpus(
    cpus: int,
    install_plugins: Callable[..., Path],
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # all at once, a start's timeout ran out while it waited for a CPU (50 isolated
    # plugins on 2 CPUs, or 8 on a loaded machine): each start now waits for its turn
    import acp_plugins.isolation.supervision as supervision
    from conftest import SAMPLE_PROJECTS

    directory = install_plugins(*(sample(name) for name in SAMPLE_PROJECTS))
    monkeypatch.setattr(supervision, "usable_cpus", lambda: cpus)
    running, most = 0, 0
    original = WorkerHandle.start

    async def counted(handle: WorkerHandle) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await original(handle)
        finally:
            running -= 1

    monkeypatch.setattr(WorkerHandle, "start", counted)
    host = PluginHost(
        search_path=[directory],
        data_root=tmp_path / "data",
        isolation=IsolationPolicy(limits=LIMITS),
    )
    run(host.start())
    try:
        assert len(host.active()) == len(SAMPLE_PROJECTS)
        assert most == cpus
    finally:
        run(host.stop())


def test_a_plugin_whose_import_never_ends_is_refused_in_time(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    directory = install_plugins(fixture_plugin("acp-fx-hang"), sample("acp-echo"))
    hurried = WorkerLimits(start_timeout=1.5, cpu_share=None)
    host = PluginHost(
        search_path=[directory],
        data_root=tmp_path / "data",
        # only hang is hurried: echo starts beside a worker spinning a whole CPU
        isolation=IsolationPolicy(limits=LIMITS, per_plugin={"hang": hurried}),
    )
    started = time.monotonic()
    run(host.start())
    try:
        assert time.monotonic() - started < 6
        record = host.record("hang")
        assert record.state is PluginState.DISCOVERED
        assert record.reason == (
            "the worker of 'hang' did not start: was killed: did not start within 1.5 s"
        )
        assert host.record("echo").state is PluginState.ACTIVE
    finally:
        run(host.stop())


def test_a_plugin_may_import_the_distributions_it_requires() -> None:
    from acp_plugins.loading.distributions import dependency_modules

    # acp-plugins itself stands in for a plugin distribution with requirements
    modules = dependency_modules("acp-plugins")
    assert {"pluggy", "packaging", "pydantic", "pydantic_settings"} <= modules
    assert "hypothesis" not in modules  # an extra's requirement is not a dependency
    assert dependency_modules("no-such-distribution") == frozenset()


@pytest.mark.parametrize(
    ("trusted", "problem"),
    [
        (
            TRUST_ALL,
            "takes plugin ids, not a policy; to trust every plugin pass isolation=TRUST_ALL",
        ),
        ([1, 2], "takes plugin ids (strings), not [1, 2]"),
        (5, "takes plugin ids (strings), not 5"),
    ],
)
def test_a_policy_is_refused_where_plugin_ids_belong(trusted: object, problem: str) -> None:
    with pytest.raises(TypeError, match=re.escape(problem)):
        IsolationPolicy(trusted=trusted)  # type: ignore[arg-type]


def test_one_plugin_id_is_an_id_not_its_letters() -> None:
    assert IsolationPolicy(trusted="echo").trusted == frozenset({"echo"})  # type: ignore[arg-type]
    assert IsolationPolicy(trusted=["echo", "tools"]).is_trusted("tools")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes an IsolationPolicy"):
        PluginHost(isolation={"trusted": ["*"]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_failures"):
        IsolationPolicy(max_failures=0)


@pytest.fixture(scope="module")
def slow_start_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(fixture_plugin("acp-fx-slow"))


def test_calls_wait_for_a_restarted_worker_to_finish_its_replay(
    slow_start_dir: Path, tmp_path: Path, run: Run
) -> None:
    # slow-numbers takes 0.2 s to initialize and fails a query that comes before that
    host = PluginHost(search_path=[slow_start_dir], data_root=tmp_path / "data", timeout=10.0)
    run(host.start())
    try:
        store = worker(host, "slow-numbers")
        before = store.worker_pid
        assert before is not None

        async def kill_and_query() -> list[object]:
            os.kill(before, signal.SIGKILL)
            while store.alive:  # the host sees the channel close and starts over
                await asyncio.sleep(0.005)
            queries = []
            revived = None
            # through the backoff, the new worker's start, and the 0.2 s of its replay
            while revived is None or time.monotonic() < revived + 0.3:
                queries.append(asyncio.ensure_future(host.query("slow-numbers:numbers")))
                await asyncio.sleep(0.005)
                if revived is None and store.alive:
                    revived = time.monotonic()
            return await asyncio.gather(*queries, return_exceptions=True)

        answers = run(kill_and_query())
        failures = [str(a) for a in answers if isinstance(a, BaseException)]
        assert failures == []  # none reached the new worker before its initialize
        assert store.worker_pid not in (None, before)
        assert store.restarts == 1
    finally:
        run(host.stop())


def test_a_worker_that_fails_to_load_is_not_restarted(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    # a plugin whose worker starts, then is refused: its stop is not a crash to restart
    plugins = install_plugins(fixture_plugin("acp-fx-faulty"))
    done = subprocess.run(
        [sys.executable, "-m", "acp_plugins", "list", "-v", "--plugin-path", str(plugins),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Task was destroyed but it is pending" not in done.stderr
    entries, _ = read_audit_log(tmp_path / "data" / "audit.jsonl", actions=["worker"])
    restarted = [e for e in entries if e.outcome in ("failed", "restarted")]
    assert restarted == []
    assert "typo-hook" in done.stdout  # and it was refused, with its reason


_HOST_THAT_DIES = """
import asyncio, json, sys
from acp_plugins import PluginHost, IsolationPolicy, WorkerLimits

async def main():
    host = PluginHost(
        search_path=[sys.argv[1]], data_root=sys.argv[2],
        isolation=IsolationPolicy(limits=WorkerLimits(cpu_share=None), zygote=sys.argv[3] == "1"),
    )
    await host.start()
    zygote = host.workers.zygote
    pids = [host.record(p).handle.worker_pid for p in ("echo", "intruder", "victim")]
    pids += [host.record(p).handle.pid for p in ("echo", "intruder", "victim")]
    print(json.dumps({"pids": pids, "zygote": zygote.pid if zygote else None}), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "bubblewrap"])
def test_every_worker_dies_with_a_host_that_is_killed(
    attack_dir: Path, tmp_path: Path, zygote: bool
) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", _HOST_THAT_DIES, str(attack_dir), str(tmp_path / "data"),
         "1" if zygote else "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = json.loads(host.stdout.readline() if host.stdout else "{}")
    finally:
        host.kill()
        host.wait(10)
    pids = [pid for pid in started["pids"] if pid]
    assert len(pids) == 6
    if zygote:
        assert started["zygote"] is not None
        pids.append(started["zygote"])
    else:
        assert started["zygote"] is None

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return False
        return state != "Z"

    deadline = time.monotonic() + 10
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if alive(pid)] == []
