"""The argument parser of ``acp-plugins``, and how a command line is read.

Host options (``--trust``, ``--grant``, ``--plugin-path``...) work before the
command and after it. ``run`` takes its own options (``--json``, ``--debug``,
host options) anywhere on the line; everything else after the command name
goes to the plugin's command, and ``--`` passes what follows to it verbatim.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from acp_plugins import __version__
from acp_plugins.audit import AUDIT_ACTIONS
from acp_plugins.cli import config_commands as config
from acp_plugins.cli import kit_commands as kit
from acp_plugins.cli import plugin_commands as plugins
from acp_plugins.cli import reload_commands as reloading
from acp_plugins.cli import serve_command
from acp_plugins.cli import telemetry_commands as telemetry
from acp_plugins.cli.exits import EXIT_TEXT, EXIT_USAGE, CliError
from acp_plugins.cli.hosting import HostCommand
from acp_plugins.host import CORE_VERSION
from acp_plugins.runtime.reports import REPORT_FORMATS
from acp_plugins.testing.conformance import DEFAULT_BUDGET_MS
from acp_plugins.testing.harness import MODES

__all__ = ["build_parser", "parse_command_line"]

PlainCommand = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

#: (flags, options) of every host option; each is accepted before and after the command.
_HOST_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--plugin-path",), {"action": "append", "default": [], "metavar": "DIR",
     "help": "discover plugins installed in DIR (pip install --target DIR) instead of this "
     "environment; repeatable (host setting plugin_path)"}),
    (("--grant",), {"action": "append", "default": [], "metavar": "PLUGIN=PERM[,PERM]",
     "help": "grant permissions beyond the defaults to a plugin; repeatable"}),
    (("--trust",), {"action": "append", "default": [], "metavar": "PLUGIN[,PLUGIN]",
     "help": "run these plugins in the host's process instead of isolated workers "
     "('*': all; host setting isolation.trusted); repeatable"}),
    (("--data-dir",), {"metavar": "DIR",
     "help": "parent of the plugins' data directories (host setting data_dir)"}),
    (("--timeout",), {"type": float, "metavar": "SECONDS",
     "help": "how long any call into a plugin may take (host setting timeout; default 5)"}),
    (("--config",), {"metavar": "FILE", "help": "the host's config file, TOML "
     "(default $ACP_CONFIG_FILE or ./acp-plugins.toml)"}),
    (("--user-config",), {"metavar": "FILE", "help": "the per-user config file "
     "(default $ACP_USER_CONFIG or ~/.config/acp-plugins/config.toml)"}),
    (("--server",), {"metavar": "URL", "help": "ask the acp-plugins serve running at URL "
     "instead of starting a host (every command but serve, dev, validate ID and config "
     "validate; default $ACP_SERVER_URL)"}),
    (("--debug",), {"action": "store_true", "help": "log everything; show tracebacks"}),
    (("-v", "--verbose"), {"action": "store_true", "help": "log plugin warnings"}),
)  # fmt: skip
_LATE = "late_"  # the dest prefix of a host option given after the command
#: Host options that take a value (the next token, or after '=').
_VALUED = frozenset(f for flags, o in _HOST_OPTIONS if "action" not in o or o["action"] == "append"
                    for f in flags)  # fmt: skip
_ALL_HOST_FLAGS = frozenset(f for flags, _ in _HOST_OPTIONS for f in flags)
#: Commands that work without starting a host.
_WITHOUT_HOST = frozenset({"schema", "validate", "audit", "serve", "test", "new"})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _dest(flags: tuple[str, ...]) -> str:
    return flags[-1].lstrip("-").replace("-", "_")


#: Host options that still mean something to a command that starts no host (the others
#: are accepted there too, as after every command, but left out of its help).
_PLAIN_OPTIONS = frozenset({"--debug", "-v"})


def _host_options(parser: argparse.ArgumentParser, *, late: bool, plain: bool = False) -> None:
    for flags, options in _HOST_OPTIONS:
        if plain and not _PLAIN_OPTIONS & set(flags):
            options = {**options, "help": argparse.SUPPRESS}
        if late:  # given after the command: kept apart, merged in _merge_host_options
            options = {**options, "dest": _LATE + _dest(flags), "default": argparse.SUPPRESS}
        parser.add_argument(*flags, **options)


def _merge_host_options(args: argparse.Namespace) -> None:
    for flags, options in _HOST_OPTIONS:
        dest = _dest(flags)
        if not hasattr(args, _LATE + dest):
            continue
        late = getattr(args, _LATE + dest)
        delattr(args, _LATE + dest)
        if options.get("action") == "append":
            setattr(args, dest, [*getattr(args, dest), *late])
        elif options.get("action") == "store_true":
            setattr(args, dest, getattr(args, dest) or late)
        else:
            setattr(args, dest, late)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``acp-plugins`` (exposed for documentation and tests)."""
    parser = _Parser(
        prog="acp-plugins",
        description="Discover, validate and call Agent Cellphone V2 plugins. Host options "
        "may come before or after the command.",
        epilog=EXIT_TEXT,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} (core {CORE_VERSION})"
    )
    _host_options(parser, late=False)
    late = _Parser(add_help=False)
    _host_options(late, late=True)
    plain = _Parser(add_help=False)  # for the commands that need no host at all
    _host_options(plain, late=True, plain=True)
    sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: HostCommand | PlainCommand,
        text: str,
        *,
        json_flag: bool = True,
        host_options: bool = True,
    ) -> argparse.ArgumentParser:
        parent = late if host_options else plain
        p = sub.add_parser(name, parents=[parent], help=text, description=text, epilog=EXIT_TEXT)
        p.set_defaults(handler=handler, needs_host=name not in _WITHOUT_HOST)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    command("list", plugins.cmd_list, "List installed plugins with their state and, if "
            "refused, why.")  # fmt: skip
    p = command("info", plugins.cmd_info, "Show everything known about one plugin.")
    p.add_argument("plugin_id", metavar="ID")
    text = "Validate a plugin project folder, a manifest.json, or an installed plugin id."
    p = command("validate", plugins.cmd_validate, text)
    p.add_argument("target", metavar="PATH|ID")
    command("schema", plugins.cmd_schema, "Print the JSON Schema of manifest.json.",
            json_flag=False, host_options=False)  # fmt: skip
    p = command("send", plugins.cmd_send, "Route a message; print which plugin answered and "
                "its response.")  # fmt: skip
    p.add_argument("text", nargs="+", help="the message content")
    p.add_argument("--type", default="chat", help="message type (default: chat)")
    p.add_argument("--sender", default="cli", help="sender name (default: cli)")
    text = (
        "Run a plugin command: acp-plugins run COMMAND [ARGS and --OPTIONS...]. Its own options "
        "(--json, --debug, host options) may come anywhere; put -- before what is meant for the "
        "command verbatim."
    )
    p = command("run", plugins.cmd_run, text)
    p.add_argument("command", metavar="COMMAND", help="a command name or PLUGIN:COMMAND")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="the command's arguments and options")  # fmt: skip
    p = command("query", plugins.cmd_query, "Query a data source and print its rows.")
    p.add_argument("source", metavar="SOURCE", help="a data source id or PLUGIN:SOURCE")
    p.add_argument("--where", action="append", default=[], type=plugins.where_filter,
                   metavar="FIELD=VALUE", help="keep rows whose FIELD equals VALUE; "
                   "repeatable")  # fmt: skip
    p.add_argument("--fields", metavar="A,B", help="only these fields")
    p.add_argument("--order-by", metavar="FIELD", help="sort by FIELD (-FIELD: descending)")
    p.add_argument("--limit", type=plugins.count, metavar="N", help="at most N rows")
    p.add_argument("--offset", type=plugins.count, default=0, metavar="N",
                   help="skip the first N rows")  # fmt: skip
    p.add_argument("--since", type=plugins.duration, metavar="DURATION",
                   help="only rows of the last DURATION (e.g. 12h, 7d; at most 36525d)",
                   )  # fmt: skip
    p = command("report", plugins.cmd_report, "Collect metrics and print an analytics report.")
    p.add_argument("--plugin", metavar="ID", help="one analytics plugin (default: all)")
    p.add_argument("--format", default="markdown", choices=REPORT_FORMATS)
    p.add_argument("--since", type=plugins.duration, default=timedelta(days=7),
                   metavar="DURATION", help="report on the last DURATION (default 7d)")  # fmt: skip
    command("commands", plugins.cmd_commands, "List the commands active plugins offer.")
    p = command("audit", plugins.cmd_audit, "Show the audit log: grants, denials, sandbox "
                "refusals, workers.")  # fmt: skip
    p.add_argument("--plugin", metavar="ID", help="only this plugin's entries")
    p.add_argument("--action", action="append", default=[], choices=AUDIT_ACTIONS,
                   help="only entries of this action; repeatable")  # fmt: skip
    p.add_argument("--last", type=plugins.count, metavar="N", help="only the last N entries")
    command("sources", plugins.cmd_sources, "List the data sources active plugins provide.")
    command("metrics", plugins.cmd_metrics, "List the metrics analytics plugins offer.")
    text = (
        "Show how plugins are doing: healthy, degraded, failing, suspended or stopped, and "
        "why (their state, errors and timeouts of recent calls, their dependencies, their "
        "health_check); exit 1 if one is failing."
    )
    p = command("health", telemetry.cmd_health, text)
    p.add_argument("plugin_id", metavar="ID", nargs="?", help="one plugin (default: all)")
    text = (
        "Show the figures the host stored (calls, errors, latency per plugin and hook; "
        "workers' memory, CPU and I/O; what plugins recorded; usage), or the Prometheus "
        "exposition of the figures now."
    )
    p = command("telemetry", telemetry.cmd_telemetry, text)
    p.add_argument("--since", type=plugins.duration, default=timedelta(days=1),
                   metavar="DURATION",
                   help="figures of the last DURATION (default 1d)")  # fmt: skip
    p.add_argument("--prometheus", action="store_true",
                   help="print the Prometheus text exposition instead")  # fmt: skip
    text = (
        "Start a host and reload one plugin the way a running host does: what is installed "
        "now is checked, started beside the running instance and switched to; exit 1 if it "
        "is refused or fails (the old instance would go on serving)."
    )
    p = command("reload", reloading.cmd_reload, text)
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("--suspend-dependents", action="store_true",
                   help="suspend running dependents whose range the new version leaves, "
                   "instead of refusing it")  # fmt: skip
    text = (
        "Run the management server (REST API, event WebSocket, /metrics) over a host that "
        "runs until SIGTERM or Ctrl-C; needs pip install 'acp-plugins[server]'."
    )
    p = command("serve", serve_command.cmd_serve, text)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=serve_command.DEFAULT_PORT,
                   help=f"port (default {serve_command.DEFAULT_PORT})")  # fmt: skip
    text = (
        "Run a host that watches an editable plugin project (pip install -e PATH) and reloads "
        "its plugins whenever a file changes, until interrupted (Ctrl-C)."
    )
    p = command("dev", reloading.cmd_dev, text)
    p.add_argument("path", metavar="PATH", help="the plugin project's folder")
    text = (
        "Run the conformance suite against a plugin project: unit, integration, performance, "
        "security and compatibility checks, each with its verdict and reason; exit 1 if one "
        "fails."
    )
    p = command("test", kit.cmd_test, text)
    p.add_argument("path", metavar="PATH", help="the plugin project's folder")
    with_text = "a project of a plugin it depends on, installed beside it; repeatable"
    p.add_argument("--with", dest="with_projects", action="append", default=[],
                   metavar="PATH", help=with_text)  # fmt: skip
    budget_text = f"p99 latency budget per hook call (default {DEFAULT_BUDGET_MS:g})"
    p.add_argument("--budget-ms", type=float, default=DEFAULT_BUDGET_MS, metavar="MS",
                   help=budget_text)  # fmt: skip
    text = (
        "Create a plugin project from the template (copier): pyproject with the entry point, "
        "manifest, plugin module with the chosen interfaces' hooks, settings, tests that use "
        "acp-plugins' fixtures, a noxfile with the compatibility matrix, a README."
    )
    q = command("new", kit.cmd_new, text, host_options=False)
    q.add_argument("name", metavar="NAME", help="the plugin id (e.g. weather-alerts)")
    q.add_argument("--interface", action="append", choices=kit.INTERFACES,
                   help="an interface it implements (default: message); repeatable")  # fmt: skip
    q.add_argument("--dir", metavar="DIR", help="where to create it (default: acp-NAME)")
    q.add_argument("--description", help="one line about it")
    q.add_argument("--author", help="who wrote it")
    q.add_argument("--template", metavar="SRC", help="another copy of the template (a folder "
                   "or git URL; one in git lets copier update bring its fixes later)")  # fmt: skip
    p.add_argument("--mode", action="append", choices=MODES,
                   help="only this mode (default: trusted and isolated); repeatable")  # fmt: skip
    p.add_argument("--matrix", action="store_true",
                   help="run the compatibility matrix too (through nox): the suite again in a "
                   "fresh environment per admitted Python found here and core version")  # fmt: skip
    p.add_argument("--core", action="append", default=[], metavar="SPEC",
                   help="a core version for the matrix instead of the lowest and newest the "
                   "manifest admits: a wheel, a folder or a requirement; repeatable; "
                   "implies --matrix")  # fmt: skip
    p.add_argument("--python", dest="pythons", action="append", default=[], metavar="X.Y",
                   help="only this Python in the matrix (default: every one found here that "
                   "the manifest admits); repeatable; implies --matrix")  # fmt: skip
    _config_parser(sub, late)
    return parser


def _config_parser(sub: Any, late: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "config",
        parents=[late],
        help="Show, change and check configuration (plugins' and the host's).",
        description="Configuration in five layers, lowest first: defaults, the global config "
        "file, environment variables, the user config file, runtime overrides. "
        f"Use '{config.HOST}' as ID for the host's own settings.",
        epilog=EXIT_TEXT,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, handler: PlainCommand, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(
            name, parents=[late], help=text, description=text
        )
        p.set_defaults(handler=handler, needs_host=False)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    p = action("show", config.cmd_config_show, "Effective settings and the layer each came from.")
    p.add_argument("plugin_id", metavar="ID")
    p = action("get", config.cmd_config_get, "One setting and where it came from.")
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("key", metavar="KEY", help="a dotted key, e.g. database or db.path")
    p = action("set", config.cmd_config_set, "Set a runtime override (validated, saved, "
               "applied).")  # fmt: skip
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE", help="JSON (5, true, [1, 2]) or plain text")
    p = action("unset", config.cmd_config_set, "Remove a runtime override.")
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p = action("schema", config.cmd_config_schema, "The JSON Schema of a plugin's settings "
               "(JSON, with or without --json).")  # fmt: skip
    p.add_argument("plugin_id", metavar="ID")
    p = action("validate", config.cmd_config_validate, "Check a config file against the plugins.")
    p.add_argument("file", nargs="?", metavar="FILE", help="default: the host's config file")


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def _command_index(argv: Sequence[str], names: set[str]) -> int | None:
    """Where the command name is: the first token that is not a host option or its value."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            return None
        if token in names:
            return index
        if token in _VALUED:
            index += 1  # skip the option's value
        index += 1
    return None


def _misplaced(argv: Sequence[str], at: int, command: str) -> None:
    """Refuse an option of the command given before it, saying where it goes."""
    index = 0
    while index < at:
        token = argv[index]
        name = token.partition("=")[0]
        if token.startswith("-") and name not in _ALL_HOST_FLAGS | {"-h", "--help", "--version"}:
            raise CliError(
                f"{name} is not a host option; if it is an option of '{command}', put it after "
                f"the command: acp-plugins {command} ... {token}",
                EXIT_USAGE,
            )
        index += 2 if token in _VALUED else 1


_RUN_FLAGS = frozenset({"--json", "--debug", "-v", "--verbose"})


def _arrange_run(argv: list[str], at: int) -> tuple[list[str], list[str]]:
    """``run``'s own part of the line, and the tokens that are the plugin command's."""
    rest = argv[at + 1 :]
    index = 0
    while index < len(rest) and rest[index].startswith("-") and rest[index] != "--":
        index += 2 if rest[index] in _VALUED else 1  # options before COMMAND are run's own
    own, rest = rest[:index], rest[index:]
    if not rest:
        return argv, []
    command, tokens = rest[0], rest[1:]
    passed: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name = token.partition("=")[0]
        if token == "--":
            passed.extend(tokens[index:])  # kept: the command's parser ends its options there
            break
        if token in _RUN_FLAGS:
            own.append(token)
        elif name in _ALL_HOST_FLAGS:
            own.append(token)
            if token in _VALUED and index + 1 < len(tokens):
                index += 1
                own.append(tokens[index])
        else:
            passed.append(token)
        index += 1
    return [*argv[: at + 1], *own, command], passed


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """Read ``argv`` (without the program name); raise SystemExit or CliError on bad usage."""
    parser = build_parser()
    tokens = list(argv)
    at = _command_index(tokens, _commands(parser))
    passed: list[str] | None = None
    if at is not None:
        _misplaced(tokens, at, tokens[at])
        if tokens[at] == "run":
            tokens, passed = _arrange_run(tokens, at)
    args = parser.parse_args(tokens)
    if passed is not None:
        args.args = passed
    _merge_host_options(args)
    return args
