"""The ``acp-plugins`` command line: list, inspect, validate and call plugins.

Every command prints a readable table or text for people and, with ``--json``,
machine-readable output for scripts. Errors are one line on stderr and a
non-zero exit status, never a traceback (``--debug`` shows one).

Exit status: 0 success; 1 the operation failed (invalid plugin, failed command,
unhandled message); 2 bad usage (including bad command arguments); 3 not found
(plugin, command, data source); 4 a plugin failed while being called.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

from acp_plugins import __version__
from acp_plugins.audit import AuditLog, read_audit_log
from acp_plugins.config.layers import ConfigSources, Layer, ValueOrigin
from acp_plugins.config.overrides import OverrideStore
from acp_plugins.config.settings import HostSettings, load_host_settings
from acp_plugins.errors import (
    AcpPluginsError,
    CommandConflictError,
    CommandUsageError,
    ConfigError,
    DataSourceConflictError,
    PluginCallError,
    PluginNotActive,
    PluginNotFound,
    UnknownCommand,
    UnknownDataSource,
    UnsupportedReportFormat,
)
from acp_plugins.host import CORE_VERSION, PluginHost
from acp_plugins.loading.manifest import manifest_json_schema
from acp_plugins.loading.project import ProjectCheck, check_project
from acp_plugins.models import DataQuery, Message, TimeRange
from acp_plugins.printable import printable
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.reports import REPORT_FORMATS

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PLUGIN_ERROR = 0, 1, 2, 3, 4


HostCommand = Callable[[PluginHost, argparse.Namespace], Coroutine[Any, Any, int]]
PlainCommand = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class CliError(Exception):
    """An error to print as one line, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


# -- output helpers -----------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _one_line(text: str | None, limit: int = 90) -> str:
    if not text:
        return ""
    first = text.splitlines()[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


# -- building the host ------------------------------------------------------------


def _parse_grants(values: Sequence[str]) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = {}
    for value in values:
        plugin_id, sep, names = value.partition("=")
        if not sep or not plugin_id or not names:
            raise CliError(
                f"--grant expects PLUGIN=PERMISSION[,PERMISSION], not {value!r}", EXIT_USAGE
            )
        grants.setdefault(plugin_id, []).extend(n.strip() for n in names.split(",") if n.strip())
    return grants


def _sources(args: argparse.Namespace) -> ConfigSources:
    return ConfigSources.from_environment(
        global_file=Path(args.config) if args.config else None,
        user_file=Path(args.user_config) if args.user_config else None,
    )


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The host settings this command line's flags give (the top layer)."""
    flags: dict[str, Any] = {}
    if args.plugin_path:
        flags["plugin_path"] = list(args.plugin_path)
    if args.data_dir:
        flags["data_dir"] = args.data_dir
    if args.timeout is not None:
        flags["timeout"] = args.timeout
    if args.grant:
        flags["grants"] = _parse_grants(args.grant)
    if args.trust:
        flags["isolation"] = {"trusted": [pid for item in args.trust for pid in item.split(",")]}
    return flags


def _host_settings(args: argparse.Namespace) -> tuple[HostSettings, ConfigSources]:
    """The host's settings: its layers, with this command line's flags on top."""
    sources = _sources(args)
    try:
        settings, _ = load_host_settings(sources, _flags(args))
    except ConfigError as error:
        flags = [p for p in error.problems if p.layer == Layer.RUNTIME.value]
        if flags:  # name the flag, not the setting behind it
            lines = [f"{_FLAG_OF.get(p.path.split('.')[0], p.path)}: {p}" for p in flags]
            raise CliError("\n".join(lines), EXIT_USAGE) from None
        raise CliError(str(error), EXIT_FAILED) from None
    return settings, sources


_FLAG_OF = {
    "grants": "--grant",
    "isolation": "--trust",
    "timeout": "--timeout",
    "data_dir": "--data-dir",
    "plugin_path": "--plugin-path",
}


def _host(args: argparse.Namespace) -> PluginHost:
    settings, sources = _host_settings(args)
    for path in settings.plugin_path:
        if not path.is_dir():
            raise CliError(f"plugin path {path} is not a directory", EXIT_USAGE)
    return PluginHost(
        policy=settings.policy(),
        search_path=settings.plugin_path or None,
        timeout=settings.timeout,
        data_root=settings.data_dir,
        sync_in_thread=settings.sync_in_thread,
        config=sources,
        overrides=OverrideStore(settings.effective_overrides_file),
        disabled=settings.disabled,
        isolation=settings.isolation.policy(),
        audit=AuditLog(settings.effective_audit_log),
    )


async def _with_host(handler: HostCommand, args: argparse.Namespace) -> int:
    """Start a host, run ``handler`` on it, and always stop the host again."""
    host = _host(args)
    await host.start()
    try:
        return await handler(host, args)
    finally:
        await host.stop()


# -- commands -------------------------------------------------------------------


async def cmd_list(host: PluginHost, args: argparse.Namespace) -> int:
    records = sorted(host.records.values(), key=lambda r: r.plugin_id)
    if args.json:
        _print_json([record.to_dict() for record in records])
    elif not records:
        print("no plugins installed (entry point group 'acp.plugins')")
    else:
        rows = [
            (
                r.plugin_id,
                r.version,
                r.state.value,
                ",".join(r.interfaces) or "-",
                _one_line(r.reason),
            )
            for r in records
        ]
        print(_table(["ID", "VERSION", "STATE", "INTERFACES", "REASON"], rows))
        active = sum(1 for r in records if r.state is PluginState.ACTIVE)
        print(f"\n{active} of {len(records)} plugins active")
    return EXIT_OK


def _runs(isolation: dict[str, Any] | None) -> str | None:
    """How a plugin runs, for people: in-process, or its worker's pid and limits."""
    if isolation is None or isolation.get("mode") != "isolated":
        return None if isolation is None else "in-process (trusted)"
    share = isolation["cpu_share"]
    text = f"isolated worker, {isolation['memory_mb']} MiB"
    text += f", {share:.0%} CPU" if share is not None else ", no CPU limit"
    text += (
        f", pid {isolation['pid']}"
        if isolation["alive"]
        else f", down: {isolation['last_failure']}"
    )
    if isolation["restarts"]:
        text += f", restarted {isolation['restarts']}x"
    return text


def _layers(isolation: dict[str, Any] | None) -> str | None:
    """The isolation layers in force for a worker, and those missing with why."""
    if isolation is None or isolation.get("mode") != "isolated" or not isolation["alive"]:
        return None
    missing = isolation["missing_layers"]
    text = ", ".join(isolation["layers"])
    if missing:
        text += "; MISSING " + "; ".join(f"{layer} ({why})" for layer, why in missing.items())
    return text


async def cmd_info(host: PluginHost, args: argparse.Namespace) -> int:
    record = host.record(args.plugin_id)
    info = record.to_dict()
    status = EXIT_OK if record.state is PluginState.ACTIVE else EXIT_FAILED
    if args.json:
        _print_json(info)
    else:
        manifest = record.manifest
        fields = [
            ("id", record.plugin_id),
            ("name", info["name"]),
            ("version", record.version),
            ("state", record.state.value),
            ("reason", record.reason),
            ("description", info["description"]),
            ("author", manifest.author if manifest else None),
            ("license", manifest.license if manifest else None),
            ("homepage", manifest.homepage if manifest else None),
            ("distribution", f"{record.distribution} {record.distribution_version}"),
            ("entry point", record.entry_point),
            ("manifest", info["manifest_path"]),
            ("interfaces", ", ".join(info["interfaces"])),
            ("permissions", ", ".join(info["permissions"])),
            ("dependencies", ", ".join(f"{k} {v}" for k, v in info["dependencies"].items())),
            ("tags", ", ".join(info["tags"])),
            ("message types", ", ".join(info["message_types"])),
            ("commands", ", ".join(info["commands"])),
            ("data sources", ", ".join(info["data_sources"])),
            ("runs", _runs(info["isolation"])),
            ("layers", _layers(info["isolation"])),
        ]
        width = max(len(name) for name, _ in fields)
        for name, value in fields:
            if value not in (None, ""):
                print(f"{name.ljust(width)}  {value}")
        if record.resolved_config is not None:
            for path, value, origin in record.resolved_config.explain():
                shown = json.dumps(value, default=str)
                print(f"{'setting'.ljust(width)}  {path} = {shown}  [{origin}]")
        for failure in record.failures:
            print(f"{'failure'.ljust(width)}  [{failure.stage}] {failure.message}")
        for hook, stats in info["metrics"].items():
            counts = f"{stats['calls']} calls, {stats['errors']} errors"
            counts += f", {stats['timeouts']} timeouts"
            latency = f"mean {stats['mean_ms']} ms, max {stats['max_ms']} ms"
            print(f"{'calls'.ljust(width)}  {hook}: {counts}, {latency}")
    return status


def _print_checks(checks: Sequence[ProjectCheck], as_json: bool) -> int:
    ok = all(check.ok for check in checks)
    if as_json:
        _print_json({"valid": ok, "plugins": [check.to_dict() for check in checks]})
    else:
        for check in checks:
            if check.ok:
                print(f"ok    {check.plugin_id}: {check.source}")
            else:
                print(f"FAIL  {check.plugin_id}: {check.message}")
                for error in check.errors:
                    print(f"        {error}")
    return EXIT_OK if ok else EXIT_FAILED


async def cmd_validate(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.exists():
        return _print_checks(check_project(target, core_version=CORE_VERSION), args.json)
    host = _host(args)
    host.discover()
    record = host.record(args.target)
    if record.reason is None:
        await host.load(args.target)  # imports it: checks hooks, signatures and interfaces too
    check = ProjectCheck(
        record.plugin_id, str(record.manifest_path or record.entry_point), record.reason or ""
    )
    if record.state is PluginState.LOADED:
        await host.unload(args.target)
    return _print_checks([check], args.json)


AUDIT_ACTIONS = ("grant", "refuse", "load", "deny", "sandbox", "config", "worker", "circuit")


async def cmd_audit(args: argparse.Namespace) -> int:
    settings, _ = _host_settings(args)
    path = settings.effective_audit_log
    entries, unreadable = read_audit_log(path, plugin_id=args.plugin, actions=args.action)
    if args.last is not None:
        entries = entries[-args.last :] if args.last > 0 else []
    if args.json:
        _print_json([entry.to_dict() for entry in entries])
    elif not entries:
        print(f"no audit entries in {path}" + (f" for '{args.plugin}'" if args.plugin else ""))
    else:
        rows = [
            (
                e.at.isoformat(timespec="seconds"),
                e.plugin_id,
                e.action,
                e.outcome,
                e.permission or "-",
                _one_line(e.detail),
            )
            for e in entries
        ]
        print(_table(["AT", "PLUGIN", "ACTION", "OUTCOME", "PERMISSION", "DETAIL"], rows))
    if unreadable:
        print(f"warning: {unreadable} unreadable lines in {path} were skipped", file=sys.stderr)
    return EXIT_OK


async def cmd_schema(args: argparse.Namespace) -> int:
    del args
    _print_json(manifest_json_schema())
    return EXIT_OK


async def cmd_send(host: PluginHost, args: argparse.Namespace) -> int:
    message = Message(type=args.type, content=" ".join(args.text), sender=args.sender)
    routed = await host.send(message)
    if args.json:
        _print_json(routed.to_dict())
    elif routed.handled:
        print(f"{routed.plugin_id} (confidence {routed.confidence:.2f}): {routed.response.content}")
    else:
        print(f"unhandled: {routed.response.content}")
    if not args.json:
        for plugin_id, error in routed.errors.items():
            print(f"warning: {plugin_id}: {error}", file=sys.stderr)
    return EXIT_OK if routed.handled else EXIT_FAILED


async def cmd_run(host: PluginHost, args: argparse.Namespace) -> int:
    record, _ = host.commands.resolve(args.command)
    result = await host.run_command(args.command, args.args)
    if args.json:
        _print_json({"plugin_id": record.plugin_id, **result.model_dump(mode="json")})
    else:
        if result.output:
            print(result.output)
        if not result.success:
            print(f"error: {args.command} failed (exit code {result.exit_code})", file=sys.stderr)
    if result.success:
        return EXIT_OK
    return result.exit_code or EXIT_FAILED


def _duration(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use a number and a unit, e.g. 30m, 12h, 7d"
        ) from None


def _filter(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise argparse.ArgumentTypeError(f"--where expects FIELD=VALUE, not {text!r}")
    return field, value


async def cmd_query(host: PluginHost, args: argparse.Namespace) -> int:
    query = DataQuery(
        filters=dict(args.where),
        fields=args.fields.split(",") if args.fields else None,
        order_by=args.order_by,
        limit=args.limit,
        offset=args.offset,
        time_range=TimeRange.last(args.since) if args.since else None,
    )
    result = await host.query(args.source, query)
    if args.json:
        _print_json(result.model_dump(mode="json"))
        return EXIT_OK
    if not result.rows:
        print(f"no rows from {result.source_id}")
        return EXIT_OK
    columns = list(dict.fromkeys(key for row in result.rows for key in row))
    print(_table(columns, [[row.get(c) for c in columns] for row in result.rows]))
    total = f" of {result.total}" if result.total is not None else ""
    print(f"\n{len(result.rows)}{total} rows from {result.source_id}")
    return EXIT_OK


async def cmd_report(host: PluginHost, args: argparse.Namespace) -> int:
    providers = [args.plugin] if args.plugin else [r.plugin_id for r in host.analytics_providers()]
    if not providers:
        raise CliError("no active analytics provider; install one (see `acp-plugins list`)")
    window = TimeRange.last(args.since)
    reports = [await host.report(pid, args.format, window) for pid in providers]
    if args.json:
        _print_json(
            [{"plugin_id": p, **r.model_dump()} for p, r in zip(providers, reports, strict=True)]
        )
    else:
        print("\n".join(report.content.rstrip("\n") for report in reports))
    return EXIT_OK


async def cmd_commands(host: PluginHost, args: argparse.Namespace) -> int:
    entries = host.command_entries()
    conflicts = host.commands.conflicts
    if args.json:
        _print_json(
            [
                {
                    "name": e.definition.name,
                    "qualified_name": e.qualified_name,
                    "plugin_id": e.plugin_id,
                    "usage": e.definition.usage,
                    "description": e.definition.description,
                    "conflict": e.definition.name in conflicts,
                }
                for e in entries
            ]
        )
        return EXIT_OK
    rows = [
        (
            e.qualified_name if e.definition.name in conflicts else e.definition.name,
            e.plugin_id,
            e.definition.usage,
            e.definition.description,
        )
        for e in entries
    ]
    print(_table(["COMMAND", "PLUGIN", "USAGE", "DESCRIPTION"], rows) if rows else "no commands")
    for name, owners in conflicts.items():
        print(f"conflict: '{name}' is offered by {', '.join(owners)}; use PLUGIN:{name}")
    return EXIT_OK


async def cmd_sources(host: PluginHost, args: argparse.Namespace) -> int:
    owners = host.sources.owners()
    sources = host.data_sources()
    if args.json:
        _print_json(
            [{**s.model_dump(), "plugin_ids": owners.get(s.source_id, [])} for s in sources]
        )
        return EXIT_OK
    rows = [
        (s.source_id, ",".join(owners.get(s.source_id, [])), ", ".join(s.fields), s.description)
        for s in sources
    ]
    print(
        _table(["SOURCE", "PLUGIN", "FIELDS", "DESCRIPTION"], rows) if rows else "no data sources"
    )
    return EXIT_OK


async def cmd_metrics(host: PluginHost, args: argparse.Namespace) -> int:
    found = await host.metric_definitions()
    if args.json:
        _print_json({pid: [m.model_dump() for m in metrics] for pid, metrics in found.items()})
        return EXIT_OK
    rows = [(m.name, pid, m.kind, m.unit, m.description) for pid, ms in found.items() for m in ms]
    print(
        _table(["METRIC", "PLUGIN", "KIND", "UNIT", "DESCRIPTION"], rows) if rows else "no metrics"
    )
    return EXIT_OK


# -- configuration ------------------------------------------------------------------

HOST = "host"  # `config show host`: the host's own settings


def _parse_value(text: str) -> Any:
    """A value from the command line: JSON when it parses (5, true, [1], {"a": 1}), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _origins_json(rows: Sequence[tuple[str, Any, ValueOrigin]]) -> dict[str, Any]:
    return {
        path: {"value": value, "layer": origin.layer.value, "source": origin.source}
        for path, value, origin in rows
    }


def _under(
    rows: Sequence[tuple[str, Any, ValueOrigin]], key: str
) -> list[tuple[str, Any, ValueOrigin]]:
    """The rows of ``key`` itself or of the keys inside it."""
    return [row for row in rows if row[0] == key or row[0].startswith(key + ".")]


def _origin_line(row: tuple[str, Any, ValueOrigin]) -> str:
    path, value, origin = row
    return f"{path} = {json.dumps(value, default=str)}  [{origin.layer.value}: {origin.source}]"


def _print_explained(rows: Sequence[tuple[str, Any, ValueOrigin]]) -> None:
    if not rows:
        print("no settings")
        return
    table = [
        (path, json.dumps(value, default=str), origin.layer.value, origin.source)
        for path, value, origin in rows
    ]
    print(_table(["KEY", "VALUE", "LAYER", "SOURCE"], table))


def _host_rows(args: argparse.Namespace) -> list[tuple[str, Any, ValueOrigin]]:
    settings, _ = _host_settings(args)
    _, origins = load_host_settings(_sources(args), _flags(args))
    values = json.loads(settings.model_dump_json())
    return [(path, _at(values, path), origin) for path, origin in sorted(origins.items())]


def _at(values: Any, path: str) -> Any:
    for part in path.split("."):
        values = values[part] if isinstance(values, dict) and part in values else None
    return values


async def cmd_config_show(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        rows = _host_rows(args)
        _print_json({"plugin_id": HOST, "settings": _origins_json(rows)}) if args.json else (
            _print_explained(rows)
        )
        return EXIT_OK
    return await _with_host(_config_show, args)


async def _config_show(host: PluginHost, args: argparse.Namespace) -> int:
    resolved = host.config_of(args.plugin_id)
    rows = resolved.explain()
    if args.json:
        _print_json({"plugin_id": args.plugin_id, "settings": _origins_json(rows)})
    else:
        _print_explained(rows)
    return EXIT_OK


async def cmd_config_get(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        rows = _host_rows(args)
    else:
        rows = await _with_host_result(args, lambda host: host.config_of(args.plugin_id).explain())
    found = _under(rows, args.key)
    if not found:
        known = ", ".join(row[0] for row in rows) or "none"
        raise CliError(f"'{args.plugin_id}' has no setting '{args.key}' (settings: {known})", 3)
    if args.json:
        _print_json(_origins_json(found))
    else:
        for row in found:
            print(_origin_line(row))
    return EXIT_OK


async def _config_set(host: PluginHost, args: argparse.Namespace) -> int:
    if args.action == "set":
        resolved = await host.set_config(args.plugin_id, args.key, _parse_value(args.value))
    else:
        resolved = await host.unset_config(args.plugin_id, args.key)
    rows = [
        row for row in resolved.explain() if row[0] == args.key or row[0].startswith(args.key + ".")
    ]
    for path, value, origin in rows:
        print(f"{path} = {json.dumps(value, default=str)}  [{origin.layer.value}: {origin.source}]")
    if args.action == "set":
        print(f"saved in {host.overrides.path}")
    return EXIT_OK


async def cmd_config_set(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        raise CliError(
            "the host's settings are not changed at run time; set them in the config file, "
            "the environment (ACP_HOST_*) or with command line flags",
            EXIT_USAGE,
        )
    return await _with_host(_config_set, args)


async def _config_schema(host: PluginHost, args: argparse.Namespace) -> int:
    _print_json(await host.config_schema(args.plugin_id))
    return EXIT_OK


async def cmd_config_schema(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        _print_json(HostSettings.model_json_schema())
        return EXIT_OK
    return await _with_host(_config_schema, args)


async def cmd_config_validate(args: argparse.Namespace) -> int:
    """Check a config file: its [host] table and every [plugins.ID] table."""
    if args.file:
        args.config = args.file
    sources = _sources(args)
    if sources.global_file is None:
        raise CliError("no config file to validate: name one, or set $ACP_CONFIG_FILE", EXIT_USAGE)
    _host_settings(args)  # the [host] table: raises ConfigError naming the bad keys
    return await _with_host(_config_validate, args)


async def _config_validate(host: PluginHost, args: argparse.Namespace) -> int:
    sources = host.config_sources
    assert sources.global_file is not None
    tables = sources.plugin_tables(Layer.GLOBAL)
    problems = []
    for plugin_id in sorted(tables):
        record = host.records.get(plugin_id)
        if record is None:
            problems.append(f"[plugins.{plugin_id}]: no plugin '{plugin_id}' is installed")
        elif record.failures and record.failures[-1].stage == "configure":
            problems.append(record.failures[-1].message)
    if args.json:
        _print_json({"file": str(sources.global_file), "valid": not problems, "problems": problems})
    elif problems:
        print("\n".join(problems))
    else:
        print(f"ok    {sources.global_file}: host settings and {len(tables)} plugin table(s)")
    return EXIT_FAILED if problems else EXIT_OK


async def _with_host_result(args: argparse.Namespace, read: Callable[[PluginHost], Any]) -> Any:
    result: list[Any] = []

    async def grab(host: PluginHost, _: argparse.Namespace) -> int:
        result.append(read(host))
        return EXIT_OK

    await _with_host(grab, args)
    return result[0]


# -- argument parsing -------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


#: Commands that work without starting a host.
_WITHOUT_HOST = frozenset({"schema", "validate", "audit"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``acp-plugins`` (exposed for documentation and tests)."""
    parser = _Parser(
        prog="acp-plugins",
        description="Discover, validate and call Agent Cellphone V2 plugins.",
        epilog="Exit status: 0 ok, 1 failed, 2 bad usage, 3 not found, 4 a plugin failed.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} (core {CORE_VERSION})"
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "--plugin-path", action="append", default=[], metavar="DIR",
        help="discover plugins installed in DIR (pip install --target DIR) instead of this "
        "environment; repeatable (host setting plugin_path)",
    )  # fmt: skip
    common.add_argument(
        "--grant", action="append", default=[], metavar="PLUGIN=PERM[,PERM]",
        help="grant permissions beyond the defaults to a plugin; repeatable",
    )  # fmt: skip
    common.add_argument(
        "--trust", action="append", default=[], metavar="PLUGIN[,PLUGIN]",
        help="run these plugins in the host's process instead of isolated workers "
        "('*': all; host setting isolation.trusted); repeatable",
    )  # fmt: skip
    common.add_argument(
        "--data-dir", metavar="DIR",
        help="parent of the plugins' data directories (host setting data_dir)",
    )  # fmt: skip
    common.add_argument(
        "--timeout", type=float, metavar="SECONDS",
        help="how long any call into a plugin may take (host setting timeout; default 5)",
    )  # fmt: skip
    common.add_argument("--config", metavar="FILE",
                        help="the host's config file, TOML (default $ACP_CONFIG_FILE or "
                        "./acp-plugins.toml)")  # fmt: skip
    common.add_argument("--user-config", metavar="FILE",
                        help="the per-user config file (default $ACP_USER_CONFIG or "
                        "~/.config/acp-plugins/config.toml)")  # fmt: skip
    common.add_argument("--debug", action="store_true", help="log everything; show tracebacks")
    common.add_argument("-v", "--verbose", action="store_true", help="log plugin warnings")
    sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

    def command(
        name: str, handler: HostCommand | PlainCommand, text: str,
        *, json_flag: bool = True,
    ) -> argparse.ArgumentParser:  # fmt: skip
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(handler=handler, needs_host=name not in _WITHOUT_HOST)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    command("list", cmd_list, "List installed plugins with their state and, if refused, why.")
    p = command("info", cmd_info, "Show everything known about one plugin.")
    p.add_argument("plugin_id", metavar="ID")
    text = "Validate a plugin project folder, a manifest.json, or an installed plugin id."
    p = command("validate", cmd_validate, text)
    p.add_argument("target", metavar="PATH|ID")
    command("schema", cmd_schema, "Print the JSON Schema of manifest.json.", json_flag=False)
    p = command("send", cmd_send, "Route a message; print which plugin answered and its response.")
    p.add_argument("text", nargs="+", help="the message content")
    p.add_argument("--type", default="chat", help="message type (default: chat)")
    p.add_argument("--sender", default="cli", help="sender name (default: cli)")
    p = command("run", cmd_run, "Run a plugin command: acp-plugins run COMMAND [ARGS...].")
    p.add_argument("command", metavar="COMMAND", help="a command name or PLUGIN:COMMAND")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the command's arguments")
    p = command("query", cmd_query, "Query a data source and print its rows.")
    p.add_argument("source", metavar="SOURCE", help="a data source id or PLUGIN:SOURCE")
    p.add_argument("--where", action="append", default=[], type=_filter, metavar="FIELD=VALUE",
                   help="keep rows whose FIELD equals VALUE; repeatable")  # fmt: skip
    p.add_argument("--fields", metavar="A,B", help="only these fields")
    p.add_argument("--order-by", metavar="FIELD", help="sort by FIELD (-FIELD: descending)")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--offset", type=int, default=0, metavar="N")
    p.add_argument("--since", type=_duration, metavar="DURATION",
                   help="only rows of the last DURATION (e.g. 12h, 7d)")  # fmt: skip
    p = command("report", cmd_report, "Collect metrics and print an analytics report.")
    p.add_argument("--plugin", metavar="ID", help="one analytics plugin (default: all)")
    p.add_argument("--format", default="markdown", choices=REPORT_FORMATS)
    p.add_argument("--since", type=_duration, default=timedelta(days=7), metavar="DURATION",
                   help="report on the last DURATION (default 7d)")  # fmt: skip
    command("commands", cmd_commands, "List the commands active plugins offer.")
    p = command(
        "audit", cmd_audit, "Show the audit log: grants, denials, sandbox refusals, workers."
    )
    p.add_argument("--plugin", metavar="ID", help="only this plugin's entries")
    p.add_argument("--action", action="append", default=[], choices=AUDIT_ACTIONS,
                   help="only entries of this action; repeatable")  # fmt: skip
    p.add_argument("--last", type=int, metavar="N", help="only the last N entries")
    command("sources", cmd_sources, "List the data sources active plugins provide.")
    command("metrics", cmd_metrics, "List the metrics analytics plugins offer.")

    config = sub.add_parser(
        "config",
        help="Show, change and check configuration (plugins' and the host's).",
        description="Configuration in five layers, lowest first: defaults, the global config "
        "file, environment variables, the user config file, runtime overrides. "
        f"Use '{HOST}' as ID for the host's own settings.",
    )
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(
        name: str, handler: PlainCommand, text: str, *, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        p = actions.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(handler=handler, needs_host=False)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    p = action("show", cmd_config_show, "Effective settings and the layer each came from.")
    p.add_argument("plugin_id", metavar="ID")
    p = action("get", cmd_config_get, "One setting and where it came from.")
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("key", metavar="KEY", help="a dotted key, e.g. database or db.path")
    p = action("set", cmd_config_set, "Set a runtime override (validated, saved, applied).",
               json_flag=False)  # fmt: skip
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE", help="JSON (5, true, [1, 2]) or plain text")
    p = action("unset", cmd_config_set, "Remove a runtime override.", json_flag=False)
    p.add_argument("plugin_id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p = action("schema", cmd_config_schema, "The JSON Schema of a plugin's settings.",
               json_flag=False)  # fmt: skip
    p.add_argument("plugin_id", metavar="ID")
    p = action("validate", cmd_config_validate, "Check a config file against the plugins.")
    p.add_argument("file", nargs="?", metavar="FILE", help="default: the host's config file")
    return parser


_STATUS: tuple[tuple[type[AcpPluginsError], int], ...] = (
    (CommandUsageError, EXIT_USAGE),
    (PluginNotFound, EXIT_NOT_FOUND),
    (UnknownCommand, EXIT_NOT_FOUND),
    (UnknownDataSource, EXIT_NOT_FOUND),
    (CommandConflictError, EXIT_USAGE),
    (DataSourceConflictError, EXIT_USAGE),
    (UnsupportedReportFormat, EXIT_USAGE),
    (PluginNotActive, EXIT_FAILED),
    (PluginCallError, EXIT_PLUGIN_ERROR),
)


def _status_of(error: AcpPluginsError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), EXIT_FAILED)


class _PrintableStream(io.TextIOBase):
    """A text stream that shows control characters instead of passing them to the terminal.

    Plugins supply much of what the CLI prints (outputs, answers, reasons, log
    lines); an escape sequence among them must not reach the operator's screen.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, multiline=True))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PrintableStream(stdout), _PrintableStream(stderr)
    try:
        return _main(argv)
    finally:
        if isinstance(sys.stdout, _PrintableStream):  # not if a broken pipe replaced it
            sys.stdout = stdout
        sys.stderr = stderr


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors end here
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    level = logging.DEBUG if args.debug else logging.WARNING if args.verbose else logging.CRITICAL
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.needs_host:
            return asyncio.run(_with_host(args.handler, args))
        plain: PlainCommand = args.handler
        return asyncio.run(plain(args))
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status
    except AcpPluginsError as error:
        print(f"error: {error}", file=sys.stderr)
        return _status_of(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's flush quiet
        return EXIT_OK
    except Exception as error:  # a bug of ours: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        print(
            f"error: internal error ({type(error).__name__}: {error}); rerun with --debug and "
            "report it",
            file=sys.stderr,
        )
        return 70
