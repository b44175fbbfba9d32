"""The pytest plugin of acp-plugins (``pytest11``; ``pip install 'acp-plugins[testing]'``).

Fixtures for the tests of a plugin project:

- ``acp_host``: a :class:`~acp_plugins.testing.PluginHarness`, a real host that sees
  only the project under test (installed with pip into a temporary folder once per
  session) and the plugins the test made with ``tmp_plugin``; started on first use,
  stopped after the test. Its mode is ``acp_mode``.
- ``acp_mode``: ``"trusted"`` unless the test is marked ``@pytest.mark.acp_both_modes``
  (it then runs once per mode) or ``@pytest.mark.acp_mode("isolated")``.
- ``acp_settings``: ``{plugin_id: {key: value}}`` for the host (override the fixture).
- ``tmp_plugin``: build and install a throwaway plugin from a manifest and source.
- ``mock_context``: a factory of :class:`~acp_plugins.testing.MockPluginContext` for
  the project's manifest (or another one given).

``pytest --acp-conformance`` also runs the conformance suite against the project
(one test per check). The project is the ``acp_project`` ini option, else pytest's
root folder.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from acp_plugins.loading.discovery import add_search_path
from acp_plugins.testing.harness import MODES, Mode, PluginHarness
from acp_plugins.testing.mock_context import MockPluginContext
from acp_plugins.testing.packaging import (
    build_plugin_wheel,
    install_projects,
    install_wheels,
    project_manifests,
    read_pyproject,
)

__all__ = [
    "acp_host",
    "acp_installed",
    "acp_mode",
    "acp_project_dir",
    "acp_settings",
    "mock_context",
    "tmp_plugin",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("acp-plugins")
    group.addoption(
        "--acp-conformance", action="store_true",
        help="run the acp-plugins conformance suite against the plugin project",
    )  # fmt: skip
    group.addoption(
        "--acp-budget-ms", type=float, default=None,
        help="the conformance suite's p99 latency budget per hook call (ms)",
    )  # fmt: skip
    parser.addini("acp_project", "the plugin project under test (default: the root folder)")
    parser.addini("acp_with", "projects of plugins the project depends on, installed beside it",
                  type="paths")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "acp_both_modes: run the test trusted and isolated")
    config.addinivalue_line("markers", "acp_mode(mode): run the test 'trusted' or 'isolated'")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "acp_mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "acp_both_modes"
    ):
        metafunc.parametrize("acp_mode", MODES, indirect=True)


def _project(config: pytest.Config) -> Path | None:
    named = str(config.getini("acp_project") or "").strip()
    root = Path(named) if named else Path(config.rootpath)
    if not root.is_absolute():
        root = Path(config.rootpath) / root
    return root if (root / "pyproject.toml").exists() else None


@pytest.fixture(scope="session")
def acp_project_dir(pytestconfig: pytest.Config) -> Path | None:
    """The plugin project under test (``None``: there is none, only ``tmp_plugin`` ones)."""
    return _project(pytestconfig)


def _declares_plugins(project: Path) -> bool:
    table = read_pyproject(project) or {}
    return bool(table.get("project", {}).get("entry-points", {}).get("acp.plugins"))


_INSTALLED = pytest.StashKey[Path]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Install the project under test before collection, and import it from there.

    The tests then import the very copy the hosts of ``acp_host`` load (a host refuses
    a plugin whose code was imported from somewhere else than it was validated from).
    """
    config = session.config
    project = _project(config)
    if project is None or not _declares_plugins(project):
        return
    folder = Path(tempfile.mkdtemp(prefix="acp-project-"))
    also = [Path(p) for p in config.getini("acp_with")]
    install_projects([project, *also], folder / "plugins")
    add_search_path([folder / "plugins"])
    sys.path.remove(str((folder / "plugins").resolve()))
    sys.path.insert(0, str((folder / "plugins").resolve()))
    config.stash[_INSTALLED] = folder / "plugins"
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session")
def acp_installed(pytestconfig: pytest.Config) -> Path | None:
    """The folder the project (and the ``acp_with`` ones) was installed in at the start
    of the session (``None``: the root folder is no plugin project)."""
    return pytestconfig.stash.get(_INSTALLED, None)


@pytest.fixture()
def acp_mode(request: pytest.FixtureRequest) -> Mode:
    """``trusted`` or ``isolated``: how the plugins of ``acp_host`` run."""
    marker = request.node.get_closest_marker("acp_mode")
    mode = getattr(request, "param", None) or (marker.args[0] if marker and marker.args else None)
    for known in MODES:
        if mode in (None, known):
            return known if mode else "trusted"
    raise pytest.UsageError(f"acp_mode({mode!r}): use 'trusted' or 'isolated'")


@pytest.fixture()
def acp_settings() -> Mapping[str, Mapping[str, Any]]:
    """Settings for ``acp_host``'s plugins, ``{plugin_id: {key: value}}`` (override me)."""
    return {}


@pytest.fixture()
def _acp_extra(tmp_path: Path) -> Path:
    folder = tmp_path / "acp-extra-plugins"
    folder.mkdir()
    folder.chmod(0o755)
    return folder


@pytest.fixture()
def acp_host(
    acp_installed: Path | None,
    _acp_extra: Path,
    acp_mode: Mode,
    acp_settings: Mapping[str, Mapping[str, Any]],
    tmp_path: Path,
) -> Iterator[PluginHarness]:
    """A real host over the project under test and the test's ``tmp_plugin`` plugins."""
    folders = [f for f in (acp_installed, _acp_extra) if f is not None]
    data = tmp_path / "acp-data"
    data.mkdir()
    data.chmod(0o755)
    harness = PluginHarness(folders, data, mode=acp_mode, settings=acp_settings)
    yield harness
    harness.stop()


@pytest.fixture()
def tmp_plugin(
    _acp_extra: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., str]:
    """Install a throwaway plugin: ``tmp_plugin(manifest, source)``; its plugin id.

    ``manifest`` is the manifest as a dict (``plugin_id``, ``version``, ``interfaces``,
    ``permissions``, ``dependencies``...; ``manifest_version``, ``name`` and a core
    dependency are filled in when missing); ``source`` the plugin module's text. Call
    it before using ``acp_host``, or the host rescans to see it.
    """
    wheels = tmp_path / "acp-wheels"
    wheels.mkdir(exist_ok=True)

    def make(manifest: Mapping[str, Any], source: str, *, class_name: str | None = None) -> str:
        full = {"manifest_version": "1.0", "name": str(manifest["plugin_id"]).title(),
                "version": "1.0.0", "dependencies": {"core": ">=2.0.0"}, **manifest}  # fmt: skip
        wheel = build_plugin_wheel(wheels, manifest=full, source=source, class_name=class_name)
        install_wheels([wheel], _acp_extra)
        if "acp_host" in request.fixturenames:
            harness: PluginHarness = request.getfixturevalue("acp_host")
            harness.rescan()
        return str(full["plugin_id"])

    return make


@pytest.fixture()
def mock_context(acp_project_dir: Path | None) -> Callable[..., MockPluginContext]:
    """``mock_context(settings=..., granted=...)``: a context for the project's plugin
    (its manifest found in the project), or ``mock_context(manifest=...)`` for another."""

    def make(manifest: Any = None, **options: Any) -> MockPluginContext:
        if manifest is None:
            found = project_manifests(acp_project_dir) if acp_project_dir else []
            if len(found) != 1:
                raise pytest.UsageError(
                    f"mock_context() found {len(found)} manifest.json files in the project; "
                    "pass manifest=..."
                )
            manifest = found[0]
        return MockPluginContext(manifest, **options)

    return make


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not config.getoption("--acp-conformance"):
        return
    from acp_plugins.testing.conformance_items import conformance_items

    project = _project(config)
    if project is None:
        raise pytest.UsageError("--acp-conformance: no plugin project (set acp_project)")
    also = [Path(p) for p in config.getini("acp_with")]
    budget = config.getoption("--acp-budget-ms")
    items.extend(conformance_items(session, project, budget, also))
