"""Finding installed plugins and reading their manifests, without importing them.

A plugin is an entry point in the group ``acp.plugins`` of an installed
distribution; its name is the plugin id and its value the object to load. The
manifest is ``manifest.json`` inside the top-level package of the entry point's
module, located with :func:`importlib.util.find_spec`, which finds a top-level
package (regular or editable install) without executing it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import site
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from importlib.metadata import Distribution, EntryPoint, distributions
from pathlib import Path

from packaging.utils import canonicalize_name

from acp_plugins.errors import AcpPluginsError, ManifestError
from acp_plugins.manifest import MANIFEST_FILENAME, Manifest, read_manifest
from acp_plugins.versions import VersionRangeError, parse_version

__all__ = ["ENTRY_POINT_GROUP", "Discovery", "add_search_path", "discover", "manifest_path"]

ENTRY_POINT_GROUP = "acp.plugins"


@dataclass(frozen=True, slots=True)
class Discovery:
    """One plugin found in the environment: where it comes from and its manifest or error."""

    plugin_id: str
    entry_point: str
    distribution: str
    distribution_version: str
    manifest_path: Path | None
    manifest: Manifest | None
    error: AcpPluginsError | None


def add_search_path(paths: Iterable[str | Path]) -> None:
    """Make plugins installed in ``paths`` (e.g. ``pip install --target DIR``) importable.

    Each directory is added like a site directory, so ``.pth`` files of editable
    installs in it are honoured.
    """
    for path in paths:
        text = str(Path(path).resolve())
        if text not in sys.path:
            site.addsitedir(text)
    importlib.invalidate_caches()


def _installed_next_to(package: str, dist: Distribution) -> ModuleSpec | None:
    """The spec of ``package`` in the directory ``dist`` is installed in, if it is there."""
    try:
        directory = dist.locate_file("")
    except NotImplementedError:  # a custom Distribution that has no files on disk
        return None
    try:
        return importlib.machinery.PathFinder.find_spec(package, [str(directory)])
    except (ImportError, ValueError):
        return None


def manifest_path(entry_point_value: str, dist: Distribution | None = None) -> Path | None:
    """Where the manifest of the plugin whose entry point is ``entry_point_value`` lives.

    With ``dist``, the package is looked for first in the directory that
    distribution is installed in, so that a package of the same name earlier on
    ``sys.path`` (or already imported) is not mistaken for it; otherwise, and for
    editable installs, it is looked up like an import would (without executing it).
    """
    module = entry_point_value.partition(":")[0].strip()
    package = module.partition(".")[0]
    spec = _installed_next_to(package, dist) if dist is not None else None
    if spec is None or not spec.submodule_search_locations:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / MANIFEST_FILENAME
        if candidate.is_file():
            return candidate
    return Path(next(iter(spec.submodule_search_locations))) / MANIFEST_FILENAME


def _check_identity(entry_point: EntryPoint, dist_version: str, manifest: Manifest) -> None:
    if manifest.plugin_id != entry_point.name:
        raise ManifestError(
            f"manifest plugin_id {manifest.plugin_id!r} differs from the entry point name "
            f"{entry_point.name!r}; they must be equal (rename one of them)",
            plugin_id=entry_point.name,
        )
    try:
        same_version = parse_version(manifest.version) == parse_version(dist_version)
    except VersionRangeError:
        same_version = True  # an unparsable distribution version is pip's concern, not ours
    if not same_version:
        raise ManifestError(
            f"manifest version {manifest.version!r} differs from the installed distribution's "
            f"version {dist_version!r}; keep them equal",
            plugin_id=entry_point.name,
        )


def _inspect(entry_point: EntryPoint, dist: Distribution) -> Discovery:
    dist_name = dist.metadata["Name"] or "?"
    location = manifest_path(entry_point.value, dist)
    manifest: Manifest | None = None
    error: AcpPluginsError | None = None
    if location is None:
        error = ManifestError(
            f"cannot locate the package of entry point {entry_point.value!r} without importing "
            f"it; the module must live in a package that ships {MANIFEST_FILENAME}",
            plugin_id=entry_point.name,
        )
    else:
        try:
            manifest = read_manifest(location)
            _check_identity(entry_point, dist.version, manifest)
        except ManifestError as failure:
            failure.plugin_id = entry_point.name
            error, manifest = failure, None
    return Discovery(
        plugin_id=entry_point.name,
        entry_point=entry_point.value,
        distribution=dist_name,
        distribution_version=dist.version,
        manifest_path=location,
        manifest=manifest,
        error=error,
    )


def discover(search_path: Sequence[str | Path] | None = None) -> list[Discovery]:
    """Every plugin installed on ``sys.path``, or only in ``search_path`` when given.

    Plugin code is not imported. A distribution installed twice counts once (the
    first on the path wins, as for imports); two distributions claiming one
    plugin id are both reported.
    """
    if search_path is not None:
        add_search_path(search_path)
        found = distributions(path=[str(Path(p).resolve()) for p in search_path])
    else:
        found = distributions()
    seen_distributions: set[str] = set()
    claimed: dict[str, Discovery] = {}
    results: list[Discovery] = []
    for dist in found:
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name in seen_distributions:
            continue
        seen_distributions.add(name)
        for entry_point in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            discovery = _inspect(entry_point, dist)
            previous = claimed.get(discovery.plugin_id)
            if previous is not None:
                discovery = _duplicate(discovery, previous)
            else:
                claimed[discovery.plugin_id] = discovery
            results.append(discovery)
    return sorted(results, key=lambda item: item.plugin_id)


def _duplicate(discovery: Discovery, previous: Discovery) -> Discovery:
    error = AcpPluginsError(
        f"plugin id '{discovery.plugin_id}' is registered by both '{previous.distribution}' "
        f"and '{discovery.distribution}'; uninstall one of them",
        plugin_id=discovery.plugin_id,
    )
    return Discovery(
        plugin_id=discovery.plugin_id,
        entry_point=discovery.entry_point,
        distribution=discovery.distribution,
        distribution_version=discovery.distribution_version,
        manifest_path=discovery.manifest_path,
        manifest=None,
        error=error,
    )
