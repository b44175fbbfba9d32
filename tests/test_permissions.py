"""Permissions: the policy that grants them, and the host refusing what is not granted.

The ``greedy`` plugin (from ``acp-fx-rejected``) asks for 'manage-database' and
'execute-commands', which no plugin holds by default. Its package writes the
file named by ``$ACP_FIXTURE_SIDE_EFFECT`` when imported: with both permissions
granted that file appears, which shows that the permission check alone is what
keeps it from being imported otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

from acp_plugins import DEFAULT_GRANTS, Permission, PermissionPolicy, PluginHost, PluginState
from acp_plugins.loading.trust import TRUST_ALL
from conftest import SAMPLE_PROJECTS, fixture_plugin, sample

P = Permission
REFUSED_MODULES = ("acp_fx_bad_manifest", "acp_fx_greedy", "acp_fx_impostor", "acp_fx_not_json")
KNOWN = (
    "read-messaging, write-messaging, manage-agents, read-config, write-config, "
    "read-system-info, write-logs, execute-commands, read-data, write-data, manage-database, "
    "network, run-processes"
)


# -- the policy ----------------------------------------------------------------------------


def test_the_permissions_are_those_of_the_specification_and_the_sandbox() -> None:
    assert [permission.value for permission in Permission] == KNOWN.split(", ")
    assert all(str(permission) == permission.value for permission in Permission)


def test_every_plugin_gets_the_default_grants() -> None:
    defaults = {P.READ_MESSAGING, P.WRITE_MESSAGING, P.READ_CONFIG, P.WRITE_LOGS, P.READ_DATA}
    assert defaults == DEFAULT_GRANTS
    policy = PermissionPolicy()
    assert policy.defaults == DEFAULT_GRANTS
    assert policy.granted("anyone") == DEFAULT_GRANTS


def test_grants_are_added_to_the_defaults_for_their_plugin_only() -> None:
    policy = PermissionPolicy(grants={"greedy": frozenset({P.MANAGE_DATABASE})})

    assert policy.granted("greedy") == DEFAULT_GRANTS | {P.MANAGE_DATABASE}
    assert policy.granted("other") == DEFAULT_GRANTS


def test_missing_lists_what_is_not_granted_in_request_order() -> None:
    policy = PermissionPolicy(grants={"greedy": frozenset({P.MANAGE_DATABASE})})
    requested = [P.WRITE_DATA, P.READ_DATA, P.MANAGE_DATABASE, P.EXECUTE_COMMANDS]

    assert policy.missing("greedy", requested) == [P.WRITE_DATA, P.EXECUTE_COMMANDS]
    assert policy.missing("other", requested) == [
        P.WRITE_DATA, P.MANAGE_DATABASE, P.EXECUTE_COMMANDS,
    ]  # fmt: skip
    assert policy.missing("other", []) == []
    assert policy.missing("other", sorted(DEFAULT_GRANTS)) == []


def test_defaults_can_be_narrowed_to_nothing() -> None:
    policy = PermissionPolicy.from_names(defaults=[])

    assert policy.granted("anyone") == frozenset()
    assert policy.missing("anyone", [P.READ_MESSAGING]) == [P.READ_MESSAGING]


def test_from_names_reads_permission_names() -> None:
    policy = PermissionPolicy.from_names(
        {"greedy": ["manage-database", "execute-commands"], "reader": []},
        defaults=["read-data"],
    )

    assert policy.defaults == {P.READ_DATA}
    assert policy.grants == {
        "greedy": {P.MANAGE_DATABASE, P.EXECUTE_COMMANDS},
        "reader": frozenset(),
    }
    assert PermissionPolicy.from_names() == PermissionPolicy()


def test_from_names_takes_a_single_name_as_a_string() -> None:
    policy = PermissionPolicy.from_names({"greedy": "manage-database"}, defaults="read-data")

    assert policy.grants == {"greedy": {P.MANAGE_DATABASE}}
    assert policy.defaults == {P.READ_DATA}


@pytest.mark.parametrize(
    ("grants", "defaults", "message"),
    [
        ({"greedy": ["root"]}, None, "unknown permission 'root' granted to 'greedy'"),
        ({"greedy": ["manage-database", "Execute-Commands"]}, None,
         "unknown permission 'Execute-Commands' granted to 'greedy'"),
        ({"greedy": [" read-data"]}, None, "unknown permission ' read-data' granted to 'greedy'"),
        ({"greedy": ["execute_commands"]}, None,
         "unknown permission 'execute_commands' granted to 'greedy'"),
        (None, ["read-data", "everything"],
         "unknown permission 'everything' in the default grants"),
        (None, [""], "unknown permission '' in the default grants"),
    ],
)  # fmt: skip
def test_from_names_refuses_an_unknown_name_and_lists_the_known_ones(
    grants: Mapping[str, Iterable[str]] | None, defaults: Iterable[str] | None, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        PermissionPolicy.from_names(grants, defaults)

    assert str(caught.value) == f"{message}; known permissions: {KNOWN}"


def test_a_policy_is_frozen() -> None:
    policy = PermissionPolicy()
    with pytest.raises(AttributeError):
        policy.defaults = frozenset()  # type: ignore[misc]


# -- the host enforces the policy before import -----------------------------------------------


@pytest.fixture(scope="module")
def rejected_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        fixture_plugin("acp-fx-rejected"), *(sample(name) for name in SAMPLE_PROJECTS)
    )


@pytest.fixture()
def side_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where an import of a refused plugin leaves its mark (nothing there yet).

    Earlier imports of those modules are forgotten for the test, so that an
    import now runs them again.
    """
    marker = tmp_path / "imported.txt"
    monkeypatch.setenv("ACP_FIXTURE_SIDE_EFFECT", str(marker))
    for name in list(sys.modules):
        if name.partition(".")[0] in REFUSED_MODULES:
            monkeypatch.delitem(sys.modules, name)
    return marker


def started(
    plugins: Path, policy: PermissionPolicy, data: Path, run: Callable[..., object]
) -> PluginHost:
    host = PluginHost(isolation=TRUST_ALL, search_path=[plugins], policy=policy, data_root=data)
    run(host.start())
    return host


def test_granting_what_greedy_asks_for_lets_it_load_and_run_its_code(
    rejected_dir: Path, side_effect: Path, tmp_path: Path, run: Callable[..., object]
) -> None:
    policy = PermissionPolicy.from_names({"greedy": ["manage-database", "execute-commands"]})

    host = started(rejected_dir, policy, tmp_path / "data", run)

    greedy = host.records["greedy"]
    assert (greedy.state, greedy.reason) == (PluginState.ACTIVE, None)
    assert greedy.granted == DEFAULT_GRANTS | {P.MANAGE_DATABASE, P.EXECUTE_COMMANDS}
    # the import happened, and only greedy's: the other refused plugins stay unimported
    assert side_effect.read_text().splitlines() == ["acp_fx_greedy", "acp_fx_greedy.plugin"]
    assert host.records["bad-manifest"].state is PluginState.DISCOVERED
    run(host.stop())


@pytest.mark.parametrize(
    ("granted", "missing"),
    [("manage-database", "execute-commands"), ("execute-commands", "manage-database")],
)
def test_granting_only_one_permission_names_the_other(
    rejected_dir: Path, side_effect: Path, tmp_path: Path, run: Callable[..., object],
    granted: str, missing: str,
) -> None:  # fmt: skip
    policy = PermissionPolicy.from_names({"greedy": [granted]})

    host = started(rejected_dir, policy, tmp_path / "data", run)

    greedy = host.records["greedy"]
    assert greedy.state is PluginState.DISCOVERED
    assert greedy.reason == (
        f"permission '{missing}' requested by 'greedy' is not granted; grant it to 'greedy' "
        "in the host's permission policy or remove it from the manifest"
    )
    assert [failure.stage for failure in greedy.failures] == ["permissions"]
    assert "greedy" not in host.load_order
    assert not side_effect.exists()
    run(host.stop())


def test_grants_for_another_plugin_do_not_help(
    rejected_dir: Path, side_effect: Path, tmp_path: Path, run: Callable[..., object]
) -> None:
    policy = PermissionPolicy.from_names({"echo": ["manage-database", "execute-commands"]})

    host = started(rejected_dir, policy, tmp_path / "data", run)

    assert host.records["greedy"].state is PluginState.DISCOVERED
    assert (host.records["greedy"].reason or "").startswith(
        "permissions 'manage-database', 'execute-commands' requested by 'greedy' are not granted"
    )
    assert not side_effect.exists()
    run(host.stop())


def test_default_grants_apply_to_every_plugin(
    rejected_dir: Path, side_effect: Path, tmp_path: Path, run: Callable[..., object]
) -> None:
    everything = [permission.value for permission in Permission]

    host = started(rejected_dir, PermissionPolicy.from_names(defaults=everything), tmp_path, run)

    assert host.records["greedy"].state is PluginState.ACTIVE
    assert side_effect.exists()
    run(host.stop())


def test_narrowed_defaults_refuse_plugins_that_relied_on_them(
    rejected_dir: Path, tmp_path: Path
) -> None:
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[rejected_dir],
        policy=PermissionPolicy.from_names(defaults=["write-logs"]),
        data_root=tmp_path,
    )
    host.discover()

    assert host.records["echo"].reason == (
        "permissions 'read-messaging', 'write-messaging' requested by 'echo' are not granted; "
        "grant them to 'echo' in the host's permission policy or remove them from the manifest"
    )
    assert host.records["tools"].reason is None  # it asks for write-logs only
    assert host.records["activity-analytics"].reason == (
        "permissions 'read-data', 'read-config', 'read-messaging' requested by "
        "'activity-analytics' are not "
        "granted; grant them to 'activity-analytics' in the host's permission policy or "
        "remove them from the manifest"
    )
