"""Finding installed plugins and reading their manifests, without importing them.

A plugin is an entry point in the group ``acp.plugins`` of an installed
distribution; its name is the plugin id and its value the object to load. The
manifest is ``manifest.json`` inside the top-level package of the entry point's
module, located with :func:`importlib.util.find_spec`, which finds a top-level
package (regular or editable install) without executing it.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, distributions
from pathlib import Path

from packaging.utils import canonicalize_name

from acp_plugins.errors import AcpPluginsError, ManifestError
from acp_plugins.loading.manifest import MANIFEST_FILENAME, Manifest, read_manifest
from acp_plugins.loading.versions import VersionRangeError, parse_version

__all__ = [
    "ENTRY_POINT_GROUP",
    "Discovery",
    "add_search_path",
    "code_elsewhere",
    "discover",
    "forget_stale_modules",
    "manifest_path",
]

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
    named = [str(Path(path).resolve()) for path in paths]
    rest = [entry for entry in sys.path if entry not in named]
    before = set(rest)
    sys.path[:] = rest
    for text in named:
        site.addsitedir(text)
    # right after the standard library, ahead of site-packages and of folders named
    # before: the code imported must be the code whose manifest was read here
    added = [entry for entry in sys.path if entry not in before]
    rest = [entry for entry in sys.path if entry not in added]
    stdlib = {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}
    after = 1 + max(
        (i for i, e in enumerate(rest) if e in stdlib or e.endswith((".zip", "lib-dynload"))),
        default=-1,
    )
    sys.path[:] = rest[:after] + added + rest[after:]
    importlib.invalidate_caches()


def forget_stale_modules(entry_point: str, package_dir: Path) -> None:
    """Forget an imported copy of the entry point's package from outside ``package_dir``.

    Another host in this process may have imported the same package from another
    folder; the next import must find the copy whose manifest this host read.
    """
    package = entry_point.partition(":")[0].strip().partition(".")[0]
    module = sys.modules.get(package)
    location = getattr(module, "__file__", None)
    expected = package_dir.resolve()
    if location and expected not in Path(location).resolve().parents:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def code_elsewhere(plugin_id: str, entry_point: str, package_dir: Path) -> str | None:
    """Why the module ``entry_point`` was imported from outside ``package_dir``, if it was.

    Called after the import: a plugin validated from one folder must not run code
    that Python found elsewhere (the same distribution in site-packages, say).
    """
    module = sys.modules.get(entry_point.partition(":")[0].strip())
    location = getattr(module, "__file__", None)
    if not location:
        return None
    found, expected = Path(location).resolve(), package_dir.resolve()
    if found == expected or expected in found.parents:
        return None
    return (
        f"'{plugin_id}' was validated from {expected} but Python imported its code from "
        f"{found.parent}; uninstall one of the two copies"
    )


def _installed_next_to(package: str, dist: Distribution) -> Path | None:
    """``package``'s manifest in the directory ``dist`` is installed in, if it is there."""
    folder = _metadata_folder(dist)
    if folder is not None:  # what locate_file does, without a Path per step
        candidate = os.path.join(os.path.dirname(folder), package, MANIFEST_FILENAME)
    else:
        try:
            candidate = os.path.join(str(dist.locate_file(package)), MANIFEST_FILENAME)
        except NotImplementedError:  # a custom Distribution that has no files on disk
            return None
    return Path(candidate) if os.path.isfile(candidate) else None


def _metadata_folder(dist: Distribution) -> str | None:
    """The ``.dist-info``/``.egg-info`` folder of a distribution on disk (else ``None``)."""
    folder = getattr(dist, "_path", None)  # importlib.metadata's PathDistribution
    return str(folder) if isinstance(folder, Path) else None


def _read_metadata(dist: Distribution, name: str) -> str | None:
    """A metadata file's text (``None`` if it is not there), as ``dist.read_text`` reads it."""
    folder = _metadata_folder(dist)
    if folder is None:
        return dist.read_text(name)
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as file:
            return file.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
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
    if dist is not None:
        found = _installed_next_to(package, dist)
        if found is not None:
            return found
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


def _inspect(
    entry_point: EntryPoint, dist: Distribution, dist_name: str, version: str
) -> Discovery:
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
            _check_identity(entry_point, version, manifest)
        except ManifestError as failure:
            failure.plugin_id = entry_point.name
            error, manifest = failure, None
    return Discovery(
        plugin_id=entry_point.name,
        entry_point=entry_point.value,
        distribution=dist_name,
        distribution_version=version,
        manifest_path=location,
        manifest=manifest,
        error=error,
    )


def _name_and_version(dist: Distribution) -> tuple[str, str]:
    """The distribution's (normalized) name and version.

    Installers name the metadata folder ``{name}-{version}.dist-info`` (the
    wheel and installed-distribution specifications), so that name says both
    without opening a file; otherwise the two headers are read from the
    metadata file directly instead of parsing it as a whole e-mail message,
    which would cost most of discovery's time.
    """
    folder = getattr(dist, "_path", None)  # importlib.metadata's PathDistribution
    if isinstance(folder, Path) and folder.suffix == ".dist-info":
        name, sep, version = folder.stem.partition("-")
        if sep and version and "-" not in version:
            return canonicalize_name(name), version
    text = _read_metadata(dist, "METADATA") or _read_metadata(dist, "PKG-INFO") or ""
    name = version = ""
    for line in text.splitlines():
        if not line:
            break  # the headers end at the first empty line
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
    return canonicalize_name(name) if name else "?", version or "0"


def _entry_points_of_group(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of each entry point of ``group`` in an ``entry_points.txt`` text."""
    found = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            inside = line.strip("[]").strip() == group
        elif inside:
            name, sep, value = line.partition("=")
            if sep:
                found.append((name.strip(), value.strip()))
    return found


def _plugin_entry_points(dist: Distribution) -> list[EntryPoint]:
    """The ``acp.plugins`` entry points of ``dist``, reading its entry point file once."""
    text = _read_metadata(dist, "entry_points.txt")
    if not text or ENTRY_POINT_GROUP not in text:
        return []  # most distributions are not plugins: no parsing for them
    return [
        EntryPoint(name, value, ENTRY_POINT_GROUP)
        for name, value in _entry_points_of_group(text, ENTRY_POINT_GROUP)
    ]


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
        entry_points = _plugin_entry_points(dist)
        if not entry_points:
            continue
        name, version = _name_and_version(dist)
        if name in seen_distributions:
            continue
        seen_distributions.add(name)
        for entry_point in entry_points:
            discovery = _inspect(entry_point, dist, name, version)
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
