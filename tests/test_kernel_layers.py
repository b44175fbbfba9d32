"""Each kernel layer on its own, in a real process: namespaces, the uid, Landlock, cgroups.

The containment suite (test_containment.py) shows the layers together through a
worker. Here each one runs alone, so that a layer which silently stopped working
is caught even where another would still have refused. A test is skipped, with the
reason, only where this machine's kernel or packages lack the feature.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from acp_plugins.isolation import cgroups
from acp_plugins.isolation.cgroups import WorkerCgroup, cgroup_name, sweep_stale
from acp_plugins.isolation.confinement import bubblewrap_problem, confine, worker_uid
from acp_plugins.isolation.landlock import landlock_abi
from acp_plugins.isolation.launch import PACKAGE_ROOT, describe_exit, sandbox_spec
from acp_plugins.isolation.sandbox import SandboxSpec
from acp_plugins.loading.permissions import DEFAULT_GRANTS
from acp_plugins.loading.trust import IsolationPolicy, WorkerLimits

#: Only the layer under test: everything else off.
NOTHING = IsolationPolicy(
    namespaces=False, cgroups=False, own_uid=False, drop_privileges=False, landlock=False
)


def _spec(tmp_path: Path) -> SandboxSpec:
    data = tmp_path / "data" / "plugins" / "probe"
    data.mkdir(parents=True)
    return sandbox_spec(
        "probe",
        granted=DEFAULT_GRANTS,
        requested=frozenset(),
        data_dir=data,
        read_roots=[],
        own_packages=frozenset(),
        dependency_modules=frozenset(),
        policy=IsolationPolicy(),
    )


def _run(
    command: list[str], script: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, sys.executable, "-I", "-c", script, *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        env={"PATH": os.defpath, "PYTHONPATH": PACKAGE_ROOT},
    )  # fmt: skip


PROBE = """
import json, os, sys
outcome = {"uid": os.getuid(), "pid": os.getpid(), "pids": sorted(
    int(p) for p in os.listdir("/proc") if p.isdigit())}
for name, path in (("passwd", "/etc/passwd"), ("hidden", sys.argv[1]), ("own", sys.argv[2])):
    try:
        open(path, "a" if name == "own" else "r").close()
        outcome[name] = "allowed"
    except OSError as error:
        outcome[name] = type(error).__name__
try:
    os.kill(int(sys.argv[3]), 0)
    outcome["signal-host"] = "allowed"
except OSError as error:
    outcome["signal-host"] = type(error).__name__
outcome["root"] = sorted(os.listdir("/"))
print(json.dumps(outcome))
"""


def _probe(command: list[str], spec: SandboxSpec, hidden: Path) -> dict[str, Any]:
    done = _run(
        command, PROBE, str(hidden), str(Path(spec.data_dir) / "mine"), str(os.getpid()),
        cwd=Path(spec.data_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_mount_and_pid_namespaces_alone(tmp_path: Path) -> None:
    problem = bubblewrap_problem()
    if problem is not None:
        pytest.skip(f"bubblewrap cannot sandbox here: {problem}")
    spec = _spec(tmp_path)
    hidden = tmp_path / "data" / "overrides.json"
    hidden.write_text("{}")
    policy = IsolationPolicy(cgroups=False, own_uid=False, drop_privileges=False)
    confinement = confine(
        spec, policy=policy, cgroup=None, cgroup_problem="off", hidden=[tmp_path / "data"]
    )
    assert confinement.layers == ("mount-namespace", "pid-namespace", "ipc-namespace",
                                  "network-namespace")  # fmt: skip
    outcome = _probe(list(confinement.command), spec, hidden)
    assert outcome["passwd"] == outcome["hidden"] == "FileNotFoundError"  # not in the view
    assert outcome["own"] == "allowed"
    assert outcome["pid"] <= 3 and len(outcome["pids"]) <= 3
    assert outcome["signal-host"] == "ProcessLookupError"  # the host's pid is not there
    view = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp"}
    view.add("var")  # a private /var/tmp
    view |= {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix, PACKAGE_ROOT)}
    assert set(outcome["root"]) <= view


@pytest.fixture()
def request_cleanup() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_the_uid_of_its_own_alone(tmp_path: Path, request_cleanup: list[Path]) -> None:
    if os.geteuid() != 0:
        pytest.skip("the host does not run as root: workers keep its uid")
    # without a view of its own, the uid must reach its interpreter: the system's
    # python3 (a pyenv one is under /root, 0700, which the confinement refuses below)
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip("no system python3 outside /root for the probe")
    policy = IsolationPolicy(namespaces=False, cgroups=False)
    # pytest's own folders are 0700: the uid could not even enter them
    open_dir = Path(tempfile.mkdtemp(prefix="acp-uid-", dir="/tmp"))
    request_cleanup.append(open_dir)
    open_dir.chmod(0o755)
    spec = replace(_spec(open_dir), read_roots=(str(open_dir),))
    confinement = confine(spec, policy=policy, cgroup=None, cgroup_problem="off")
    assert confinement.uid == worker_uid("probe") and "own-uid" in confinement.layers
    secret = open_dir / "root-only.txt"
    secret.write_text("root's")
    secret.chmod(0o600)
    os.chown(spec.data_dir, worker_uid("probe"), worker_uid("probe"))
    done = subprocess.run(
        [*confinement.command, system_python, "-I", "-c", PROBE, str(secret),
         str(Path(spec.data_dir) / "mine"), str(os.getpid())],
        capture_output=True, text=True, timeout=60, check=False, cwd=spec.data_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["uid"] == worker_uid("probe")
    assert outcome["hidden"] == "PermissionError"  # there, but not its own
    assert outcome["signal-host"] == "PermissionError"  # another uid's process
    assert outcome["own"] == "allowed"


def test_a_python_out_of_the_uids_reach_keeps_the_hosts_uid_without_a_view(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the host does not run as root: workers keep its uid")
    hidden = tmp_path / "closed"
    (hidden / "python").mkdir(parents=True)
    hidden.chmod(0o700)
    spec = replace(_spec(tmp_path), read_roots=(str(hidden / "python"),))
    policy = IsolationPolicy(namespaces=False, cgroups=False)
    confinement = confine(spec, policy=policy, cgroup=None, cgroup_problem="off")
    assert confinement.uid is None
    assert (
        confinement.missing["own-uid"] == f"{hidden} is not readable by other users (chmod o+rx it)"
    )


LANDLOCK_PROBE = """
import json, os, socket, sys
sys.path.insert(0, sys.argv[3])
from acp_plugins.isolation.landlock import restrict_self
problem = restrict_self(read=[sys.prefix, sys.base_prefix, sys.argv[3]], write=[sys.argv[1]])
outcome = {"problem": problem}
def attempt(name, action):
    try:
        action()
        outcome[name] = "allowed"
    except OSError as error:
        outcome[name] = type(error).__name__
attempt("write-own", lambda: open(os.path.join(sys.argv[1], "mine"), "w").close())
attempt("read-outside", lambda: open(sys.argv[2]).close())
attempt("read-passwd", lambda: open("/etc/passwd").close())
attempt("signal-parent", lambda: os.kill(os.getppid(), 0))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
print(json.dumps(outcome))
"""


def test_landlock_alone(tmp_path: Path) -> None:
    abi = landlock_abi()
    if abi < 1:
        pytest.skip("this kernel has no Landlock")
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    done = _run([], LANDLOCK_PROBE, str(data), str(outside), PACKAGE_ROOT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["problem"] is None
    assert outcome["write-own"] == "allowed"
    assert outcome["read-outside"] == outcome["read-passwd"] == "PermissionError"
    if abi >= 6:
        assert outcome["signal-parent"] == "PermissionError"  # scoped signals
    if abi >= 4:
        assert outcome["tcp"] == "PermissionError"  # TCP connect refused


def _cgroup(limits: WorkerLimits) -> WorkerCgroup:
    made = WorkerCgroup.create(cgroup_name("probe"), limits)
    if isinstance(made, str):
        pytest.skip(made)
    return made


def _in_cgroup(
    cgroup: WorkerCgroup, tmp_path: Path, script: str
) -> subprocess.CompletedProcess[str]:
    policy = IsolationPolicy(namespaces=False, own_uid=False, drop_privileges=False)
    confinement = confine(_spec(tmp_path), policy=policy, cgroup=cgroup, cgroup_problem=None)
    return _run(list(confinement.command), script, cwd=tmp_path)


def test_the_cgroup_holds_memory(tmp_path: Path) -> None:
    cgroup = _cgroup(WorkerLimits(memory_mb=48, cpu_share=None))
    try:
        done = _in_cgroup(cgroup, tmp_path, "hoard = [bytearray(8 << 20) for _ in range(32)]")
        assert done.returncode == -9 or done.returncode == 137
        assert cgroup.out_of_memory()
        assert "killed by SIGKILL" in describe_exit(done.returncode, None, "", WorkerLimits())
    finally:
        cgroup.remove()


def test_the_cgroup_holds_processes_and_cpu(tmp_path: Path) -> None:
    cgroup = _cgroup(WorkerLimits(processes=8, cpu_share=0.2))
    assert cgroup.hold_cpu()  # what the host does once the worker is ready
    script = """
import os, time, resource
made = 0
children = []
for _ in range(20):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
start_wall, start_cpu = time.monotonic(), time.process_time()
while time.monotonic() - start_wall < 2.0:
    pass
print(len(children), (time.process_time() - start_cpu) / (time.monotonic() - start_wall))
"""
    try:
        done = _in_cgroup(cgroup, tmp_path, script)
        assert done.returncode == 0, done.stderr
        forked, share = done.stdout.split()
        assert int(forked) < 8  # pids.max counts the launcher and the probe too
        assert float(share) < 0.35  # a spinning loop would take a whole CPU
    finally:
        cgroup.remove()


_HOST_THAT_LEAVES_CGROUPS = """
import json, subprocess, sys
from acp_plugins.isolation.cgroups import WorkerCgroup, cgroup_name
from acp_plugins.loading.trust import WorkerLimits
empty = WorkerCgroup.create(cgroup_name("gone"), WorkerLimits(cpu_share=None))
held = WorkerCgroup.create(cgroup_name("held"), WorkerLimits(cpu_share=None))
occupant = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for path in held.procs_files:
    open(path, "w").write(str(occupant.pid))
print(json.dumps({"empty": [str(d) for d in empty.directories],
                  "held": [str(d) for d in held.directories], "occupant": occupant.pid}))
"""


def test_the_cgroups_a_dead_host_left_are_swept_but_not_one_in_use(tmp_path: Path) -> None:
    _cgroup(WorkerLimits(cpu_share=None)).remove()  # skips where no cgroup can be made
    done = _run([], _HOST_THAT_LEAVES_CGROUPS, cwd=tmp_path)  # ends without removing them
    assert done.returncode == 0, done.stderr
    left = json.loads(done.stdout)
    empty, held = [Path(d) for d in left["empty"]], [Path(d) for d in left["held"]]
    parents = {d.parent for d in empty}
    try:
        assert all(d.is_dir() for d in empty + held)
        # (other tests' hosts, killed, leave cgroups too: the sweep may take theirs as well)
        for parent in parents:  # too young: its worker might be about to join it
            sweep_stale(parent)
        assert all(d.is_dir() for d in empty)
        swept = {name for parent in parents for name in sweep_stale(parent, min_age_s=0)}
        assert {d.name for d in empty} <= swept
        assert not {d.name for d in held} & swept
        assert not any(d.exists() for d in empty)
        assert all(d.is_dir() for d in held)  # a process is in it
    finally:
        os.kill(left["occupant"], 9)
    deadline = time.monotonic() + 5
    while any(d.exists() for d in held) and time.monotonic() < deadline:
        for parent in parents:
            sweep_stale(parent, min_age_s=0)
        time.sleep(0.05)
    assert not any(d.exists() for d in held)


def test_a_cgroup_left_by_an_earlier_process_with_this_pid_is_no_obstacle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = WorkerLimits(cpu_share=None)
    monkeypatch.setattr(cgroups, "_TOKEN", "0ld0")  # the earlier process
    monkeypatch.setattr(cgroups, "_started", itertools.count(1))
    squatter = _cgroup(limits)  # it ended without removing it
    monkeypatch.undo()
    monkeypatch.setattr(cgroups, "_started", itertools.count(1))  # this process starts counting
    try:
        made = _cgroup(limits)
        assert made.directories != squatter.directories
        made.remove()
    finally:
        squatter.remove()


def test_strict_settings_refuse_a_worker_that_would_lack_a_layer(
    install_plugins: Any, tmp_path: Path
) -> None:
    import asyncio

    from acp_plugins import PluginHost
    from conftest import sample

    directory = install_plugins(sample("acp-echo"))
    strict = IsolationPolicy(strict_layers=True, cgroups=False)
    host = PluginHost(search_path=[directory], data_root=tmp_path / "data", isolation=strict)
    asyncio.run(host.start())
    try:
        record = host.record("echo")
        assert record.state.value == "discovered"
        assert "would lack isolation layers (cgroup: turned off" in (record.reason or "")
        assert "isolation settings are strict" in (record.reason or "")
    finally:
        asyncio.run(host.stop())
