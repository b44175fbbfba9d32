"""Discovery: finding installed plugins and reading their manifests without importing them.

The plugins here are real distributions installed with pip into their own
directories. The refused ones (``acp-fx-rejected``, ``acp-fx-identity``) write
the file named by ``$ACP_FIXTURE_SIDE_EFFECT`` when their package or plugin
module is imported, so "not imported" is something a test can see.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acp_plugins import ManifestError, PluginHost, PluginState
from acp_plugins.loading.discovery import Discovery, discover, manifest_path
from acp_plugins.loading.trust import TRUST_ALL
from conftest import SAMPLE_PROJECTS, fixture_plugin, sample

#: Top-level modules of the plugins that must never be imported in these tests.
REFUSED_MODULES = (
    "acp_fx_bad_manifest",
    "acp_fx_greedy",
    "acp_fx_impostor",
    "acp_fx_not_json",
    "acp_fx_version_skew",
    "acp_fx_no_manifest",
    "acp_fx_lone_module",
    "acp_fx_echo_twin",
)
SAMPLE_IDS = ["activity-analytics", "echo", "sqlite-store", "tools"]


@pytest.fixture(scope="module")
def rejected_dir(install_plugins: Callable[..., Path]) -> Path:
    """The samples next to the plugins refused before import."""
    return install_plugins(
        fixture_plugin("acp-fx-rejected"), *(sample(name) for name in SAMPLE_PROJECTS)
    )


@pytest.fixture(scope="module")
def identity_dir(install_plugins: Callable[..., Path]) -> Path:
    """Plugins whose version is skewed, whose manifest is missing, or whose id is taken."""
    return install_plugins(fixture_plugin("acp-fx-identity"))


@pytest.fixture(scope="module")
def echo_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"))


@pytest.fixture()
def side_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where an import of a refused plugin would leave its mark (nothing there yet).

    Any earlier import of those modules (by another test) is forgotten for the
    duration of the test, so that an import now would run them again.
    """
    marker = tmp_path / "imported.txt"
    monkeypatch.setenv("ACP_FIXTURE_SIDE_EFFECT", str(marker))
    for name in list(sys.modules):
        if name.partition(".")[0] in REFUSED_MODULES:
            monkeypatch.delitem(sys.modules, name)
    return marker


def imported_refused_modules() -> list[str]:
    return sorted(name for name in sys.modules if name.partition(".")[0] in REFUSED_MODULES)


def by_id(found: list[Discovery]) -> dict[str, Discovery]:
    assert len({item.plugin_id for item in found}) == len(found), found
    return {item.plugin_id: item for item in found}


# -- discover(): entry points and manifests, no imports ------------------------------------


def test_discovery_reads_every_manifest_without_importing_any_plugin(
    rejected_dir: Path, identity_dir: Path, side_effect: Path
) -> None:
    found = discover([rejected_dir]) + discover([identity_dir])

    rejected = ["bad-manifest", "greedy", "impostor", "not-json"]
    identity = ["echo", "lone-module", "no-manifest", "version-skew"]
    assert sorted(item.plugin_id for item in found) == sorted([*SAMPLE_IDS, *rejected, *identity])
    assert not side_effect.exists()
    assert imported_refused_modules() == []


def test_discover_returns_plugins_sorted_by_id(rejected_dir: Path) -> None:
    ids = [item.plugin_id for item in discover([rejected_dir])]
    assert ids == sorted(ids)


def test_a_valid_plugin_is_described_by_its_distribution_and_manifest(rejected_dir: Path) -> None:
    echo = by_id(discover([rejected_dir]))["echo"]

    assert echo.error is None
    assert echo.entry_point == "acp_echo.plugin:EchoPlugin"
    assert (echo.distribution, echo.distribution_version) == ("acp-echo", "1.0.0")
    assert echo.manifest is not None
    assert (echo.manifest.plugin_id, echo.manifest.version) == ("echo", "1.0.0")


def test_the_manifest_path_points_inside_the_installed_package(rejected_dir: Path) -> None:
    for item in discover([rejected_dir]):
        package = item.entry_point.partition(".")[0]
        assert item.manifest_path == rejected_dir.resolve() / package / "manifest.json", item


def test_the_manifest_is_read_from_the_searched_directory_not_another_on_sys_path(
    rejected_dir: Path, echo_dir: Path
) -> None:
    # both directories hold a package acp_echo; the first is on sys.path already
    discover([rejected_dir])

    (echo,) = discover([echo_dir])

    assert echo.manifest_path == echo_dir.resolve() / "acp_echo" / "manifest.json"


def test_a_distribution_installed_twice_counts_once_and_the_first_on_the_path_wins(
    rejected_dir: Path, echo_dir: Path
) -> None:
    found = [item for item in discover([echo_dir, rejected_dir]) if item.plugin_id == "echo"]

    assert len(found) == 1
    assert found[0].error is None
    assert found[0].manifest_path == echo_dir.resolve() / "acp_echo" / "manifest.json"


def test_manifest_path_without_a_distribution_looks_the_package_up_like_an_import(
    rejected_dir: Path,
) -> None:
    discover([rejected_dir])  # puts the directory on sys.path
    location = manifest_path("acp_fx_greedy.plugin:Plugin")
    assert location is not None and location.parts[-2:] == ("acp_fx_greedy", "manifest.json")
    assert manifest_path("no_such_package_anywhere.plugin:Plugin") is None


# -- discover(): what is wrong is reported per plugin -----------------------------------------


def test_a_plugin_id_that_differs_from_the_entry_point_name_is_refused(rejected_dir: Path) -> None:
    impostor = by_id(discover([rejected_dir]))["impostor"]

    assert isinstance(impostor.error, ManifestError)
    assert impostor.error.message == (
        "manifest plugin_id 'someone-else' differs from the entry point name 'impostor'; "
        "they must be equal (rename one of them)"
    )
    assert impostor.error.plugin_id == "impostor"
    assert impostor.manifest is None
    assert "someone-else" not in {item.plugin_id for item in discover([rejected_dir])}


def test_a_manifest_version_that_differs_from_the_distribution_is_refused(
    identity_dir: Path,
) -> None:
    skew = by_id(discover([identity_dir]))["version-skew"]

    assert skew.distribution_version == "1.1.0"
    assert isinstance(skew.error, ManifestError)
    assert skew.error.message == (
        "manifest version '1.0.0' differs from the installed distribution's version '1.1.0'; "
        "keep them equal"
    )
    assert skew.error.plugin_id == "version-skew"
    assert skew.manifest is None


def test_an_invalid_manifest_is_reported_with_each_bad_field(rejected_dir: Path) -> None:
    bad = by_id(discover([rejected_dir]))["bad-manifest"]

    assert isinstance(bad.error, ManifestError)
    assert bad.error.plugin_id == "bad-manifest"
    assert sorted(field.path for field in bad.error.errors) == [
        "colour", "homepage", "interfaces.1", "min_python", "permissions.1", "version",
    ]  # fmt: skip
    assert bad.manifest is None
    assert bad.manifest_path is not None and bad.manifest_path.is_file()


def test_a_manifest_that_is_not_json_is_reported(rejected_dir: Path) -> None:
    not_json = by_id(discover([rejected_dir]))["not-json"]

    assert isinstance(not_json.error, ManifestError)
    assert not_json.error.message.startswith(f"{not_json.manifest_path} is not valid JSON: ")
    assert not_json.error.plugin_id == "not-json"


def test_a_package_without_a_manifest_is_reported_with_where_it_was_looked_for(
    identity_dir: Path,
) -> None:
    plugin = by_id(discover([identity_dir]))["no-manifest"]
    expected = identity_dir.resolve() / "acp_fx_no_manifest" / "manifest.json"

    assert plugin.manifest_path == expected
    assert isinstance(plugin.error, ManifestError)
    assert plugin.error.message.startswith(f"no manifest.json at {expected}; ")


def test_a_plugin_that_is_a_lone_module_has_nowhere_to_keep_a_manifest(
    identity_dir: Path,
) -> None:
    plugin = by_id(discover([identity_dir]))["lone-module"]

    assert plugin.manifest_path is None
    assert plugin.error is not None
    assert plugin.error.message == (
        "cannot locate the package of entry point 'acp_fx_lone_module:Plugin' without "
        "importing it; the module must live in a package that ships manifest.json"
    )


def test_two_distributions_claiming_one_id_are_both_reported(
    echo_dir: Path, identity_dir: Path
) -> None:
    found = [item for item in discover([echo_dir, identity_dir]) if item.plugin_id == "echo"]

    assert [item.distribution for item in found] == ["acp-echo", "acp-fx-identity"]
    assert found[0].error is None
    assert found[1].error is not None
    assert found[1].error.message == (
        "plugin id 'echo' is registered by both 'acp-echo' and 'acp-fx-identity'; "
        "uninstall one of them"
    )


# -- the search path ------------------------------------------------------------------------


def test_a_search_path_shows_only_the_plugins_installed_there(
    rejected_dir: Path, identity_dir: Path
) -> None:
    discover([rejected_dir])  # now on sys.path, which must not matter

    assert sorted(item.plugin_id for item in discover([identity_dir])) == [
        "echo", "lone-module", "no-manifest", "version-skew",
    ]  # fmt: skip
    assert {item.distribution for item in discover([identity_dir])} == {"acp-fx-identity"}
    assert "version-skew" not in {item.plugin_id for item in discover([rejected_dir])}


def test_a_host_on_one_directory_does_not_see_the_plugins_of_another(
    rejected_dir: Path, identity_dir: Path, tmp_path: Path
) -> None:
    PluginHost(isolation=TRUST_ALL, search_path=[rejected_dir], data_root=tmp_path).discover()

    host = PluginHost(isolation=TRUST_ALL, search_path=[identity_dir], data_root=tmp_path)
    host.discover()

    assert sorted(host.records) == ["echo", "lone-module", "no-manifest", "version-skew"]
    assert host.records["echo"].distribution == "acp-fx-identity"


def test_an_empty_directory_has_no_plugins(tmp_path: Path) -> None:
    assert discover([tmp_path]) == []


# -- the host refuses before import ----------------------------------------------------------


def test_the_host_refuses_bad_plugins_before_import_and_starts_the_rest(
    rejected_dir: Path, side_effect: Path, tmp_path: Path, run: Callable[..., object]
) -> None:
    host = PluginHost(isolation=TRUST_ALL, search_path=[rejected_dir], data_root=tmp_path / "data")

    run(host.start())

    states = {pid: record.state for pid, record in host.records.items()}
    assert states == {
        "activity-analytics": PluginState.ACTIVE,
        "echo": PluginState.ACTIVE,
        "sqlite-store": PluginState.ACTIVE,
        "tools": PluginState.ACTIVE,
        "bad-manifest": PluginState.DISCOVERED,
        "greedy": PluginState.DISCOVERED,
        "impostor": PluginState.DISCOVERED,
        "not-json": PluginState.DISCOVERED,
    }
    reasons = {pid: record.reason or "" for pid, record in host.records.items()}
    assert "\n  - permissions.1: not a known value; " in reasons["bad-manifest"]
    assert "(got 'read-everything')" in reasons["bad-manifest"]
    assert "\n  - interfaces.1: not a known value; " in reasons["bad-manifest"]
    assert "\n  - version: 'one.two' is not a valid version" in reasons["bad-manifest"]
    assert "\n  - colour: unknown field" in reasons["bad-manifest"]
    assert reasons["greedy"] == (
        "permissions 'manage-database', 'execute-commands' requested by 'greedy' are not "
        "granted; grant them to 'greedy' in the host's permission policy or remove them "
        "from the manifest"
    )
    assert "'someone-else'" in reasons["impostor"] and "'impostor'" in reasons["impostor"]
    assert " is not valid JSON: " in reasons["not-json"]
    stages = {pid: [f.stage for f in record.failures] for pid, record in host.records.items()}
    assert stages["bad-manifest"] == stages["impostor"] == stages["not-json"] == ["manifest"]
    assert stages["greedy"] == ["permissions"]
    assert all(record.reason is None for record in host.active())
    assert set(host.load_order) == set(SAMPLE_IDS)
    assert host.load_order.index("sqlite-store") < host.load_order.index("activity-analytics")

    assert not side_effect.exists()
    assert imported_refused_modules() == []
    run(host.stop())


def test_loading_a_refused_plugin_directly_does_not_import_it(
    rejected_dir: Path, side_effect: Path, tmp_path: Path, run: Callable[..., object]
) -> None:
    host = PluginHost(isolation=TRUST_ALL, search_path=[rejected_dir], data_root=tmp_path / "data")
    host.discover()

    for plugin_id in ("bad-manifest", "greedy", "impostor", "not-json"):
        assert run(host.load(plugin_id)) is False
        assert host.records[plugin_id].state is PluginState.DISCOVERED

    assert not side_effect.exists()
    assert imported_refused_modules() == []


def test_the_host_refuses_both_claimants_of_one_id_and_plugins_it_cannot_place(
    echo_dir: Path, identity_dir: Path, side_effect: Path, tmp_path: Path,
    run: Callable[..., object],
) -> None:  # fmt: skip
    host = PluginHost(
        isolation=TRUST_ALL, search_path=[echo_dir, identity_dir], data_root=tmp_path / "data"
    )

    run(host.start())

    assert {pid: record.state for pid, record in host.records.items()} == {
        "echo": PluginState.DISCOVERED,
        "lone-module": PluginState.DISCOVERED,
        "no-manifest": PluginState.DISCOVERED,
        "version-skew": PluginState.DISCOVERED,
    }
    assert host.records["echo"].reason == (
        "plugin id 'echo' is registered by both 'acp-echo' and 'acp-fx-identity'; "
        "uninstall one of them"
    )
    assert host.load_order == ()
    assert not side_effect.exists()
    assert imported_refused_modules() == []


ENTRY_POINTS_TEXT = """
[console_scripts]
echo = not_a_plugin:main

# a comment
[acp.plugins]
echo = acp_echo.plugin:EchoPlugin
 tools=acp_tools.plugin:ToolsPlugin
; another comment

[acp.plugins.extra]
ghost = nowhere:Nothing
"""


def test_entry_points_are_read_from_their_group_only() -> None:
    from acp_plugins.loading.discovery import _entry_points_of_group

    assert _entry_points_of_group(ENTRY_POINTS_TEXT, "acp.plugins") == [
        ("echo", "acp_echo.plugin:EchoPlugin"),
        ("tools", "acp_tools.plugin:ToolsPlugin"),
    ]
    assert _entry_points_of_group(ENTRY_POINTS_TEXT, "acp.plugins.extra") == [
        ("ghost", "nowhere:Nothing")
    ]
    assert _entry_points_of_group("", "acp.plugins") == []


def test_name_and_version_come_from_the_folder_or_the_metadata_headers(tmp_path: Path) -> None:
    from importlib.metadata import PathDistribution

    from acp_plugins.loading.discovery import _name_and_version

    wheel_style = tmp_path / "Acp_Echo-1.2.0.dist-info"
    wheel_style.mkdir()
    assert _name_and_version(PathDistribution(wheel_style)) == ("acp-echo", "1.2.0")

    egg_style = tmp_path / "acp_legacy.egg-info"
    egg_style.mkdir()
    (egg_style / "PKG-INFO").write_text(
        "Metadata-Version: 2.1\nName: acp-Legacy\nVersion: 0.3\n\nName: not a header\n"
    )
    assert _name_and_version(PathDistribution(egg_style)) == ("acp-legacy", "0.3")


_names = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)
_values = st.from_regex(r"[a-z_][a-z0-9_.]{0,15}:[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
_groups = st.sampled_from(["acp.plugins", "console_scripts", "acp.plugins.extra", "pytest11"])


@given(
    st.lists(
        st.tuples(_groups, st.lists(st.tuples(_names, _values), max_size=4)),
        max_size=5,
    ),
    st.sampled_from(["=", " = ", "= ", " ="]),
)
def test_entry_point_text_round_trips(
    sections: list[tuple[str, list[tuple[str, str]]]], equals: str
) -> None:
    from acp_plugins.loading.discovery import _entry_points_of_group

    text = "\n".join(
        f"[{group}]\n" + "".join(f"{name}{equals}{value}\n" for name, value in entries)
        for group, entries in sections
    )
    expected = [entry for group, entries in sections if group == "acp.plugins" for entry in entries]
    assert _entry_points_of_group(text, "acp.plugins") == expected
