"""The reload soak's own command, run briefly: what ``nox -s soak`` runs for a minute.

Its latency verdict is not asserted here (a loaded CI machine says nothing about it);
what must hold at any speed is asserted: every message answered and handled once,
every swap done, and the upgrades really reached (answers from the new versions).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("mode", ["in-process", "isolated"])
def test_a_short_soak_loses_and_doubles_nothing_across_upgrades_and_reloads(mode: str) -> None:
    command = [sys.executable, "-m", "benchmarks.soak", "--mode", mode, "--seconds", "4",
               "--rate", "200", "--swaps", "3", "--max-ratio", "1e9", "--json"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)
    assert result["mode"] == mode
    # 200/s for 4 s, and on past the last swap if the swaps ran late
    assert result["sent"] >= 800
    assert result["answered"] == result["handled"] == result["sent"]
    assert (result["lost"], result["doubled"], result["errors"]) == (0, 0, [])
    assert [swap["kind"] for swap in result["swaps"]] == ["upgrade", "reload", "upgrade"]
    assert all(swap["ok"] for swap in result["swaps"])
    assert [swap["outcome"] for swap in result["swaps"]] == ["upgraded", "reloaded", "upgraded"]
    # answers came from the first version and from both upgrades
    assert set(result["versions"]) == {"1.0.0", "1.0.1", "1.0.2"}
    assert result["during_reload"] > 0  # messages really were sent while reloading
