"""The command line on the everyday path: where options go, bad input, whole reasons.

Each test here stands for a case found by trying the CLI as a new user would, or by
fuzzing its arguments: it failed before the fix it guards.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acp_plugins.cli import main
from conftest import fixture_plugin, sample

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def plugin_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        sample("acp-echo"),
        sample("acp-tools"),
        sample("acp-sqlite-store"),
        fixture_plugin("acp-fx-faulty"),
        fixture_plugin("acp-fx-calc"),
    )


@pytest.fixture()
def raw(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``acp-plugins ARGV...`` exactly as given."""

    def cli(*argv: str) -> tuple[int, str, str]:
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return cli


@pytest.fixture(scope="module")
def two_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"), sample("acp-tools"))


def _before(raw: Cli, plugins: Path, data: Path) -> Cli:
    common = ["--plugin-path", str(plugins), "--data-dir", str(data)]

    def cli(*argv: str) -> tuple[int, str, str]:
        return raw(*common, *argv)

    return cli


@pytest.fixture()
def before(raw: Cli, plugin_dir: Path, tmp_path: Path) -> Cli:
    """Host options first, as the README writes them: ``acp-plugins --trust ... COMMAND``."""
    return _before(raw, plugin_dir, tmp_path / "data")


@pytest.fixture()
def small(raw: Cli, two_dir: Path, tmp_path: Path) -> Cli:
    """The same with only echo and tools installed (for tests that isolate them)."""
    return _before(raw, two_dir, tmp_path / "data")


# -- where options go ------------------------------------------------------------------------


def test_host_options_work_before_the_command(small: Cli) -> None:
    status, out, err = small("--trust", "echo,tools", "run", "tools:add", "1", "2")
    assert (status, out.strip(), err) == (0, "3", "")
    status, out, _ = small("--trust", "*", "info", "tools", "--json")
    assert status == 0 and json.loads(out)["isolation"]["mode"] == "in-process"


def test_host_options_before_and_after_add_up(small: Cli) -> None:
    _, out, _ = small("--trust", "echo", "info", "tools", "--trust", "tools", "--json")
    assert json.loads(out)["isolation"]["mode"] == "in-process"
    _, out, _ = small("--trust", "echo", "info", "echo", "--trust", "tools", "--json")
    assert json.loads(out)["isolation"]["mode"] == "in-process"


def test_an_option_of_the_command_before_it_says_where_it_goes(small: Cli) -> None:
    status, _out, err = small("--json", "list")
    assert status == 2
    assert err.strip() == (
        "error: --json is not a host option; if it is an option of 'list', put it after the "
        "command: acp-plugins list ... --json"
    )


def test_run_keeps_its_own_options_wherever_they_are(before: Cli) -> None:
    status, out, _ = before("--trust", "*", "run", "tools:add", "2", "3", "--json")
    assert status == 0
    assert json.loads(out)["data"] == {"sum": 5.0}
    status, out, _ = before("run", "--trust", "*", "upper", "a", "--reverse", "b", "--json")
    assert json.loads(out)["output"] == "B A"


def test_run_passes_what_follows_a_double_dash_verbatim(before: Cli) -> None:
    status, out, _ = before("--trust", "*", "run", "upper", "--", "--json", "x")
    assert (status, out.strip()) == (0, "--JSON X")


def test_run_command_help_shows_its_arguments_and_options(before: Cli) -> None:
    status, out, _ = before("--trust", "*", "run", "tools:add", "--help")
    assert status == 0
    assert out.splitlines()[0] == "usage: acp-plugins run tools:add A B [--digits INT]"
    assert "--digits  int    Round to this many digits." in out


def test_a_bad_option_of_a_command_is_a_usage_error_with_the_usage(before: Cli) -> None:
    status, _, err = before("--trust", "*", "run", "tools:add", "1", "2", "--digit", "3")
    assert status == 2
    assert err.strip() == (
        "error: tools:add: unknown option --digit (did you mean --digits?); "
        "usage: add A B [--digits INT]"
    )


# -- --json for scripts, errors included -----------------------------------------------------


def test_json_errors_are_json_on_stdout(small: Cli) -> None:
    status, out, err = small("--trust", "*", "run", "nosuch", "--json")
    assert status == 3
    error = json.loads(out)["error"]
    assert error["exit_status"] == 3 and error["kind"] == "UnknownCommand"
    assert error["message"] in err
    status, out, _ = small("--trust", "*", "info", "nobody", "--json")
    assert status == 3 and "nobody" in json.loads(out)["error"]["message"]


def test_config_set_unset_and_schema_take_json(before: Cli) -> None:
    status, out, _ = before("--trust", "*", "config", "set", "echo", "prefix", "hi: ", "--json")
    assert status == 0
    answer = json.loads(out)
    assert answer["settings"]["prefix"]["value"] == "hi: "
    assert answer["overrides_file"].endswith("overrides.json")
    status, out, _ = before("--trust", "*", "config", "unset", "echo", "prefix", "--json")
    assert status == 0 and json.loads(out)["settings"]["prefix"]["layer"] == "defaults"
    status, out, _ = before("--trust", "*", "config", "schema", "echo", "--json")
    assert status == 0 and "prefix" in json.loads(out)["properties"]


# -- did you mean, and why nothing answered --------------------------------------------------


def test_a_misspelt_command_or_source_gets_a_suggestion(before: Cli) -> None:
    _, _, err = before("--trust", "*", "run", "uper", "x")
    assert "no active plugin offers command 'uper'; did you mean 'upper'?" in err
    _, _, err = before("--trust", "*", "query", "agent-event")
    assert "did you mean 'agent-events'?" in err


def test_a_plugin_that_would_answer_is_named_with_its_reason(before: Cli) -> None:
    status, _, err = before("--trust", "*", "run", "import-error:cmd")
    assert status == 3
    assert "; 'import-error' is not loaded: importing 'acp_fx_import_error.plugin:Plugin'" in err
    status, _, err = before("--trust", "*", "run", "ghost:cmd")
    assert "no plugin 'ghost' is installed" in err
    status, out, err = before("--trust", "*", "send", "--type", "nobody", "hi")
    assert status == 1
    assert out.startswith(
        "unhandled: no plugin is confident it can handle this 'nobody' message; a message "
        "handler is installed but not active: 'bad-signature' is not loaded: 'bad-signature' "
        "has an invalid hook"
    )


def test_list_shows_whole_reasons_wrapped(before: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "110")
    _status, out, _ = before("--trust", "*", "list")
    lines = out.splitlines()
    assert max(map(len, lines)) <= 110
    first = next(i for i, text in enumerate(lines) if text.startswith("bad-signature"))
    rest = []
    for text in lines[first + 1 :]:
        if not text.startswith(" "):
            break
        rest.append(text.strip())
    whole = " ".join([lines[first].split("IMessageHandler", 1)[1].strip(), *rest])
    assert whole.endswith("are declared in the hookimpl but can not be found in the hookspec")
    assert "..." not in out


# -- bad input: one line, a documented exit status -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["report", "--since", "1e308d"], "'1e308d' is out of range; a duration is from 0"),
        (["query", "events", "--since", "infd"], "'infd' is out of range"),
        (["query", "events", "--since=-5m"], "'-5m' is out of range"),
        (["query", "events", "--offset", "-1"], "'-1' is negative; use 0 or more"),
        (["query", "events", "--limit", "x"], "'x' is not a whole number"),
        (["audit", "--last", "-3"], "'-3' is negative"),
        (["config", "set", "echo", "prefix", "[" * 100_000], "VALUE nests more than 32"),
        (["config", "set", "echo", "prefix", "[" * 50 + "]" * 50], "VALUE nests more than 32"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(before: Cli, argv: list[str], fragment: str) -> None:
    status, _, err = before("--trust", "*", *argv)
    assert status == 2, err
    assert fragment in err
    assert "Traceback" not in err and "internal error" not in err


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "acp_plugins", *argv],
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_an_undecodable_argument_under_a_strict_locale_is_shown_escaped(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "acp_plugins", "info", b"caf\xff", "--data-dir", data],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"},
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert b"caf\\udcff" in done.stderr
    assert b"Traceback" not in done.stderr


def test_debug_shows_the_plugins_own_traceback_from_its_worker(
    plugin_dir: Path, tmp_path: Path
) -> None:
    others = "echo,tools,sqlite-store,calc,init-raises,activate-refuses,half-handler,"
    others += "bad-signature,typo-hook,loud,blocking,lifecycle-log"  # import-error isolated
    done = _run(
        "list", "--plugin-path", str(plugin_dir), "--data-dir", str(tmp_path), "--debug",
        "--trust", others,
    )  # fmt: skip
    err = done.stderr.decode()
    assert "'import-error' raised in loading; its traceback in the worker:" in err
    assert "acp_fx_import_error/plugin.py" in err
    assert "ModuleNotFoundError: No module named 'acp_fx_this_module_does_not_exist'" in err


def test_validate_json_stays_json_for_a_manifest_with_nan(raw: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        '{"manifest_version": "1.0", "plugin_id": "x", "name": "X", "version": "1.0.0", '
        '"description": NaN}'
    )
    status, out, _ = raw("validate", str(manifest), "--json")
    assert status == 1
    report = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the output"))
    assert "NaN is not a JSON value" in report["plugins"][0]["message"]


@pytest.mark.parametrize(
    "argv",
    [["validate", "a" * 300], ["test", "a" * 300], ["dev", "a" * 300],
     ["list", "--plugin-path", "/tmp/" + "a" * 300], ["list", "--data-dir", "/tmp/" + "a" * 300]],
)  # fmt: skip
def test_a_path_the_file_system_refuses_is_one_line_and_exit_1(raw: Cli, argv: list[str]) -> None:
    status, _, err = raw(*argv)
    assert status == 1, err
    assert err.startswith("error: cannot use ") and err.rstrip().endswith(": File name too long")
    assert len(err.splitlines()) == 1 and "internal error" not in err


_COMMANDS = ["list", "info", "validate", "schema", "send", "run", "query", "report", "commands",
             "sources", "metrics", "audit", "health", "telemetry", "config show", "config get",
             "config set", "config unset", "config schema", "config validate"]  # fmt: skip
_WORDS = ["echo", "tools", "sqlite-store", "calc", "nobody", "", "-", "--", "0", "-1", "1e309",
          "nan", "add", "upper", "agent-events", "a=b", "=", "prefix", "host", "host.timeout",
          "{}", "[1,2]", "null", "1d", "0s", "99999999d", "é", "a" * 300, "/", "json", "pdf",
          "*", "echo:add", "plugin:*", "..", "3", "--json", "--type", "--where", "--fields",
          "--order-by", "--limit", "--offset", "--since", "--plugin", "--format", "--action",
          "--last", "--prometheus", "--timeout", "-v"]  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_options(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("cli-fuzz")
    (root / "host.toml").write_text("")
    (root / "user.toml").write_text("")
    files = ["--config", str(root / "host.toml"), "--user-config", str(root / "user.toml")]
    return ["--plugin-path", str(plugin_dir), "--data-dir", str(root / "data"), "--trust", "*",
            *files]  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(command=st.sampled_from(_COMMANDS), words=st.lists(st.sampled_from(_WORDS), max_size=4))
def test_any_command_line_gets_an_answer_or_one_line_never_an_internal_error(
    fuzz_options: list[str], command: str, words: list[str]
) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*command.split(), *words, *fuzz_options])
    said = err.getvalue()
    assert status in (0, 1, 2, 3, 4), (status, said)
    assert "internal error" not in said and "Traceback" not in said, said
    if status != 0:  # a failure says why (validate and health say it in what they print)
        assert said.strip() or out.getvalue().strip(), (command, words)
