"""Installing and uninstalling plugins while the host runs, from a PEP 503 package index.

``POST /api/v1/plugins/{id}/install {"version", "index_url", "distribution"}``:

1. the index must be one the host's settings allow (``server.indexes``);
2. the index's page for the distribution is read and the highest version its
   wheels offer within the range (npm-style or PEP 440, as in manifests) is chosen;
3. pip installs exactly that version (``--no-deps``, a subprocess, its output kept
   for the answer and the audit log) into ``server.install_target``, else the first
   plugin folder the host searches, else the host's own environment;
4. the host rescans: the manifest is read and checked (permissions, core version,
   dependencies) before any of the new code is imported, and the plugin is started
   (or, already running, upgraded by overlap). A plugin that is refused there is
   removed again, so nothing that cannot run stays installed.

``DELETE /api/v1/plugins/{id}`` unloads the plugin, then removes its distribution
(pip for an environment; the files its ``RECORD`` lists for a folder).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from acp_plugins.config.settings import ServerSettings
from acp_plugins.host import PluginHost
from acp_plugins.loading.versions import VersionRangeError, parse_range
from acp_plugins.runtime.catalog import LOADED_STATES
from acp_plugins.runtime.record import PluginRecord
from acp_plugins.server.problems import Problem

__all__ = ["PackageInstaller"]

#: The most of pip's output an answer and an audit entry keep (its end).
_OUTPUT_LIMIT = 20_000


class _Links(HTMLParser):
    """The ``href`` of every link of a PEP 503 project page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


@dataclass(frozen=True, slots=True)
class _Pip:
    ok: bool
    output: str


class PackageInstaller:
    """Runs pip for the server's install and uninstall routes."""

    def __init__(self, host: PluginHost, settings: ServerSettings) -> None:
        self.host = host
        self.settings = settings

    @property
    def target(self) -> Path | None:
        """Where plugins are installed (``None``: the host's own environment)."""
        if self.settings.install_target is not None:
            return self.settings.install_target
        search = self.host.search_path
        return Path(search[0]) if search else None

    def _check_target(self) -> None:
        """Refuse an ``install_target`` the host does not search: what pip put there would
        never be found (and never be started)."""
        target = self.settings.install_target
        if target is None:
            return
        search = self.host.search_path
        searched = [Path(p) for p in search] if search is not None else [Path(p) for p in sys.path]
        if target.resolve() not in {p.resolve() for p in searched if str(p)}:
            where = "plugin_path" if search is not None else "the environment's sys.path"
            shown = ", ".join(str(p) for p in searched if str(p)) or "nothing"
            raise Problem(400, f"server.install_target {target} is not a folder the host "
                               f"searches ({where}: {shown}); add it to plugin_path")  # fmt: skip

    def _index(self, index_url: str | None) -> str:
        allowed = self.settings.indexes
        if not allowed:
            raise Problem(400, "no package index is allowed; name one in the host setting "
                               "server.indexes")  # fmt: skip
        chosen = (index_url or allowed[0]).rstrip("/")
        if chosen not in allowed:
            raise Problem(400, f"the index {chosen} is not one the host allows "
                               f"(server.indexes: {', '.join(allowed)})")  # fmt: skip
        return chosen

    def _versions(self, index: str, distribution: str) -> list[Version]:
        url = f"{index}/{canonicalize_name(distribution)}/"
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                page = answer.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise Problem(
                    404, f"the index {index} has no distribution '{distribution}'"
                ) from None
            raise Problem(502, f"the index {index} answered {error.code} for {url}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Problem(502, f"cannot reach the index {index}: {reason}") from None
        links = _Links()
        links.feed(page)
        found = set()
        for href in links.hrefs:
            name = href.split("#", 1)[0].rsplit("/", 1)[-1]
            if not name.endswith(".whl"):
                continue
            try:
                project, version, _, _ = parse_wheel_filename(name)
            except InvalidWheelFilename:
                continue
            if project == canonicalize_name(distribution):
                found.add(version)
        return sorted(found)

    async def _pip(self, *args: str) -> _Pip:
        command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]

        def run() -> _Pip:
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False,
                                      timeout=self.settings.pip_timeout)  # fmt: skip
            except subprocess.TimeoutExpired:
                return _Pip(False, f"pip took longer than {self.settings.pip_timeout:g} s")
            output = (done.stdout + done.stderr)[-_OUTPUT_LIMIT:]
            return _Pip(done.returncode == 0, output)

        return await asyncio.to_thread(run)

    async def install(
        self, plugin_id: str, *, version: str, index_url: str | None, distribution: str | None
    ) -> dict[str, Any]:
        """Install (or upgrade to) the newest version in range, then start it. The
        distribution defaults to the one an installed plugin came from, else the id."""
        known = self.host.records.get(plugin_id)
        dist = distribution or (known.distribution if known else plugin_id)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dist):
            raise Problem(400, f"{dist!r} is not a distribution name")
        self._check_not_someone_elses(plugin_id, dist, known)
        try:
            wanted = parse_range(version)
        except VersionRangeError as error:
            raise Problem(400, f"version {version!r}: {error}") from None
        index = self._index(index_url)
        self._check_target()
        offered = await asyncio.to_thread(self._versions, index, dist)
        fitting = [v for v in offered if wanted.contains(v)]
        if not fitting:
            shown = ", ".join(map(str, offered)) or "none"
            raise Problem(404, f"the index {index} has no wheel of '{dist}' within {version!r} "
                               f"(it offers: {shown})", plugin_id=plugin_id)  # fmt: skip
        chosen = fitting[-1]
        previous = known.distribution_version if known and known.distribution == dist else None
        target = self.target
        where = ["--target", str(target), "--upgrade"] if target else []
        pip = await self._pip("install", "--no-deps", "--only-binary=:all:", "--index-url",
                              index, *where, f"{dist}=={chosen}")  # fmt: skip
        audit = self.host.audit
        if not pip.ok:
            audit.record(plugin_id, "install", "failed", detail=f"{dist} {chosen}: pip failed")
            raise Problem(502, f"pip could not install {dist} {chosen} from {index}",
                          plugin_id=plugin_id, pip_output=pip.output)  # fmt: skip
        if target is not None:
            _forget_older(target, dist, chosen)
        rescan = await self.host.rescan()
        why = self._refusal(plugin_id, dist, chosen, rescan.reloads)
        if why is not None:
            undone = await self._undo(dist, previous, index)
            await self.host.rescan()
            audit.record(plugin_id, "install", "refused", detail=f"{dist} {chosen}: {why}")
            raise Problem(400, f"installed {dist} {chosen}, but it cannot run, so {undone}: "
                               f"{why}", plugin_id=plugin_id)  # fmt: skip
        record = self.host.record(plugin_id)
        audit.record(plugin_id, "install", "ok", detail=f"{dist} {chosen} from {index}")
        return {
            "plugin_id": plugin_id, "distribution": dist, "version": str(chosen),
            "index_url": index, "target": str(target) if target else None,
            "state": "waiting" if record.waiting else record.state.value,
            "rescan": rescan.to_dict(), "pip_output": pip.output,
        }  # fmt: skip

    def _check_not_someone_elses(
        self, plugin_id: str, dist: str, known: PluginRecord | None
    ) -> None:
        """Refuse a distribution installed already for something else than this plugin: an
        install that cannot run is undone by removing it, which would take away another
        plugin, the host's own packages, or acp-plugins itself."""
        wanted = canonicalize_name(dist)
        if known is not None and canonicalize_name(known.distribution) == wanted:
            return  # its own: an upgrade, or the same version again
        if not _installed(self.target, dist):
            return
        owners = sorted(
            r.plugin_id
            for r in self.host.records.values()
            if canonicalize_name(r.distribution) == wanted
        )
        what = f"the distribution of {', '.join(owners)}" if owners else "not a plugin's"
        raise Problem(400, f"{dist} is installed already ({what}); installing it as "
                           f"'{plugin_id}' could remove it again. Install a plugin under its "
                           "own id, from its own distribution", plugin_id=plugin_id)  # fmt: skip

    def _refusal(
        self, plugin_id: str, dist: str, chosen: Version, reloads: list[Any]
    ) -> str | None:
        """Why the version just installed cannot run (``None``: it runs)."""
        record = self.host.records.get(plugin_id)
        if record is None:
            return f"{dist} {chosen} has no plugin '{plugin_id}'"
        for reload in reloads:
            if reload.plugin_id == plugin_id and not reload.ok:
                return str(reload.detail)
        if record.reason is not None and not record.waiting:
            return record.reason
        return None

    async def _undo(self, dist: str, previous: str | None, index: str) -> str:
        """Put back what was installed before (or remove the new one); says which."""
        if previous is None:
            await self._remove(dist)
            return "it was removed again"
        target = self.target
        where = ["--target", str(target), "--upgrade"] if target else []
        pip = await self._pip("install", "--no-deps", "--only-binary=:all:", "--index-url",
                              index, *where, f"{dist}=={previous}")  # fmt: skip
        if target is not None:
            _forget_older(target, dist, Version(previous))
        return f"{previous} was put back" if pip.ok else f"putting back {previous} failed too"

    async def uninstall(self, plugin_id: str) -> dict[str, Any]:
        """Unload the plugin, remove its distribution, and forget it."""
        record = self.host.record(plugin_id)
        dist = record.distribution
        if record.state in LOADED_STATES:
            await self.host.unload(plugin_id)
        output = await self._remove(dist)
        rescan = await self.host.rescan()
        self.host.audit.record(plugin_id, "uninstall", "ok", detail=f"{dist} removed")
        return {"plugin_id": plugin_id, "distribution": dist, "rescan": rescan.to_dict(),
                "pip_output": output}  # fmt: skip

    async def _remove(self, dist: str) -> str:
        target = self.target
        if target is None:
            pip = await self._pip("uninstall", "--yes", dist)
            if not pip.ok:
                raise Problem(502, f"pip could not uninstall {dist}", pip_output=pip.output)
            return pip.output
        removed = await asyncio.to_thread(_remove_from_folder, target, dist)
        return f"removed {removed} files of {dist} from {target}"


def _installed(target: Path | None, dist: str) -> list[Any]:
    """``dist`` as installed in ``target`` (``None``: the host's own environment)."""
    wanted = canonicalize_name(dist)
    found = distributions(path=[str(target)]) if target is not None else distributions()
    return [d for d in found if canonicalize_name(d.metadata["Name"] or "") == wanted]


def _forget_older(target: Path, dist: str, version: Version) -> None:
    """Remove the metadata an upgrade with ``pip --target`` leaves of older versions."""
    for found in _installed(target, dist):
        if Version(found.version) != version:
            folder = Path(str(found._path))
            if folder.parent.resolve() == target.resolve():
                shutil.rmtree(folder, ignore_errors=True)


def _remove_from_folder(target: Path, dist: str) -> int:
    """Delete the files ``dist``'s RECORD lists (inside ``target`` only); how many."""
    root = target.resolve()
    removed = 0
    emptied: set[Path] = set()
    for found in _installed(target, dist):
        for file in found.files or []:
            path = (target / file).resolve()
            if root in path.parents and path.is_file():
                path.unlink()
                removed += 1
                emptied.update(p for p in path.parents if root in p.parents)
        folder = Path(str(found._path))
        shutil.rmtree(folder, ignore_errors=True)
    for folder in sorted(emptied, key=lambda p: -len(p.parts)):  # the deepest first
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed
