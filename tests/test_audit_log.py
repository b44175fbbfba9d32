"""The audit log on a disk that fills up: no torn line takes another with it, and every
record that could not be written is counted and reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from acp_plugins.audit import AuditLog, read_audit_log

# Runs in a process of its own: the file size limit (RLIMIT_FSIZE) is the kernel's full
# disk. A write that crosses it is cut short; later writes fail with EFBIG.
WRITER = r"""
import resource, signal, sys
from pathlib import Path
from acp_plugins.audit import AuditLog

path = Path(sys.argv[1])
log = AuditLog(path)
log.record("alpha", "load", "ok", detail="before the disk fills")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, resource.RLIM_INFINITY))
for n in range(5):
    log.record("beta", "deny", "denied", detail=f"while full {n} " + "x" * 60)
print(log.dropped, log.problem, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
log.record("gamma", "load", "ok", detail="after")
print(log.problem, flush=True)
"""


def test_a_full_disk_tears_at_most_one_line_and_the_loss_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    while_full, after = done.stdout.splitlines()
    assert while_full.startswith(f"5 5 audit records could not be written to {path} (")
    assert after == f"5 audit records could not be written to {path}; it is written again now"
    entries, unreadable = read_audit_log(path)
    assert unreadable == 1  # the one line the limit cut short, on a line of its own
    assert [(e.plugin_id, e.outcome) for e in entries] == [
        ("alpha", "ok"),
        ("gamma", "ok"),  # intact: not glued to the torn line
        ("host", "recovered"),
    ]
    assert entries[-1].action == "audit"
    assert (
        entries[-1].detail == "5 records could not be written while the log failed; they are lost"
    )
    last = path.read_text().splitlines()[-1]
    assert json.loads(last)["plugin_id"] == "host"


def test_a_log_that_is_a_directory_loses_records_without_raising(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl").mkdir()
    log = AuditLog(tmp_path / "audit.jsonl")
    for _ in range(3):
        log.record("alpha", "load", "ok")
    assert log.dropped == 3
    assert len(log.entries()) == 3  # still kept in memory
    assert log.problem is not None and "(Is a directory)" in log.problem


def test_a_removed_log_is_created_again_by_the_next_record(tmp_path: Path) -> None:
    # the file stays open between records: one removed meanwhile must not swallow them
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path)
    log.record("alpha", "load", "ok")
    path.unlink()
    log.record("beta", "load", "ok")
    log.close()
    log.record("gamma", "load", "ok")  # after close: opened again
    entries, unreadable = read_audit_log(path)
    assert unreadable == 0
    assert [e.plugin_id for e in entries] == ["beta", "gamma"]
    assert log.dropped == 0


def test_every_action_is_documented_and_the_command_line_filters_by_each() -> None:
    from acp_plugins.audit import AUDIT_ACTIONS
    from acp_plugins.cli import build_parser

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Audit log", 1)[1].split("\n## ", 1)[0]
    for action in AUDIT_ACTIONS:
        assert f"`{action}`" in section, action
        args = build_parser().parse_args(["audit", "--action", action])
        assert args.action == [action]
