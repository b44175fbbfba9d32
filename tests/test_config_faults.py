"""Configuration and storage faults: each is one clear line, and nothing is lost silently.

Found by fuzzing the config files, the environment and the host's files; each case
ended in an internal error or a silent loss before its fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from acp_plugins.cli import main
from conftest import sample

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def plugin_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"), sample("acp-tools"))


@pytest.fixture()
def cli(plugin_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*argv: str) -> tuple[int, str, str]:
        status = main(["--plugin-path", str(plugin_dir), "--trust", "*", *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def _one_clear_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[host]\ntimeout = inf\n", "'timeout': Input should be a finite number"),
        ("[host]\ntimeout = nan\n", "'timeout': Input should be a finite number"),
        ("[host]\ntimeout = 1e9\n", "'timeout': Input should be less than or equal to 3600"),
        ("a = " + "[" * 3000 + "]" * 3000 + "\n", "is nested too deeply to read"),
        ("[plugins.echo]\nprefix = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ],
)
def test_a_bad_config_file_is_one_clear_line(
    cli: Cli, tmp_path: Path, text: str, fragment: str
) -> None:
    config = tmp_path / "acp.toml"
    config.write_text(text)
    status, _, err = cli("--config", str(config), "--data-dir", str(tmp_path / "d"), "list")
    assert status in (1, 2)
    _one_clear_line(err)
    assert fragment in err


def test_a_deep_value_in_the_environment_is_one_clear_line(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("[" * 5000, "[" * 5000 + "]" * 5000):
        monkeypatch.setenv("ACP_HOST_DISABLED", value)
        status, _, err = cli("--data-dir", str(tmp_path / "d"), "list")
        assert status == 1
        # where json gives up depends on the Python: too deep, or not valid JSON
        first = _one_clear_line(err)
        assert "nested too deeply to read" in first or "from ACP_HOST_DISABLED" in err


def test_a_data_directory_that_is_a_file_stops_the_host_before_any_plugin(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "data").write_text("not a folder")
    status, out, err = cli("--data-dir", str(tmp_path / "data"), "list")
    assert status == 1 and out == ""
    assert "the data directory" in _one_clear_line(err) and "is not a directory" in err


def test_unreadable_overrides_stop_the_host_instead_of_every_plugin(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "data" / "overrides.json").mkdir(parents=True)  # root reads any file
    status, out, err = cli("--data-dir", str(tmp_path / "data"), "list")
    assert status == 1 and "plugins active" not in out
    assert "cannot read the runtime overrides" in _one_clear_line(err)


@pytest.mark.parametrize("content", ["{not json", "[" * 20_000, '{"echo": ' * 60 + "{}" + "}" * 60])
def test_corrupt_overrides_are_moved_aside_and_the_user_is_told(
    cli: Cli, tmp_path: Path, content: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "overrides.json").write_text(content)
    status, out, err = cli("--data-dir", str(data), "list")
    assert status == 0 and "0 of 2 plugins active, 2 waiting" in out
    assert err.startswith(f"warning: overrides file {data / 'overrides.json'} was corrupt (")
    assert "and was moved to" in err
    assert [p.name.split("-")[0] for p in data.glob("overrides.json.corrupt-*")] == [
        "overrides.json.corrupt"
    ]


def test_an_audit_log_that_cannot_be_written_is_counted_and_reported(
    cli: Cli, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "audit.jsonl").mkdir(parents=True)
    status, out, err = cli("--data-dir", str(data), "list")
    assert status == 0 and "0 of 2 plugins active, 2 waiting" in out  # the plugins are not held up
    assert "audit records could not be written to" in err and "(Is a directory)" in err
    status, _, err = cli("--data-dir", str(data), "audit")
    assert status == 1
    assert "cannot read the audit log" in _one_clear_line(err)


def test_a_config_set_value_that_is_too_deep_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    value = "[" * 40 + "]" * 40
    status, _, err = cli("--data-dir", str(data), "config", "set", "echo", "prefix", value)
    assert status == 2
    assert "VALUE nests more than 32" in _one_clear_line(err)
    assert not (data / "overrides.json").exists()
    status, out, _ = cli("--data-dir", str(data), "config", "get", "echo", "prefix", "--json")
    assert json.loads(out)["prefix"]["layer"] == "defaults"
