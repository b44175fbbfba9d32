"""The compatibility matrix: the conformance suite again on other Pythons and core versions.

``acp-plugins test PATH --matrix`` runs, through nox, one cell per Python that the
plugin's ``min_python``/``max_python`` admit and that is on this machine, times each
core version to test against: by default the lowest release of acp-plugins its
``pyproject.toml`` requires and the newest, from your package index (whether each one's
plugin API suits ``dependencies.core`` is checked in the cell); ``--core SPEC`` names others
(a wheel, a folder, or a requirement such as ``acp-plugins==0.1.0``). Each cell is a
fresh virtual environment with that core and its testing kit, where ``acp-plugins test
PATH`` runs the other four categories; the cell passes when all of them pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from acp_plugins.loading.manifest import Manifest
from acp_plugins.testing.packaging import read_pyproject

__all__ = [
    "SUPPORTED_PYTHONS",
    "MatrixCell",
    "admits_python",
    "core_requirements",
    "interpreter_environment",
    "machine_pythons",
    "matrix_cells",
    "run_cell",
]

#: The distribution the matrix's core columns install.
CORE_DISTRIBUTION = "acp-plugins"
#: The Pythons a plugin may declare, oldest first.
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")

_NOXFILE = '''"""Written by acp-plugins test --matrix: one session, the cell in cell.json."""
import json
from pathlib import Path

import nox

CELL = json.loads(Path(__file__).with_name("cell.json").read_text())
nox.options.error_on_missing_interpreters = True


@nox.session(python=CELL["python"], name="cell")
def cell(session):
    session.install(CELL["core"])
    output = session.run("acp-plugins", "test", *CELL["args"], "--json", silent=True,
                         success_codes=[0, 1])
    Path(CELL["report"]).write_text(output or "")
'''


@dataclass(frozen=True)
class MatrixCell:
    """One cell: a Python, a core version (a label and what pip installs) and the verdict."""

    python: str
    core: str
    ok: bool
    summary: str


def interpreter_environment() -> dict[str, str]:
    """This environment, where pyenv is in use with every installed version selected.

    A pyenv shim answers for every version but runs only the selected ones; nox and
    :func:`machine_pythons` run interpreters with this.
    """
    environ = dict(os.environ)
    pyenv = shutil.which("pyenv")
    if pyenv is not None and not environ.get("PYENV_VERSION"):
        found = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
        installed = [v.strip() for v in found.stdout.split() if v.strip()[:1].isdigit()]
        if installed:
            environ["PYENV_VERSION"] = ":".join(installed)
    return environ


def machine_pythons(versions: Sequence[str] = SUPPORTED_PYTHONS) -> list[str]:
    """The versions whose ``pythonX.Y`` runs on this machine (each found is run once)."""
    environ = interpreter_environment()
    usable = []
    for version in versions:
        binary = shutil.which(f"python{version}", path=environ.get("PATH"))
        if binary is None:
            continue
        if subprocess.run([binary, "-c", ""], capture_output=True, env=environ).returncode == 0:
            usable.append(version)
    return usable


def admits_python(manifest: Manifest, version: str) -> bool:
    """Whether the manifest's ``min_python``/``max_python`` admit ``version`` (``3.Y``)."""

    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split(".")[:2])

    low, high = manifest.min_python, manifest.max_python
    return (low is None or key(version) >= key(low)) and (high is None or key(version) <= key(high))


def core_requirements(project: Path) -> dict[str, str]:
    """What pip installs for each default core column: ``lowest`` and ``newest`` admitted.

    From the project's requirement on acp-plugins in ``pyproject.toml``: the lowest is
    the smallest version one of its lower bounds names (none when it has no lower bound),
    the newest whatever your index has newest within it. Whether the plugin API of each
    (``dependencies.core`` in the manifest) suits the plugin is then checked in the cell.
    """
    table = read_pyproject(project) or {}
    wanted = SpecifierSet()
    for text in table.get("project", {}).get("dependencies", []):
        try:
            requirement = Requirement(str(text))
        except InvalidRequirement:
            continue  # said under unit
        if canonicalize_name(requirement.name) == CORE_DISTRIBUTION:
            wanted = requirement.specifier
    bounds = []
    for specifier in wanted:
        if specifier.operator in (">=", "==", "~="):
            with contextlib.suppress(InvalidVersion):
                bounds.append(Version(specifier.version))
    lowest = sorted(v for v in bounds if wanted.contains(v, prereleases=True))
    columns = {"newest": f"{CORE_DISTRIBUTION}[testing]{wanted}"}
    if lowest:
        columns = {"lowest": f"{CORE_DISTRIBUTION}[testing]=={lowest[0]}"} | columns
    return columns


def matrix_cells(
    project: Path, manifests: Sequence[Manifest], cores: Sequence[str], pythons: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """The Pythons (of ``pythons``, admitted by every manifest) and the core columns.

    ``cores``: what ``--core`` named (each its own column, labelled by :func:`_label`); none:
    :func:`core_requirements` of the project.
    """
    admitted = [v for v in pythons if all(admits_python(m, v) for m in manifests)]
    if cores:
        return admitted, {_label(spec): _with_testing(spec) for spec in cores}
    return admitted, core_requirements(project)


def _label(spec: str) -> str:
    """How a ``--core`` column is named: a wheel or folder by its name, else as given."""
    path = Path(spec)
    return path.name if path.suffix == ".whl" or path.is_dir() else spec


def _with_testing(spec: str) -> str:
    """What pip installs for ``--core spec``: that core with its testing kit."""
    path = Path(spec)
    if path.suffix == ".whl" or path.is_dir():
        return f"{path.resolve()}[testing]"
    if spec.startswith(CORE_DISTRIBUTION) and not spec.startswith(f"{CORE_DISTRIBUTION}["):
        return f"{CORE_DISTRIBUTION}[testing]{spec[len(CORE_DISTRIBUTION) :]}"
    return spec


def run_cell(
    project: Path, python: str, core: str, requirement: str, args: Sequence[str]
) -> MatrixCell:
    """Run one cell through nox: a fresh environment with ``requirement``, the suite in it."""
    with tempfile.TemporaryDirectory(prefix="acp-matrix-") as scratch:
        root = Path(scratch)
        report = root / "report.json"
        cell = {"python": python, "core": requirement, "report": str(report),
                "args": [str(project.resolve()), *args]}  # fmt: skip
        (root / "cell.json").write_text(json.dumps(cell))
        (root / "noxfile.py").write_text(_NOXFILE)
        done = subprocess.run(
            [sys.executable, "-m", "nox", "-f", str(root / "noxfile.py"), "--envdir",
             str(root / "envs"), "--no-color", "-s", "cell"],
            capture_output=True, text=True, cwd=root, check=False, env=interpreter_environment(),
        )  # fmt: skip
        text = report.read_text() if report.exists() else ""
    return _verdict(python, core, done, text)


def _verdict(
    python: str, core: str, done: subprocess.CompletedProcess[str], text: str
) -> MatrixCell:
    try:
        inner = json.loads(text) if text else None
    except json.JSONDecodeError:
        inner = None
    if not isinstance(inner, dict):
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
        pip = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
        nox = [line.removeprefix("nox > ") for line in lines if "failed with exit code" in line]
        reason = (pip or nox or [line for line in lines if line] or ["nox gave no report"])[-1]
        return MatrixCell(python, core, False, f"did not run: {reason}")
    checks = inner.get("checks", [])
    failed = [c["name"] for c in checks if not c.get("ok")]
    summary = f"{len(checks) - len(failed)} of {len(checks)} checks passed"
    if failed:
        summary += "; failed: " + "; ".join(failed[:3]) + ("..." if len(failed) > 3 else "")
    return MatrixCell(python, core, not failed and bool(checks), summary)
