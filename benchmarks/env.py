"""Throwaway plugin environments: generated wheels, installed for real with pip.

Each plugin is a genuine wheel (``{pkg}/__init__.py``, ``{pkg}/plugin.py``,
``{pkg}/manifest.json`` and a ``.dist-info`` with ``METADATA``, ``WHEEL``,
``entry_points.txt`` and a sha256 ``RECORD``, by the testing kit's ``write_wheel``), and a
whole set is installed with ONE ``pip install --no-deps --no-index --target``.

Built environments are cached under ``/tmp/acp-plugins-bench-<hash>`` where the
hash covers this generator's source and the Python version; inside, one
directory per set (``plugins-<N>``, ``dispatch-sync``, ``dispatch-async``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from acp_plugins.testing.packaging import write_wheel

__all__ = [
    "DISPATCH_HANDLERS",
    "PluginSpec",
    "cache_root",
    "dispatch_env",
    "plugins_env",
    "write_wheel",
]

#: How many message handlers the dispatch benchmark routes among.
DISPATCH_HANDLERS = 10

_VERSION = "1.0.0"
_COMPLETE = ".complete"

_PLUGIN_TEMPLATE = '''\
"""Generated acp-plugins benchmark plugin {plugin_id}."""

from __future__ import annotations

from acp_plugins import Message, MessageResponse, Plugin, hookimpl

PLUGIN_ID = "{plugin_id}"
RANK = {rank}
MODULUS = {modulus}


class BenchPlugin(Plugin):
    """An IMessageHandler whose confidence depends on its rank and the message length."""

    @hookimpl
    {async_}def get_supported_message_types(self) -> list[str]:
        return ["chat"]

    @hookimpl
    {async_}def can_handle(self, message: Message) -> float:
        return ((RANK + len(message.content)) % MODULUS + 1) / (MODULUS + 1)

    @hookimpl
    {async_}def handle_message(self, message: Message) -> MessageResponse:
        return MessageResponse(content=PLUGIN_ID + ": " + message.content)
'''


@dataclass(frozen=True)
class PluginSpec:
    """One generated plugin distribution."""

    stem: str  # e.g. "p0001": plugin id "bench-p0001", package "acp_bench_p0001"
    rank: int
    modulus: int
    is_async: bool = False

    @property
    def plugin_id(self) -> str:
        return f"bench-{self.stem}"

    @property
    def dist_name(self) -> str:
        return f"acp-bench-{self.stem}"

    @property
    def package(self) -> str:
        return f"acp_bench_{self.stem}"

    def files(self) -> dict[str, bytes]:
        """Package files of the wheel (without the ``.dist-info``)."""
        manifest = {
            "manifest_version": "1.0",
            "plugin_id": self.plugin_id,
            "name": f"Bench {self.stem}",
            "version": _VERSION,
            "description": "Generated plugin for the acp-plugins benchmarks.",
            "author": "acp-plugins benchmarks",
            "license": "MIT",
            "homepage": f"https://example.org/acp-plugins/{self.plugin_id}",
            "dependencies": {"core": "^2.0.0"},
            "permissions": ["read-messaging"],
            "interfaces": ["IMessageHandler"],
            "tags": ["benchmark"],
            "min_python": "3.10",
        }
        plugin = _PLUGIN_TEMPLATE.format(
            plugin_id=self.plugin_id,
            rank=self.rank,
            modulus=self.modulus,
            async_="async " if self.is_async else "",
        )
        return {
            f"{self.package}/__init__.py": f'"""Benchmark plugin {self.plugin_id}."""\n'.encode(),
            f"{self.package}/plugin.py": plugin.encode(),
            f"{self.package}/manifest.json": (json.dumps(manifest, indent=2) + "\n").encode(),
        }

    def write_wheel(self, directory: Path) -> Path:
        """Write this plugin's wheel into ``directory``; return its path."""
        return write_wheel(
            directory,
            dist_name=self.dist_name,
            package=self.package,
            version=_VERSION,
            entry_point=f"{self.plugin_id} = {self.package}.plugin:BenchPlugin",
            files=self.files(),
        )


def generator_hash() -> str:
    """Changes whenever this generator or the Python version changes."""
    source = Path(__file__).read_bytes()
    version = f"{sys.version_info.major}.{sys.version_info.minor}".encode()
    return hashlib.sha256(source + b"\0" + version).hexdigest()[:12]


def cache_root() -> Path:
    """Where built environments are kept (``$ACP_BENCH_CACHE`` overrides)."""
    explicit = os.environ.get("ACP_BENCH_CACHE")
    if explicit:
        return Path(explicit) / generator_hash()
    return Path(tempfile.gettempdir()) / f"acp-plugins-bench-{generator_hash()}"


def plugins_env(count: int, *, rebuild: bool = False) -> Path:
    """A directory with ``count`` installed plugin distributions (IMessageHandlers)."""
    specs = [PluginSpec(stem=f"p{i:04d}", rank=i, modulus=10) for i in range(count)]
    return _ensure(f"plugins-{count}", specs, rebuild=rebuild)


def dispatch_env(*, is_async: bool, rebuild: bool = False) -> Path:
    """A directory with the :data:`DISPATCH_HANDLERS` message handlers (sync or async)."""
    kind = "async" if is_async else "sync"
    specs = [
        PluginSpec(stem=f"{kind}{i:02d}", rank=i, modulus=DISPATCH_HANDLERS, is_async=is_async)
        for i in range(DISPATCH_HANDLERS)
    ]
    return _ensure(f"dispatch-{kind}", specs, rebuild=rebuild)


def _ensure(name: str, specs: list[PluginSpec], *, rebuild: bool) -> Path:
    root = cache_root()
    final = root / name
    if rebuild and final.exists():
        shutil.rmtree(final)
    if (final / _COMPLETE).is_file():
        return final / "site"
    root.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an interrupted build
        shutil.rmtree(final)
    building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        wheels = building / "wheels"
        wheels.mkdir()
        _log(f"[env] writing {len(specs)} wheels for {name} ...")
        paths = [spec.write_wheel(wheels) for spec in specs]
        _pip_install(paths, building / "site")
        (building / _COMPLETE).write_text("ok\n")
        try:
            building.rename(final)
        except OSError:  # another run finished the same environment first
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return final / "site"


def _pip_install(wheels: list[Path], target: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "install",
        "--no-deps", "--no-index", "--disable-pip-version-check", "--progress-bar", "off",
        "--target", str(target),
        *(str(path) for path in wheels),
    ]  # fmt: skip
    _log(f"[env] pip install --target {target} ({len(wheels)} wheels) ...")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output: list[str] = []
    processed = 0
    step = max(1, len(wheels) // 10)
    for line in process.stdout:
        output.append(line)
        if line.startswith("Processing "):
            processed += 1
            if processed % step == 0 or processed == len(wheels):
                _log(f"[env]   pip processed {processed}/{len(wheels)}")
        elif line.startswith("Installing collected"):
            _log("[env]   pip is installing (and byte-compiling) ...")
    if process.wait() != 0:
        raise RuntimeError("pip install failed:\n" + "".join(output[-50:]))
    _log(f"[env]   done: {target}")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
