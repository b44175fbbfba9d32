"""The commands that work on plugins: list, info, validate, send, run, query, report..."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from acp_plugins.audit import AuditEntry
from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from acp_plugins.cli.hosting import build_host, host_settings, server_url, views_of
from acp_plugins.cli.output import one_line, print_json, table
from acp_plugins.host import CORE_VERSION, PluginHost
from acp_plugins.loading.manifest import manifest_json_schema
from acp_plugins.loading.project import ProjectCheck, check_project
from acp_plugins.models import DataQuery, Message, TimeRange
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.views import audit_page


async def cmd_list(host: PluginHost, args: argparse.Namespace) -> int:
    records = sorted(host.records.values(), key=lambda r: r.plugin_id)
    if args.json:
        print_json([record.to_dict() for record in records])
    elif not records:
        print("no plugins installed (entry point group 'acp.plugins')")
    else:
        rows = [
            (
                r.plugin_id,
                r.version,
                "waiting" if r.waiting else r.state.value,
                ",".join(r.interfaces) or "-",
                " ".join((r.reason or "").split()),
            )
            for r in records
        ]
        print(table(["ID", "VERSION", "STATE", "INTERFACES", "REASON"], rows, wrap_last=True))
        active = sum(1 for r in records if r.state is PluginState.ACTIVE)
        waiting = sum(1 for r in records if r.waiting)
        print(
            f"\n{active} of {len(records)} plugins active"
            + (f", {waiting} waiting for their first use (started when needed)" if waiting else "")
        )
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


def _subscriptions(subscriptions: list[dict[str, Any]]) -> str:
    return ", ".join(
        s["pattern"] + (f" ({s['dropped']} dropped: queue full)" if s["dropped"] else "")
        for s in subscriptions
    )


async def cmd_info(host: PluginHost, args: argparse.Namespace) -> int:
    info = await views_of(host).plugin_info(args.plugin_id)
    status = EXIT_OK if info["state"] == PluginState.ACTIVE.value else EXIT_FAILED
    if args.json:
        print_json(info)
        return status
    fields = [
        ("id", info["plugin_id"]),
        ("name", info["name"]),
        ("version", info["version"]),
        ("state", info["state"]),
        ("reason", info["reason"]),
        ("description", info["description"]),
        ("author", info["author"]),
        ("license", info["license"]),
        ("homepage", info["homepage"]),
        ("distribution", f"{info['distribution']} {info['distribution_version']}"),
        ("entry point", info["entry_point"]),
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
        ("subscriptions", _subscriptions(info["subscriptions"])),
        ("missed events", info["missed_events"] or None),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value not in (None, ""):
            print(f"{name.ljust(width)}  {value}")
    for setting in info["settings"]:
        shown = json.dumps(setting["value"], default=str)
        origin = f"{setting['layer']} ({setting['source']})"
        print(f"{'setting'.ljust(width)}  {setting['path']} = {shown}  [{origin}]")
    for failure in info["failures"]:
        print(f"{'failure'.ljust(width)}  [{failure['stage']}] {failure['message']}")
    for hook, stats in info["metrics"].items():
        counts = f"{stats['calls']} calls, {stats['errors']} errors"
        counts += f", {stats['timeouts']} timeouts"
        latency = f"mean {stats['mean_ms']} ms, max {stats['max_ms']} ms"
        if "p99_ms" in stats:
            latency = f"p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, " + latency
        print(f"{'calls'.ljust(width)}  {hook}: {counts}, {latency}")
    return status


def _print_checks(checks: Sequence[ProjectCheck], as_json: bool) -> int:
    ok = all(check.ok for check in checks)
    if as_json:
        print_json({"valid": ok, "plugins": [check.to_dict() for check in checks]})
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
    host = build_host(args)
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


async def cmd_audit(args: argparse.Namespace) -> int:
    server = server_url(args)
    if server:
        from acp_plugins.cli.remote import remote_audit

        page = remote_audit(args, server)
    else:
        settings, _ = host_settings(args)
        page = audit_page(settings.effective_audit_log, plugin_id=args.plugin,
                          actions=args.action, last=args.last)  # fmt: skip
    entries = [AuditEntry.from_dict(entry) for entry in page["entries"]]
    path = page["path"]
    if args.json:
        print_json([entry.to_dict() for entry in entries])
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
                one_line(e.detail),
            )
            for e in entries
        ]
        print(table(["AT", "PLUGIN", "ACTION", "OUTCOME", "PERMISSION", "DETAIL"], rows))
    if page["unreadable"]:
        print(f"warning: {page['unreadable']} unreadable lines in {path} were skipped",
              file=sys.stderr)  # fmt: skip
    return EXIT_OK


async def cmd_schema(args: argparse.Namespace) -> int:
    del args
    print_json(manifest_json_schema())
    return EXIT_OK


async def cmd_send(host: PluginHost, args: argparse.Namespace) -> int:
    message = Message(type=args.type, content=" ".join(args.text), sender=args.sender)
    routed = await host.send(message)
    if args.json:
        print_json(routed.to_dict())
    elif routed.handled:
        print(f"{routed.plugin_id} (confidence {routed.confidence:.2f}): {routed.response.content}")
    else:
        print(f"unhandled: {routed.response.content}")
    if not args.json:
        for plugin_id, error in routed.errors.items():
            print(f"warning: {plugin_id}: {error}", file=sys.stderr)
    return EXIT_OK if routed.handled else EXIT_FAILED


def _end_of_options(tokens: Sequence[str]) -> int:
    return tokens.index("--") if "--" in tokens else len(tokens)


async def _command_help(host: PluginHost, name: str) -> int:
    """``run COMMAND --help``: the command's usage, arguments and options."""
    definition = await views_of(host).command(name)
    print(f"usage: acp-plugins run {definition['plugin_id']}:{definition['usage']}")
    if definition["description"]:
        print(f"\n{definition['description']}")
    rows = [(a["name"].upper(), a["type"], a["help"]) for a in definition["arguments"]]
    rows += [(f"--{o['name']}", o["type"], o["help"]) for o in definition["options"]]
    if rows:
        print()
        print(table(["ARGUMENT", "TYPE", "HELP"], rows, wrap_last=True))
    return EXIT_OK


async def cmd_run(host: PluginHost, args: argparse.Namespace) -> int:
    if any(token in ("-h", "--help") for token in args.args[: _end_of_options(args.args)]):
        return await _command_help(host, args.command)
    result = await views_of(host).run_command(args.command, args.args)
    if args.json:
        print_json(result)
    else:
        if result["output"]:
            print(result["output"])
        if not result["success"]:
            print(f"error: {args.command} failed (exit code {result['exit_code']})",
                  file=sys.stderr)  # fmt: skip
    if result["success"]:
        return EXIT_OK
    # the plugin's own exit code where a shell can tell it from a signal's (126 and up)
    code: int = result["exit_code"]
    return code if 0 < code < 126 else EXIT_FAILED


#: The longest window a duration may give (a century): a moment before year 1 cannot be.
MAX_DURATION = timedelta(days=36_525)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str) -> timedelta:
    """A duration such as ``30m``, ``12h`` or ``7d`` (an argparse type)."""
    try:
        amount = float(text[:-1])
        unit = _UNITS[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use a number and a unit, e.g. 30m, 12h, 7d"
        ) from None
    try:
        if not math.isfinite(amount) or amount < 0:
            raise OverflowError
        window = timedelta(**{unit: amount})
        if window > MAX_DURATION:
            raise OverflowError
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range; a duration is from 0 up to {MAX_DURATION.days:,}d"
        ) from None
    return window


def count(text: str) -> int:
    """A whole number of at least 0 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; use 0 or more")
    return value


def where_filter(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise argparse.ArgumentTypeError(f"--where expects FIELD=VALUE, not {text!r}")
    return field, value


async def cmd_query(host: PluginHost, args: argparse.Namespace) -> int:
    try:
        query = DataQuery(
            filters=dict(args.where),
            fields=args.fields.split(",") if args.fields else None,
            order_by=args.order_by,
            limit=args.limit,
            offset=args.offset,
            time_range=TimeRange.last(args.since) if args.since else None,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise CliError(f"bad query: {problems}", EXIT_USAGE) from None
    result = await views_of(host).query(args.source, query)
    if args.json:
        print_json(result)
        return EXIT_OK
    rows: list[dict[str, Any]] = result["rows"]
    if not rows:
        print(f"no rows from {result['source_id']}")
        return EXIT_OK
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(table(columns, [[row.get(c) for c in columns] for row in rows]))
    total = f" of {result['total']}" if result["total"] is not None else ""
    print(f"\n{len(rows)}{total} rows from {result['source_id']}")
    return EXIT_OK


async def cmd_report(host: PluginHost, args: argparse.Namespace) -> int:
    reports = await views_of(host).reports(args.plugin, args.format, TimeRange.last(args.since))
    if not reports:
        raise CliError("no active analytics provider; install one (see `acp-plugins list`)")
    if args.json:
        print_json(reports)
    else:
        print("\n".join(report["content"].rstrip("\n") for report in reports))
    return EXIT_OK


async def cmd_commands(host: PluginHost, args: argparse.Namespace) -> int:
    entries = await views_of(host).commands()
    if args.json:
        print_json(entries)
        return EXIT_OK
    rows = [
        (e["qualified_name"] if e["conflict"] else e["name"], e["plugin_id"], e["usage"],
         e["description"])
        for e in entries
    ]  # fmt: skip
    print(table(["COMMAND", "PLUGIN", "USAGE", "DESCRIPTION"], rows) if rows else "no commands")
    conflicts: dict[str, list[str]] = {}
    for e in entries:
        if e["conflict"]:
            conflicts.setdefault(e["name"], []).append(e["plugin_id"])
    for name, owners in sorted(conflicts.items()):
        print(f"conflict: '{name}' is offered by {', '.join(sorted(owners))}; use PLUGIN:{name}")
    return EXIT_OK


async def cmd_sources(host: PluginHost, args: argparse.Namespace) -> int:
    sources = await views_of(host).sources()
    if args.json:
        print_json(sources)
        return EXIT_OK
    rows = [
        (s["source_id"], ",".join(s["plugin_ids"]), ", ".join(s["fields"]), s["description"])
        for s in sources
    ]
    print(table(["SOURCE", "PLUGIN", "FIELDS", "DESCRIPTION"], rows) if rows else "no data sources")
    return EXIT_OK


async def cmd_metrics(host: PluginHost, args: argparse.Namespace) -> int:
    found = await views_of(host).metric_definitions()
    if args.json:
        print_json(found)
        return EXIT_OK
    rows = [
        (m["name"], pid, m["kind"], m["unit"], m["description"])
        for pid, ms in found.items()
        for m in ms
    ]
    print(
        table(["METRIC", "PLUGIN", "KIND", "UNIT", "DESCRIPTION"], rows) if rows else "no metrics"
    )
    return EXIT_OK
