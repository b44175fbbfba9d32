"""``acp-plugins config``: show, get, set, unset, schema, validate; and the host's own settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from acp_plugins.cli import main

Cli = Callable[..., tuple[int, str, str]]

CONFIG = """\
[host]
timeout = 2.5

[plugins.echo]
prefix = "from the file: "

[plugins.sqlite-store]
seed_demo_data = true
"""


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "acp-plugins.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture()
def cli(
    request: pytest.FixtureRequest,
    samples_dir: Path,
    tmp_path: Path,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """The command line on the samples, trusted unless a test asks for ``"isolated"``.

    Configuration in isolated workers is tested through the API in both modes
    (test_host_config.py); here one round trip goes through the command line isolated.
    """
    user_file = tmp_path / "user.toml"
    user_file.write_text("")  # an empty user layer: the developer's own file stays out
    common = [
        "--plugin-path", str(samples_dir), "--data-dir", str(tmp_path / "data"),
        "--config", str(config_file), "--user-config", str(user_file),
    ]  # fmt: skip
    if getattr(request, "param", "trusted") == "trusted":
        common += ["--trust", "*"]

    def run(*argv: str) -> tuple[int, str, str]:
        head = argv[:2] if argv[0] == "config" else argv[:1]
        status = main([*head, *common, *argv[len(head) :]])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_show_says_where_each_value_came_from(cli: Cli, config_file: Path) -> None:
    status, out, _ = cli("config", "show", "echo")
    assert status == 0
    header, _, row = out.splitlines()
    assert header.split() == ["KEY", "VALUE", "LAYER", "SOURCE"]
    assert row.split()[:1] == ["prefix"]
    assert '"from the file: "' in row
    assert f"global  {config_file}:5" in row
    status, out, _ = cli("config", "show", "sqlite-store", "--json")
    settings = json.loads(out)["settings"]
    assert settings["database"] == {
        "value": "events.sqlite3", "layer": "defaults", "source": "default",
    }  # fmt: skip
    assert settings["seed_demo_data"]["layer"] == "global"


@pytest.mark.parametrize("cli", ["trusted", "isolated"], indirect=True)
def test_set_get_unset_round_trip(cli: Cli, tmp_path: Path) -> None:
    status, out, _ = cli("config", "set", "echo", "prefix", "## ")
    assert status == 0
    assert out.splitlines()[0] == 'prefix = "## "  [runtime: runtime override]'
    assert json.loads((tmp_path / "data" / "overrides.json").read_text()) == {
        "echo": {"prefix": "## "}
    }
    status, out, _ = cli("send", "--type", "echo", "hi")
    assert out.strip() == "echo (confidence 1.00): ## hi"
    status, out, _ = cli("config", "get", "echo", "prefix", "--json")
    assert json.loads(out)["prefix"]["layer"] == "runtime"
    status, out, _ = cli("config", "unset", "echo", "prefix")
    assert status == 0
    assert "[global:" in out
    status, out, _ = cli("send", "--type", "echo", "hi")
    assert out.strip() == "echo (confidence 1.00): from the file: hi"


def test_a_bad_value_is_refused_and_nothing_is_saved(cli: Cli, tmp_path: Path) -> None:
    status, out, err = cli("config", "set", "sqlite-store", "seed_demo_data", "perhaps")
    assert status == 1
    assert out == ""
    assert "'sqlite-store' setting 'seed_demo_data'" in err
    assert "runtime override" in err
    assert not (tmp_path / "data" / "overrides.json").exists()
    status, _, err = cli("config", "set", "echo", "colour", "blue")
    assert status == 1
    assert "colour" in err


def test_unknown_keys_and_plugins_are_not_found(cli: Cli) -> None:
    status, _, err = cli("config", "get", "echo", "nothing")
    assert status == 3
    assert "has no setting 'nothing' (settings: prefix)" in err
    status, _, err = cli("config", "show", "ghost")
    assert status == 3


def test_schema_of_a_plugin_and_of_the_host(cli: Cli) -> None:
    status, out, _ = cli("config", "schema", "sqlite-store")
    assert status == 0
    assert json.loads(out)["properties"]["database"]["minLength"] == 1
    status, out, _ = cli("config", "schema", "host")
    assert "timeout" in json.loads(out)["properties"]


def test_the_host_settings_show_their_layers(cli: Cli, config_file: Path) -> None:
    status, out, _ = cli("config", "show", "host", "--json")
    assert status == 0
    settings = json.loads(out)["settings"]
    assert settings["timeout"]["value"] == 2.5
    assert settings["timeout"]["layer"] == "global"
    assert settings["data_dir"]["layer"] == "runtime"  # --data-dir on the command line
    assert settings["sync_in_thread"]["layer"] == "defaults"


def test_validate_a_config_file(cli: Cli, config_file: Path, tmp_path: Path) -> None:
    status, out, _ = cli("config", "validate", str(config_file))
    assert status == 0
    assert out.startswith(f"ok    {config_file}")
    bad = tmp_path / "bad.toml"
    bad.write_text("[plugins.echo]\nprefix = 3\n\n[plugins.nobody]\nx = 1\n")
    status, out, _ = cli("config", "validate", "--json", str(bad))
    assert status == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert any("'echo' setting 'prefix'" in p and f"{bad}:2" in p for p in report["problems"])
    assert "[plugins.nobody]: no plugin 'nobody' is installed" in report["problems"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[plugins.echo\n")
    status, _, err = cli("config", "validate", str(broken))
    assert status == 1
    assert str(broken) in err


def test_two_processes_setting_at_once_both_land(samples_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ACP_HOST_PLUGIN_PATH": json.dumps([str(samples_dir)])}
    env["ACP_HOST_DATA_DIR"] = str(tmp_path / "data")
    env["ACP_USER_CONFIG"] = str(tmp_path / "user.toml")
    (tmp_path / "user.toml").write_text("")
    changes = [("echo", "prefix", "one: "), ("sqlite-store", "seed_demo_data", "false")]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "acp_plugins", "config", "set", *change],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for change in changes
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    saved = json.loads((tmp_path / "data" / "overrides.json").read_text())
    assert saved == {"echo": {"prefix": "one: "}, "sqlite-store": {"seed_demo_data": False}}
