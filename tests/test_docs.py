"""The documents generated from the code are up to date."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_model_reference_is_generated_from_the_models() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "docs" / "models.md").read_text()
    for name in ("CommandDefinition", "ArgumentDefinition", "OptionDefinition", "DataQuery",
                 "MetricsData", "Report", "Message", "MessageResponse", "CommandResult",
                 "DataSourceDefinition", "DataResult", "MetricDefinition"):  # fmt: skip
        assert f"### `{name}`" in text
