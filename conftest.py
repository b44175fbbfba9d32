"""Shared fixtures: real plugin distributions, installed with pip, and hosts on them.

Each set of plugin projects is installed once per test session with
``pip install --target DIR`` into its own directory; a host discovers only the
directory it is given (``PluginHost(search_path=[DIR])``), so scenarios do not
see each other's plugins.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from acp_plugins.testing.packaging import install_projects

# The suite runs four test files at a time, on machines with as few as two CPUs: how
# fast an example is drawn or run says nothing about its correctness, so hypothesis
# checks neither (its other health checks stay on).
settings.register_profile(
    "shared-cpus", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-cpus")

ROOT = Path(__file__).resolve().parent
SAMPLES = ROOT / "sample_plugins"
FIXTURE_PLUGINS = ROOT / "tests" / "fixture_plugins"

SAMPLE_PROJECTS = ("acp-echo", "acp-tools", "acp-sqlite-store", "acp-activity-analytics")


def sample(name: str) -> Path:
    return SAMPLES / name


def fixture_plugin(name: str) -> Path:
    return FIXTURE_PLUGINS / name


@pytest.fixture(scope="session")
def install_plugins(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Path]:
    """Install the given plugin projects into a fresh directory (cached per set)."""
    cache: dict[tuple[str, ...], Path] = {}

    def install(*projects: Path) -> Path:
        key = tuple(sorted(str(project) for project in projects))
        if key not in cache:
            digest = hashlib.sha1("\n".join(key).encode()).hexdigest()[:10]
            target = tmp_path_factory.mktemp(f"plugins-{digest}")
            target.chmod(0o755)  # isolated workers run as uids of their own: they read it
            install_projects(projects, target)
            cache[key] = target
        return cache[key]

    return install


@pytest.fixture(scope="session")
def samples_dir(install_plugins: Callable[..., Path]) -> Path:
    """A directory with the four sample plugins installed."""
    return install_plugins(*(sample(name) for name in SAMPLE_PROJECTS))


@pytest.fixture()
def run() -> Iterator[Callable[..., object]]:
    """Run a coroutine to completion on one event loop shared by the test."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    close_loop(loop)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running on ``loop`` and close it, as ``asyncio.run`` does."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
