"""The worker's sandbox layers, each proven on its own in a real process.

The attack suite (test_isolation.py) shows the layers together through a worker;
here each runs alone, so that a layer which silently stopped working is caught
even where another layer would still have refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from acp_plugins.isolation.sandbox import SandboxSpec

SECCOMP_PROBE = """
import errno, json, os, socket, sys, threading
from acp_plugins.isolation.sandbox import SandboxSpec, apply_limits, install_seccomp
spec = SandboxSpec.from_dict(json.loads(sys.argv[1]))
apply_limits(spec)
warning = install_seccomp(spec)
outcome = {"warning": warning}

def attempt(name, action):
    try:
        action()
        outcome[name] = "allowed"
    except OSError as error:
        outcome[name] = errno.errorcode.get(error.errno, str(error.errno))
    except ValueError:  # what resource.setrlimit makes of EPERM
        outcome[name] = "EPERM"

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

attempt("fork", fork)
if not spec.allow_processes:  # allowed, it would replace this probe
    attempt("exec", lambda: os.execv("/bin/true", ["true"]))
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("socketpair", lambda: [s.close() for s in socket.socketpair()])
attempt("pidfd", lambda: os.close(os.pidfd_open(os.getpid())))
thread = threading.Thread(target=lambda: None)
attempt("thread", lambda: (thread.start(), thread.join()))
import resource
attempt("raise-limit", lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096)))
print(json.dumps(outcome))
"""

AUDIT_PROBE = """
import json, os, sys
from acp_plugins.isolation.sandbox import SandboxSpec, SandboxViolation, install_audit_hook
spec = SandboxSpec.from_dict(json.loads(sys.argv[1]))
refusals = []
arm = install_audit_hook(spec, lambda event, message: refusals.append(event))
arm()
outcome = {}

def attempt(name, action):
    try:
        action()
        outcome[name] = "allowed"
    except SandboxViolation as error:
        outcome[name] = str(error)

data = spec.data_dir
attempt("import-json", lambda: __import__("json"))
attempt("import-subprocess", lambda: __import__("subprocess"))
attempt("import-forged-globals", lambda: __import__("shutil", {"__name__": "json"}))
attempt("write-inside", lambda: open(os.path.join(data, "ok.txt"), "w").close())
attempt("write-outside", lambda: open(sys.argv[2], "w").close())
attempt("read-passwd", lambda: open("/etc/passwd").close())
attempt("system", lambda: os.system("true"))
attempt("listdir-root", lambda: os.listdir("/"))
attempt("remove-outside", lambda: os.remove(sys.argv[2]))
print(json.dumps({"outcome": outcome, "reported": refusals}))
"""


def _probe(script: str, spec: SandboxSpec, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(spec.to_dict()), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), result.stderr
    found: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return found


def _spec(tmp_path: Path, **changes: Any) -> SandboxSpec:
    values: dict[str, Any] = {
        "plugin_id": "probe", "data_dir": str(tmp_path / "data"), "own_packages": {"__main__"},
    } | changes  # fmt: skip
    values["own_packages"] = frozenset(values["own_packages"])
    return SandboxSpec(**values)


def test_seccomp_refuses_processes_sockets_and_process_handles_but_not_threads(
    tmp_path: Path,
) -> None:
    outcome = _probe(SECCOMP_PROBE, _spec(tmp_path))
    if outcome["warning"]:
        pytest.fail(f"seccomp is not available on this machine: {outcome['warning']}")
    assert outcome == {
        "warning": None,
        "fork": "EPERM",
        "exec": "EPERM",
        "inet": "EACCES",
        "inet6": "EACCES",
        "unix": "EACCES",  # by path or abstract name: a way out of the namespaces
        "socketpair": "allowed",  # asyncio's self-pipe; the worker's channel is inherited
        "pidfd": "EPERM",
        "thread": "allowed",
        "raise-limit": "EPERM",
    }


def test_seccomp_lets_granted_processes_and_network_through(tmp_path: Path) -> None:
    outcome = _probe(SECCOMP_PROBE, _spec(tmp_path, allow_network=True, allow_processes=True))
    assert (outcome["fork"], outcome["inet"], outcome["inet6"]) == ("allowed",) * 3
    assert (outcome["unix"], outcome["pidfd"]) == ("allowed",) * 2


def test_the_audit_hook_refuses_by_name_and_reports_each_refusal(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    found = _probe(AUDIT_PROBE, _spec(tmp_path), str(outside))
    outcome = found["outcome"]
    assert outcome["import-json"] == "allowed"
    assert outcome["write-inside"] == "allowed"
    assert outcome["import-subprocess"] == (
        "'probe' may not import 'subprocess' (not an allowed module) (sandbox refused import)"
    )
    assert "may not import 'shutil'" in outcome["import-forged-globals"]
    assert outcome["write-outside"] == (
        f"'probe' may not write '{outside}' (outside its data directory) (sandbox refused open)"
    )
    assert "may not read '/etc/passwd'" in outcome["read-passwd"]
    assert "(needs 'run-processes') (sandbox refused os.system)" in outcome["system"]
    assert "may not look into '/'" in outcome["listdir-root"]
    assert "may not change" in outcome["remove-outside"]
    assert outside.read_text() == "keep"
    assert found["reported"] == [
        "import", "import", "open", "open", "os.system", "os.listdir", "os.remove",
    ]  # fmt: skip


def test_the_spec_travels_as_json() -> None:
    spec = SandboxSpec(
        plugin_id="p", data_dir="/d", read_roots=("/r",), own_packages=frozenset({"p"}),
        memory_bytes=1 << 20, allow_network=True, granted=("network",),
    )  # fmt: skip
    assert SandboxSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
