"""A writer process for tests/test_overrides.py: it writes to an OverrideStore for real.

    python overrides_writer.py big PATH SIZE
        forever, for n = (the file's n) + 1, + 2, ...: replace the entry of plugin "writer"
        with {"big": "x" * (SIZE + n), "n": n}, in one update (so every complete file
        has len(big) == SIZE + n); the test kills it with SIGKILL at a random moment
    python overrides_writer.py keys PATH NAME COUNT
        set("race", f"k{NAME}_{i}", i) for i in range(COUNT), as fast as it can

Either way it prints "ready" once imported, waits for a line on stdin (so the test can start
several writers at the same moment), prints "started" and writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from acp_plugins.config.overrides import OverrideStore


def write_big(store: OverrideStore, size: int) -> None:
    n = store.get("writer").get("n", -1) + 1
    while True:

        def change(data: dict[str, dict[str, Any]], n: int = n) -> None:
            data["writer"] = {"big": "x" * (size + n), "n": n}

        store.update(change)
        n += 1


def write_keys(store: OverrideStore, name: str, count: int) -> None:
    for i in range(count):
        store.set("race", f"k{name}_{i}", i)


def main(argv: list[str]) -> None:
    mode, path = argv[0], Path(argv[1])
    store = OverrideStore(path)
    print("ready", flush=True)
    sys.stdin.readline()
    print("started", flush=True)
    if mode == "big":
        write_big(store, int(argv[2]))
    elif mode == "keys":
        write_keys(store, argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
