"""Reload and upgrade by overlap, in-process and isolated, with real pip-installed versions.

Each version of the ``versioned`` plugin is a wheel built from a project written
here (its answers say which version gave them); an upgrade is ``pip install
--upgrade --target`` into the folder the host discovers, done while the host runs.
A message whose text starts with ``hold`` waits until the file ``release`` exists
in the plugin's data directory: so the test holds calls open on the old version
across the switch, in the host's process or in a worker alike.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    TRUST_ALL,
    IsolationPolicy,
    Message,
    PermissionPolicy,
    PluginHost,
    ReloadFailed,
    WorkerLimits,
)
from conftest import close_loop

Run = Callable[..., Any]

_PLUGIN = """
import asyncio

from acp_plugins import (
    CommandDefinition, CommandResult, Message, MessageResponse, Plugin, PluginSettings, hookimpl,
)

VERSION = {version!r}
LABEL = {label!r}
BEHAVIOUR = {behaviour!r}
if BEHAVIOUR == "raise-import":
    raise RuntimeError("this version is broken on purpose")
if BEHAVIOUR == "extension":
    from acp_fx_versioned import {extension}  # a compiled extension module of its own
if BEHAVIOUR == "helper":
    import acp_fx_helper  # a distribution it requires
    LABEL = acp_fx_helper.WORD


class Settings(PluginSettings):
    greeting: str = "hello"


class Versioned(Plugin):
    settings_model = Settings

    @hookimpl
    def initialize(self, context):
        log = context.data_dir / "ticks.log"

        @context.subscribe("tick.*")
        def on_tick(event):
            with open(log, "a") as out:
                out.write(f"{{VERSION}} {{event.data['n']}}\\n")

    @hookimpl
    def get_supported_message_types(self):
        return ["versioned"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    async def handle_message(self, message, context):
        if message.content.startswith("hold"):
            gate = context.data_dir / "release"
            while not gate.exists():
                await asyncio.sleep(0.01)
        greeting = context.settings.greeting
        return MessageResponse(content=f"{{VERSION}}/{{LABEL}}/{{greeting}}: {{message.content}}")

    @hookimpl
    def activate(self):
        return BEHAVIOUR != "refuse-activate"

    @hookimpl
    def health_check(self):
        if BEHAVIOUR == "raise-health":
            raise RuntimeError("not ready")
        return BEHAVIOUR != "unhealthy"
"""

_DEPENDENT = """
from acp_plugins import CommandDefinition, CommandResult, Message, Plugin, hookimpl


class Dependent(Plugin):
    @hookimpl
    def get_commands(self):
        return {"ask": CommandDefinition(name="ask")}

    @hookimpl
    async def execute_command(self, command, args, context):
        answer = await context.send_message(Message(type="versioned", content="asked"))
        return CommandResult(output=answer.content)
"""


def _project(root: Path, name: str, version: str, package: str, entry: str, code: str,
             manifest: dict[str, Any], requires: tuple[str, ...] = (),
             extra: dict[str, bytes] | None = None) -> Path:  # fmt: skip
    key = (code, json.dumps(manifest), requires, tuple(sorted(extra or {})))
    project = root / f"{name}-{version}-{abs(hash(key))}"
    (project / package).mkdir(parents=True)
    (project / package / "__init__.py").write_text("")
    (project / package / "plugin.py").write_text(code)
    (project / package / "manifest.json").write_text(json.dumps(manifest))
    for file, data in (extra or {}).items():
        (project / package / file).write_bytes(data)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            dependencies = {json.dumps(list(requires))}

            [project.entry-points."acp.plugins"]
            {manifest["plugin_id"]} = "{package}.plugin:{entry}"

            [tool.setuptools]
            packages = ["{package}"]

            [tool.setuptools.package-data]
            {package} = ["manifest.json", "*.so"]
            """
        )
    )
    return project


def _stdlib_extension() -> Path:
    """A compiled extension module of the standard library, to ship inside a plugin.

    Imported as ``acp_fx_versioned.<name>`` it runs its own ``PyInit_<name>``: a real
    compiled extension of the plugin, built without a compiler.
    """
    for name in ("_bisect", "_heapq", "_random", "_json"):
        module = importlib.import_module(name)
        location = getattr(module, "__file__", None) or ""
        if location.endswith(tuple(EXTENSION_SUFFIXES)):
            return Path(location)
    pytest.fail("no standard library module is a compiled extension on this Python")


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


class Versions:
    """Builds wheels of the fixture plugins and installs them into one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheels = root / "wheels"
        self.target = root / "plugins"
        self.target.mkdir(parents=True)
        self.target.chmod(0o755)  # workers run as uids of their own: they read it

    def versioned(
        self,
        version: str,
        *,
        label: str = "a",
        behaviour: str = "ok",
        permissions: tuple[str, ...] = ("read-messaging",),
        core: str = "^2.0.0",
        requires: tuple[str, ...] = (),
    ) -> Path:
        extension = _stdlib_extension()
        module = extension.name.partition(".")[0]
        code = _PLUGIN.format(version=version, label=label, behaviour=behaviour, extension=module)
        extra = {extension.name: extension.read_bytes()} if behaviour == "extension" else None
        manifest = {
            "manifest_version": "1.0", "plugin_id": "versioned", "name": "Versioned",
            "version": version, "dependencies": {"core": core},
            "permissions": list(permissions), "interfaces": ["IMessageHandler"],
        }  # fmt: skip
        return self._wheel(
            "acp-fx-versioned", version, "acp_fx_versioned", "Versioned", code, manifest,
            requires, extra,
        )  # fmt: skip

    def helper(self, word: str) -> Path:
        """A plain library distribution, ``acp-fx-helper``, whose ``WORD`` is ``word``."""
        project = self.root / "src" / f"acp-fx-helper-{word}"
        (project / "acp_fx_helper").mkdir(parents=True)
        (project / "acp_fx_helper" / "__init__.py").write_text(f"WORD = {word!r}\n")
        (project / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=69"]\n'
            'build-backend = "setuptools.build_meta"\n'
            '[project]\nname = "acp-fx-helper"\nversion = "1.0.0"\n'
            '[tool.setuptools]\npackages = ["acp_fx_helper"]\n'
        )
        out = self.wheels / project.name
        _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(project))
        return next(out.glob("*.whl"))

    def dependent(self, wants: str) -> Path:
        manifest = {
            "manifest_version": "1.0", "plugin_id": "dependent", "name": "Dependent",
            "version": "1.0.0", "dependencies": {"core": "^2.0.0", "versioned": wants},
            "permissions": ["execute-commands", "write-messaging"],
            "interfaces": ["ICommandHandler"],
        }  # fmt: skip
        return self._wheel(
            "acp-fx-dependent", "1.0.0", "acp_fx_dependent", "Dependent", _DEPENDENT, manifest
        )

    def _wheel(self, name: str, version: str, package: str, entry: str, code: str,
               manifest: dict[str, Any], requires: tuple[str, ...] = (),
               extra: dict[str, bytes] | None = None) -> Path:  # fmt: skip
        project = _project(self.root / "src", name, version, package, entry, code, manifest,
                           requires, extra)  # fmt: skip
        out = self.wheels / project.name
        _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(project))
        return next(out.glob("*.whl"))

    def install(self, wheel: Path) -> None:
        # pip --target replaces same-named folders only: the old version's .dist-info
        # would stay beside the new one (an upgrade in an environment removes it)
        for old in self.target.glob(wheel.name.partition("-")[0] + "-*.dist-info"):
            shutil.rmtree(old)
        _pip("install", "--no-deps", "--no-compile", "--upgrade", "--target",
             str(self.target), str(wheel))  # fmt: skip

    def uninstall(self, package: str, distribution: str) -> None:
        shutil.rmtree(self.target / package)
        for info in self.target.glob(f"{distribution.replace('-', '_')}-*.dist-info"):
            shutil.rmtree(info)


@pytest.fixture(params=["in-process", "isolated"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def versions(tmp_path: Path) -> Versions:
    return Versions(tmp_path)


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    close_loop(running)


def make_host(versions: Versions, mode: str, tmp_path: Path, **options: Any) -> PluginHost:
    limits = WorkerLimits(cpu_share=None)  # a loaded machine must not make can_handle late
    isolation = TRUST_ALL if mode == "in-process" else IsolationPolicy(limits=limits)
    # calls held open across a swap (pip, a new worker) on a loaded machine can outlast
    # the default 5 s; their answers, not the call timeout, are what these tests check
    options.setdefault("timeout", 60.0)
    return PluginHost(
        search_path=[versions.target],
        data_root=tmp_path / "data",
        isolation=isolation,
        policy=PermissionPolicy.from_names({"dependent": ["execute-commands", "write-messaging"]}),
        **options,
    )


@pytest.fixture()
def started(
    versions: Versions, mode: str, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> Iterator[PluginHost]:
    """A host serving version 1.0.0 of ``versioned``."""
    versions.install(versions.versioned("1.0.0"))
    host = make_host(versions, mode, tmp_path)
    loop.run_until_complete(host.start())
    assert host.record("versioned").state.value == "active"
    yield host
    loop.run_until_complete(host.stop())


async def ask(host: PluginHost, text: str) -> str:
    routed = await host.send(Message(type="versioned", content=text, sender="test"))
    assert routed.handled, routed
    return routed.response.content


def test_held_calls_finish_on_the_old_version_and_new_calls_reach_the_new(
    started: PluginHost, versions: Versions, loop: asyncio.AbstractEventLoop, mode: str
) -> None:
    """The Envoy-style proof: across the swap, none lost, none doubled, each where it belongs."""
    host = started
    gate = host.data_dir("versioned") / "release"
    record = host.record("versioned")

    async def scenario() -> None:
        old_handle = record.handle
        held = [asyncio.ensure_future(ask(host, f"hold-{i}")) for i in range(5)]
        # all five past can_handle (awaited too when isolated) and held in handle_message
        while record.stats("can_handle").calls < 5 or host.guard.running(old_handle) < 5:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(versions.install, versions.versioned("2.0.0"))
        reload = asyncio.ensure_future(host.reload("versioned"))
        answers: dict[str, str] = {}
        sent = 0
        while record.generation == 0:  # new calls keep arriving while the new one comes up
            answers[f"before-{sent}"] = await ask(host, f"before-{sent}")
            sent += 1
        assert not reload.done()  # the held calls are still running: the old one drains
        for i in range(20):  # after the switch, with the old instance still draining
            answers[f"after-{i}"] = await ask(host, f"after-{i}")
        assert not any(h.done() for h in held)
        gate.write_text("go")
        result = await reload
        for i, task in enumerate(held):
            assert await task == f"1.0.0/a/hello: hold-{i}"
        for key, answer in answers.items():
            version = "1.0.0" if key.startswith("before") else "2.0.0"
            if key == f"before-{sent - 1}":  # the switch came while it was being routed:
                version = answer.partition("/")[0]  # scored by the old, answered by either
            assert answer == f"{version}/a/hello: {key}", (key, answer)
        assert result.outcome == "upgraded" and result.ok
        assert (result.from_version, result.to_version) == ("1.0.0", "2.0.0")
        assert (
            5 <= result.draining <= 6 and result.abandoned == 0
        )  # 6: one "before" call was in flight
        assert result.mode == mode
        assert host.guard.running(old_handle) == 0

    loop.run_until_complete(scenario())
    assert record.version == "2.0.0" and record.state.value == "active"
    assert record.generation == 1 and not record.reloading
    assert record.metrics["handle_message"].calls >= 25  # the history is the plugin's
    actions = [(e.action, e.outcome) for e in host.audit.entries("versioned")]
    assert ("reload", "ok") in actions


def test_events_across_a_reload_reach_the_old_or_the_new_instance_once_each(
    started: PluginHost, versions: Versions, loop: asyncio.AbstractEventLoop
) -> None:
    host = started
    log = host.data_dir("versioned") / "ticks.log"

    async def scenario() -> int:
        published = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal published
            while not done.is_set():
                host.events.publish("tick.n", {"n": published})
                published += 1
                await asyncio.sleep(0.002)

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0.2)
        await asyncio.to_thread(versions.install, versions.versioned("2.0.0"))
        await host.reload("versioned")
        await asyncio.sleep(0.2)
        done.set()
        await ticker
        for _ in range(500):  # the last ones may still be on their way
            if log.exists() and len(log.read_text().splitlines()) >= published:
                break
            await asyncio.sleep(0.02)
        return published

    published = loop.run_until_complete(scenario())
    lines = [line.split() for line in log.read_text().splitlines()]
    numbers = sorted(int(n) for _, n in lines)
    assert numbers == list(range(published))  # none lost, none twice
    old = [int(n) for version, n in lines if version == "1.0.0"]
    new = [int(n) for version, n in lines if version == "2.0.0"]
    assert old and new and max(old) < min(new)  # before the switch the old one, after it the new


@pytest.mark.parametrize(
    "behaviour, stage_text",
    [
        ("raise-import", "this version is broken on purpose"),
        ("refuse-activate", "activate returned False"),
        ("unhealthy", "health_check returned False"),
        ("raise-health", "not ready"),
    ],
)
def test_a_new_version_that_fails_a_step_leaves_the_old_one_serving(
    started: PluginHost,
    versions: Versions,
    loop: asyncio.AbstractEventLoop,
    behaviour: str,
    stage_text: str,
) -> None:
    host = started
    events = host.events.subscribe("plugin:*")
    versions.install(versions.versioned("2.0.0", behaviour=behaviour))
    with pytest.raises(ReloadFailed) as raised:
        loop.run_until_complete(host.reload("versioned"))
    result = raised.value.result
    assert result.outcome == "rolled-back" and not result.ok
    assert stage_text in result.detail and "the old one (1.0.0) goes on serving" in result.detail
    record = host.record("versioned")
    assert record.state.value == "active" and record.version == "1.0.0"
    assert record.reason is None and record.generation == 0
    assert any(f.stage == "reload" and stage_text in f.message for f in record.failures)
    assert loop.run_until_complete(ask(host, "still")) == "1.0.0/a/hello: still"
    assert ("reload", "rolled-back") in [(e.action, e.outcome) for e in host.audit.entries()]
    failed = [e for e in events.pending() if e.topic == "plugin:failed"]
    assert failed and failed[-1].data["plugin_id"] == "versioned"
    # nothing of the failed attempt is left behind: a good version goes in after it
    versions.install(versions.versioned("3.0.0"))
    assert loop.run_until_complete(host.reload("versioned")).outcome == "upgraded"
    assert loop.run_until_complete(ask(host, "now")) == "3.0.0/a/hello: now"


def test_the_same_version_with_changed_code_is_reloaded_and_keeps_its_overrides(
    started: PluginHost, versions: Versions, loop: asyncio.AbstractEventLoop
) -> None:
    host = started
    loop.run_until_complete(host.set_config("versioned", "greeting", "howdy"))
    assert loop.run_until_complete(ask(host, "x")) == "1.0.0/a/howdy: x"
    versions.install(versions.versioned("1.0.0", label="b"))
    result = loop.run_until_complete(host.reload("versioned"))
    assert result.outcome == "reloaded"
    assert loop.run_until_complete(ask(host, "x")) == "1.0.0/b/howdy: x"
    assert host.config_of("versioned").values["greeting"] == "howdy"
    # and again: a second reload of the reloaded instance
    versions.install(versions.versioned("1.0.0", label="c"))
    loop.run_until_complete(host.reload("versioned"))
    assert loop.run_until_complete(ask(host, "x")) == "1.0.0/c/howdy: x"
    assert host.record("versioned").generation == 2


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"permissions": ("read-messaging", "execute-commands")}, "execute-commands"),
        ({"core": ">=3.0.0"}, "needs core >=3.0.0"),
    ],
)
def test_a_version_the_host_would_not_admit_is_refused_before_it_runs(
    started: PluginHost,
    versions: Versions,
    loop: asyncio.AbstractEventLoop,
    change: dict[str, Any],
    expected: str,
) -> None:
    host = started
    handle = host.record("versioned").handle
    versions.install(versions.versioned("2.0.0", behaviour="raise-import", **change))
    with pytest.raises(ReloadFailed) as raised:
        loop.run_until_complete(host.reload("versioned"))
    assert raised.value.result.outcome == "refused"
    assert expected in raised.value.result.detail
    assert raised.value.result.mode is None  # nothing of it started (its import would raise)
    record = host.record("versioned")
    assert record.handle is handle and record.version == "1.0.0"


def test_dependents_keep_running_and_reach_the_new_version(
    versions: Versions, mode: str, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    versions.install(versions.versioned("1.0.0"))
    versions.install(versions.dependent("^1.0.0"))
    host = make_host(versions, mode, tmp_path)
    loop.run_until_complete(host.start())
    try:
        assert loop.run_until_complete(host.run_command("ask")).output == "1.0.0/a/hello: asked"
        versions.install(versions.versioned("1.1.0"))
        loop.run_until_complete(host.reload("versioned"))
        assert host.record("dependent").state.value == "active"
        assert loop.run_until_complete(host.run_command("ask")).output == "1.1.0/a/hello: asked"
        # a version outside the dependent's range is refused ...
        versions.install(versions.versioned("2.0.0"))
        with pytest.raises(ReloadFailed) as raised:
            loop.run_until_complete(host.reload("versioned"))
        assert "would break 1 running dependent(s)" in raised.value.message
        assert "--suspend-dependents" in raised.value.message
        assert host.record("dependent").state.value == "active"
        # ... unless the dependents are to be suspended, which is said
        result = loop.run_until_complete(host.reload("versioned", suspend_dependents=True))
        assert result.suspended == ["dependent"] and result.to_version == "2.0.0"
        dependent = host.record("dependent")
        assert dependent.state.value == "suspended"
        assert "'versioned' 2.0.0 is outside its range" in (dependent.reason or "")
    finally:
        loop.run_until_complete(host.stop())


def test_concurrent_reloads_of_one_plugin_take_turns(
    started: PluginHost, versions: Versions, loop: asyncio.AbstractEventLoop
) -> None:
    host = started
    versions.install(versions.versioned("2.0.0"))

    async def both() -> list[Any]:
        return list(await asyncio.gather(host.reload("versioned"), host.reload("versioned")))

    first, second = loop.run_until_complete(both())
    assert (first.outcome, second.outcome) == ("upgraded", "reloaded")
    assert host.record("versioned").generation == 2
    assert loop.run_until_complete(ask(host, "x")) == "2.0.0/a/hello: x"


def test_rescan_starts_what_was_installed_and_unloads_what_was_removed(
    started: PluginHost, versions: Versions, loop: asyncio.AbstractEventLoop
) -> None:
    host = started
    events = host.events.subscribe("plugin:*")
    versions.install(versions.dependent("^1.0.0"))
    found = loop.run_until_complete(host.rescan())
    assert found.added == ["dependent"] and found.removed == [] and found.reloads == []
    assert host.record("dependent").state.value == "active"
    assert loop.run_until_complete(host.run_command("ask")).output == "1.0.0/a/hello: asked"
    installed = [e.data for e in events.pending() if e.topic == "plugin:installed"]
    assert installed == [{"plugin_id": "dependent", "version": "1.0.0", "status": "active"}]
    # an upgrade found by a rescan is reloaded
    versions.install(versions.versioned("1.2.0"))
    found = loop.run_until_complete(host.rescan())
    assert [(r.plugin_id, r.outcome) for r in found.reloads] == [("versioned", "upgraded")]
    versions.uninstall("acp_fx_dependent", "acp-fx-dependent")
    found = loop.run_until_complete(host.rescan())
    assert found.removed == ["dependent"]
    assert "dependent" not in host.records
    assert [e.data for e in events.pending() if e.topic == "plugin:unloaded"] == [
        {"plugin_id": "dependent"}
    ]
    assert loop.run_until_complete(ask(host, "x")) == "1.2.0/a/hello: x"


def test_a_plugin_that_failed_to_start_is_started_by_a_reload_of_a_fixed_version(
    versions: Versions, mode: str, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    versions.install(versions.versioned("1.0.0", behaviour="raise-import"))
    host = make_host(versions, mode, tmp_path)
    loop.run_until_complete(host.start())
    try:
        assert host.record("versioned").state.value == "discovered"
        versions.install(versions.versioned("1.0.1"))
        result = loop.run_until_complete(host.reload("versioned"))
        assert result.outcome == "started"
        assert loop.run_until_complete(ask(host, "up")) == "1.0.1/a/hello: up"
    finally:
        loop.run_until_complete(host.stop())


def test_a_trusted_plugin_with_a_compiled_extension_requires_a_restart_and_keeps_serving(
    versions: Versions, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    versions.install(versions.versioned("1.0.0", behaviour="extension"))
    host = make_host(versions, "in-process", tmp_path)
    loop.run_until_complete(host.start())
    try:
        handle = host.record("versioned").handle
        versions.install(versions.versioned("2.0.0", behaviour="extension"))
        with pytest.raises(ReloadFailed) as raised:
            loop.run_until_complete(host.reload("versioned"))
        result = raised.value.result
        assert (result.outcome, result.mode, result.ok) == ("requires-restart", "in-process", False)
        assert "is a compiled extension" in result.detail and "restart the host" in result.detail
        assert host.record("versioned").handle is handle  # nothing was taken apart
        assert loop.run_until_complete(ask(host, "still")) == "1.0.0/a/hello: still"
        assert ("reload", "requires-restart") in [
            (e.action, e.outcome) for e in host.audit.entries("versioned")
        ]
    finally:
        loop.run_until_complete(host.stop())


def test_an_isolated_plugin_with_a_compiled_extension_reloads_in_a_new_worker(
    versions: Versions, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    versions.install(versions.versioned("1.0.0", behaviour="extension"))
    host = make_host(versions, "isolated", tmp_path)
    loop.run_until_complete(host.start())
    try:
        assert host.record("versioned").state.value == "active", host.record("versioned").reason
        versions.install(versions.versioned("2.0.0", behaviour="extension"))
        assert loop.run_until_complete(host.reload("versioned")).outcome == "upgraded"
        assert loop.run_until_complete(ask(host, "now")) == "2.0.0/a/hello: now"
    finally:
        loop.run_until_complete(host.stop())


def test_a_trusted_plugin_whose_own_dependency_changed_requires_a_restart(
    versions: Versions, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    versions.install(versions.helper("one"))
    plugin = versions.versioned("1.0.0", behaviour="helper", requires=("acp-fx-helper",))
    versions.install(plugin)
    host = make_host(versions, "in-process", tmp_path)
    loop.run_until_complete(host.start())
    try:
        assert loop.run_until_complete(ask(host, "x")) == "1.0.0/one/hello: x"
        # the plugin's own code may be reloaded while its dependency is as it was imported
        versions.install(plugin)
        assert loop.run_until_complete(host.reload("versioned")).outcome == "reloaded"
        time.sleep(0.01)  # a later modification time than the import's
        versions.install(versions.helper("two"))
        with pytest.raises(ReloadFailed) as raised:
            loop.run_until_complete(host.reload("versioned"))
        result = raised.value.result
        assert result.outcome == "requires-restart"
        assert "its dependency 'acp_fx_helper' changed on disk" in result.detail
        assert loop.run_until_complete(ask(host, "x")) == "1.0.0/one/hello: x"
    finally:
        loop.run_until_complete(host.stop())


def test_calls_still_running_at_the_drain_deadline_are_abandoned_and_counted(
    versions: Versions, mode: str, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    versions.install(versions.versioned("1.0.0"))
    host = make_host(versions, mode, tmp_path, drain_timeout=0.5)
    loop.run_until_complete(host.start())
    record = host.record("versioned")

    async def scenario() -> None:
        old_handle = record.handle
        held = asyncio.ensure_future(ask(host, "hold-forever"))  # nobody writes the gate
        while host.guard.running(old_handle) < 1:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(versions.install, versions.versioned("2.0.0"))
        began = time.monotonic()
        result = await host.reload("versioned")
        assert (result.outcome, result.draining, result.abandoned) == ("upgraded", 1, 1)
        assert 0.5 <= time.monotonic() - began < 5  # it waited the deadline, no longer
        assert await ask(host, "now") == "2.0.0/a/hello: now"
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(host.stop())
