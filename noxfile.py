"""Nox sessions: the test matrix, lint, the demo, the benchmarks and the soak.

nox -s tests          # the suite on the newest Python found, newest dependencies
nox -s tests_lowest   # the suite on the oldest Python, lowest declared dependency versions
nox -s matrix         # the suite on the Pythons in between, newest dependencies (not in CI)
nox -s lint           # ruff, mypy --strict and the layering contract
nox -s docs           # the documentation site (mkdocs, warnings as errors), reference generated
nox -s demo           # install the sample plugins and drive them through the CLI
nox -s bench          # the benchmarks (not part of the tests)
nox -s soak           # the reload soak: messages at 1,000/s across upgrades (not part of the tests)
nox -s fuzz           # the server's API fuzzed from its OpenAPI schema, at length (not in CI)
nox -s template       # a generated project per interface, its own nox (newest Python; -- all)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
SAMPLES = sorted(
    str(p) for p in (ROOT / "sample_plugins").iterdir() if (p / "pyproject.toml").exists()
)
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
#: The lowest versions pyproject.toml declares; `tests_lowest` proves they work.
LOWEST = [
    "pluggy==1.5.0",
    "packaging==23.2",
    "pydantic==2.7.0",
    "pydantic-settings==2.3.0",
    "watchfiles==0.21.0",
    "prometheus-client==0.20.0",
    "fastapi==0.115.0",
    "uvicorn==0.30.0",
    "httpx==0.27.0",
    "websockets==14.0",
    "selenium==4.20.0",
    "copier==9.4.1",
    "nox==2024.4.15",
    "schemathesis==4.30.0",
]

nox.options.sessions = ["lint", "docs", "tests", "tests_lowest", "template"]
nox.options.reuse_existing_virtualenvs = False


def _enable_pyenv_interpreters() -> None:
    """Let pyenv's shims answer for every installed version (python3.10, python3.12...)."""
    pyenv = shutil.which("pyenv")
    if pyenv is None or os.environ.get("PYENV_VERSION"):
        return
    found = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
    versions = [v.strip() for v in found.stdout.split() if v.strip()[:1].isdigit()]
    current = subprocess.run([pyenv, "version-name"], capture_output=True, text=True).stdout.strip()
    ordered = [current] + [v for v in versions if v != current] if current else versions
    os.environ["PYENV_VERSION"] = ":".join(ordered)


def _available(versions: list[str]) -> list[str]:
    _enable_pyenv_interpreters()
    usable = []
    for version in versions:
        binary = shutil.which(f"python{version}")
        if binary and subprocess.run([binary, "-c", ""], capture_output=True).returncode == 0:
            usable.append(version)
    return usable


PYTHONS = _available(SUPPORTED)


@nox.session(python=PYTHONS[-1:] or None)
def tests(session: nox.Session) -> None:
    """Run the test suite (the project's tests and the sample plugins' own tests).

    On the newest Python found; the oldest runs it with the lowest dependency
    versions (``tests_lowest``), the ones in between in ``matrix``: together, each
    Python once. CI runs the two ends (the whole matrix takes twice as long).
    """
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[1:-1])
def matrix(session: nox.Session) -> None:
    """Run the suite on each Python between the oldest and the newest, newest dependencies."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[:1])
def tests_lowest(session: nox.Session) -> None:
    """Run the suite with the lowest dependency versions pyproject.toml declares."""
    session.install("-e", ".[test]", *LOWEST)
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHONS[-1:] or None)
def lint(session: nox.Session) -> None:
    """ruff (lint and format), mypy --strict, and the layering contract (import-linter)."""
    session.install("-e", ".[server,testing]", "ruff", "mypy", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "acp_plugins")
    session.run("lint-imports")


@nox.session(python=PYTHONS[-1:] or None)
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs, warnings as errors: the author's guide,
    the architecture, and reference pages generated from the hookspecs and models."""
    session.install("-e", ".[docs]")
    session.run("python", "docs/generate_reference.py", "--check")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site")
    )


@nox.session(python=PYTHONS[:1] or None)
def demo(session: nox.Session) -> None:
    """Install the sample plugins and show the host at work through the CLI."""
    session.install("-e", ".", *SAMPLES)
    session.run("python", "-c", "import sys; print('the demo runs on Python', sys.version)")
    data = Path(session.create_tmp()).resolve()
    config = data / "acp-plugins.toml"
    # isolated, the store may open files in its own data directory only
    database = data / "plugin-data" / "plugins" / "sqlite-store" / "demo.sqlite3"
    config.write_text(
        "[host]\ntimeout = 5\n\n"
        '[plugins.echo]\nprefix = "echo> "\n\n'
        f'[plugins.sqlite-store]\ndatabase = "{database}"\n'
    )
    (data / "user.toml").write_text("")  # keep the demo away from a real per-user file
    env = {
        "ACP_HOST_DATA_DIR": str(data / "plugin-data"),
        "ACP_CONFIG_FILE": str(config),
        "ACP_USER_CONFIG": str(data / "user.toml"),
        "ACP_PLUGIN_ACTIVITY_ANALYTICS__TITLE": "Demo activity report",
    }
    steps = [
        ["acp-plugins", "list"],
        ["acp-plugins", "info", "activity-analytics"],
        ["acp-plugins", "config", "show", "echo"],
        ["acp-plugins", "send", "--type", "echo", "hello", "agents"],
        ["acp-plugins", "config", "set", "echo", "prefix", "runtime> "],
        ["acp-plugins", "send", "--type", "echo", "hello", "again"],
        ["acp-plugins", "config", "show", "sqlite-store"],
        ["acp-plugins", "config", "show", "host"],
        ["acp-plugins", "commands"],
        ["acp-plugins", "run", "add", "2", "40.25", "--digits", "1"],
        ["acp-plugins", "run", "upper", "plugins", "are", "distributions", "--reverse"],
        ["acp-plugins", "run", "add", "--help"],
        ["acp-plugins", "sources"],
        ["acp-plugins", "query", "agent-events", "--limit", "5", "--order-by=-at"],
        ["acp-plugins", "query", "agents"],
        ["acp-plugins", "report", "--format", "markdown"],
        ["acp-plugins", "config", "validate"],
        ["acp-plugins", "validate", str(ROOT / "sample_plugins" / "acp-echo")],
        ["acp-plugins", "audit", "--last", "8"],
    ]
    for step in steps:
        session.run(*step, env=env)


@nox.session(python=PYTHONS[:1] or None)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (ratios against raw pluggy and stevedore, measured in the same run)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHONS[:1] or None)
def soak(session: nox.Session) -> None:
    """The reload soak: 1,000 messages/s for 60 s with 10 upgrades and reloads, both modes."""
    session.install("-e", ".")
    session.run("python", "-m", "benchmarks.soak", *session.posargs)


@nox.session(python=PYTHONS[-1:] or None)
def fuzz(session: nox.Session) -> None:
    """The server's API fuzzed by schemathesis from its OpenAPI schema, as in the suite but
    with 300 examples an operation and a random seed (``-- 1000`` for another count)."""
    session.install("-e", ".[test]")
    examples = session.posargs[0] if session.posargs else "300"
    session.run("pytest", "tests/test_server_fuzz.py", "-n", "0", "-q",
                env={"ACP_FUZZ_EXAMPLES": examples, "ACP_FUZZ_SEED": ""})  # fmt: skip


@nox.session(python=PYTHONS[-1:] or None)
def template(session: nox.Session) -> None:
    """Generate one project per interface with `acp-plugins new` and run its own nox: its
    tests and the conformance suite, against a wheel of this checkout. On the newest
    Python found (CI); ``nox -s template -- all`` runs each project's whole matrix. Then
    the conformance suite's matrix (``--matrix``) of the echo sample at both ends."""
    session.install("-e", ".[testing]", "nox")
    work = Path(session.create_tmp()).resolve()
    wheels = work / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), ".")
    (wheel,) = wheels.glob("acp_plugins-*.whl")
    pythons = [] if "all" in session.posargs else ["--python", PYTHONS[-1]]
    for interface in ("message", "command", "data", "analytics"):
        project = work / f"acp-kit-{interface}"
        if project.exists():
            shutil.rmtree(project)
        session.run("acp-plugins", "new", f"kit-{interface}", "--interface", interface,
                    "--dir", str(project))  # fmt: skip
        with session.chdir(project):
            session.run("nox", *pythons, env={"ACP_PLUGINS_SOURCE": str(wheel)})
    ends = sorted({PYTHONS[0], PYTHONS[-1]})
    session.run("acp-plugins", "test", str(ROOT / "sample_plugins" / "acp-echo"), "--core",
                str(wheel), *(f"--python={v}" for v in ends))  # fmt: skip
