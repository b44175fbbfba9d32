"""Shared fixtures: real plugin distributions, installed with pip, and hosts on them.

Each set of plugin projects is installed once per test session with
``pip install --target DIR`` into its own directory; a host discovers only the
directory it is given (``PluginHost(search_path=[DIR])``), so scenarios do not
see each other's plugins. Each project is built into a wheel once per run, shared
by the suite's processes (pip builds with setuptools: seconds a project, and the
same projects are installed in many sets).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from acp_plugins.testing.packaging import install_wheels

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


_NOT_SOURCE = ("build", "dist", "*.egg-info", ".nox", ".venv", "__pycache__")


def _source_digest(project: Path) -> str:
    digest = hashlib.sha1(str(project).encode())
    for path in sorted(project.rglob("*")):
        parts = path.relative_to(project).parts
        if path.is_file() and not any(Path(part).match(p) for part in parts for p in _NOT_SOURCE):
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _wheel_of(project: Path, shared: Path) -> Path:
    """The project's wheel, built once per run by whichever process asks first."""
    folder = shared / f"wheel-{project.name}-{_source_digest(project)}"
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            source = folder / "source"
            shutil.copytree(project, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--no-build-isolation", "--disable-pip-version-check", "-w", str(folder),
                 str(source)],
                check=True, capture_output=True,
            )  # fmt: skip
            (folder / "built").touch()
    (wheel,) = folder.glob("*.whl")
    return wheel


@pytest.fixture(scope="session")
def install_plugins(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Path]:
    """Install the given plugin projects into a fresh directory (cached per set)."""
    cache: dict[tuple[str, ...], Path] = {}
    # the folder all of the run's processes share (under xdist each has its own below it)
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base

    def install(*projects: Path) -> Path:
        key = tuple(sorted(str(project) for project in projects))
        if key not in cache:
            digest = hashlib.sha1("\n".join(key).encode()).hexdigest()[:10]
            target = tmp_path_factory.mktemp(f"plugins-{digest}")
            install_wheels([_wheel_of(project, shared) for project in projects], target)
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
