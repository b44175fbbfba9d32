"""The kernel is the boundary: every attack is contained with the Python layer on, and off.

The escaper (tests/fixture_plugins/acp-fx-escape) is a real installed distribution
that asks only for ``read-messaging`` and ``write-messaging``. Each attack first
switches the audit hook off if it can, then goes for the kernel: other plugins'
files, the host's files, site-packages, other processes, Unix and TCP sockets,
exec, fork, ptrace, setuid, namespaces. The whole module runs twice: with the
Python layer (audit hook, import policy) as the host installs it, and with it
switched off in the isolation settings. The assertions are about effects (no
secret in the answer, no file written, the host and the victim still serving),
never about which layer refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    ConfigSources,
    DataSourceConflictError,
    IsolationPolicy,
    Message,
    PermissionPolicy,
    PluginCallError,
    PluginHost,
    WorkerLimits,
)
from acp_plugins.isolation.confinement import KERNEL_LAYERS, worker_uid
from acp_plugins.isolation.quota import data_usage
from acp_plugins.isolation.worker_handle import WorkerHandle
from conftest import close_loop, fixture_plugin, sample

Run = Callable[..., Any]
SECRET = "the vault's secret"


@pytest.fixture(
    scope="module",
    params=[(True, "zygote"), (False, "zygote"), (False, "bubblewrap")],
    ids=["python-layer-on", "kernel-only", "kernel-only-bubblewrap"],
)
def mode(request: pytest.FixtureRequest) -> tuple[bool, str]:
    """The Python layer on or off; workers forked from the zygote or started by bubblewrap."""
    python_layer, launcher = request.param
    return bool(python_layer), str(launcher)


@pytest.fixture(scope="module")
def python_layer(mode: tuple[bool, str]) -> bool:
    return mode[0]


@pytest.fixture(scope="module")
def launcher(mode: tuple[bool, str]) -> str:
    return mode[1]


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    close_loop(loop)


@pytest.fixture(scope="module")
def host(
    install_plugins: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
    run: Run,
    python_layer: bool,
    launcher: str,
) -> Iterator[PluginHost]:
    directory = install_plugins(fixture_plugin("acp-fx-escape"), sample("acp-echo"))
    data = tmp_path_factory.mktemp("containment") / "data"
    started = PluginHost(
        search_path=[directory],
        data_root=data,
        timeout=5.0,
        policy=PermissionPolicy.from_names({"victim-vault": ["write-data"]}),
        isolation=IsolationPolicy(
            limits=WorkerLimits(cpu_share=None, cancel_grace=0.5, disk_mb=64),
            python_layer=python_layer,
            restart_backoff=0.05,
            zygote=launcher == "zygote",
        ),
    )
    run(started.start())
    assert {r.plugin_id for r in started.active()} == {"echo", "escaper", "victim-vault"}
    run(started.set_config("echo", "prefix", "kept> "))  # the host now has an overrides file
    yield started
    run(started.stop())


def escape(host: PluginHost, run: Run, name: str, *args: str) -> str:
    try:
        return str(run(host.run_command(f"escaper:{name}", list(args))).output)
    except PluginCallError as error:
        return "blocked: " + error.message


def worker(host: PluginHost, plugin_id: str = "escaper") -> WorkerHandle:
    handle = host.record(plugin_id).handle
    assert isinstance(handle, WorkerHandle)
    return handle


def vault_dir(host: PluginHost) -> Path:
    return host.data_dir("victim-vault")


def assert_unharmed(host: PluginHost, run: Run, pid: int | None = None) -> None:
    answer = run(host.send(Message(type="echo", content="still here", sender="t")))
    assert answer.response.content == "kept> still here"
    assert run(host.run_command("victim-vault:rows")).output == SECRET
    assert (vault_dir(host) / "secret.txt").read_text() == SECRET
    if pid is not None:
        assert worker(host).pid == pid and worker(host).alive


def assert_blocked(answer: str) -> None:
    assert answer.startswith("blocked: "), answer
    assert SECRET not in answer


# -- the layers ---------------------------------------------------------------------------


def test_every_kernel_layer_holds_for_every_worker(host: PluginHost, python_layer: bool) -> None:
    for plugin_id in ("escaper", "victim-vault", "echo"):
        handle = worker(host, plugin_id)
        assert handle.missing == {}, handle.missing
        expected = {*KERNEL_LAYERS, "rlimits", "landlock", "seccomp"}
        if python_layer:
            expected.add("python")
        assert set(handle.layers) == expected
    entries = [e for e in host.audit.entries("escaper") if e.action == "isolation"]
    assert entries and entries[-1].outcome == "ok" and "landlock" in (entries[-1].detail or "")


def test_the_worker_runs_as_a_uid_of_its_own_and_sees_only_itself(
    host: PluginHost, run: Run
) -> None:
    seen = json.loads(escape(host, run, "pids").removeprefix("done: "))
    assert seen["uid"] == worker_uid("escaper") != 0
    assert seen["pid"] < 10 and len(seen["pids"]) <= 3  # bubblewrap's init and the worker
    assert os.getpid() not in seen["pids"] or os.getpid() < 10


# -- files --------------------------------------------------------------------------------


def test_another_plugins_files_are_not_there_by_any_path(host: PluginHost, run: Run) -> None:
    secret = vault_dir(host) / "secret.txt"
    pid = worker(host).pid
    assert_blocked(escape(host, run, "read", str(secret)))
    assert_blocked(
        escape(host, run, "read-dirfd", str(host.data_root), "plugins/victim-vault/secret.txt")
    )
    assert_blocked(escape(host, run, "symlink-read", str(secret)))
    assert_blocked(escape(host, run, "read", f"/proc/{worker(host, 'victim-vault').pid}/environ"))
    assert_unharmed(host, run, pid)


def test_the_hosts_own_files_are_not_there(host: PluginHost, run: Run) -> None:
    overrides, audit = host.data_root / "overrides.json", host.data_root / "audit.jsonl"
    assert overrides.is_file() and audit.is_file()
    before = audit.read_text()
    assert_blocked(escape(host, run, "read", str(overrides)))
    assert_blocked(escape(host, run, "write", str(audit)))
    assert_blocked(escape(host, run, "read", "/etc/shadow"))
    assert "planted" not in audit.read_text() and audit.read_text().startswith(before)
    assert "kept>" in overrides.read_text()


def test_code_and_site_packages_cannot_be_written(host: PluginHost, run: Run) -> None:
    record = host.record("escaper")
    assert record.manifest_path is not None
    targets = [
        record.manifest_path,
        record.manifest_path.parent.parent / "acp-fx-evil.pth",
        Path(next(p for p in sys.path if p.endswith("site-packages"))) / "acp-fx-evil.pth",
    ]
    before = record.manifest_path.read_text()
    for target in targets:
        assert_blocked(escape(host, run, "write", str(target)))
    assert record.manifest_path.read_text() == before
    assert not any(t.exists() for t in targets[1:])


def test_the_plugin_still_writes_its_own_data_directory(host: PluginHost, run: Run) -> None:
    target = host.data_dir("escaper") / "mine.txt"
    assert escape(host, run, "write", str(target)) == f"done: {target}"
    assert target.read_text() == "planted"


# -- processes ----------------------------------------------------------------------------


def test_no_signal_reaches_the_host_or_another_worker(host: PluginHost, run: Run) -> None:
    victim = worker(host, "victim-vault")
    pid, victim_pid = worker(host).pid, victim.pid
    assert victim_pid is not None and victim.worker_pid is not None
    for target in (os.getpid(), victim_pid, victim.worker_pid):
        assert_blocked(escape(host, run, "kill", str(target)))
        assert_blocked(escape(host, run, "pidfd-kill", str(target)))
        assert_blocked(escape(host, run, "ptrace", str(target)))
    assert victim.alive and victim.pid == victim_pid
    assert_unharmed(host, run, pid)


@pytest.mark.parametrize("name", ["exec", "fork", "setuid", "unshare"])
def test_no_new_process_privilege_or_namespace(host: PluginHost, run: Run, name: str) -> None:
    pid = worker(host).pid
    assert_blocked(escape(host, run, name))
    assert_unharmed(host, run, pid)


# -- SQLite and sockets -------------------------------------------------------------------


def test_sqlite_cannot_attach_another_plugins_database(host: PluginHost, run: Run) -> None:
    assert_blocked(escape(host, run, "sqlite-attach", str(vault_dir(host) / "vault.sqlite3")))
    assert run(host.run_command("victim-vault:rows")).output == SECRET


def _serve(server: socket.socket, accepted: list[object]) -> threading.Thread:
    server.settimeout(1.5)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    return thread


def test_no_unix_socket_on_the_machine_is_reachable(
    host: PluginHost, run: Run, tmp_path: Path
) -> None:
    path = tmp_path / "server.sock"
    name = f"acp-test-{uuid.uuid4().hex}"
    for address, target in ((str(path), str(path)), ("\0" + name, "@" + name)):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen()
        accepted: list[object] = []
        thread = _serve(server, accepted)
        answer = escape(host, run, "unix-connect", target)
        thread.join()
        server.close()
        assert_blocked(answer)
        assert accepted == []


def test_no_tcp_connection_reaches_localhost(host: PluginHost, run: Run) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[object] = []
    thread = _serve(server, accepted)
    answer = escape(host, run, "tcp-connect", str(server.getsockname()[1]))
    thread.join()
    server.close()
    assert_blocked(answer)
    assert accepted == []


def _escape_host(
    install_plugins: Callable[..., Path], tmp_path: Path, isolation: IsolationPolicy
) -> PluginHost:
    """A host of its own with the escaper, the vault and echo (not started)."""
    directory = install_plugins(fixture_plugin("acp-fx-escape"), sample("acp-echo"))
    return PluginHost(
        search_path=[directory],
        data_root=tmp_path / "data",
        policy=PermissionPolicy.from_names({"victim-vault": ["write-data"]}),
        isolation=isolation,
    )


def test_the_attacks_are_real_with_every_layer_off_the_secret_leaks(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    """The control: the same attacker, every layer switched off, reads the vault's secret."""
    open_host = _escape_host(
        install_plugins, tmp_path,
        IsolationPolicy(
            python_layer=False, namespaces=False, landlock=False, cgroups=False,
            own_uid=False, seccomp=False, drop_privileges=False,
        ),
    )  # fmt: skip
    run(open_host.start())
    try:
        secret = tmp_path / "data" / "plugins" / "victim-vault" / "secret.txt"
        assert escape(open_host, run, "read", str(secret)) == f"leaked: {SECRET}"
        assert escape(open_host, run, "sqlite-attach", str(secret.with_name("vault.sqlite3")))
        assert run(open_host.run_command("victim-vault:rows")).output == "changed by escaper"
    finally:
        run(open_host.stop())


# -- the zygote ---------------------------------------------------------------------------


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_every_worker_is_started_the_way_the_settings_say(host: PluginHost, launcher: str) -> None:
    zygote = host.workers.zygote
    for plugin_id in ("echo", "escaper", "victim-vault"):
        started_by = _parent(worker(host, plugin_id).pid or 0)
        if launcher == "zygote":
            assert zygote is not None and zygote.problem is None and zygote.pid is not None
            assert started_by == zygote.pid
        else:
            assert zygote is None and started_by == os.getpid()


def test_the_zygote_holds_no_plugin_data_and_no_environment(
    host: PluginHost, launcher: str
) -> None:
    zygote = host.workers.zygote
    if launcher == "bubblewrap":
        assert zygote is None
        return
    assert zygote is not None and zygote.pid is not None
    environment = Path(f"/proc/{zygote.pid}/environ").read_bytes().split(b"\0")
    assert sorted(e.partition(b"=")[0] for e in environment if e) == [b"LC_ALL", b"PATH"]
    fds = os.listdir(f"/proc/{zygote.pid}/fd")
    opened = [os.readlink(f"/proc/{zygote.pid}/fd/{fd}") for fd in fds]
    assert not [path for path in opened if str(host.data_root) in path], opened
    assert [path for path in opened if path.startswith("socket:")]  # its channel to the host


def test_a_worker_forked_later_inherits_no_other_plugins_secret(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    """The host and the vault's worker hold the secret; the escaper's next worker must not."""
    forked = _escape_host(
        install_plugins,
        tmp_path,
        IsolationPolicy(
            limits=WorkerLimits(cpu_share=None), python_layer=False, restart_backoff=0.05
        ),
    )
    run(forked.start())
    try:
        assert run(forked.run_command("victim-vault:rows")).output == SECRET  # the host has it
        first = worker(forked).pid
        os.kill(worker(forked).worker_pid or 0, 9)
        wait_until(run, lambda: worker(forked).alive and worker(forked).pid != first)
        zygote = forked.workers.zygote
        assert zygote is not None and _parent(worker(forked).pid or 0) == zygote.pid
        # the control: a string of the escaper's own module is found by the same scan
        own = escape(forked, run, "scan-memory", "Each command is ", "one way out")
        assert own.startswith("leaked"), own
        half = len(SECRET) // 2
        found = escape(forked, run, "scan-memory", SECRET[:half], SECRET[half:])
        assert found.startswith("done: not found"), found
    finally:
        run(forked.stop())


# -- the host's side: identity, floods, what plugins write, names ------------------------


def test_a_plugin_cannot_send_a_message_as_someone_else(host: PluginHost, run: Run) -> None:
    # the vault tells its secret to sender 'operator' only; the escaper writes that sender
    assert escape(host, run, "forge-sender") == "hello escaper"


def wait_until(run: Run, condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async def poll() -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "not in time"
            await asyncio.sleep(0.02)

    run(poll())


def test_a_flood_of_frames_kills_only_the_flooder(host: PluginHost, run: Run) -> None:
    victim, first = worker(host, "victim-vault"), worker(host).pid
    victim_pid = victim.pid
    escape(host, run, "flood", "60000")  # written in one go: the worker sends, then dies
    wait_until(run, lambda: worker(host).pid != first)
    failures = [f.message for f in host.record("escaper").failures if f.stage == "isolation"]
    assert any("flooded its channel (over 2000 frames per second)" in f for f in failures)
    assert victim.alive and victim.pid == victim_pid  # the victim was never held up
    assert_unharmed(host, run)
    wait_until(run, lambda: worker(host).alive and worker(host).pid != first)


def test_reports_by_the_thousand_make_a_few_audit_entries(host: PluginHost, run: Run) -> None:
    before = len([e for e in host.audit.entries("escaper") if e.action == "sandbox"])
    assert escape(host, run, "violations", "3000").startswith("sent ")
    assert_unharmed(host, run)  # within its frame budget: not killed
    entries = [e for e in host.audit.entries("escaper") if e.action == "sandbox"][before:]
    assert 1 < len(entries) <= 22
    assert any("counting" in (e.detail or "") for e in entries)


def test_context_calls_beyond_the_limit_are_refused_not_queued(host: PluginHost, run: Run) -> None:
    counted = json.loads(escape(host, run, "ask", "500"))
    # each call is answered: by the host (the source does not exist) or refused at once
    assert sum(counted.values()) == 500
    assert set(counted) <= {"PluginCallError", "UnknownDataSource", "AcpPluginsError"}
    assert worker(host).alive


def test_what_a_plugin_logs_or_raises_cannot_forge_lines_or_move_the_cursor(
    host: PluginHost, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="acp_plugins"):
        assert escape(host, run, "log-inject") == "done: logged"
        raised = escape(host, run, "raise-inject")
        wait_until(run, lambda: any("ordinary" in r.getMessage() for r in caplog.records))
    lines = [r.getMessage() for r in caplog.records] + [raised]
    lines += [f.message for f in host.record("escaper").call_errors]
    assert any("ordinary\\nCRITICAL" in line for line in lines)
    assert any("boom\\nCRITICAL forged line \\x1b[2J" in line for line in lines)
    assert not any("\n" in line or "\x1b" in line for line in lines)


def test_ids_that_look_alike_are_refused_and_none_names_a_host_file(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    directory = install_plugins(
        fixture_plugin("acp-fx-escape"), fixture_plugin("acp-fx-lookalike"), sample("acp-echo")
    )
    environ = {"ACP_PLUGIN_VICTIM_VAULT__TOKEN": "s3cret"}
    lookalikes = PluginHost(
        search_path=[directory],
        data_root=tmp_path / "data",
        policy=PermissionPolicy.from_names({"victim-vault": ["write-data"]}),
        config=ConfigSources(environ=environ),
    )
    run(lookalikes.start())
    try:
        for plugin_id in ("victim-vault", "victim_vault"):
            record = lookalikes.record(plugin_id)
            assert record.state.value == "discovered"
            assert "'victim-vault' and 'victim_vault' differ only by" in (record.reason or "")
        run(lookalikes.set_config("echo", "prefix", "mine> "))
        planted = run(lookalikes.run_command("overrides.json:where")).output
        assert planted == str(tmp_path / "data" / "plugins" / "overrides.json" / "planted")
        assert "mine> " in (tmp_path / "data" / "overrides.json").read_text()
        assert lookalikes.record("echo").state.value == "active"
    finally:
        run(lookalikes.stop())


def test_a_full_data_directory_is_stopped_and_then_only_cleared(host: PluginHost, run: Run) -> None:
    """Last in the module: it leaves the escaper's data directory read-only."""
    first = worker(host).pid
    quota_mb = worker(host).limits.disk_mb
    answer = escape(host, run, "fill-disk", "400")  # 3.2 GiB, unless it is stopped
    try:
        wait_until(run, lambda: worker(host).alive and worker(host).pid != first)
    except AssertionError:
        raise AssertionError([f.message for f in host.record("escaper").failures]) from None
    used = data_usage(host.data_dir("escaper")) / (1024 * 1024)
    assert quota_mb < used < 400 * 8, answer  # stopped long before it was done
    failures = [f.message for f in host.record("escaper").failures]
    assert any("filled its data directory past its quota" in f for f in failures)
    assert escape(host, run, "fill-disk", "1").startswith("blocked: after 0 MiB")
    assert escape(host, run, "clear").startswith("done: removed ")
    assert data_usage(host.data_dir("escaper")) < quota_mb * 1024 * 1024
    assert_unharmed(host, run)


def test_a_squatted_source_name_still_means_the_dependencys(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    from conftest import SAMPLE_PROJECTS

    directory = install_plugins(
        *(sample(name) for name in SAMPLE_PROJECTS), fixture_plugin("acp-fx-squatter")
    )
    host = PluginHost(search_path=[directory], data_root=tmp_path / "data", timeout=10.0)
    run(host.start())
    try:
        assert host.record("squatter").state.value == "active"
        with pytest.raises(DataSourceConflictError):  # host code must say which it means
            run(host.query("agent-events"))
        # activity-analytics depends on sqlite-store and asks for plain 'agent-events'
        report = run(host.report("activity-analytics", "json"))
        assert '"events_per_agent"' in report.content and "agent-alpha" in report.content
        assert "squatter" not in report.content  # not the squatter's rows
    finally:
        run(host.stop())


def test_the_command_line_shows_escapes_not_what_they_would_do(
    install_plugins: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acp_plugins.cli import main

    directory = install_plugins(fixture_plugin("acp-fx-escape"), sample("acp-echo"))
    common = ["--plugin-path", str(directory), "--data-dir", str(tmp_path / "data")]
    assert main(["run", *common, "escaper:raise-inject"]) == 4
    captured = capsys.readouterr()
    assert "boom\\nCRITICAL forged line \\x1b[2J" in captured.err
    assert "\x1b" not in captured.err + captured.out
    assert main(["info", *common, "escaper"]) == 0
    shown = capsys.readouterr().out
    assert "mount-namespace, pid-namespace" in shown and "landlock, seccomp, python" in shown


def test_a_permission_opens_its_modules_only_when_the_manifest_requests_it() -> None:
    from acp_plugins import DEFAULT_GRANTS, Permission
    from acp_plugins.isolation.launch import sandbox_spec

    def modules(requested: set[Permission]) -> frozenset[str]:
        spec = sandbox_spec(
            "probe", granted=DEFAULT_GRANTS | {Permission.NETWORK},
            requested=frozenset(requested), data_dir=Path("/nonexistent"), read_roots=[],
            own_packages=frozenset(), dependency_modules=frozenset(),
            policy=IsolationPolicy(),
        )  # fmt: skip
        assert spec.allow_network is (Permission.NETWORK in requested)
        return spec.allowed_modules

    assert "sqlite3" not in modules({Permission.READ_MESSAGING})  # read-data is granted anyway
    assert "sqlite3" in modules({Permission.READ_DATA})
    assert "socket" not in modules(set()) and "socket" in modules({Permission.NETWORK})


def test_a_killed_zygote_is_replaced_and_workers_start_again(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    forked = _escape_host(
        install_plugins,
        tmp_path,
        IsolationPolicy(limits=WorkerLimits(cpu_share=None), restart_backoff=0.05),
    )
    run(forked.start())
    try:
        zygote = forked.workers.zygote
        assert zygote is not None and zygote.pid is not None
        old_zygote, first = zygote.pid, worker(forked).pid
        os.kill(old_zygote, 9)  # its forked workers die with it
        wait_until(run, lambda: worker(forked).pid != first and worker(forked).alive)
        assert zygote.pid not in (None, old_zygote)
        assert _parent(worker(forked).pid or 0) == zygote.pid
        # every worker died with the zygote: each serves again once its restart is over
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = run(forked.send(Message(type="echo", content="again", sender="t")))
            if answer.response.content == "echo: again":
                break
            run(asyncio.sleep(0.05))
        assert answer.response.content == "echo: again"
        assert run(forked.run_command("victim-vault:rows")).output == SECRET
    finally:
        run(forked.stop())
