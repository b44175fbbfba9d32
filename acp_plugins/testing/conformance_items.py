"""``pytest --acp-conformance``: the conformance suite as tests, one per category.

The suite runs once per session (on the first of these tests, as ``acp-plugins test``
in a process of its own); each test passes
when every check of its category passed, fails listing those that did not, and
shows every check with its reason in its report section.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from acp_plugins.testing.conformance import (
    CATEGORIES,
    DEFAULT_BUDGET_MS,
    CheckResult,
    ConformanceReport,
)

__all__ = ["ConformanceItem", "conformance_items"]


class _Shared:
    def __init__(self, project: Path, budget_ms: float, also: Sequence[Path]) -> None:
        self.project = project
        self.budget_ms = budget_ms
        self.also = also
        self.report: ConformanceReport | None = None

    def get(self) -> ConformanceReport:
        """The report of a run in a process of its own: the tests' imports and hosts
        cannot change what the checks see."""
        if self.report is None:
            command = [sys.executable, "-m", "acp_plugins", "test", str(self.project),
                       "--json", "--budget-ms", str(self.budget_ms)]  # fmt: skip
            for other in self.also:
                command += ["--with", str(other)]
            with tempfile.TemporaryDirectory() as elsewhere:
                done = subprocess.run(command, capture_output=True, text=True, cwd=elsewhere,
                                      check=False)  # fmt: skip
            try:
                found = json.loads(done.stdout)
                checks = [CheckResult(**check) for check in found["checks"]]
            except (ValueError, KeyError, TypeError):
                raise ConformanceFailed(
                    f"acp-plugins test did not report (status {done.returncode}): "
                    f"{done.stderr.strip() or done.stdout.strip()}"
                ) from None
            self.report = ConformanceReport(found["project"], checks, found["seconds"])
        return self.report


class ConformanceFailed(Exception):
    """Checks of a category failed (the message lists them)."""


class ConformanceItem(pytest.Item):
    """The checks of one category of the conformance suite."""

    def __init__(self, *, category: str, shared: _Shared, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.category = category
        self.shared = shared

    def runtest(self) -> None:
        checks = [c for c in self.shared.get().checks if c.category == self.category]
        lines = [f"{'ok  ' if c.ok else 'FAIL'}  {c.name}" + (f": {c.reason}" if c.reason else "")
                 for c in checks]  # fmt: skip
        self.add_report_section("call", "conformance", "\n".join(lines) or "no checks")
        failed = [line for line, c in zip(lines, checks, strict=True) if not c.ok]
        if not checks:
            raise ConformanceFailed(f"no {self.category} check could run (see the others)")
        if failed:
            raise ConformanceFailed("\n".join(failed))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"acp-conformance: {self.category}"


def conformance_items(
    session: pytest.Session, project: Path, budget_ms: float | None, also: Sequence[Path] = ()
) -> list[pytest.Item]:
    """One item per category, sharing one run of the suite."""
    budget = budget_ms if budget_ms is not None else DEFAULT_BUDGET_MS
    shared = _Shared(project, budget, also)
    return [
        ConformanceItem.from_parent(
            session, name=f"acp-conformance[{category}]", category=category, shared=shared
        )
        for category in CATEGORIES
    ]
