"""The plugin author's kit: fixtures, a mock context, a harness and the conformance suite.

``pip install 'acp-plugins[testing]'`` makes the pytest plugin active
(:mod:`acp_plugins.testing.pytest_plugin`: ``acp_host``, ``tmp_plugin``,
``mock_context``, ``acp_mode``); ``acp-plugins test PATH`` runs the conformance suite.
"""

from __future__ import annotations

from acp_plugins.testing.conformance import (
    CATEGORIES,
    DEFAULT_BUDGET_MS,
    CheckResult,
    ConformanceReport,
    run_conformance,
)
from acp_plugins.testing.harness import MODES, Mode, PluginHarness
from acp_plugins.testing.mock_context import Call, MockPluginContext
from acp_plugins.testing.packaging import (
    build_plugin_wheel,
    install_projects,
    install_wheels,
    project_manifests,
    write_wheel,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_BUDGET_MS",
    "MODES",
    "Call",
    "CheckResult",
    "ConformanceReport",
    "MockPluginContext",
    "Mode",
    "PluginHarness",
    "build_plugin_wheel",
    "install_projects",
    "install_wheels",
    "project_manifests",
    "run_conformance",
    "write_wheel",
]
