"""The conformance suite: a standard set of checks run against a plugin project.

``acp-plugins test PATH`` (or ``pytest --acp-conformance`` inside the project) runs
it: the project is installed with pip into a fresh folder, then driven through a
real host in both modes. Each check has a category (the specification's five:
unit, integration, performance, security, compatibility), a name, and a verdict
with its reason.

- **unit**: the manifest and pyproject agree and are valid (``validate PATH``); the
  entry point name is the plugin id; the plugin loads (its hooks, their signatures
  and its declared interfaces checked by the host); its settings have a JSON Schema;
  its version ranges read back as they are described.
- **integration** (per mode): it installs, loads, initializes and activates; each
  declared interface answers with valid models (messages of its declared types,
  its commands' definitions, a query of each source, its metrics and a report);
  suspend, resume, reload and unload are clean.
- **performance**: trusted, the p99 latency of each of its hooks over
  :data:`GROWTH_CALLS` calls within the budget (:data:`DEFAULT_BUDGET_MS`: its own
  code's speed, not a worker's CPU share); isolated, its worker's resident memory not
  growing by more than :data:`MAX_GROWTH_MB` over as many calls.
- **security** (isolated): it ran with exactly its manifest's permissions and nothing
  was refused (denied operations, sandbox refusals in the audit log), and nothing was
  written into its installation.
- **compatibility**: this Python and this core version are admitted by its manifest,
  and which of the machine's Pythons its ``min_python``/``max_python`` admit; with
  ``matrix`` (``--matrix``), the other four categories again in a fresh environment per
  admitted Python found here and core version (:mod:`acp_plugins.testing.matrix`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from acp_plugins.errors import AcpPluginsError
from acp_plugins.host import CORE_VERSION
from acp_plugins.loading.interfaces import Interface
from acp_plugins.loading.manifest import Manifest, read_manifest
from acp_plugins.loading.project import UNNAMED, check_project
from acp_plugins.loading.versions import parse_range
from acp_plugins.models import TimeRange
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.testing.harness import MODES, Mode, PluginHarness
from acp_plugins.testing.matrix import admits_python, machine_pythons, matrix_cells, run_cell
from acp_plugins.testing.packaging import install_projects, project_manifests

__all__ = [
    "CATEGORIES",
    "DEFAULT_BUDGET_MS",
    "GROWTH_CALLS",
    "MAX_GROWTH_MB",
    "CheckResult",
    "ConformanceReport",
    "run_conformance",
]

CATEGORIES = ("unit", "integration", "performance", "security", "compatibility")
#: The p99 latency one call of a plugin may take, in milliseconds (``--budget-ms``).
DEFAULT_BUDGET_MS = 50.0
#: Calls made to measure latency and memory growth.
GROWTH_CALLS = 300
#: How much a worker's resident memory may grow over those calls, in MiB.
MAX_GROWTH_MB = 8.0


@dataclass(frozen=True)
class CheckResult:
    """One check: its category, what it checks, pass or fail, and why."""

    category: str
    name: str
    ok: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "name": self.name, "ok": self.ok,
                "reason": self.reason}  # fmt: skip


@dataclass
class ConformanceReport:
    """Every check of one run, in order, and how long the run took."""

    project: str
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "ok": self.ok, "seconds": round(self.seconds, 2),
                "checks": [check.to_dict() for check in self.checks]}  # fmt: skip


Progress = Callable[[CheckResult], None]


class CheckFailed(Exception):
    """A conformance check's verdict against the plugin, with the reason."""


def _require(condition: bool, reason: str) -> None:
    """Fail the check being made with ``reason`` unless ``condition`` holds (not an
    ``assert``: it must hold under ``python -O`` too, and read the same under pytest)."""
    if not condition:
        raise CheckFailed(reason)


class _Run:
    """One conformance run: the checks as they are made."""

    def __init__(self, project: Path, budget_ms: float, progress: Progress | None) -> None:
        self.project = project
        self.budget_ms = budget_ms
        self.progress = progress
        self.report = ConformanceReport(str(project))

    def add(self, category: str, name: str, ok: bool, reason: str = "") -> bool:
        check = CheckResult(category, name, ok, reason)
        self.report.checks.append(check)
        if self.progress is not None:
            self.progress(check)
        return ok

    def check(self, category: str, name: str, work: Callable[[], str | None]) -> bool:
        """Run ``work``: ``None`` or a note passes; an exception fails with its message."""
        try:
            note = work()
        except (AcpPluginsError, CheckFailed, ValueError, OSError) as failure:
            return self.add(category, name, False, str(failure) or type(failure).__name__)
        return self.add(category, name, True, note or "")


def run_conformance(
    project: Path,
    *,
    budget_ms: float = DEFAULT_BUDGET_MS,
    modes: tuple[Mode, ...] = MODES,
    progress: Progress | None = None,
    also: Sequence[Path] = (),
    matrix: Sequence[str] | None = None,
    pythons: Sequence[str] = (),
) -> ConformanceReport:
    """Run every check against the plugin project at ``project``.

    ``also``: projects of the plugins it depends on, installed beside it (checked only
    as far as the host needs them to start). ``matrix``: run the compatibility matrix
    too, against these core versions (``[]``: the lowest and newest the manifest admits),
    on ``pythons`` (default: every one found here) that the manifest admits.
    """
    started = time.monotonic()
    run = _Run(project.resolve(), budget_ms, progress)
    # the project's own folder on sys.path (``python -m`` run from it) would shadow the copy
    # installed for the check, and the host refuses a plugin imported from elsewhere
    sys.path[:] = [p for p in sys.path if not _inside(Path(p or "."), run.project)]
    plugin_ids, named = _unit(run)
    with tempfile.TemporaryDirectory(prefix="acp-conformance-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        folder = root / "plugins"
        # a pyproject.toml that names no plugin: pip would only say the same, at length
        installed = named and run.check("integration", "installs with pip into a fresh folder",
                                        lambda: _install(project, folder, also))  # fmt: skip
        if installed and plugin_ids:
            for mode in modes:
                _in_a_host(run, folder, root / f"data-{mode}", mode, plugin_ids)
    manifests = _compatibility(run, project)
    if matrix is not None:
        options = ["--budget-ms", str(budget_ms), *(f"--mode={m}" for m in modes)]
        options += [f"--with={p.resolve()}" for p in also]
        _matrix(run, manifests, matrix, pythons, options)
    run.report.seconds = time.monotonic() - started
    return run.report


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder)
    except OSError:
        return False


# -- unit ------------------------------------------------------------------------


def _unit(run: _Run) -> tuple[list[str], bool]:
    """The plugin ids (none if a check failed), and whether pyproject.toml named any."""
    checks = check_project(run.project, core_version=CORE_VERSION)
    named = [c for c in checks if c.plugin_id != UNNAMED]
    for check in checks:
        problems = "; ".join(f"{e.path}: {e.problem}" for e in check.errors) or check.message
        run.add("unit", f"{check.plugin_id}: the manifest and pyproject.toml are valid",
                check.ok, "" if check.ok else problems)  # fmt: skip
        if check.plugin_id == UNNAMED:
            continue  # no entry point could be read: nothing to compare
        mismatch = [e for e in check.errors if e.path == "plugin_id"]
        run.add("unit", f"{check.plugin_id}: the entry point name is the plugin id",
                not mismatch, mismatch[0].problem if mismatch else "")  # fmt: skip
    ids = [c.plugin_id for c in named]
    return (ids if all(c.ok for c in checks) else []), bool(named)


def _install(project: Path, folder: Path, also: Sequence[Path]) -> str:
    install_projects([project, *also], folder)
    return f"into {folder}" + (f", with {', '.join(p.name for p in also)}" if also else "")


# -- in a host ---------------------------------------------------------------------


def _in_a_host(run: _Run, folder: Path, data: Path, mode: Mode, plugin_ids: list[str]) -> None:
    data.mkdir()
    data.chmod(0o755)
    before = _tree(folder)
    harness = PluginHarness([folder], data, mode=mode)
    try:
        run.check("integration", f"loads, initializes and activates ({mode})",
                  lambda: _activates(harness, plugin_ids))  # fmt: skip
        for plugin_id in plugin_ids:
            if harness.state(plugin_id) != PluginState.ACTIVE.value:
                continue
            if mode == MODES[0]:
                _unit_in_host(run, harness, plugin_id)
            name = f"{plugin_id}: its interfaces answer with valid models ({mode})"
            run.check("integration", name, partial(_answers, harness, plugin_id))
            if mode == "trusted":  # its own code's speed, not a worker's CPU share
                name = f"{plugin_id}: p99 latency of its hooks within {run.budget_ms:g} ms"
                run.check("performance", name,
                          partial(_latency, harness, plugin_id, run.budget_ms))  # fmt: skip
            else:
                name = f"{plugin_id}: its worker's memory does not grow over {GROWTH_CALLS} calls"
                run.check("performance", name, partial(_growth, harness, plugin_id))
            name = f"{plugin_id}: suspend, resume, reload and unload are clean ({mode})"
            run.check("integration", name, partial(_lifecycle, harness, plugin_id))
        if mode == "isolated":
            for plugin_id in plugin_ids:
                name = f"{plugin_id}: ran with exactly its manifest's permissions, nothing refused"
                run.check("security", name, partial(_nothing_refused, harness, plugin_id))
            run.check("security", "wrote nothing into its installation",
                      lambda: _unchanged(before, _tree(folder)))  # fmt: skip
    finally:
        harness.stop()


def _activates(harness: PluginHarness, plugin_ids: list[str]) -> str:
    harness.start()
    problems = []
    for plugin_id in plugin_ids:
        record = harness.host.records.get(plugin_id)
        if record is None:
            problems.append(f"'{plugin_id}' was not discovered after installing")
        elif record.state is not PluginState.ACTIVE:
            problems.append(f"'{plugin_id}' is {record.state.value}: {record.reason}")
    if problems:
        raise CheckFailed("; ".join(problems))
    return ", ".join(plugin_ids)


def _unit_in_host(run: _Run, harness: PluginHarness, plugin_id: str) -> None:
    run.add("unit", f"{plugin_id}: its hooks, their signatures and its interfaces agree", True,
            "checked by the host as it loaded")  # fmt: skip

    def schema() -> str:
        found = harness.run(harness.host.config_schema(plugin_id))
        json.dumps(found)
        fields = sorted(found.get("properties", {}))
        return f"settings: {', '.join(fields)}" if fields else "no settings"

    run.check("unit", f"{plugin_id}: its settings model has a JSON Schema", schema)

    def ranges() -> str:
        manifest = harness.host.record(plugin_id).manifest
        if manifest is None:
            raise CheckFailed("it has no manifest")
        for name, text in manifest.dependencies.items():
            described = parse_range(text).describe()
            _require(bool(described), f"dependency {name} {text!r} cannot be described")
        return ", ".join(f"{n} {parse_range(t).describe()}" for n, t in
                         manifest.dependencies.items())  # fmt: skip

    run.check("unit", f"{plugin_id}: its version ranges parse and describe", ranges)


def _answers(harness: PluginHarness, plugin_id: str) -> str:
    record = harness.host.record(plugin_id)
    said: list[str] = []
    interfaces = set(record.interfaces)
    if Interface.MESSAGE_HANDLER.value in interfaces:
        for kind in sorted(t for t in record.message_types if t != "*") or ["conformance"]:
            routed = harness.send(kind, "conformance check")
            _require(plugin_id not in routed.errors, routed.errors.get(plugin_id, ""))
        said.append(f"{len(record.message_types)} message types")
    if Interface.COMMAND_HANDLER.value in interfaces:
        said.append(f"{len(record.commands)} commands")
    if Interface.DATA_PROVIDER.value in interfaces:
        for source in record.data_sources:
            result = harness.query(f"{plugin_id}:{source.source_id}", limit=1)
            unknown = {k for row in result.rows for k in row} - set(source.fields)
            _require(not unknown, f"source '{source.source_id}' answered fields it does not "
                                  f"declare: {', '.join(sorted(unknown))}")  # fmt: skip
        said.append(f"{len(record.data_sources)} sources queried")
    if Interface.ANALYTICS_PROVIDER.value in interfaces:
        definitions = harness.run(harness.host.metric_definitions()).get(plugin_id, [])
        window = TimeRange.last(timedelta(days=1))
        report = harness.run(harness.host.report(plugin_id, "markdown", window))
        _require(bool(report.content), "the markdown report is empty")
        said.append(f"{len(definitions)} metrics and a report")
    failures = [f.message for f in record.call_errors]
    _require(not failures, "; ".join(failures[:3]))
    return ", ".join(said)


def _hot_call(harness: PluginHarness, plugin_id: str) -> Callable[[], object]:
    """One cheap call the plugin answers, for the performance checks."""
    record = harness.host.record(plugin_id)
    kinds = sorted(t for t in record.message_types if t != "*")
    if kinds:
        return partial(harness.send, kinds[0], "conformance")
    if record.data_sources:
        source = f"{plugin_id}:{record.data_sources[0].source_id}"
        return partial(harness.query, source, limit=1)
    if Interface.ANALYTICS_PROVIDER.value in record.interfaces:
        window = TimeRange.last(timedelta(days=1))
        return lambda: harness.run(harness.host.collect_metrics(plugin_id, window))
    return lambda: harness.run(harness.host.telemetry.get_plugin_health(plugin_id))


def _latency(harness: PluginHarness, plugin_id: str, budget_ms: float) -> str:
    call = _hot_call(harness, plugin_id)
    for _ in range(GROWTH_CALLS):
        call()
    worst = [
        (hook, stats.quantile(0.99) or 0.0)
        for hook, stats in harness.host.record(plugin_id).metrics.items()
        if stats.calls and hook not in _ONCE
    ]
    slow = [f"{hook} p99 {p99 * 1000:.1f} ms" for hook, p99 in worst if p99 * 1000 > budget_ms]
    _require(not slow, f"over the {budget_ms:g} ms budget: {', '.join(slow)}")
    return "p99: " + ", ".join(f"{hook} {p99 * 1000:.2f} ms" for hook, p99 in worst)


#: Hooks called once per instance: their time is not a call's latency.
_ONCE = frozenset({
    "on_discover", "on_load", "validate_config", "get_settings_model", "get_config_schema",
    "initialize", "on_initialize", "activate", "on_activate", "deactivate", "on_suspend",
    "on_unload", "health_check",
})  # fmt: skip


def _growth(harness: PluginHarness, plugin_id: str) -> str:
    call = _hot_call(harness, plugin_id)
    for _ in range(50):  # warm up: imports, caches, the allocator's first arenas
        call()
    pid = (harness.host.record(plugin_id).isolation() or {}).get("pid")
    _require(pid is not None, "it has no worker to measure")
    before = _resident_mb(pid)
    for _ in range(GROWTH_CALLS):
        call()
    grown = _resident_mb(pid) - before
    _require(grown <= MAX_GROWTH_MB, f"its worker grew {grown:.1f} MiB over {GROWTH_CALLS} calls")
    return f"grew {grown:.1f} MiB (at most {MAX_GROWTH_MB:g})"


def _resident_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _lifecycle(harness: PluginHarness, plugin_id: str) -> str:
    host = harness.host
    steps = [("suspend", host.suspend), ("resume", host.resume)]
    for name, step in steps:
        done = harness.run(step(plugin_id))
        _require(bool(done), f"{name} failed: {host.record(plugin_id).reason}")
    result = harness.run(host.reload(plugin_id))
    _require(result.ok, f"reload: {result.outcome}: {result.detail}")
    unloaded = harness.run(host.unload(plugin_id))
    _require(bool(unloaded), f"unload failed: {host.record(plugin_id).reason}")
    state = harness.state(plugin_id)
    _require(state == PluginState.UNLOADED.value, f"it is {state} after unloading")
    return "suspended, resumed, reloaded, unloaded"


def _nothing_refused(harness: PluginHarness, plugin_id: str) -> str:
    record = harness.host.record(plugin_id)
    requested = sorted(p.value for p in record.manifest.permissions) if record.manifest else []
    granted = sorted(p.value for p in record.granted)
    _require(granted == requested, f"granted {granted}, requested {requested}")
    refused = harness.refusals(plugin_id)
    _require(not refused, "refused: " + "; ".join(
        f"{e.action} {e.permission or ''}: {e.detail}" for e in refused[:3]
    ))  # fmt: skip
    return f"granted {', '.join(granted) or 'nothing'}"


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")
            if "__pycache__" not in p.parts}  # fmt: skip


def _unchanged(before: dict[str, float], after: dict[str, float]) -> str:
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    _require(not added and not changed, f"written: {', '.join((added + changed)[:5])}")
    return f"{len(before)} files as installed"


# -- compatibility -------------------------------------------------------------------


def _compatibility(run: _Run, project: Path) -> list[Manifest]:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = machine_pythons()
    manifests = []
    for path in project_manifests(project):
        try:
            manifest = read_manifest(path)
        except AcpPluginsError:
            continue  # said under unit
        manifests.append(manifest)
        core = manifest.core_range()
        admits_core = core is None or core.contains(CORE_VERSION)
        name = f"{manifest.plugin_id}: admits this core ({CORE_VERSION})"
        run.add("compatibility", name, admits_core, f"dependencies.core {core}")
        admitted = [v for v in found if admits_python(manifest, v)]
        run.add("compatibility", f"{manifest.plugin_id}: admits this Python ({here})",
                admits_python(manifest, here),
                f"Pythons here it admits: {', '.join(admitted) or 'none'} (--matrix runs "
                "the suite on each)")  # fmt: skip
    return manifests


def _matrix(
    run: _Run,
    manifests: list[Manifest],
    cores: Sequence[str],
    pythons: Sequence[str],
    options: list[str],
) -> None:
    if not manifests:
        return
    admitted, columns = matrix_cells(
        run.project, manifests, cores, list(pythons) or machine_pythons()
    )
    if not admitted:
        wanted = ", ".join(pythons) if pythons else "none found here"
        run.add("compatibility", "the matrix has a Python to run on", False,
                f"no Python the manifest admits among: {wanted}")  # fmt: skip
        return
    for python in admitted:
        for core, requirement in columns.items():
            cell = run_cell(run.project, python, core, requirement, options)
            run.add("compatibility", f"Python {python} with acp-plugins {core}", cell.ok,
                    f"{cell.summary} ({requirement})")  # fmt: skip
