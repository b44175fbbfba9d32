"""The server's whole API, fuzzed from its own OpenAPI schema by schemathesis.

A real ``acp-plugins serve`` with the four samples (echo trusted, the others isolated)
and an allowed package index on 127.0.0.1 that holds nothing. Schemathesis reads
``/api/v1/openapi.json`` and sends what it documents, what it does not (wrong types,
missing fields, other methods) and sequences of calls (install, config, suspend,
uninstall...). Every answer must be one the schema documents, with its content type
and model, never a 500; every 405 names what the path allows; and the server writes
no traceback.

Two of schemathesis's checks are left out, on purpose:

- ``positive_data_acceptance``: some requests that fit the schema are refused by rules
  it cannot hold (a configuration value is checked against each plugin's own settings
  model, an index must be one the host allows, a time range must end after it starts);
- ``negative_data_rejection``: request models coerce as pydantic does by default
  (``"1"`` to 1, Unix time to a datetime), so a few values outside the schema's types
  are read rather than refused.

``nox -s fuzz`` runs the same with many more examples and a random seed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server import ADMIN_TOKEN, Server, _start, serving_folder

#: Examples per operation (``ACP_FUZZ_EXAMPLES``); the seed (``ACP_FUZZ_SEED``, or random).
EXAMPLES = int(os.environ.get("ACP_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("ACP_FUZZ_SEED", "1")


@pytest.fixture()
def fuzzed_server(samples_dir: Path, tmp_path: Path) -> Iterator[Server]:
    # the fuzzer uninstalls plugins: a copy, not the folder other tests share
    plugins = tmp_path / "plugins"
    shutil.copytree(samples_dir, plugins)
    empty_index = tmp_path / "index"
    (empty_index / "simple").mkdir(parents=True)
    with serving_folder(empty_index, "simple/") as index:
        running = _start(plugins, tmp_path / "data", trust=("echo",),
                         ACP_SERVER_TOKEN=ADMIN_TOKEN,
                         ACP_HOST_SERVER__INDEXES=json.dumps([f"{index}simple"]))  # fmt: skip
        try:
            yield running
        finally:
            running.process.send_signal(signal.SIGTERM)
            running.process.wait(timeout=60)


def test_every_answer_to_a_fuzzed_request_is_one_the_schema_documents(
    fuzzed_server: Server, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("st")), "run",
        f"{fuzzed_server.url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
        "--max-examples", str(EXAMPLES), "--workers", "1", "--no-color",
        "--report", "ndjson", "--report-dir", str(tmp_path / "report"),
    ]  # fmt: skip
    if SEED:
        command += ["--seed", SEED]
    fuzzed = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert fuzzed.returncode == 0, fuzzed.stdout[-12000:] + fuzzed.stderr[-2000:]
    assert "Stateful" in fuzzed.stdout  # the sequences of calls ran too
    fuzzed_server.process.send_signal(signal.SIGTERM)
    _, errors = fuzzed_server.process.communicate(timeout=60)
    assert "Traceback" not in errors, errors[-6000:]
    assert fuzzed_server.process.returncode == 0
